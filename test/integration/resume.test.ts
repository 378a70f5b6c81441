/**
 * A job that was running when its process died is picked up again on restart: a real service process is
 * SIGKILLed mid-analysis, a new one is started on the same SQLite file, and the analysis completes there
 * (second attempt) once the dead process's lease has expired.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from '../helpers/fixtures.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startChild(env: Record<string, string>): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(process.execPath, [join(REPO_ROOT, 'test', 'integration', 'resume-child.ts')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: proc.stdout });
  const url = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => {
      reject(new Error('the service did not start within 60 s'));
    }, 60_000);
    proc.once('exit', (code) => {
      reject(new Error(`the service exited with ${code}`));
    });
    lines.on('line', (line) => {
      const m = JSON.parse(line) as { url?: string };
      if (m.url !== undefined) {
        clearTimeout(t);
        resolve(m.url.replace('0.0.0.0', '127.0.0.1'));
      }
    });
  });
  return { proc, url };
}

async function getAnalysis(
  url: string,
  id: string,
): Promise<{ status: string; progress: number; attempts: number; step?: string; result?: unknown }> {
  const r = await fetch(`${url}/analyses/${id}`);
  assert.equal(r.status, 200);
  return (await r.json()) as { status: string; progress: number; attempts: number; result?: unknown };
}

it('resumes an analysis whose process was SIGKILLed mid-run', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mslesion-resume-'));
  const markers = join(dir, 'markers');
  mkdirSync(markers);
  mkdirSync(join(dir, 'models'));
  const env = {
    MSLESION_DATA_DIR: dir,
    MSLESION_MODELS_DIR: join(dir, 'models'),
    MSLESION_HOST: '127.0.0.1',
    MSLESION_PORT: '0',
    MSLESION_LEASE_MS: '1500',
    MSLESION_SWEEP_INTERVAL_MS: '250',
    RESUME_MARKERS: markers,
  };
  let child: ChildProcess | undefined;
  try {
    const first = await startChild(env);
    child = first.proc;
    const posted = await fetch(`${first.url}/analyses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ studyInstanceUid: '1.2.826.0.1.3680043.8.498.777', patientId: 'RESUME-1' }),
    });
    assert.equal(posted.status, 202);
    const { id } = (await posted.json()) as { id: string };
    for (let i = 0; i < 400 && !existsSync(join(markers, 'attempt-1')); i++) await sleep(50);
    let mid = await getAnalysis(first.url, id);
    for (let i = 0; i < 100 && mid.progress < 40; i++) {
      await sleep(50);
      mid = await getAnalysis(first.url, id);
    }
    assert.deepEqual([mid.status, mid.progress, mid.step, mid.attempts], ['running', 40, 'load', 1]);

    const exited = new Promise((r) => first.proc.once('exit', r));
    first.proc.kill('SIGKILL');
    await exited;

    const second = await startChild(env);
    child = second.proc;
    let done = await getAnalysis(second.url, id);
    const deadline = Date.now() + 60_000;
    while (done.status !== 'succeeded' && Date.now() < deadline) {
      await sleep(100);
      done = await getAnalysis(second.url, id);
    }
    assert.equal(done.status, 'succeeded');
    assert.equal(done.attempts, 2);
    assert.equal(done.progress, 100);
    assert.ok(done.result !== undefined);
    assert.ok(existsSync(join(markers, 'attempt-2')));
    const stopped = new Promise<number | null>((r) => second.proc.once('exit', r));
    second.proc.kill('SIGTERM');
    assert.equal(await stopped, 0, 'graceful stop exits 0');
    child = undefined;
  } finally {
    if (child !== undefined && child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
