/** The AuditLog contract on a real PostgreSQL (127.0.0.1:5432), in a throwaway schema dropped afterwards. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { PostgresAuditLog } from '../../adapters/audit/postgres-audit-log.ts';
import { auditLogContract, sampleRead } from '../contracts/audit-log.contract.ts';
import { dropSchema, TEST_DATABASE_URL, testSchema } from '../helpers/postgres.ts';

auditLogContract('postgres', async () => {
  const schema = testSchema();
  const log = await PostgresAuditLog.open({ connectionString: TEST_DATABASE_URL, schema });
  return {
    log,
    async cleanup() {
      await log.close();
      await dropSchema(schema);
    },
  };
});

it('PostgresAuditLog: several processes migrate and write at once; an unreachable server is AUDIT.UNAVAILABLE', async () => {
  const schema = testSchema();
  try {
    const logs = await Promise.all(
      [0, 1, 2].map(() => PostgresAuditLog.open({ connectionString: TEST_DATABASE_URL, schema })),
    );
    await Promise.all(
      logs.flatMap((l, n) =>
        [0, 1, 2, 3].map((k) => l.record({ ...sampleRead, requestId: `r-${String(n)}-${String(k)}` })),
      ),
    );
    assert.equal((await logs[0].list({ patientId: 'p1', limit: 100 })).length, 12);
    await Promise.all(logs.map((l) => l.close()));
  } finally {
    await dropSchema(schema);
  }
  await assert.rejects(
    PostgresAuditLog.open({ connectionString: 'postgres://postgres@127.0.0.1:1/none', schema }),
    (e: unknown) => (e as { code?: string }).code === 'AUDIT.UNAVAILABLE',
  );
});
