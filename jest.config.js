/** @type {import('jest').Config} */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // Each test file builds its own database; PGlite boots in ~1s, real key generation takes time. The bound
  // only ends a hung test: a loaded 2-core machine (the browser tests, the embedded database) needs room.
  testTimeout: 120000,
  maxWorkers: 2,
  transform: { '^.+\\.ts$': ['ts-jest', { }] },
};
