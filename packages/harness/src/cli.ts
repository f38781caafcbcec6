#!/usr/bin/env node
// The `vmalock` binary. reflect-metadata loads first, before any decorated class is evaluated.
import 'reflect-metadata';
import { runCli } from './cliApp.js';

process.exitCode = await runCli(process.argv.slice(2));
