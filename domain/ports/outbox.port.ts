/**
 * The durable outbox for result delivery to the EHR (FHIR transaction bundles, HL7 v2 ORU messages). A message
 * is written once per analysis and channel; a dispatcher claims due messages under a lease, sends them and
 * records the outcome. Crash safety: a claim is a lease (token + expiry) — when the dispatcher dies mid-send
 * the lease expires and the message is claimed again, so every message is delivered at least once; the
 * payloads are idempotent (deterministic ids / control ids), which makes at-least-once safe.
 * Adapters: SQLite (adapters/outbox/sqlite) and PostgreSQL (adapters/outbox/postgres), one contract suite.
 */
import type { DeliveryChannel, DeliveryStatus } from '../model/analysis.ts';

export type OutboxChannel = Exclude<DeliveryChannel, 'pacs'>;
export type OutboxState = 'pending' | 'delivered' | 'failed';

export interface OutboxMessage {
  /** `<analysisId>:<channel>`. */
  readonly id: string;
  readonly analysisId: string;
  readonly channel: OutboxChannel;
  readonly contentType: string;
  readonly payload: string;
  /** sha256 (hex) of the payload: an identical re-enqueue of a delivered message is a no-op. */
  readonly payloadSha256: string;
  readonly state: OutboxState;
  /** Send attempts so far (claims). */
  readonly attempts: number;
  /** ISO time from which the message is due (pending) — the backoff. */
  readonly nextAttemptAt: string;
  readonly lastError?: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly deliveredAt?: string;
}

export interface OutboxEntry {
  readonly analysisId: string;
  readonly channel: OutboxChannel;
  readonly contentType: string;
  readonly payload: string;
}

export interface EnqueueResult {
  readonly message: OutboxMessage;
  /**
   * false when the same payload was already queued or delivered (nothing changes). A different payload for
   * the same analysis and channel replaces the old one and makes it due again (and voids any lease on it).
   */
  readonly changed: boolean;
}

export interface OutboxLease {
  readonly message: OutboxMessage;
  readonly token: string;
  /** Epoch milliseconds. */
  readonly expiresAt: number;
}

export interface ClaimDueRequest {
  readonly owner: string;
  readonly leaseMs: number;
  readonly now: Date;
  readonly limit: number;
  /** Only these channels (default all). */
  readonly channels?: readonly OutboxChannel[];
}

export interface Outbox {
  enqueue(entry: OutboxEntry, now: Date): Promise<EnqueueResult>;
  /**
   * Leases up to `limit` messages that are pending and due, or whose lease expired (a crashed sender), oldest
   * due first; attempts + 1 each. Concurrent claimers never get the same message.
   */
  claimDue(request: ClaimDueRequest): Promise<readonly OutboxLease[]>;
  /** Records success; false when the lease was lost (expired and taken over, or the payload replaced). */
  markDelivered(id: string, token: string, now: Date): Promise<boolean>;
  /** Records a failure: pending again from `retryAt`, or `failed` for good when retryAt is undefined. */
  markFailed(
    id: string,
    token: string,
    error: string,
    retryAt: Date | undefined,
    now: Date,
  ): Promise<boolean>;
  /** Makes a failed message due again now (operator retry); false when there is none. */
  retry(id: string, now: Date): Promise<boolean>;
  get(id: string): Promise<OutboxMessage | undefined>;
  listByAnalysis(analysisId: string): Promise<readonly OutboxMessage[]>;
  /** Messages per state (metrics). */
  countByState(): Promise<Readonly<Record<OutboxState, number>>>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Sends one outbox payload on its channel. Throws DomainError; issue type transient/timeout = retry. */
export interface OutboxSender {
  readonly channel: OutboxChannel;
  send(message: OutboxMessage): Promise<void>;
}

/** Where the dispatcher records delivery progress per analysis (the AnalysisStore's `delivery`). */
export interface DeliveryStatusRecorder {
  record(analysisId: string, status: DeliveryStatus): Promise<void>;
}

export function outboxMessageId(analysisId: string, channel: OutboxChannel): string {
  return `${analysisId}:${channel}`;
}
