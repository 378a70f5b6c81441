/** The AnalysisStore contract on a real PostgreSQL (127.0.0.1:5432), in a throwaway schema dropped afterwards. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { analysisStoreContract, order } from '../contracts/analysis-store.contract.ts';
import { PostgresAnalysisStore } from '../../adapters/store/postgres/postgres-store.ts';
import { DomainError } from '../../domain/errors.ts';
import { dropSchema, TEST_DATABASE_URL, testSchema } from '../helpers/postgres.ts';

const URL = TEST_DATABASE_URL;

analysisStoreContract('postgres (two pools)', async () => {
  const schema = testSchema();
  const store = await PostgresAnalysisStore.open({ connectionString: URL, schema });
  return {
    store,
    openSecond: () => PostgresAnalysisStore.open({ connectionString: URL, schema }),
    async cleanup() {
      await store.close();
      await dropSchema(schema);
    },
  };
});

describe('PostgresAnalysisStore', () => {
  it('migrates once even when several processes open the schema at the same time', async () => {
    const schema = testSchema();
    try {
      const stores = await Promise.all(
        [0, 1, 2].map(() => PostgresAnalysisStore.open({ connectionString: URL, schema })),
      );
      for (const s of stores) assert.deepEqual(await s.appliedMigrations(), [1]);
      const { analysis } = await stores[0].create(order(), new Date());
      assert.deepEqual(await stores[2].get(analysis.id), analysis);
      assert.equal(await stores[1].get('not-a-uuid'), undefined);
      await Promise.all(stores.map((s) => s.close()));
    } finally {
      await dropSchema(schema);
    }
  });

  it('reports an unreachable server as STORE.UNAVAILABLE', async () => {
    await assert.rejects(
      PostgresAnalysisStore.open({
        connectionString: 'postgres://postgres@127.0.0.1:1/test',
        schema: 'x_unreach',
      }),
      (e: unknown) =>
        e instanceof DomainError && e.code === 'STORE.UNAVAILABLE' && e.issueType === 'transient',
    );
  });
});
