#!/usr/bin/env node
import { runCli } from './program';

runCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (error: Error) => {
    process.stderr.write(`idp: ${error.message}\n`);
    process.exitCode = 1;
  },
);
