import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { jobQueueContract, waitFor } from '../../../test/contracts/job-queue.contract.ts';
import { InProcessJobQueue } from './in-process-queue.ts';

jobQueueContract('in-process', () => {
  const queue = new InProcessJobQueue({ retryDelaysMs: [50, 50] });
  return Promise.resolve({ queue, cleanup: () => queue.close() });
});

describe('InProcessJobQueue', () => {
  it('gives up after its retry budget and reports each failure', async () => {
    const errors: string[] = [];
    const q = new InProcessJobQueue({ retryDelaysMs: [10, 10], onError: (id) => errors.push(id) });
    let calls = 0;
    await q.enqueue('x');
    const c = q.consume(
      () => {
        calls++;
        return Promise.reject(new Error('always'));
      },
      { concurrency: 1 },
    );
    await waitFor(() => calls === 3);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(calls, 3);
    assert.deepEqual(errors, ['x', 'x', 'x']);
    await c.stop(100);
    await q.close();
    await assert.rejects(q.enqueue('y'));
    await assert.rejects(q.ping());
  });

  it('rejects a second consumer and a bad concurrency', async () => {
    const q = new InProcessJobQueue();
    assert.throws(() => q.consume(() => Promise.resolve(), { concurrency: 0 }), RangeError);
    q.consume(() => Promise.resolve(), { concurrency: 1 });
    assert.throws(() => q.consume(() => Promise.resolve(), { concurrency: 1 }));
    await q.close();
  });
});
