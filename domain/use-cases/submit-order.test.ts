import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { SqliteAnalysisStore } from '../../adapters/store/sqlite/sqlite-store.ts';
import { InProcessJobQueue } from '../../adapters/queue/in-process/in-process-queue.ts';
import { systemClock } from '../../adapters/clock/system-clock.ts';
import { DomainError } from '../errors.ts';
import { SILENT_LOGGER } from '../ports/logger.port.ts';
import type { AnalysisOrder } from '../model/analysis.ts';
import { submitOrder, validateOrder, type SubmitOrderDeps } from './submit-order.ts';

const base: AnalysisOrder = {
  studyInstanceUid: '1.2.826.0.1.3680043.8.498.1',
  patientId: 'P-1',
  source: 'rest',
  options: {},
};

describe('submitOrder', () => {
  let deps: SubmitOrderDeps;
  let queue: InProcessJobQueue;
  beforeEach(() => {
    queue = new InProcessJobQueue();
    deps = {
      store: new SqliteAnalysisStore({ path: ':memory:' }),
      queue,
      clock: systemClock,
      logger: SILENT_LOGGER,
    };
  });
  afterEach(async () => {
    await queue.close();
    await deps.store.close();
  });

  it('stores a queued analysis and enqueues it once; a repeated order returns the same analysis', async () => {
    const o = { ...base, placerOrderNumber: 'PON-1' };
    const first = await submitOrder(deps, o);
    assert.equal(first.created, true);
    assert.equal(first.analysis.status, 'queued');
    assert.equal(await queue.pendingCount(), 1);
    const again = await submitOrder(deps, { ...o, source: 'hl7v2' });
    assert.equal(again.created, false);
    assert.equal(again.analysis.id, first.analysis.id);
    const races = await Promise.all(
      Array.from({ length: 5 }, () => submitOrder(deps, { ...o, placerOrderNumber: 'PON-2' })),
    );
    assert.equal(races.filter((r) => r.created).length, 1);
    assert.equal(await queue.pendingCount(), 2);
  });

  it('refuses a known placer order number for another study with ORDER.CONFLICT', async () => {
    await submitOrder(deps, { ...base, placerOrderNumber: 'PON-3' });
    await assert.rejects(
      submitOrder(deps, { ...base, studyInstanceUid: '1.2.3.4', placerOrderNumber: 'PON-3' }),
      (e: unknown) => e instanceof DomainError && e.code === 'ORDER.CONFLICT' && e.issueType === 'conflict',
    );
  });

  it('lists every problem of an invalid order, coded, and stores nothing', async () => {
    const bad: AnalysisOrder = {
      ...base,
      studyInstanceUid: '1.02.abc',
      priorStudyInstanceUid: '1.2.x',
      patientId: ' ',
      placerOrderNumber: 'a\nb',
      options: { modelId: 'Bad Model!' },
    };
    assert.deepEqual(
      validateOrder(bad).map((p) => p.code),
      [
        'ORDER.INVALID_STUDY_UID',
        'ORDER.INVALID_PRIOR_STUDY_UID',
        'ORDER.INVALID_PATIENT_ID',
        'ORDER.INVALID_PLACER_ORDER_NUMBER',
        'ORDER.INVALID_MODEL_ID',
      ],
    );
    await assert.rejects(submitOrder(deps, bad), (e: unknown) => {
      assert.ok(e instanceof DomainError);
      assert.equal(e.code, 'ORDER.INVALID_STUDY_UID');
      assert.equal((e.details.problems as unknown[]).length, 5);
      return true;
    });
    assert.deepEqual(
      validateOrder({ ...base, priorStudyInstanceUid: base.studyInstanceUid }).map((p) => p.code),
      ['ORDER.PRIOR_IS_CURRENT'],
    );
    assert.deepEqual(
      validateOrder({ ...base, studyInstanceUid: '1.' + '2'.repeat(63) }).map((p) => p.code),
      ['ORDER.INVALID_STUDY_UID'],
    );
    assert.equal((await deps.store.list({ limit: 10, offset: 0 })).total, 0);
  });

  it('accepts the order even when the queue is down (the sweeper enqueues it later)', async () => {
    await queue.close();
    const r = await submitOrder(deps, base);
    assert.equal(r.created, true);
    const ids = await deps.store.requeueStale({
      now: new Date(),
      queuedBefore: new Date(Date.now() + 1),
      limit: 10,
    });
    assert.deepEqual(ids, [r.analysis.id]);
  });
});
