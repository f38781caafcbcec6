// Every fast-check property in the workspace runs from one seed, so a test run is the same
// run every time; FC_SEED=<n> explores another. A failure prints fast-check's seed and path.
import fc from 'fast-check';

fc.configureGlobal({ seed: Number(process.env.FC_SEED ?? 20261126) });
