#!/usr/bin/env node
// The `vmalock` binary. reflect-metadata loads first, before any decorated class is evaluated.
import 'reflect-metadata';
import { runCli } from './cliApp.js';

// `vmalock ... | head`: the reader went away; stop quietly, as a Unix tool does.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

process.exitCode = await runCli(process.argv.slice(2));
