import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../test/helpers/fixtures.ts';

const script = join(REPO_ROOT, 'scripts', 'check-openapi-drift.ts');
const run = (...args: string[]) => spawnSync(process.execPath, [script, ...args], { encoding: 'utf8' });

it('passes on the committed types and fails, coded, when the spec changed or the types are missing', () => {
  const ok = run();
  assert.equal(ok.status, 0, ok.stderr);
  const dir = mkdtempSync(join(tmpdir(), 'mslesion-drift-'));
  try {
    const spec = join(dir, 'openapi.yaml');
    const types = join(dir, 'api.ts');
    copyFileSync(join(REPO_ROOT, 'openapi', 'openapi.yaml'), spec);
    copyFileSync(join(REPO_ROOT, 'openapi', 'generated', 'api.ts'), types);
    assert.equal(run(spec, types).status, 0);
    writeFileSync(
      spec,
      readFileSync(spec, 'utf8').replace(
        '        uptimeSeconds: { type: number, minimum: 0 }',
        '        uptimeSeconds: { type: number, minimum: 0 }\n        extra: { type: string }',
      ),
    );
    const stale = run(spec, types);
    assert.equal(stale.status, 1);
    assert.match(stale.stderr, /OPENAPI\.TYPES_STALE/);
    const missing = run(spec, join(dir, 'none.ts'));
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /OPENAPI\.TYPES_MISSING/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
