import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * scripts/build-if-stale.js, the check in front of `npm start` and `npm run idp`: build when a
 * source is newer than the last build, never otherwise. On a scratch tree (the real dist/ is shared).
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { isStale } = require('../../scripts/build-if-stale.js') as { isStale(root: string): boolean };

describe('build-if-stale', () => {
  let root: string;
  const touch = (file: string, when: Date) => {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    if (!fs.existsSync(path.join(root, file))) fs.writeFileSync(path.join(root, file), '');
    fs.utimesSync(path.join(root, file), when, when);
  };
  const past = new Date(Date.now() - 3_600_000);
  const built = new Date(Date.now() - 1_800_000);

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'idp-stale-'));
    for (const file of ['src/main.ts', 'src/cli/main.ts', 'db/migrations/index.ts', 'scripts/bench-cli.ts', 'tsconfig.json', 'tsconfig.build.json']) touch(file, past);
    for (const dir of ['src/cli', 'src', 'db/migrations', 'db', 'scripts']) fs.utimesSync(path.join(root, dir), past, past);
    touch('dist/.build-stamp', built);
    for (const output of ['dist/src/main.js', 'packages/verifier/dist/index.js']) touch(output, built);
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  it('is fresh when nothing changed since the stamp', () => {
    expect(isStale(root)).toBe(false);
  });

  it('is stale without a stamp (never built, or dist/ removed)', () => {
    fs.rmSync(path.join(root, 'dist'), { recursive: true });
    expect(isStale(root)).toBe(true);
  });

  it('is stale when the verifier package was not built (packages/verifier/dist removed)', () => {
    fs.rmSync(path.join(root, 'packages/verifier/dist'), { recursive: true });
    expect(isStale(root)).toBe(true);
  });

  it.each(['src/cli/main.ts', 'db/migrations/index.ts', 'scripts/bench-cli.ts', 'tsconfig.build.json', 'packages/verifier/tsconfig.json'])('is stale when %s is edited', (file) => {
    touch(file, new Date());
    expect(isStale(root)).toBe(true);
  });

  it('is stale when a source is deleted (its directory changed)', () => {
    fs.rmSync(path.join(root, 'src/cli/main.ts'));
    expect(isStale(root)).toBe(true);
  });

  it('ignores what is not a source: tests, docs, dist itself', () => {
    touch('test/cli/x.test.ts', new Date());
    touch('README.md', new Date());
    touch('dist/src/main.js', new Date());
    expect(isStale(root)).toBe(false);
  });
});
