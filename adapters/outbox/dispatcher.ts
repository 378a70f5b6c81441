/**
 * Delivers outbox messages: claims due messages under a lease, sends each on its channel, and records the
 * outcome — delivered; a retryable failure (DomainError issue type transient/timeout, or an unexpected error)
 * becomes due again after an exponential backoff with jitter; a permanent failure (the receiver rejected the
 * content) or the last allowed attempt marks it failed. The delivery status of each analysis is recorded
 * through the DeliveryStatusRecorder (the AnalysisStore's `delivery` when composed).
 *
 * Crash safety comes from the outbox: a dispatcher that dies mid-send leaves a lease that expires, and the
 * message is claimed again (at-least-once; the payloads are idempotent). Sender timeouts must be shorter than
 * the lease.
 */
import { isDomainError } from '../../domain/errors.ts';
import type { DeliveryState } from '../../domain/model/analysis.ts';
import type { Clock } from '../../domain/ports/clock.port.ts';
import type { Logger } from '../../domain/ports/logger.port.ts';
import type {
  DeliveryStatusRecorder,
  Outbox,
  OutboxChannel,
  OutboxLease,
  OutboxSender,
} from '../../domain/ports/outbox.port.ts';

export interface BackoffPolicy {
  /** Delay after the first failure (ms). */
  readonly baseMs: number;
  /** Upper bound of any delay (ms). */
  readonly maxMs: number;
  /** Attempts in all, the first included; after the last one the message is failed. */
  readonly maxAttempts: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 2_000, maxMs: 10 * 60_000, maxAttempts: 12 };

/**
 * Delay before attempt `attempt + 1` after `attempt` failures: base·2^(attempt−1), capped at maxMs, with
 * "equal jitter" — uniformly in [d/2, d] — so many failed messages do not retry in lockstep.
 */
export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const exp = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  const r = Math.min(1, Math.max(0, random()));
  return Math.round(exp / 2 + (exp / 2) * r);
}

export function isRetryable(e: unknown): boolean {
  if (isDomainError(e)) return e.issueType === 'transient' || e.issueType === 'timeout';
  return true;
}

export interface DispatcherOptions {
  readonly outbox: Outbox;
  readonly senders: readonly OutboxSender[];
  readonly recorder?: DeliveryStatusRecorder;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Identity recorded with leases (host/pid). */
  readonly owner: string;
  readonly leaseMs?: number;
  readonly batchSize?: number;
  /** Pause between polls when nothing was due (ms). */
  readonly pollMs?: number;
  readonly backoff?: BackoffPolicy;
  readonly random?: () => number;
}

export interface DispatchReport {
  readonly delivered: number;
  readonly retrying: number;
  readonly failed: number;
  /** Leases lost while sending (another dispatcher took over, or the payload was replaced). */
  readonly lost: number;
}

function message(e: unknown): string {
  if (isDomainError(e)) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

export class OutboxDispatcher {
  readonly #o: DispatcherOptions;
  readonly #senders: ReadonlyMap<OutboxChannel, OutboxSender>;
  #running: Promise<void> | undefined;
  #stop: AbortController | undefined;

  constructor(options: DispatcherOptions) {
    this.#o = options;
    this.#senders = new Map(options.senders.map((s) => [s.channel, s]));
  }

  async #record(lease: OutboxLease, state: DeliveryState, error?: string): Promise<void> {
    if (this.#o.recorder === undefined) return;
    try {
      await this.#o.recorder.record(lease.message.analysisId, {
        channel: lease.message.channel,
        state,
        attempts: lease.message.attempts,
        lastAttemptAt: this.#o.clock.now().toISOString(),
        ...(error === undefined ? {} : { lastError: error.slice(0, 500) }),
      });
    } catch (e) {
      this.#o.logger.warn(
        { analysisId: lease.message.analysisId, channel: lease.message.channel, err: message(e) },
        'could not record the delivery status',
      );
    }
  }

  async #deliver(lease: OutboxLease): Promise<'delivered' | 'retrying' | 'failed' | 'lost'> {
    const { outbox, clock, logger } = this.#o;
    const m = lease.message;
    const sender = this.#senders.get(m.channel);
    const ctx = { analysisId: m.analysisId, channel: m.channel, attempt: m.attempts };
    try {
      if (sender === undefined) throw new Error(`no sender configured for channel ${m.channel}`);
      await sender.send(m);
    } catch (e) {
      const policy = this.#o.backoff ?? DEFAULT_BACKOFF;
      const retry = isRetryable(e) && m.attempts < policy.maxAttempts;
      const now = clock.now();
      const retryAt = retry
        ? new Date(now.getTime() + backoffDelay(m.attempts, policy, this.#o.random))
        : undefined;
      const text = message(e);
      const held = await outbox.markFailed(m.id, lease.token, text, retryAt, now);
      if (!held) {
        logger.warn(ctx, 'delivery failed but the lease was lost meanwhile');
        return 'lost';
      }
      logger.warn(
        { ...ctx, err: text, retryAt: retryAt?.toISOString() },
        retry ? 'delivery failed; will retry' : 'delivery failed for good',
      );
      await this.#record(lease, retry ? 'retrying' : 'failed', text);
      return retry ? 'retrying' : 'failed';
    }
    const held = await outbox.markDelivered(m.id, lease.token, clock.now());
    if (!held) {
      // Sent, but another dispatcher owns it now (or new content replaced it): it will be sent again, which is
      // harmless because the payloads are idempotent.
      logger.warn(ctx, 'delivered but the lease was lost meanwhile');
      return 'lost';
    }
    logger.info(ctx, 'delivered');
    await this.#record(lease, 'delivered');
    return 'delivered';
  }

  /** Claims and sends one batch of due messages. */
  async runOnce(): Promise<DispatchReport> {
    const leases = await this.#o.outbox.claimDue({
      owner: this.#o.owner,
      leaseMs: this.#o.leaseMs ?? 120_000,
      now: this.#o.clock.now(),
      limit: this.#o.batchSize ?? 10,
      channels: [...this.#senders.keys()],
    });
    const results = await Promise.all(leases.map((l) => this.#deliver(l)));
    const count = (s: string): number => results.filter((r) => r === s).length;
    return {
      delivered: count('delivered'),
      retrying: count('retrying'),
      failed: count('failed'),
      lost: count('lost'),
    };
  }

  /** Runs until stop(): a batch, then (when nothing was due) a pause of pollMs. */
  start(): void {
    if (this.#running !== undefined) return;
    const stop = new AbortController();
    this.#stop = stop;
    this.#running = (async () => {
      const stopped = (): boolean => stop.signal.aborted;
      while (!stopped()) {
        let busy = false;
        try {
          const r = await this.runOnce();
          busy = r.delivered + r.retrying + r.failed + r.lost > 0;
        } catch (e) {
          this.#o.logger.error({ err: message(e) }, 'outbox dispatch failed');
        }
        if (!busy && !stopped()) await this.#o.clock.sleep(this.#o.pollMs ?? 1000, stop.signal);
      }
    })();
  }

  async stop(): Promise<void> {
    this.#stop?.abort();
    await this.#running;
    this.#running = undefined;
    this.#stop = undefined;
  }
}
