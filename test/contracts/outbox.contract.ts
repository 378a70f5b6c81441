/**
 * The Outbox contract: every adapter (SQLite, PostgreSQL) runs this suite against a real database.
 * `open` returns a fresh, empty outbox and a way to open a second, independent connection to the same data.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Outbox, OutboxEntry } from '../../domain/ports/outbox.port.ts';

export interface OutboxFixture {
  readonly outbox: Outbox;
  openSecond(): Promise<Outbox>;
  cleanup(): Promise<void>;
}

const A = '11111111-1111-4111-8111-111111111111';
const B = '22222222-2222-4222-8222-222222222222';

function entry(overrides: Partial<OutboxEntry> = {}): OutboxEntry {
  return {
    analysisId: A,
    channel: 'fhir',
    contentType: 'application/fhir+json',
    payload: '{"resourceType":"Bundle","type":"transaction","entry":[]}',
    ...overrides,
  };
}

const t0 = new Date('2026-03-01T10:00:00.000Z');
const at = (ms: number): Date => new Date(t0.getTime() + ms);

export function outboxContract(name: string, open: () => Promise<OutboxFixture>): void {
  describe(`Outbox contract: ${name}`, () => {
    const withOutbox = (fn: (f: OutboxFixture) => Promise<void>) => async () => {
      const f = await open();
      try {
        await fn(f);
      } finally {
        await f.cleanup();
      }
    };

    it(
      'enqueue is idempotent per analysis and channel; new content replaces the old',
      withOutbox(async ({ outbox }) => {
        const first = await outbox.enqueue(entry(), t0);
        assert.equal(first.changed, true);
        assert.equal(first.message.id, `${A}:fhir`);
        assert.equal(first.message.state, 'pending');
        assert.equal(first.message.attempts, 0);
        const again = await outbox.enqueue(entry(), at(1000));
        assert.equal(again.changed, false);
        assert.deepEqual(again.message, first.message);
        const hl7 = await outbox.enqueue(
          entry({ channel: 'hl7v2', payload: 'MSH|^~\\&|X', contentType: 'x-application/hl7-v2+er7' }),
          t0,
        );
        assert.equal(hl7.message.id, `${A}:hl7v2`);
        const replaced = await outbox.enqueue(entry({ payload: '{"v":2}' }), at(2000));
        assert.equal(replaced.changed, true);
        assert.equal(replaced.message.payload, '{"v":2}');
        assert.equal((await outbox.listByAnalysis(A)).length, 2);
        assert.deepEqual(await outbox.countByState(), { pending: 2, delivered: 0, failed: 0 });
        await assert.rejects(outbox.enqueue(entry({ payload: '' }), t0), /OUTBOX.EMPTY_PAYLOAD|empty/);
      }),
    );

    it(
      'claims only due messages, leases exclusively, and reclaims expired leases (crash)',
      withOutbox(async ({ outbox }) => {
        await outbox.enqueue(entry(), t0);
        await outbox.enqueue(entry({ analysisId: B }), at(10));
        const early = await outbox.claimDue({ owner: 'w1', leaseMs: 1000, now: at(5), limit: 10 });
        assert.deepEqual(
          early.map((l) => l.message.analysisId),
          [A],
        );
        assert.equal(early[0].message.attempts, 1);
        const both = await outbox.claimDue({ owner: 'w2', leaseMs: 1000, now: at(20), limit: 10 });
        assert.deepEqual(
          both.map((l) => l.message.analysisId),
          [B],
          'A is leased to w1',
        );
        // w1 "crashes": its lease on A expires and another dispatcher takes A over.
        const taken = await outbox.claimDue({ owner: 'w3', leaseMs: 1000, now: at(1006), limit: 10 });
        assert.deepEqual(
          taken.map((l) => l.message.analysisId),
          [A],
        );
        assert.equal(taken[0].message.attempts, 2);
        assert.equal(await outbox.markDelivered(`${A}:fhir`, early[0].token, at(1010)), false, 'stale token');
        assert.equal(await outbox.markDelivered(`${A}:fhir`, taken[0].token, at(1010)), true);
        const delivered = await outbox.get(`${A}:fhir`);
        assert.equal(delivered?.state, 'delivered');
        assert.equal(delivered.deliveredAt, at(1010).toISOString());
        assert.equal(
          (await outbox.claimDue({ owner: 'w1', leaseMs: 1000, now: at(99_999), limit: 10 })).length,
          1,
        );
        const same = await outbox.enqueue(entry(), at(2000));
        assert.equal(same.changed, false, 'identical payload after delivery: nothing to do');
        assert.equal(same.message.state, 'delivered');
        const channelFilter = await outbox.claimDue({
          owner: 'w1',
          leaseMs: 1,
          now: at(200_000),
          limit: 10,
          channels: ['hl7v2'],
        });
        assert.equal(channelFilter.length, 0);
      }),
    );

    it(
      'failure with retry time, permanent failure, operator retry',
      withOutbox(async ({ outbox }) => {
        await outbox.enqueue(entry(), t0);
        const [l1] = await outbox.claimDue({ owner: 'w', leaseMs: 60_000, now: t0, limit: 1 });
        assert.equal(
          await outbox.markFailed(l1.message.id, l1.token, 'FHIR.DELIVERY_TRANSIENT: 503', at(5000), at(1)),
          true,
        );
        const m1 = await outbox.get(l1.message.id);
        assert.equal(m1?.state, 'pending');
        assert.equal(m1.lastError, 'FHIR.DELIVERY_TRANSIENT: 503');
        assert.equal(m1.nextAttemptAt, at(5000).toISOString());
        assert.equal(
          (await outbox.claimDue({ owner: 'w', leaseMs: 60_000, now: at(4999), limit: 1 })).length,
          0,
        );
        const [l2] = await outbox.claimDue({ owner: 'w', leaseMs: 60_000, now: at(5000), limit: 1 });
        assert.equal(l2.message.attempts, 2);
        assert.equal(
          await outbox.markFailed(
            l2.message.id,
            l2.token,
            'FHIR.DELIVERY_REJECTED: 422',
            undefined,
            at(5001),
          ),
          true,
        );
        assert.equal((await outbox.get(l2.message.id))?.state, 'failed');
        assert.equal((await outbox.claimDue({ owner: 'w', leaseMs: 1, now: at(1e9), limit: 9 })).length, 0);
        assert.deepEqual(await outbox.countByState(), { pending: 0, delivered: 0, failed: 1 });
        assert.equal(await outbox.retry(l2.message.id, at(6000)), true);
        assert.equal(await outbox.retry('nope', at(6000)), false);
        const [l3] = await outbox.claimDue({ owner: 'w', leaseMs: 1, now: at(6000), limit: 1 });
        assert.equal(l3.message.attempts, 1, 'operator retry restarts the attempt count');
      }),
    );

    it(
      'replacing the payload voids an in-flight lease',
      withOutbox(async ({ outbox }) => {
        await outbox.enqueue(entry(), t0);
        const [l] = await outbox.claimDue({ owner: 'w', leaseMs: 60_000, now: t0, limit: 1 });
        await outbox.enqueue(entry({ payload: '{"v":"new"}' }), at(10));
        assert.equal(await outbox.markDelivered(l.message.id, l.token, at(20)), false);
        const [again] = await outbox.claimDue({ owner: 'w', leaseMs: 60_000, now: at(30), limit: 1 });
        assert.equal(again.message.payload, '{"v":"new"}');
      }),
    );

    it(
      'concurrent claimers on two connections never get the same message',
      withOutbox(async (f) => {
        const { outbox } = f;
        const second = await f.openSecond();
        try {
          const ids = Array.from(
            { length: 40 },
            (_, i) => `${String(i).padStart(8, '0')}-0000-4000-8000-000000000000`,
          );
          for (const id of ids) await outbox.enqueue(entry({ analysisId: id }), t0);
          const claims = await Promise.all(
            Array.from({ length: 8 }, (_, i) =>
              (i % 2 === 0 ? outbox : second).claimDue({
                owner: `w${i}`,
                leaseMs: 60_000,
                now: at(1),
                limit: 7,
              }),
            ),
          );
          const got = claims.flat().map((l) => l.message.analysisId);
          assert.equal(got.length, 40);
          assert.equal(new Set(got).size, 40);
        } finally {
          await second.close();
        }
      }),
    );
  });
}
