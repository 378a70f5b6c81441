/**
 * The AnalysisStore contract, run against every adapter (SQLite in adapters/store/sqlite, PostgreSQL in
 * test/integration). `open()` gives a store on a fresh, empty database; `openSecond()` a second, independent
 * connection to the same database (a second process, as far as locking is concerned).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { DomainError } from '../../domain/errors.ts';
import type { AnalysisOrder, AnalysisResult, DeliveryStatus } from '../../domain/model/analysis.ts';
import type { AnalysisStore } from '../../domain/ports/analysis-store.port.ts';

export interface StoreHarness {
  readonly store: AnalysisStore;
  openSecond(): Promise<AnalysisStore>;
  cleanup(): Promise<void>;
}

const T0 = new Date('2025-01-02T03:04:05.000Z');
const at = (ms: number): Date => new Date(T0.getTime() + ms);

let uid = 0;
export function order(extra: Partial<AnalysisOrder> = {}): AnalysisOrder {
  uid++;
  return {
    studyInstanceUid: `1.2.826.0.1.3680043.8.498.${uid}`,
    patientId: 'PAT-1',
    source: 'rest',
    options: {},
    ...extra,
  };
}

export function sampleResult(): AnalysisResult {
  const zero = { periventricular: 0, juxtacortical: 0, infratentorial: 0, subcortical: 0 };
  return {
    model: {
      id: 'mslesion-unet',
      name: 'MS lesion U-Net',
      version: '1.0.0',
      variant: 'flair',
      channels: ['FLAIR'],
      sha256: 'a'.repeat(64),
      reason: 'T2 and T1 missing: FLAIR variant',
    },
    lesions: {
      count: 1,
      totalVolumeMl: 0.25,
      volumeByLocationMl: { ...zero, periventricular: 0.25 },
      countByLocation: { ...zero, periventricular: 1 },
      lesions: [
        {
          id: 1,
          voxelCount: 250,
          volumeMl: 0.25,
          centroid: [1.5, -20.25, 30],
          bboxMin: [10, 11, 12],
          bboxMax: [15, 16, 17],
          longestDiameterMm: 9.5,
          meanFlair: 812.5,
          location: 'periventricular',
        },
      ],
    },
    series: { flair: { seriesInstanceUid: '1.2.3.4', description: 'AX FLAIR', instances: 40 } },
    warnings: ['example warning'],
  };
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof DomainError && e.code === code);
}

export function analysisStoreContract(name: string, open: () => Promise<StoreHarness>): void {
  describe(`AnalysisStore contract: ${name}`, () => {
    let h: StoreHarness;
    let store: AnalysisStore;
    before(async () => {
      h = await open();
      store = h.store;
    });
    after(async () => {
      await h.cleanup();
    });

    it('creates a queued analysis and reads it back unchanged', async () => {
      const o = order({
        priorStudyInstanceUid: '1.2.3.99',
        patientIdSystem: 'urn:oid:1.2.3',
        orderReference: 'X',
      });
      const { analysis, created } = await store.create(o, T0);
      assert.equal(created, true);
      assert.match(analysis.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(analysis.status, 'queued');
      assert.equal(analysis.progress, 0);
      assert.equal(analysis.attempts, 0);
      assert.equal(analysis.createdAt, T0.toISOString());
      assert.deepEqual(analysis.order, o);
      assert.deepEqual(analysis.artifacts, []);
      assert.deepEqual(analysis.delivery, []);
      assert.deepEqual(await store.get(analysis.id), analysis);
      assert.equal(await store.get('00000000-0000-4000-8000-000000000000'), undefined);
    });

    it('dedupes by placer order number, also under concurrent identical orders', async () => {
      const second = await h.openSecond();
      try {
        const o = order({ placerOrderNumber: 'PON-RACE-1' });
        const results = await Promise.all(
          Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? store : second).create(o, at(i))),
        );
        assert.equal(results.filter((r) => r.created).length, 1);
        assert.equal(new Set(results.map((r) => r.analysis.id)).size, 1);
        const found = await store.findByPlacerOrderNumber('PON-RACE-1');
        assert.equal(found?.id, results[0].analysis.id);
        assert.equal(await store.findByPlacerOrderNumber('PON-NONE'), undefined);
        // orders without a placer order number are never merged
        const a = await store.create(order(), T0);
        const b = await store.create(order(), T0);
        assert.ok(a.created && b.created && a.analysis.id !== b.analysis.id);
      } finally {
        await second.close();
      }
    });

    it('lists by patient and status, newest first, paged with a total', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i++)
        ids.push(
          (await store.create(order({ patientId: 'LIST-P', patientIdSystem: 'sysA' }), at(1000 + i))).analysis
            .id,
        );
      await store.create(order({ patientId: 'LIST-P', patientIdSystem: 'sysB' }), at(2000));
      const page1 = await store.list({ patientId: 'LIST-P', patientIdSystem: 'sysA', limit: 2, offset: 0 });
      assert.equal(page1.total, 5);
      assert.deepEqual(
        page1.items.map((a) => a.id),
        [ids[4], ids[3]],
      );
      const page3 = await store.list({ patientId: 'LIST-P', patientIdSystem: 'sysA', limit: 2, offset: 4 });
      assert.deepEqual(
        page3.items.map((a) => a.id),
        [ids[0]],
      );
      assert.equal((await store.list({ patientId: 'LIST-P', limit: 10, offset: 0 })).total, 6);
      await store.update(ids[2], { status: 'failed' }, at(3000));
      const failed = await store.list({ patientId: 'LIST-P', status: 'failed', limit: 10, offset: 0 });
      assert.deepEqual(
        failed.items.map((a) => a.id),
        [ids[2]],
      );
      const byStudy = await store.list({
        studyInstanceUid: (await store.get(ids[1]))!.order.studyInstanceUid,
        limit: 10,
        offset: 0,
      });
      assert.deepEqual(
        byStudy.items.map((a) => a.id),
        [ids[1]],
      );
      assert.equal((await store.list({ patientId: 'NOBODY', limit: 10, offset: 0 })).total, 0);
    });

    it('applies patches atomically: merges artifacts by name and delivery by channel, null clears', async () => {
      const { analysis } = await store.create(order(), T0);
      const art = (n: string, bytes: number) => ({
        name: n,
        contentType: 'application/pdf',
        bytes,
        sha256: 'b'.repeat(64),
      });
      await store.update(
        analysis.id,
        { artifacts: [art('report.pdf', 1)], error: { code: 'X.Y', message: 'm' } },
        at(1),
      );
      await store.update(
        analysis.id,
        {
          artifacts: [art('mask.nii.gz', 2), art('report.pdf', 3)],
          delivery: [{ channel: 'pacs', state: 'pending', attempts: 0 }],
        },
        at(2),
      );
      const u = await store.update(
        analysis.id,
        {
          delivery: [
            { channel: 'fhir', state: 'delivered', attempts: 1, lastAttemptAt: at(3).toISOString() },
            { channel: 'pacs', state: 'retrying', attempts: 1, lastError: 'timeout' },
          ],
          progress: 42.6,
          step: 'segment',
          result: sampleResult(),
          findings: [
            {
              seriesInstanceUid: '1.2.3',
              role: 'FLAIR',
              acquisition: '3D',
              reason: 'rule flair-3d',
              selected: true,
              rank: 1,
            },
          ],
        },
        at(3),
      );
      assert.deepEqual(
        u.artifacts.map((a) => [a.name, a.bytes]),
        [
          ['mask.nii.gz', 2],
          ['report.pdf', 3],
        ],
      );
      assert.deepEqual(
        u.delivery.map((d) => [d.channel, d.state]),
        [
          ['pacs', 'retrying'],
          ['fhir', 'delivered'],
        ],
      );
      assert.equal(u.progress, 43);
      assert.equal(u.updatedAt, at(3).toISOString());
      assert.deepEqual(u.result, sampleResult());
      assert.deepEqual(await store.get(analysis.id), u);
      const cleared = await store.update(analysis.id, { error: null, step: null, result: null }, at(4));
      assert.equal(cleared.error, undefined);
      assert.equal(cleared.step, undefined);
      assert.equal(cleared.result, undefined);
      assert.equal(cleared.findings?.length, 1);
      await rejectsWith(
        store.update('00000000-0000-4000-8000-000000000000', { step: 'x' }, T0),
        'ANALYSIS.NOT_FOUND',
      );
    });

    it('claims with a lease: one holder at a time, a stale token cannot write, expiry lets another take over', async () => {
      const { analysis } = await store.create(order(), T0);
      const c1 = await store.claim(analysis.id, { owner: 'w1', leaseMs: 1000, now: at(10) });
      assert.ok(c1);
      assert.equal(c1.analysis.status, 'running');
      assert.equal(c1.analysis.attempts, 1);
      assert.equal(c1.analysis.startedAt, at(10).toISOString());
      assert.equal(c1.lease.owner, 'w1');
      assert.equal(c1.lease.expiresAt, at(1010).getTime());
      assert.equal(await store.claim(analysis.id, { owner: 'w2', leaseMs: 1000, now: at(500) }), undefined);
      assert.equal(await store.renewLease(analysis.id, c1.lease.token, 1000, at(900)), true);
      // renewed to 1900: still held at 1500
      assert.equal(await store.claim(analysis.id, { owner: 'w2', leaseMs: 1000, now: at(1500) }), undefined);
      const c2 = await store.claim(analysis.id, { owner: 'w2', leaseMs: 1000, now: at(2000) });
      assert.ok(c2);
      assert.equal(c2.analysis.attempts, 2);
      assert.equal(c2.analysis.startedAt, at(10).toISOString());
      assert.notEqual(c2.lease.token, c1.lease.token);
      await rejectsWith(
        store.update(analysis.id, { progress: 50 }, at(2001), { leaseToken: c1.lease.token }),
        'JOB.LEASE_LOST',
      );
      assert.equal(await store.renewLease(analysis.id, c1.lease.token, 1000, at(2002)), false);
      const done = await store.update(
        analysis.id,
        { status: 'succeeded', progress: 100, finishedAt: at(2100).toISOString() },
        at(2100),
        { leaseToken: c2.lease.token, releaseLease: true },
      );
      assert.equal(done.status, 'succeeded');
      // released: the token no longer writes, and a finished analysis is not claimable
      await rejectsWith(
        store.update(analysis.id, { step: 'x' }, at(2200), { leaseToken: c2.lease.token }),
        'JOB.LEASE_LOST',
      );
      assert.equal(await store.claim(analysis.id, { owner: 'w3', leaseMs: 1000, now: at(9e6) }), undefined);
      assert.equal(
        await store.claim('00000000-0000-4000-8000-000000000000', { owner: 'w3', leaseMs: 1, now: T0 }),
        undefined,
      );
    });

    it('lets exactly one of many concurrent claimers win', async () => {
      const second = await h.openSecond();
      try {
        for (let round = 0; round < 3; round++) {
          const { analysis } = await store.create(order(), T0);
          const claims = await Promise.all(
            Array.from({ length: 8 }, (_, i) =>
              (i % 2 === 0 ? store : second).claim(analysis.id, {
                owner: `w${i}`,
                leaseMs: 60_000,
                now: at(5),
              }),
            ),
          );
          assert.equal(claims.filter((c) => c !== undefined).length, 1, `round ${round}`);
          assert.equal((await store.get(analysis.id))?.attempts, 1);
        }
      } finally {
        await second.close();
      }
    });

    it('requeues expired leases and reports lost queued deliveries', async () => {
      const before = await store.countByStatus();
      const stale = (await store.create(order(), at(0))).analysis;
      const live = (await store.create(order(), at(0))).analysis;
      const oldQueued = (await store.create(order(), at(100))).analysis;
      const newQueued = (await store.create(order(), at(50_000))).analysis;
      await store.claim(stale.id, { owner: 'dead', leaseMs: 1000, now: at(200) });
      await store.claim(live.id, { owner: 'alive', leaseMs: 1_000_000, now: at(200) });
      const ids = await store.requeueStale({ now: at(10_000), queuedBefore: at(1000), limit: 1000 });
      assert.ok(ids.includes(stale.id));
      assert.ok(ids.includes(oldQueued.id));
      assert.ok(!ids.includes(live.id));
      assert.ok(!ids.includes(newQueued.id));
      const s = await store.get(stale.id);
      assert.equal(s?.status, 'queued');
      assert.equal(s.attempts, 1);
      // the requeued one is claimable again at once
      const again = await store.claim(stale.id, { owner: 'w', leaseMs: 1000, now: at(10_001) });
      assert.ok(again);
      assert.equal(again.analysis.attempts, 2);
      const after = await store.countByStatus();
      assert.equal(after.running - before.running, 2);
      assert.equal(after.queued - before.queued, 2);
      assert.deepEqual(Object.keys(after).sort(), ['failed', 'queued', 'running', 'succeeded']);
      assert.equal(
        (await store.requeueStale({ now: at(10_000), queuedBefore: at(1000), limit: 1 })).length,
        1,
      );
    });

    it('lists succeeded analyses missing a delivery status for a channel, oldest finished first, in a window', async () => {
      const W = new Date('2031-05-06T07:00:00.000Z');
      const w = (ms: number): Date => new Date(W.getTime() + ms);
      const make = async (
        finishedMs: number,
        delivery: DeliveryStatus[],
        status: 'succeeded' | 'failed' = 'succeeded',
      ): Promise<string> => {
        const a = (await store.create(order(), W)).analysis;
        await store.update(
          a.id,
          {
            status,
            finishedAt: w(finishedMs).toISOString(),
            ...(status === 'succeeded' ? { result: sampleResult() } : {}),
            delivery,
          },
          w(finishedMs),
        );
        return a.id;
      };
      const none = await make(3000, []);
      const fhirOnly = await make(1000, [{ channel: 'fhir', state: 'pending', attempts: 0 }]);
      await make(2000, [
        { channel: 'fhir', state: 'delivered', attempts: 1 },
        { channel: 'hl7v2', state: 'failed', attempts: 12, lastError: 'HL7.ACK_ERROR' },
      ]);
      await make(1500, [], 'failed');
      await make(-5000, []); // finished before the window
      await make(60_000, []); // finished after it (its own run is still queueing)
      const q = { finishedAfter: w(0), finishedBefore: w(10_000), limit: 10 };
      assert.deepEqual(await store.listUndelivered({ ...q, channels: ['fhir', 'hl7v2'] }), [fhirOnly, none]);
      assert.deepEqual(await store.listUndelivered({ ...q, channels: ['fhir'] }), [none]);
      assert.deepEqual(await store.listUndelivered({ ...q, channels: ['hl7v2'] }), [fhirOnly, none]);
      assert.deepEqual(await store.listUndelivered({ ...q, channels: [] }), []);
      assert.deepEqual(await store.listUndelivered({ ...q, channels: ['fhir', 'hl7v2'], limit: 1 }), [
        fhirOnly,
      ]);
      // once queued on every channel, an analysis is no longer listed
      await store.update(
        none,
        {
          delivery: [
            { channel: 'fhir', state: 'pending', attempts: 0 },
            { channel: 'hl7v2', state: 'pending', attempts: 0 },
          ],
        },
        w(4000),
      );
      assert.deepEqual(await store.listUndelivered({ ...q, channels: ['fhir', 'hl7v2'] }), [fhirOnly]);
    });

    it('answers ping', async () => {
      await store.ping();
    });
  });
}
