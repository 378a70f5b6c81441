import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from '../../test/helpers/fixtures.ts';

const CLI = join(REPO_ROOT, 'cli', 'mslesion.ts');

it('prints the masked configuration, and refuses bad flags and settings', () => {
  const env = {
    ...process.env,
    MSLESION_PACS_URL: 'http://pacs/dicom-web',
    MSLESION_PACS_USERNAME: 'u',
    MSLESION_PACS_PASSWORD: 'pw-secret',
  };
  const ok = spawnSync(
    process.execPath,
    [CLI, 'serve', '--print-config', '--port', '9123', '--role', 'api'],
    { env, encoding: 'utf8' },
  );
  assert.equal(ok.status, 0, ok.stderr);
  const printed = JSON.parse(ok.stdout) as {
    role: string;
    http: { port: number };
    pacs: { password: string };
  };
  assert.deepEqual([printed.role, printed.http.port, printed.pacs.password], ['api', 9123, '***']);
  assert.ok(!ok.stdout.includes('pw-secret'));
  const badRole = spawnSync(process.execPath, [CLI, 'serve', '--role', 'boss'], { encoding: 'utf8' });
  assert.equal(badRole.status, 2);
  assert.match(badRole.stderr, /--role must be one of api, worker, inference, all/);
  const badFlag = spawnSync(process.execPath, [CLI, 'serve', '--nope'], { encoding: 'utf8' });
  assert.equal(badFlag.status, 2);
  const badConfig = spawnSync(process.execPath, [CLI, 'serve', '--port', 'x'], { encoding: 'utf8' });
  assert.equal(badConfig.status, 1);
  assert.match(badConfig.stderr, /CONFIG\.INVALID/);
});

it(
  'serves the worker role (ops endpoints only) and stops on SIGTERM with exit 0',
  { timeout: 60_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mslesion-serve-'));
    mkdirSync(join(dir, 'models'));
    try {
      const proc = spawn(
        process.execPath,
        [CLI, 'serve', '--role', 'worker', '--port', '0', '--host', '127.0.0.1'],
        {
          env: {
            ...process.env,
            MSLESION_DATA_DIR: dir,
            MSLESION_MODELS_DIR: join(dir, 'models'),
            MSLESION_LOG_LEVEL: 'warn',
          },
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      const url = await new Promise<string>((resolve, reject) => {
        proc.once('exit', (code) => {
          reject(new Error(`exited ${code}`));
        });
        createInterface({ input: proc.stderr }).on('line', (line) => {
          const m = /listening on (\S+)/.exec(line);
          if (m !== null) resolve(m[1]);
        });
      });
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
      assert.equal((await fetch(`${url}/analyses`)).status, 404);
      const exit = new Promise<number | null>((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      assert.equal(await exit, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
