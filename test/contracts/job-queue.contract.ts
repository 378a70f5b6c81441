/**
 * The JobQueue contract, run against every adapter (in-process beside it, BullMQ on a real Redis in
 * test/integration). `open()` gives a queue on a fresh, empty namespace.
 */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import type { JobQueue } from '../../domain/ports/job-queue.port.ts';

export interface QueueHarness {
  readonly queue: JobQueue;
  cleanup(): Promise<void>;
}

export async function waitFor(cond: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ids = (n: number, tag: string) =>
  Array.from(
    { length: n },
    (_, i) => `${tag.padEnd(8, '0').slice(0, 8)}-0000-4000-8000-${String(i).padStart(12, '0')}`,
  );

export function jobQueueContract(name: string, open: () => Promise<QueueHarness>): void {
  describe(`JobQueue contract: ${name}`, () => {
    let h: QueueHarness;
    beforeEach(async () => {
      h = await open();
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it('delivers every enqueued id once, and an id already waiting or running only once', async () => {
      const seen: string[] = [];
      let release: () => void = () => undefined;
      const gate = new Promise<void>((r) => (release = r));
      const all = ids(4, 'aaaa');
      for (const id of all) await h.queue.enqueue(id);
      await h.queue.enqueue(all[0]);
      assert.equal(await h.queue.pendingCount(), 4);
      const consumer = h.queue.consume(
        async (id) => {
          seen.push(id);
          await gate;
        },
        { concurrency: 4 },
      );
      await waitFor(() => seen.length === 4, 10_000, 'four deliveries');
      await h.queue.enqueue(all[1]); // running: a no-op
      release();
      await sleep(300);
      assert.deepEqual([...seen].sort(), [...all].sort());
      // finished: the same id can be enqueued and delivered again
      await h.queue.enqueue(all[2]);
      await waitFor(() => seen.length === 5, 10_000, 'redelivery after ack');
      assert.equal(seen[4], all[2]);
      await consumer.stop(1000);
    });

    it('never runs more handlers at once than the concurrency', async () => {
      let running = 0;
      let peak = 0;
      let done = 0;
      for (const id of ids(6, 'bbbb')) await h.queue.enqueue(id);
      const consumer = h.queue.consume(
        async () => {
          running++;
          peak = Math.max(peak, running);
          await sleep(80);
          running--;
          done++;
        },
        { concurrency: 2 },
      );
      await waitFor(() => done === 6, 15_000, 'six jobs');
      assert.equal(peak, 2);
      await consumer.stop(1000);
    });

    it('redelivers after retryLater(ms) and after a throw, counting deliveries', async () => {
      const [a, b] = ids(2, 'cccc');
      const times = new Map<string, number[]>();
      const deliveries: number[] = [];
      await h.queue.enqueue(a);
      await h.queue.enqueue(b);
      const consumer = h.queue.consume(
        (id, ctx) => {
          const t = times.get(id) ?? [];
          t.push(Date.now());
          times.set(id, t);
          if (id === a) {
            if (t.length === 1) ctx.retryLater(400);
            return Promise.resolve();
          }
          deliveries.push(ctx.delivery);
          if (t.length === 1) return Promise.reject(new Error('boom'));
          return Promise.resolve();
        },
        { concurrency: 2 },
      );
      await waitFor(
        () => (times.get(a)?.length ?? 0) === 2 && (times.get(b)?.length ?? 0) === 2,
        15_000,
        'retries',
      );
      const ta = times.get(a)!;
      assert.ok(ta[1] - ta[0] >= 380, `retry waited ${ta[1] - ta[0]} ms`);
      assert.deepEqual(deliveries, [1, 2]);
      await sleep(200);
      assert.equal(times.get(a)?.length, 2);
      assert.equal(times.get(b)?.length, 2);
      await consumer.stop(1000);
    });

    it('holds a delayed enqueue back', async () => {
      const [a] = ids(1, 'dddd');
      const at: number[] = [];
      const start = Date.now();
      await h.queue.enqueue(a, { delayMs: 500 });
      assert.equal(await h.queue.pendingCount(), 1);
      const consumer = h.queue.consume(
        () => {
          at.push(Date.now());
          return Promise.resolve();
        },
        { concurrency: 1 },
      );
      await waitFor(() => at.length === 1, 10_000, 'delayed delivery');
      assert.ok(at[0] - start >= 480, `delivered after ${at[0] - start} ms`);
      await consumer.stop(1000);
    });

    it('stops gracefully: running handlers finish, nothing new starts, the grace period aborts stragglers', async () => {
      const [a, b, c] = ids(3, 'eeee');
      const started: string[] = [];
      let finishedA = false;
      let abortedB = false;
      await h.queue.enqueue(a);
      await h.queue.enqueue(b);
      const consumer = h.queue.consume(
        async (id, ctx) => {
          started.push(id);
          if (id === a) {
            await sleep(200);
            finishedA = true;
            return;
          }
          await new Promise<void>((resolve) => {
            ctx.signal.addEventListener('abort', () => {
              abortedB = true;
              resolve();
            });
          });
        },
        { concurrency: 2 },
      );
      await waitFor(() => started.length === 2, 10_000, 'two running');
      const t0 = Date.now();
      await Promise.all([consumer.stop(700), sleep(50).then(() => h.queue.enqueue(c))]);
      const took = Date.now() - t0;
      assert.ok(finishedA, 'the short handler finished');
      assert.ok(abortedB, 'the long handler was aborted after the grace period');
      assert.ok(took >= 600 && took < 8000, `stop took ${took} ms`);
      await sleep(200);
      assert.ok(!started.includes(c), 'nothing started after stop');
    });

    it('answers ping', async () => {
      await h.queue.ping();
    });
  });
}
