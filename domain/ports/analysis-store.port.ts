/**
 * Where analyses (orders as jobs, their progress and results) live. Adapters: SQLite (embedded default) and
 * PostgreSQL; both pass the same contract suite (test/contracts/analysis-store.contract.ts).
 *
 * Concurrency model: a worker *claims* an analysis before running it and receives a lease (token + expiry).
 * Only the lease holder may write progress and the final outcome (updates carry the token; a stale token gets
 * JOB.LEASE_LOST). A worker renews its lease while it runs; when it dies, the lease expires and
 * `requeueStale` puts the analysis back to `queued` so another worker (or the restarted one) picks it up.
 */
import type {
  Analysis,
  AnalysisError,
  AnalysisOrder,
  AnalysisResult,
  AnalysisStatus,
  ArtifactRef,
  DeliveryChannel,
  DeliveryStatus,
  SeriesFinding,
} from '../model/analysis.ts';

export interface CreateResult {
  readonly analysis: Analysis;
  /** false when an analysis with the same placer order number already existed (it is returned instead). */
  readonly created: boolean;
}

export interface AnalysisQuery {
  /** Patient identifier value (exact match). */
  readonly patientId?: string;
  /** Patient identifier system (exact match; only together with patientId). */
  readonly patientIdSystem?: string;
  readonly status?: AnalysisStatus;
  readonly studyInstanceUid?: string;
  /** Page size, 1–1000. */
  readonly limit: number;
  /** Items to skip (newest first, then by id). */
  readonly offset: number;
}

export interface AnalysisPage {
  readonly items: readonly Analysis[];
  /** Matching analyses in total (all pages). */
  readonly total: number;
}

export interface Lease {
  readonly token: string;
  readonly owner: string;
  /** Epoch milliseconds. */
  readonly expiresAt: number;
}

export interface Claim {
  /** The analysis after the claim: status running, attempts incremented. */
  readonly analysis: Analysis;
  readonly lease: Lease;
}

export interface ClaimRequest {
  /** Worker identity (host/pid/instance), recorded with the lease. */
  readonly owner: string;
  readonly leaseMs: number;
  readonly now: Date;
}

/**
 * A partial update applied atomically. Absent fields are left alone; `null` clears an optional field.
 * `artifacts` are merged by name and `delivery` by channel (so concurrent writers of different entries never
 * overwrite each other); `findings` and `result` replace the previous value.
 */
export interface AnalysisPatch {
  readonly status?: AnalysisStatus;
  /** 0–100, rounded by the store. */
  readonly progress?: number;
  readonly step?: string | null;
  readonly startedAt?: string | null;
  readonly finishedAt?: string | null;
  readonly error?: AnalysisError | null;
  readonly findings?: readonly SeriesFinding[] | null;
  readonly result?: AnalysisResult | null;
  readonly artifacts?: readonly ArtifactRef[];
  readonly delivery?: readonly DeliveryStatus[];
}

export interface UpdateGuard {
  /** The update applies only while this lease is held (else JOB.LEASE_LOST). */
  readonly leaseToken?: string;
  /** Release the lease with this update (the final outcome, or a requeue). */
  readonly releaseLease?: boolean;
}

export interface RequeueRequest {
  readonly now: Date;
  /** Also return ids of analyses queued and untouched since before this instant (lost queue deliveries). */
  readonly queuedBefore: Date;
  readonly limit: number;
}

/** Succeeded analyses whose results were never queued for delivery on a channel (see `listUndelivered`). */
export interface UndeliveredQuery {
  /** The delivery channels a succeeded analysis must have a status for. */
  readonly channels: readonly DeliveryChannel[];
  /** Only analyses finished at or after this instant (how far back to look). */
  readonly finishedAfter: Date;
  /** …and at or before this one (the run's own queueing has had its chance). */
  readonly finishedBefore: Date;
  readonly limit: number;
}

export interface AnalysisStore {
  /**
   * Creates a queued analysis for the order. With a placer order number that is already known, returns the
   * existing analysis with `created: false` — also when identical orders race (a unique constraint decides).
   */
  create(order: AnalysisOrder, now: Date): Promise<CreateResult>;
  get(id: string): Promise<Analysis | undefined>;
  findByPlacerOrderNumber(placerOrderNumber: string): Promise<Analysis | undefined>;
  list(query: AnalysisQuery): Promise<AnalysisPage>;
  /** Applies `patch` (and sets updatedAt = now). Throws ANALYSIS.NOT_FOUND, JOB.LEASE_LOST. */
  update(id: string, patch: AnalysisPatch, now: Date, guard?: UpdateGuard): Promise<Analysis>;
  /**
   * Takes the analysis for running when it is queued (or running with an expired lease): status → running,
   * attempts + 1, a fresh lease. Undefined when it is finished, leased to someone else, or unknown.
   */
  claim(id: string, request: ClaimRequest): Promise<Claim | undefined>;
  /** Extends a held lease to now + leaseMs; false when the lease is no longer held. */
  renewLease(id: string, token: string, leaseMs: number, now: Date): Promise<boolean>;
  /**
   * Moves running analyses whose lease expired back to queued and returns their ids, together with the ids
   * of analyses queued since before `queuedBefore` (both to be enqueued again), at most `limit` in all.
   */
  requeueStale(request: RequeueRequest): Promise<readonly string[]>;
  /**
   * Ids of succeeded analyses finished within [finishedAfter, finishedBefore] that have no delivery status for
   * at least one of `channels` (their results were never queued there), oldest finished first.
   */
  listUndelivered(query: UndeliveredQuery): Promise<readonly string[]>;
  /** Number of analyses in each status (metrics). */
  countByStatus(): Promise<Readonly<Record<AnalysisStatus, number>>>;
  /** Throws when the store is unreachable (readiness check). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
