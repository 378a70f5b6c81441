import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { outboxContract } from '../../../test/contracts/outbox.contract.ts';
import { SqliteOutbox } from './sqlite-outbox.ts';
import { SqliteAnalysisStore } from '../../store/sqlite/sqlite-store.ts';

outboxContract('sqlite (file, two connections)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mslesion-outbox-'));
  const path = join(dir, 'service.db');
  const outbox = new SqliteOutbox({ path });
  return Promise.resolve({
    outbox,
    openSecond: () => Promise.resolve(new SqliteOutbox({ path })),
    async cleanup() {
      await outbox.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
});

describe('SqliteOutbox', () => {
  it('shares the service database file with the analysis store (separate migration ledgers)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mslesion-outbox-'));
    try {
      const path = join(dir, 'service.db');
      const store = new SqliteAnalysisStore({ path });
      const outbox = new SqliteOutbox({ path });
      assert.deepEqual(outbox.appliedMigrations(), [1]);
      assert.deepEqual(store.appliedMigrations(), [1]);
      await outbox.enqueue(
        {
          analysisId: '11111111-1111-4111-8111-111111111111',
          channel: 'hl7v2',
          contentType: 'x',
          payload: 'MSH',
        },
        new Date(),
      );
      await outbox.close();
      await store.close();
      const reopened = new SqliteOutbox({ path });
      assert.deepEqual(reopened.appliedMigrations(), [1]);
      assert.deepEqual(await reopened.countByState(), { pending: 1, delivered: 0, failed: 0 });
      await reopened.ping();
      await reopened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
