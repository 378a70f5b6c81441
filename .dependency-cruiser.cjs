/** Layering rules (hexagonal). `npm run lint` fails on any violation. */
module.exports = {
  forbidden: [
    {
      name: 'domain-is-pure',
      comment: 'domain/ imports nothing outside itself: no adapters, api, npm packages or Node built-ins',
      severity: 'error',
      from: { path: '^domain/' },
      to: { pathNot: '^domain/' },
    },
    {
      name: 'api-never-imports-adapters',
      comment: 'api/ is driven by the use cases; adapters are wired in compose.ts only',
      severity: 'error',
      from: { path: '^api/' },
      to: { path: '^(adapters|cli)/' },
    },
    {
      name: 'adapters-do-not-import-api',
      severity: 'error',
      from: { path: '^adapters/' },
      to: { path: '^(api|cli)/|^compose\\.ts$|^main\\.ts$' },
    },
    {
      name: 'one-composition-root',
      comment: 'only compose.ts (and tests) may import both api/ and adapters/',
      severity: 'error',
      from: { path: '^(api|domain|adapters)/' },
      to: { path: '^compose\\.ts$' },
    },
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^(api|domain|adapters|cli|compose\\.ts|main\\.ts|config\\.ts)',
    exclude: { path: '\\.test\\.ts$' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.json'] },
  },
};
