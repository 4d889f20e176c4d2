/**
 * The import rules of src/ (docs/layout.md "Layout"), checked by `npm run lint`:
 * - no import cycle, type-only imports included (they tie modules together as much as any other);
 * - nothing imports the composition root but the entry points (src/main.ts; the CLI never does: it
 *   would load the whole HTTP stack for one command);
 * - the verifier kit is a client library: it imports nothing of the server, and at run time nothing
 *   but Node and jose (its package, packages/verifier, depends on jose alone; Express is an optional
 *   peer dependency, for types only).
 */
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'an import cycle (type imports included)', from: {}, to: { circular: true } },
    {
      name: 'composition-root-is-imported-by-entry-points-only',
      severity: 'error',
      comment: 'src/compose.ts wires the capabilities; capabilities declare what they need instead of importing it',
      from: { path: '^src/', pathNot: '^src/main\\.ts$' },
      to: { path: '^src/compose\\.ts$' },
    },
    {
      name: 'verifier-kit-stands-alone',
      severity: 'error',
      comment: 'the verifier kit is installed by resource servers: it depends on nothing of the server',
      from: { path: '^src/verifier/' },
      to: { path: '^src/', pathNot: '^src/verifier/' },
    },
    {
      name: 'verifier-kit-runs-on-jose-alone',
      severity: 'error',
      comment: 'packages/verifier declares jose as its only dependency: anything else it loads would be missing when installed',
      from: { path: '^src/verifier/' },
      to: { dependencyTypesNot: ['core', 'type-only'], pathNot: ['^src/verifier/', 'node_modules/jose/'] },
    },
    {
      name: 'verifier-kit-types-need-express-alone',
      severity: 'error',
      comment: 'its declarations may name Express types (an optional peer dependency) and nothing else outside the kit',
      from: { path: '^src/verifier/' },
      to: { dependencyTypes: ['type-only'], pathNot: ['^src/verifier/', 'node_modules/(@types/)?express/'] },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
