/**
 * The README's test command (`npm test`): every *.test.ts beside the code and under test/, run by Node's
 * own test runner. `--unit` skips test/integration and test/e2e (those need Orthanc, PostgreSQL, Redis).
 * Extra arguments are passed to `node --test` (e.g. `npm test -- --test-name-pattern=SEG`), and any
 * argument ending in .test.ts narrows the run to those files.
 */
import { globSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const args = process.argv.slice(2);
const unit = args.includes('--unit');
const explicit = args.filter((a) => a.endsWith('.test.ts'));
const passthrough = args.filter((a) => a !== '--unit' && !a.endsWith('.test.ts'));
const roots = ['*.test.ts', '{api,domain,adapters,cli,scripts,bench}/**/*.test.ts', 'test/**/*.test.ts'];
let files =
  explicit.length > 0
    ? explicit
    : roots.flatMap((p) => globSync(p, { exclude: (f) => f.includes('node_modules') })).sort();
if (unit) files = files.filter((f) => !/^test\/(integration|e2e)\//.test(f));
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
// No test may hang CI: every test (and hook) fails after this long (override with TEST_TIMEOUT_MS).
const timeoutMs = process.env.TEST_TIMEOUT_MS ?? '600000';
// …and the whole run ends after this long (TEST_TOTAL_TIMEOUT_MS), whatever a test file left running.
const totalMs = Number(process.env.TEST_TOTAL_TIMEOUT_MS ?? '2700000');
const r = spawnSync(
  process.execPath,
  [
    '--test',
    `--test-concurrency=${concurrency}`,
    `--test-timeout=${timeoutMs}`,
    '--test-reporter=spec',
    ...passthrough,
    ...files,
  ],
  { stdio: 'inherit', env: { ...process.env, NODE_ENV: 'test' }, timeout: totalMs, killSignal: 'SIGKILL' },
);
if (r.error !== undefined || r.signal !== null)
  console.error(
    `tests did not finish within ${String(totalMs / 60_000)} min (${r.error?.message ?? r.signal ?? ''})`,
  );
process.exit(r.status ?? 1);
