/** The BulkExportJobStore contract on SQLite: a fresh database file per test, a second connection on it. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bulkJobStoreContract } from '../../test/contracts/bulk-job-store.contract.ts';
import { SqliteBulkJobStore } from './sqlite-bulk-jobs.ts';

bulkJobStoreContract('sqlite (two connections on one file)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mslesion-bulk-jobs-'));
  const path = join(dir, 'service.db');
  const store = new SqliteBulkJobStore({ path });
  return Promise.resolve({
    store,
    openSecond: () => Promise.resolve(new SqliteBulkJobStore({ path })),
    async cleanup() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
});
