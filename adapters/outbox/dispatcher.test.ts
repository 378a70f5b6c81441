import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DomainError } from '../../domain/errors.ts';
import type { DeliveryStatus } from '../../domain/model/analysis.ts';
import type { Clock } from '../../domain/ports/clock.port.ts';
import { SILENT_LOGGER } from '../../domain/ports/logger.port.ts';
import type { OutboxMessage, OutboxSender } from '../../domain/ports/outbox.port.ts';
import { backoffDelay, isRetryable, OutboxDispatcher, DEFAULT_BACKOFF } from './dispatcher.ts';
import { SqliteOutbox } from './sqlite/sqlite-outbox.ts';

const A = '11111111-1111-4111-8111-111111111111';

class ManualClock implements Clock {
  t = new Date('2026-03-01T10:00:00.000Z').getTime();
  now(): Date {
    return new Date(this.t);
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.t += ms;
    return signal?.aborted === true ? Promise.resolve() : new Promise((r) => setImmediate(r));
  }
}

/** A sender that fails with the given errors, in turn, then succeeds; it records what it was given. */
function scriptedSender(
  channel: 'fhir' | 'hl7v2',
  failures: unknown[],
): OutboxSender & { sent: OutboxMessage[] } {
  const sent: OutboxMessage[] = [];
  return {
    channel,
    sent,
    send(m: OutboxMessage): Promise<void> {
      sent.push(m);
      const f = failures.shift();
      return f === undefined
        ? Promise.resolve()
        : Promise.reject(f instanceof Error ? f : new Error('scripted failure'));
    },
  };
}

function recorder(): {
  statuses: [string, DeliveryStatus][];
  record(id: string, s: DeliveryStatus): Promise<void>;
} {
  const statuses: [string, DeliveryStatus][] = [];
  return {
    statuses,
    record(id, s) {
      statuses.push([id, s]);
      return Promise.resolve();
    },
  };
}

const transient = (): DomainError =>
  new DomainError('FHIR.DELIVERY_TRANSIENT', '503', { issueType: 'transient' });

describe('backoff', () => {
  it('doubles per attempt, is capped, and jitters within [d/2, d]', () => {
    const p = { baseMs: 1000, maxMs: 30_000, maxAttempts: 10 };
    assert.equal(
      backoffDelay(1, p, () => 1),
      1000,
    );
    assert.equal(
      backoffDelay(1, p, () => 0),
      500,
    );
    assert.equal(
      backoffDelay(3, p, () => 1),
      4000,
    );
    assert.equal(
      backoffDelay(20, p, () => 1),
      30_000,
    );
    assert.equal(
      backoffDelay(20, p, () => 0),
      15_000,
    );
    const samples = Array.from({ length: 200 }, () => backoffDelay(4, p));
    assert.ok(samples.every((d) => d >= 4000 && d <= 8000));
    assert.ok(new Set(samples).size > 50, 'jittered');
  });
  it('classifies errors', () => {
    assert.equal(isRetryable(transient()), true);
    assert.equal(isRetryable(new DomainError('X.Y', 't', { issueType: 'timeout' })), true);
    assert.equal(
      isRetryable(new DomainError('FHIR.DELIVERY_REJECTED', 'x', { issueType: 'invalid' })),
      false,
    );
    assert.equal(isRetryable(new Error('socket hang up')), true);
  });
});

