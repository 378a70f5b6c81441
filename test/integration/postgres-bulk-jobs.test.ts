/** The BulkExportJobStore contract on a real PostgreSQL (127.0.0.1:5432), in a throwaway schema dropped afterwards. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PostgresBulkJobStore } from '../../adapters/bulk/postgres-bulk-jobs.ts';
import { bulkJobStoreContract } from '../contracts/bulk-job-store.contract.ts';

const URL = process.env.MSLESION_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function dropSchema(schema: string): Promise<void> {
  const c = new pg.Client({ connectionString: URL });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await c.end();
  }
}

bulkJobStoreContract('postgres (two pools)', async () => {
  const schema = `mslesion_test_${randomBytes(6).toString('hex')}`;
  const store = await PostgresBulkJobStore.open({ connectionString: URL, schema });
  return {
    store,
    openSecond: () => PostgresBulkJobStore.open({ connectionString: URL, schema }),
    async cleanup() {
      await store.close();
      await dropSchema(schema);
    },
  };
});
