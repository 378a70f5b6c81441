/** The Outbox contract on a real PostgreSQL (127.0.0.1:5432), in a throwaway schema dropped afterwards. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PostgresOutbox } from '../../adapters/outbox/postgres/postgres-outbox.ts';
import { PostgresAnalysisStore } from '../../adapters/store/postgres/postgres-store.ts';
import { outboxContract } from '../contracts/outbox.contract.ts';
import { dropSchema, TEST_DATABASE_URL, testSchema } from '../helpers/postgres.ts';

const URL = TEST_DATABASE_URL;

outboxContract('postgres (two pools)', async () => {
  const schema = testSchema();
  const outbox = await PostgresOutbox.open({ connectionString: URL, schema });
  return {
    outbox,
    openSecond: () => PostgresOutbox.open({ connectionString: URL, schema }),
    async cleanup() {
      await outbox.close();
      await dropSchema(schema);
    },
  };
});

describe('PostgresOutbox', () => {
  it('lives beside the analysis store in one schema; concurrent opens migrate once; racing enqueues make one row', async () => {
    const schema = testSchema();
    try {
      const store = await PostgresAnalysisStore.open({ connectionString: URL, schema });
      const boxes = await Promise.all(
        [0, 1, 2].map(() => PostgresOutbox.open({ connectionString: URL, schema })),
      );
      for (const b of boxes) assert.deepEqual(await b.appliedMigrations(), [1]);
      assert.deepEqual(await store.appliedMigrations(), [1]);
      const entry = {
        analysisId: '11111111-1111-4111-8111-111111111111',
        channel: 'fhir' as const,
        contentType: 'application/fhir+json',
        payload: '{"resourceType":"Bundle"}',
      };
      const results = await Promise.all(boxes.map((b) => b.enqueue(entry, new Date())));
      assert.equal(results.filter((r) => r.changed).length, 1, 'one writer inserts, the others see it');
      assert.deepEqual(await boxes[0].countByState(), { pending: 1, delivered: 0, failed: 0 });
      await boxes[1].ping();
      await Promise.all(boxes.map((b) => b.close()));
      await store.close();
    } finally {
      await dropSchema(schema);
    }
  });
});
