/**
 * The BulkExportJobStore contract: every adapter (SQLite, PostgreSQL) runs this suite against a real database.
 * `open` returns a fresh, empty store and a way to open a second, independent connection to the same data.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { BulkExportJobStore, BulkExportRequest } from '../../domain/ports/bulk-export.port.ts';

export interface BulkJobStoreFixture {
  readonly store: BulkExportJobStore;
  openSecond(): Promise<BulkExportJobStore>;
  cleanup(): Promise<void>;
}

const t0 = new Date('2026-03-01T10:00:00.000Z');
const at = (ms: number): Date => new Date(t0.getTime() + ms);

function request(owner = 'registry-a'): BulkExportRequest {
  return {
    level: 'system',
    types: ['Observation', 'DiagnosticReport'],
    since: '2026-01-01T00:00:00.000Z',
    outputFormat: 'application/fhir+ndjson',
    requestUrl: 'https://mslesion.example/fhir/$export?_type=Observation,DiagnosticReport',
    owner,
  };
}

export function bulkJobStoreContract(name: string, open: () => Promise<BulkJobStoreFixture>): void {
  describe(`BulkExportJobStore contract: ${name}`, () => {
    const withStore = (fn: (f: BulkJobStoreFixture) => Promise<void>) => async () => {
      const f = await open();
      try {
        await fn(f);
      } finally {
        await f.cleanup();
      }
    };

    it(
      'creates queued jobs, counts active ones per client, reads them back',
      withStore(async ({ store }) => {
        const a = await store.create(request(), t0);
        await store.create(request(), at(1));
        await store.create(request('registry-b'), at(2));
        assert.equal(a.state, 'queued');
        assert.equal(a.attempts, 0);
        assert.equal(a.progress, 0);
        assert.deepEqual(a.request, request());
        assert.deepEqual(a.output, []);
        assert.equal(a.createdAt, t0.toISOString());
        assert.deepEqual(await store.get(a.id), a);
        assert.equal(await store.get('00000000-0000-4000-8000-000000000000'), undefined);
        assert.equal(await store.countActive('registry-a'), 2);
        assert.equal(await store.countActive('registry-b'), 1);
        assert.equal(await store.countActive('nobody'), 0);
      }),
    );

    it(
      'claims the oldest queued job once; heartbeats, completion and failure need the lease',
      withStore(async ({ store }) => {
        const first = await store.create(request(), t0);
        const second = await store.create(request(), at(5));
        const c1 = await store.claim({ owner: 'r1', leaseMs: 1000, now: at(10) });
        assert.equal(c1?.job.id, first.id);
        assert.equal(c1.job.state, 'running');
        assert.equal(c1.job.attempts, 1);
        assert.equal(c1.job.startedAt, at(10).toISOString());
        const c2 = await store.claim({ owner: 'r2', leaseMs: 1000, now: at(11) });
        assert.equal(c2?.job.id, second.id);
        assert.equal(await store.claim({ owner: 'r3', leaseMs: 1000, now: at(12) }), undefined);
        assert.equal(await store.heartbeat(first.id, c1.lease.token, 42.5, 1000, at(500)), true);
        assert.equal((await store.get(first.id))?.progress, 42.5);
        assert.equal(await store.heartbeat(first.id, 'not-the-token', 50, 1000, at(600)), false);
        const output = [{ type: 'Observation', name: 'Observation-1-1.ndjson', count: 3, bytes: 999 }];
        const done = await store.complete(
          first.id,
          c1.lease.token,
          {
            transactionTime: at(10).toISOString(),
            output,
            errors: [],
            expiresAt: at(86_400_000).toISOString(),
          },
          at(700),
        );
        assert.equal(done, true);
        const j = await store.get(first.id);
        assert.equal(j?.state, 'completed');
        assert.equal(j.progress, 100);
        assert.deepEqual(j.output, output);
        assert.equal(j.transactionTime, at(10).toISOString());
        assert.equal(j.expiresAt, at(86_400_000).toISOString());
        assert.equal(j.finishedAt, at(700).toISOString());
        assert.equal(await store.heartbeat(first.id, c1.lease.token, 1, 1000, at(800)), false, 'finished');
        assert.equal(
          await store.fail(second.id, 'bad', { code: 'X.Y', message: 'm' }, at(9e6).toISOString(), at(800)),
          false,
        );
        assert.equal(
          await store.fail(
            second.id,
            c2.lease.token,
            { code: 'BULK.EXPORT_FAILED', message: 'disk full' },
            at(9e6).toISOString(),
            at(800),
          ),
          true,
        );
        const f = await store.get(second.id);
        assert.equal(f?.state, 'failed');
        assert.deepEqual(f.error, { code: 'BULK.EXPORT_FAILED', message: 'disk full' });
        assert.equal(await store.countActive('registry-a'), 0);
      }),
    );

    it(
      'a job whose runner died is taken over after its lease expires (attempt 2); release gives it back',
      withStore(async (f) => {
        const { store } = f;
        const job = await store.create(request(), t0);
        const c1 = await store.claim({ owner: 'dead', leaseMs: 1000, now: at(0) });
        assert.ok(c1);
        const other = await f.openSecond();
        try {
          assert.equal(
            await other.claim({ owner: 'r2', leaseMs: 1000, now: at(999) }),
            undefined,
            'lease held',
          );
          const c2 = await other.claim({ owner: 'r2', leaseMs: 1000, now: at(1001) });
          assert.equal(c2?.job.id, job.id);
          assert.equal(c2.job.attempts, 2);
          assert.equal(
            await store.heartbeat(job.id, c1.lease.token, 10, 1000, at(1002)),
            false,
            'old lease lost',
          );
          assert.equal(await other.release(job.id, c2.lease.token, at(1003)), true);
          const back = await store.get(job.id);
          assert.equal(back?.state, 'queued');
          const c3 = await store.claim({ owner: 'r3', leaseMs: 1000, now: at(1004) });
          assert.equal(c3?.job.attempts, 3);
        } finally {
          await other.close();
        }
      }),
    );

    it(
      'claims race: two connections never get the same job',
      withStore(async (f) => {
        const { store } = f;
        for (let i = 0; i < 6; i++) await store.create(request(), at(i));
        const other = await f.openSecond();
        try {
          const claims = await Promise.all(
            Array.from({ length: 8 }, (_, i) =>
              (i % 2 === 0 ? store : other).claim({ owner: `r${i}`, leaseMs: 60_000, now: at(100) }),
            ),
          );
          const ids = claims.filter((c) => c !== undefined).map((c) => c.job.id);
          assert.equal(ids.length, 6);
          assert.equal(new Set(ids).size, 6);
        } finally {
          await other.close();
        }
      }),
    );

    it(
      'cancel stops a running job (its lease is void) and marks it for removal; expired jobs are listed',
      withStore(async ({ store }) => {
        const running = await store.create(request(), t0);
        const finished = await store.create(request(), at(1));
        const fresh = await store.create(request(), at(2));
        const c = await store.claim({ owner: 'r', leaseMs: 60_000, now: at(3) });
        assert.equal(c?.job.id, running.id);
        assert.equal(await store.cancel(running.id, at(4)), true);
        assert.equal(await store.cancel(running.id, at(5)), false, 'already cancelled');
        assert.equal(await store.heartbeat(running.id, c.lease.token, 50, 60_000, at(6)), false);
        assert.equal((await store.get(running.id))?.state, 'cancelled');
        const c2 = await store.claim({ owner: 'r', leaseMs: 60_000, now: at(7) });
        assert.equal(c2?.job.id, finished.id);
        await store.complete(
          finished.id,
          c2.lease.token,
          {
            transactionTime: at(7).toISOString(),
            output: [],
            errors: [],
            expiresAt: at(10_000).toISOString(),
          },
          at(8),
        );
        assert.deepEqual(await store.expired(at(9_999), 10), [running.id]);
        assert.deepEqual([...(await store.expired(at(10_000), 10))].sort(), [running.id, finished.id].sort());
        await store.remove(running.id);
        assert.equal(await store.get(running.id), undefined);
        assert.equal((await store.get(fresh.id))?.state, 'queued');
        await store.ping();
      }),
    );
  });
}
