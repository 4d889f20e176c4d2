#!/usr/bin/env node
/* global require, module, process, __dirname */
/* eslint-disable @typescript-eslint/no-require-imports -- plain CommonJS: it runs before anything is compiled */
'use strict';
/**
 * Build once: `npm start`, `npm run idp` and the benchmarks run the compiled code in dist/, and
 * compile only when a source changed since the last build. Plain JavaScript, because it runs before
 * anything is compiled; it must cost a few milliseconds when nothing changed.
 *
 *   node scripts/build-if-stale.js [--force] [<dist entry point> [args...]]
 *
 * - Stale when a file or directory under src/, db/ or scripts/ (or a tsconfig) is newer than
 *   dist/.build-stamp, or the stamp or a build's output is missing. Directories count too:
 *   deleting or renaming a source changes its directory's mtime.
 * - Building runs `tsc -p tsconfig.build.json`, then `tsc -p packages/verifier/tsconfig.json` (the
 *   verifier kit's standalone package, compiled from src/verifier into packages/verifier/dist),
 *   both incremental; the stamp takes the time the build started, so an edit made during a build
 *   makes the next call build again. Concurrent callers wait for one build (a lock directory)
 *   instead of compiling into dist/ at the same time.
 * - A failed build prints tsc's errors and exits with its code: never a silent run of stale code.
 * - With an entry point, the script then runs it in this same process (one Node start-up, not
 *   two), with process.argv as if it had been started directly: `node dist/src/cli/main.js args…`.
 */
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
const SOURCES = ['src', 'db', 'scripts'];
const PACKAGE_TSCONFIG = path.join('packages', 'verifier', 'tsconfig.json');
const CONFIGS = ['tsconfig.json', 'tsconfig.build.json', PACKAGE_TSCONFIG];
/** What each build compiles; a missing output makes the build stale whatever the stamp says. */
const BUILDS = [
  { tsconfig: 'tsconfig.build.json', output: path.join('dist', 'src', 'main.js') },
  { tsconfig: PACKAGE_TSCONFIG, output: path.join('packages', 'verifier', 'dist', 'index.js') },
];
const STAMP = path.join(ROOT, 'dist', '.build-stamp');
const LOCK = path.join(ROOT, 'dist', '.build-lock');
const LOCK_STALE_MS = 5 * 60_000;

/** The newest mtime (ms) of the sources under `root`. */
function newestSource(root) {
  let newest = 0;
  const visit = (target) => {
    let entries;
    try {
      entries = fs.readdirSync(target, { withFileTypes: true });
      newest = Math.max(newest, fs.statSync(target).mtimeMs);
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(target, entry.name);
      if (entry.isDirectory()) visit(full);
      else if (entry.isFile()) newest = Math.max(newest, fs.statSync(full).mtimeMs);
    }
  };
  for (const dir of SOURCES) visit(path.join(root, dir));
  for (const file of CONFIGS) {
    const stat = fs.statSync(path.join(root, file), { throwIfNoEntry: false });
    if (stat) newest = Math.max(newest, stat.mtimeMs);
  }
  return newest;
}

/** True when dist/ is older than a source, was never stamped, or a build's output is missing. */
function isStale(root = ROOT) {
  const stamp = fs.statSync(path.join(root, 'dist', '.build-stamp'), { throwIfNoEntry: false });
  if (!stamp || BUILDS.some((b) => !fs.existsSync(path.join(root, b.output)))) return true;
  return newestSource(root) > stamp.mtimeMs;
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Runs tsc under the lock; returns its exit code. */
function build() {
  fs.mkdirSync(path.dirname(LOCK), { recursive: true });
  for (;;) {
    try {
      fs.mkdirSync(LOCK);
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      const held = fs.statSync(LOCK, { throwIfNoEntry: false });
      if (held && Date.now() - held.mtimeMs > LOCK_STALE_MS) fs.rmSync(LOCK, { recursive: true, force: true });
      else sleep(200);
      // Another process was building: maybe there is nothing left to do.
      if (!force && !isStale()) return 0;
    }
  }
  try {
    const started = new Date();
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    if (!fs.existsSync(tsc)) {
      if (fs.existsSync(path.join(ROOT, 'dist', 'src'))) {
        process.stderr.write('build-if-stale: typescript is not installed (production install?); running dist/ as it is\n');
        return 0;
      }
      process.stderr.write('build-if-stale: dist/ is missing and typescript is not installed: run `npm install`\n');
      return 1;
    }
    let code = 0;
    for (const { tsconfig } of BUILDS) {
      code = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, tsconfig)], { cwd: ROOT, stdio: 'inherit' }).status ?? 1;
      if (code !== 0) break;
    }
    if (code === 0) {
      fs.writeFileSync(STAMP, `${started.toISOString()}\n`);
      fs.utimesSync(STAMP, started, started);
    }
    return code;
  } finally {
    fs.rmSync(LOCK, { recursive: true, force: true });
  }
}

const args = process.argv.slice(2);
const force = args[0] === '--force';
if (force) args.shift();

if (require.main === module) {
  if (force || isStale()) {
    const code = build();
    if (code !== 0) process.exit(code);
  }
  if (args.length > 0) {
    const entry = path.resolve(ROOT, args[0]);
    process.argv = [process.argv[0], entry, ...args.slice(1)];
    require(entry);
  }
}

module.exports = { isStale, newestSource };
