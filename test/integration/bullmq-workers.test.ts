/**
 * Scale-out: two worker processes on one BullMQ queue (real Redis) and one PostgreSQL store (real server,
 * throwaway schema) share the work, and no analysis ever runs twice — also when one worker is SIGKILLed
 * mid-job (its job is finished by the other after the lease expires, never at the same time).
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { loadConfig } from '../../config.ts';
import { compose } from '../../compose.ts';
import { createLogger } from '../../adapters/logging/logger.ts';
import { BullMqJobQueue } from '../../adapters/queue/bullmq/bullmq-queue.ts';
import { REPO_ROOT } from '../helpers/fixtures.ts';
import { serve } from '../contracts/http-client.ts';

const DB = process.env.MSLESION_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS = process.env.MSLESION_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function startWorker(env: Record<string, string>): Promise<ChildProcess> {
  const proc = spawn(process.execPath, [join(REPO_ROOT, 'test', 'integration', 'worker-child.ts')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      reject(new Error('worker did not start'));
    }, 60_000);
    proc.once('exit', (code) => {
      reject(new Error(`worker exited with ${code}`));
    });
    createInterface({ input: proc.stdout }).on('line', (line) => {
      if ((JSON.parse(line) as { url?: string }).url !== undefined) {
        clearTimeout(t);
        resolve(proc);
      }
    });
  });
}

interface Run {
  readonly id: string;
  readonly pid: number;
  readonly start: number;
  readonly end?: number;
}

function runs(path: string): Run[] {
  if (!existsSync(path)) return [];
  const out: Run[] = [];
  for (const line of readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')) {
    const [kind, id, pid, t] = line.split(' ');
    if (kind === 'start') out.push({ id, pid: Number(pid), start: Number(t) });
    else {
      const i = out.findIndex((r) => r.id === id && r.pid === Number(pid) && r.end === undefined);
      out[i] = { ...out[i], end: Number(t) };
    }
  }
  return out;
}

it(
  'two worker processes share one queue and store, and never run an analysis twice',
  { timeout: 240_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mslesion-scale-'));
    mkdirSync(join(dir, 'models'));
    const schema = `mslesion_test_${randomBytes(6).toString('hex')}`;
    const prefix = `mslesion-test-${randomBytes(6).toString('hex')}`;
    const runLog = join(dir, 'runs.log');
    const env = {
      MSLESION_DATA_DIR: dir,
      MSLESION_MODELS_DIR: join(dir, 'models'),
      MSLESION_STORE: 'postgres',
      MSLESION_DATABASE_URL: DB,
      MSLESION_DATABASE_SCHEMA: schema,
      MSLESION_QUEUE: 'bullmq',
      MSLESION_REDIS_URL: REDIS,
      MSLESION_QUEUE_PREFIX: prefix,
      MSLESION_HOST: '127.0.0.1',
      MSLESION_PORT: '0',
      MSLESION_LEASE_MS: '2000',
      MSLESION_SWEEP_INTERVAL_MS: '300',
      MSLESION_WORKER_CONCURRENCY: '2',
      RUN_LOG: runLog,
      RUN_MS: '300',
    };
    const api = await compose(loadConfig({ env: { ...env, MSLESION_ROLE: 'api' } }), {
      logger: createLogger({ level: 'silent' }),
    });
    const workers: ChildProcess[] = [];
    try {
      workers.push(await startWorker({ ...env, MSLESION_ROLE: 'worker' }));
      workers.push(await startWorker({ ...env, MSLESION_ROLE: 'worker' }));
      const ids: string[] = [];
      for (let i = 0; i < 16; i++)
        ids.push(
          (
            await api.useCases.submitOrder({
              studyInstanceUid: `1.2.826.0.1.3680043.8.498.${9000 + i}`,
              patientId: `SCALE-${i}`,
              placerOrderNumber: `SCALE-PON-${prefix}-${i}`,
              source: 'rest',
              options: {},
            })
          ).analysis.id,
        );
      // a repeated order changes nothing
      const again = await api.useCases.submitOrder({
        studyInstanceUid: '1.2.826.0.1.3680043.8.498.9000',
        patientId: 'SCALE-0',
        placerOrderNumber: `SCALE-PON-${prefix}-0`,
        source: 'rest',
        options: {},
      });
      assert.equal(again.created, false);

      // kill one worker while it is running something
      for (
        let i = 0;
        i < 200 && !runs(runLog).some((r) => r.pid === workers[0].pid && r.end === undefined);
        i++
      )
        await sleep(25);
      const victim = runs(runLog).find((r) => r.pid === workers[0].pid && r.end === undefined);
      assert.ok(victim, 'the first worker took a job');
      const t0 = Date.now();
      const exited = new Promise((r) => workers[0].once('exit', r));
      workers[0].kill('SIGKILL');
      await exited;

      const deadline = Date.now() + 120_000;
      for (;;) {
        const all = await Promise.all(ids.map((id) => api.useCases.getAnalysis(id)));
        if (all.every((a) => a.status === 'succeeded')) break;
        if (Date.now() > deadline) assert.fail(`not all succeeded: ${all.map((a) => a.status).join(',')}`);
        await sleep(200);
      }
      const recoveredInMs = Date.now() - t0;
      const log = runs(runLog);
      // the victim's unfinished jobs (one or two: concurrency 2) were all redone by the survivor
      const unfinished = new Set(
        log.filter((r) => r.pid === workers[0].pid && r.end === undefined).map((r) => r.id),
      );
      assert.ok(unfinished.has(victim.id));
      const finished = log.filter((r) => r.end !== undefined);
      // every analysis finished exactly once
      assert.deepEqual(finished.map((r) => r.id).sort(), [...ids].sort());
      // the killed one was started by the victim, finished by the survivor, after the victim died
      const redo = log.filter((r) => r.id === victim.id);
      assert.equal(redo.length, 2);
      assert.equal(redo[1].pid, workers[1].pid);
      assert.equal((await api.useCases.getAnalysis(victim.id)).attempts, 2);
      // no two runs of one analysis overlapped in time, and both workers did work
      for (const id of ids) {
        const rs = log.filter((r) => r.id === id).sort((a, b) => a.start - b.start);
        for (let i = 1; i < rs.length; i++) assert.ok(rs[i].start >= (rs[i - 1].end ?? rs[i - 1].start));
      }
      assert.ok(new Set(finished.map((r) => r.pid)).size >= 1);
      assert.ok(log.some((r) => r.pid === workers[0].pid));
      for (const id of unfinished) assert.equal((await api.useCases.getAnalysis(id)).attempts, 2);
      const others = ids.filter((id) => !unfinished.has(id));
      const attempts = await Promise.all(
        others.map(async (id) => (await api.useCases.getAnalysis(id)).attempts),
      );
      assert.ok(
        attempts.every((n) => n === 1),
        `attempts ${attempts.join(',')}`,
      );
      assert.ok(recoveredInMs < 60_000, `recovered in ${recoveredInMs} ms`);
      process.stdout.write(
        `# all done ${recoveredInMs} ms after the SIGKILL; ${unfinished.size} job(s) redone\n`,
      );

      // the API node's audit trail is in the shared PostgreSQL schema: a REST read lands there
      const http = await serve(api.app);
      try {
        assert.equal((await http.call('getAnalysis', `/analyses/${ids[0]}`)).status, 200);
      } finally {
        await http.close();
      }
      const db = new pg.Client({ connectionString: DB });
      await db.connect();
      try {
        const audit = await db.query<{ n: string }>(
          `SELECT count(*) AS n FROM ${schema}.audit_events WHERE patient_id = 'SCALE-0'`,
        );
        assert.equal(audit.rows[0]?.n, '1');
      } finally {
        await db.end();
      }

      const stopped = new Promise<number | null>((r) => workers[1].once('exit', r));
      workers[1].kill('SIGTERM');
      assert.equal(await stopped, 0);
    } finally {
      for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
      await api.close();
      const q = new BullMqJobQueue({ redisUrl: REDIS, prefix });
      await q.obliterate();
      await q.close();
      const c = new pg.Client({ connectionString: DB });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
