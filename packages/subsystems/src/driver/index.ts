// The driver family of mock subsystems (issue 5): binder, HMM and GEM, each legacy and converted.
// Wired into the package index and the registry by the lead.
export { BINDER_BASE, BINDER_PAGES, BINDER_SIZE, type BinderAlloc, ESRCH, binder } from './binder.js';
export { firstFreeFd } from '../common.js';
export { GEM_BASE, GEM_OBJECTS, GEM_OBJECT_PAGES, GEM_WINDOWS, type GemFile, type GemObject, gem, gemWindow } from './gem.js';
export { HMM_BASE, HMM_PAGES, HMM_RETRIES_MAX, type HmmMirror, hmm } from './hmm.js';
