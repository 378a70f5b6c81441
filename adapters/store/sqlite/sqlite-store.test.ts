import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analysisStoreContract, order } from '../../../test/contracts/analysis-store.contract.ts';
import { SqliteAnalysisStore } from './sqlite-store.ts';

analysisStoreContract('sqlite (file, two connections)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mslesion-sqlite-'));
  const path = join(dir, 'store.db');
  const store = new SqliteAnalysisStore({ path });
  return Promise.resolve({
    store,
    openSecond: () => Promise.resolve(new SqliteAnalysisStore({ path })),
    async cleanup() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
});

describe('SqliteAnalysisStore', () => {
  it('migrates once and keeps data across reopening', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mslesion-sqlite-'));
    try {
      const path = join(dir, 'nested', 'store.db');
      const a = new SqliteAnalysisStore({ path });
      const { analysis } = await a.create(order(), new Date());
      assert.deepEqual(a.appliedMigrations(), [1]);
      await a.close();
      const b = new SqliteAnalysisStore({ path });
      assert.deepEqual(b.appliedMigrations(), [1]);
      assert.deepEqual(await b.get(analysis.id), analysis);
      await b.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('works in memory', async () => {
    const s = new SqliteAnalysisStore({ path: ':memory:' });
    const { created } = await s.create(order(), new Date());
    assert.equal(created, true);
    await s.close();
  });
});