describe('OutboxDispatcher', () => {
  it('retries transient failures with backoff, then delivers and records the status', async () => {
    const outbox = new SqliteOutbox({ path: ':memory:' });
    const clock = new ManualClock();
    const sender = scriptedSender('fhir', [transient(), transient()]);
    const rec = recorder();
    const d = new OutboxDispatcher({
      outbox,
      senders: [sender],
      recorder: rec,
      clock,
      logger: SILENT_LOGGER,
      owner: 'test',
      backoff: { baseMs: 1000, maxMs: 60_000, maxAttempts: 5 },
      random: () => 1,
    });
    await outbox.enqueue(
      { analysisId: A, channel: 'fhir', contentType: 'application/fhir+json', payload: '{}' },
      clock.now(),
    );
    assert.deepEqual(await d.runOnce(), { delivered: 0, retrying: 1, failed: 0, lost: 0 });
    assert.equal((await d.runOnce()).retrying, 0, 'not due before the backoff');
    clock.t += 1000;
    assert.deepEqual(await d.runOnce(), { delivered: 0, retrying: 1, failed: 0, lost: 0 });
    clock.t += 1999;
    assert.equal((await d.runOnce()).delivered, 0);
    clock.t += 1;
    assert.deepEqual(await d.runOnce(), { delivered: 1, retrying: 0, failed: 0, lost: 0 });
    assert.equal(sender.sent.length, 3);
    assert.deepEqual(
      rec.statuses.map(([, s]) => [s.state, s.attempts]),
      [
        ['retrying', 1],
        ['retrying', 2],
        ['delivered', 3],
      ],
    );
    assert.equal(rec.statuses[0][1].lastError, 'FHIR.DELIVERY_TRANSIENT: 503');
    assert.equal((await outbox.get(`${A}:fhir`))?.state, 'delivered');
    await outbox.close();
  });

  it('a rejection fails at once; exhausting the attempts fails too', async () => {
    const outbox = new SqliteOutbox({ path: ':memory:' });
    const clock = new ManualClock();
    const fhir = scriptedSender('fhir', [
      new DomainError('FHIR.DELIVERY_REJECTED', '422', { issueType: 'invalid' }),
    ]);
    const hl7 = scriptedSender('hl7v2', [transient(), transient(), transient()]);
    const rec = recorder();
    const d = new OutboxDispatcher({
      outbox,
      senders: [fhir, hl7],
      recorder: rec,
      clock,
      logger: SILENT_LOGGER,
      owner: 'test',
      backoff: { baseMs: 10, maxMs: 10, maxAttempts: 3 },
    });
    await outbox.enqueue(
      { analysisId: A, channel: 'fhir', contentType: 'application/fhir+json', payload: '{}' },
      clock.now(),
    );
    await outbox.enqueue(
      { analysisId: A, channel: 'hl7v2', contentType: 'x-application/hl7-v2+er7', payload: 'MSH' },
      clock.now(),
    );
    assert.deepEqual(await d.runOnce(), { delivered: 0, retrying: 1, failed: 1, lost: 0 });
    for (let i = 0; i < 2; i++) {
      clock.t += 10;
      await d.runOnce();
    }
    assert.equal(hl7.sent.length, 3);
    assert.equal((await outbox.get(`${A}:hl7v2`))?.state, 'failed');
    assert.equal((await outbox.get(`${A}:fhir`))?.state, 'failed');
    assert.deepEqual(
      rec.statuses.filter(([, s]) => s.channel === 'hl7v2').map(([, s]) => s.state),
      ['retrying', 'retrying', 'failed'],
    );
    await outbox.close();
  });

  it('start/stop runs the loop until stopped', async () => {
    const outbox = new SqliteOutbox({ path: ':memory:' });
    const clock = new ManualClock();
    const sender = scriptedSender('fhir', []);
    const d = new OutboxDispatcher({
      outbox,
      senders: [sender],
      clock,
      logger: SILENT_LOGGER,
      owner: 't',
      pollMs: 5,
    });
    d.start();
    await outbox.enqueue(
      { analysisId: A, channel: 'fhir', contentType: 'application/fhir+json', payload: '{}' },
      clock.now(),
    );
    for (let i = 0; i < 100 && sender.sent.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    await d.stop();
    assert.equal(sender.sent.length, 1);
    assert.equal((await outbox.get(`${A}:fhir`))?.state, 'delivered');
    assert.ok(DEFAULT_BACKOFF.maxAttempts > 1);
    await outbox.close();
  });
});
