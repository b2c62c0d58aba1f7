/**
 * Import rules (docs/ARCHITECTURE.md): checked by `npm run lint:imports` (scripts/check-imports.mjs), part of
 * `npm test`. Modules are the folders under src/; each one's public face is its index.ts. Tests, benchmarks and the
 * chaos harness are not checked: they may import anything.
 */
const adapters = ['^src/store/', '^node_modules/(pg|ioredis|@electric-sql/pglite)/', '^(node:)?(fs|fs/promises|net|http|http2|https)$'];

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A file may not reach itself through its imports (type-only imports count).',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'no-deep-import-across-modules',
      severity: 'error',
      comment: "Another module is reached only through its index.ts; files inside a module import each other freely.",
      from: { path: '^src/([^/]+)/' },
      to: { path: '^src/[^/]+/', pathNot: ['^src/$1/', '^src/[^/]+/index\\.ts$'] },
    },
    {
      name: 'composition-root-imports-indexes',
      severity: 'error',
      comment: 'src/app.ts and src/main.ts use modules through their index.ts like everyone else.',
      from: { path: '^src/[^/]+\\.ts$' },
      to: { path: '^src/[^/]+/', pathNot: '^src/[^/]+/index\\.ts$' },
    },
    {
      name: 'no-module-imports-the-composition-root',
      severity: 'error',
      comment: 'Only the CLI starts the server (src/main.ts); nothing imports src/app.ts.',
      from: { path: '^src/[^/]+/', pathNot: '^src/cli/' },
      to: { path: '^src/[^/]+\\.ts$' },
    },
    {
      name: 'pure-cores-import-no-adapters',
      severity: 'error',
      comment: 'Pure cores take time and data as arguments: no database, Redis, file system or network.',
      from: { path: ['^src/rating/', '^src/check/decide\\.ts$', '^src/check/check-plan\\.ts$', '^src/counters/window\\.ts$'] },
      to: { path: adapters },
    },
  ],
  options: {
    // TypeScript 7 has no compiler API for dependency-cruiser's own TypeScript parser; swc sees type-only imports too.
    parser: 'swc',
    tsPreCompilationDeps: true,
    moduleSystems: ['es6'],
    doNotFollow: { path: 'node_modules' },
    exclude: { path: ['node_modules', '\\.d\\.ts$'] },
  },
};
