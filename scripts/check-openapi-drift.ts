/**
 * `npm run check:openapi`: fails when openapi/generated/api.ts is not what `npm run gen:openapi` would write
 * from openapi/openapi.yaml (the generated types are stale or were edited by hand).
 * `node scripts/check-openapi-drift.ts [spec.yaml generated.ts]` checks another pair (tests).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as prettier from 'prettier';
import { REPO_ROOT } from '../test/helpers/fixtures.ts';

const SPEC = join(REPO_ROOT, 'openapi', 'openapi.yaml');
const TARGET = join(REPO_ROOT, 'openapi', 'generated', 'api.ts');

/** What `npm run gen:openapi` writes for `spec` (formatted with the repository's Prettier settings). */
export async function expectedTypes(spec = SPEC): Promise<string> {
  const bin = join(REPO_ROOT, 'node_modules', '.bin', 'openapi-typescript');
  const raw = execFileSync(bin, [spec], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const options = (await prettier.resolveConfig(TARGET)) ?? {};
  return prettier.format(raw, { ...options, filepath: TARGET });
}

async function main(spec: string, target: string): Promise<number> {
  let current: string;
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    console.error(`OPENAPI.TYPES_MISSING: ${target} does not exist; run npm run gen:openapi`);
    return 1;
  }
  const expected = await expectedTypes(spec);
  if (expected !== current) {
    const a = current.split('\n');
    const b = expected.split('\n');
    const line = a.findIndex((l, i) => l !== b[i]);
    console.error(
      `OPENAPI.TYPES_STALE: openapi/generated/api.ts differs from openapi/openapi.yaml (first at line ${line + 1}); run npm run gen:openapi`,
    );
    return 1;
  }
  console.log('openapi/generated/api.ts is up to date');
  return 0;
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  process.exitCode = await main(args.at(0) ?? SPEC, args.at(1) ?? TARGET);
}
