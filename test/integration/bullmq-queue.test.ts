/** The JobQueue contract on a real Redis (127.0.0.1:6379), each test in its own key prefix, removed after. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { jobQueueContract } from '../contracts/job-queue.contract.ts';
import { BullMqJobQueue, redisConnection } from '../../adapters/queue/bullmq/bullmq-queue.ts';

const REDIS = process.env.MSLESION_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

jobQueueContract('bullmq (redis)', () => {
  const prefix = `mslesion-test-${randomBytes(6).toString('hex')}`;
  const queue = new BullMqJobQueue({ redisUrl: REDIS, prefix, backoffMs: 100 });
  return Promise.resolve({
    queue,
    async cleanup() {
      await queue.obliterate();
      await queue.close();
    },
  });
});

describe('BullMqJobQueue', () => {
  it('parses redis URLs', () => {
    assert.deepEqual(redisConnection('redis://u:p%40ss@example:6380/2'), {
      host: 'example',
      port: 6380,
      username: 'u',
      password: 'p@ss',
      db: 2,
      maxRetriesPerRequest: null,
      enableOfflineQueue: true,
    });
    assert.throws(() => redisConnection('http://x'), TypeError);
  });
});
