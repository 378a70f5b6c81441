import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteAnalysisStore } from '../../adapters/store/sqlite/sqlite-store.ts';
import { InProcessJobQueue } from '../../adapters/queue/in-process/in-process-queue.ts';
import { FsArtifactStore } from '../../adapters/artifacts/fs/fs-artifact-store.ts';
import { systemClock } from '../../adapters/clock/system-clock.ts';
import { order, sampleResult } from '../../test/contracts/analysis-store.contract.ts';
import { DomainError } from '../errors.ts';
import { SILENT_LOGGER } from '../ports/logger.port.ts';
import { NO_JOB_METRICS } from '../ports/job-metrics.port.ts';
import { runAnalysis } from './run-analysis.ts';
import { submitOrder } from './submit-order.ts';
import { recoverDeliveries, startWorker } from './worker.ts';

describe('startWorker', () => {
  it('runs submitted orders, retries transient failures, and picks up work left by a dead worker', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mslesion-worker-'));
    const store = new SqliteAnalysisStore({ path: join(dir, 's.db') });
    const queue = new InProcessJobQueue();
    const artifacts = new FsArtifactStore(join(dir, 'art'));
    const deps = { store, queue, clock: systemClock, logger: SILENT_LOGGER };
    try {
      // left over: queued before the start (not in the in-process queue) and running with a dead lease
      const leftQueued = (await store.create(order(), new Date())).analysis;
      const leftRunning = (await store.create(order(), new Date())).analysis;
      await store.claim(leftRunning.id, { owner: 'dead', leaseMs: 200, now: new Date() });
      const transientOnce = new Set<string>();
      const worker = startWorker({
        ...deps,
        run: (id, signal) =>
          runAnalysis(
            {
              store,
              artifacts,
              clock: systemClock,
              logger: SILENT_LOGGER,
              metrics: NO_JOB_METRICS,
              workerId: 'w',
              leaseMs: 5000,
              maxAttempts: 3,
              retryBaseMs: 100,
              retryMaxMs: 100,
              pipeline: async (ctx) => {
                await ctx.progress(0.5, 'work');
                if (ctx.analysis.order.patientId === 'FLAKY' && !transientOnce.has(id)) {
                  transientOnce.add(id);
                  throw new DomainError('PACS.UNREACHABLE', 'down', { issueType: 'transient' });
                }
                return {};
              },
            },
            id,
            signal,
          ),
        concurrency: 2,
        sweepIntervalMs: 100,
        staleQueuedMs: 60_000,
      });
      const fresh = await submitOrder(deps, order());
      const flaky = await submitOrder(deps, order({ patientId: 'FLAKY' }));
      const ids = [leftQueued.id, leftRunning.id, fresh.analysis.id, flaky.analysis.id];
      const deadline = Date.now() + 15_000;
      for (;;) {
        const all = await Promise.all(ids.map((id) => store.get(id)));
        if (all.every((a) => a?.status === 'succeeded')) break;
        if (Date.now() > deadline) assert.fail(`not all succeeded: ${all.map((a) => a?.status).join(',')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal((await store.get(leftRunning.id))?.attempts, 2);
      assert.equal((await store.get(flaky.analysis.id))?.attempts, 2);
      await worker.stop(1000);
    } finally {
      await queue.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('recoverDeliveries', () => {
  it('queues the results of succeeded analyses never queued on a channel, again after a failure, then never twice', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mslesion-redeliver-'));
    const store = new SqliteAnalysisStore({ path: join(dir, 's.db') });
    let now = new Date('2031-02-03T10:00:00.000Z');
    const clock = { now: () => now, sleep: () => Promise.resolve() };
    try {
      const finish = async (finishedAt: Date): Promise<string> => {
        const a = (await store.create(order(), finishedAt)).analysis;
        await store.update(
          a.id,
          { status: 'succeeded', finishedAt: finishedAt.toISOString(), result: sampleResult() },
          finishedAt,
        );
        return a.id;
      };
      const old = await finish(new Date(now.getTime() - 120_000)); // its queueing after the run failed
      const recent = await finish(new Date(now.getTime() - 5_000)); // its run may still be queueing
      let outboxUp = false;
      const calls: string[] = [];
      const redelivery = {
        channels: ['fhir'] as const,
        afterMs: 60_000,
        lookbackMs: 3_600_000,
        queue: async (a: { id: string }) => {
          calls.push(a.id);
          if (!outboxUp)
            throw new DomainError('OUTBOX.UNAVAILABLE', 'outbox down', { issueType: 'transient' });
          await store.update(a.id, { delivery: [{ channel: 'fhir', state: 'pending', attempts: 0 }] }, now);
        },
      };
      const deps = { store, clock, logger: SILENT_LOGGER, redelivery };
      assert.deepEqual(await recoverDeliveries(deps), [], 'the outbox is down: nothing queued');
      assert.deepEqual(calls, [old], 'only the analysis past the grace period was tried');
      assert.deepEqual((await store.get(old))?.delivery, [], 'left as it was, for the next sweep');
      outboxUp = true;
      assert.deepEqual(await recoverDeliveries(deps), [old]);
      now = new Date(now.getTime() + 120_000);
      assert.deepEqual(
        await recoverDeliveries(deps),
        [recent],
        'the recent one, once its grace period is over',
      );
      assert.deepEqual(await recoverDeliveries(deps), [], 'each analysis is queued once');
      assert.deepEqual(calls, [old, old, recent]);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
