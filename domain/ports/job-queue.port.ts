/**
 * The queue that hands analysis ids to workers. The AnalysisStore is the source of truth (status, leases,
 * attempts); the queue only says "look at this id". Delivery is at-least-once: a handler may see an id twice
 * (a redelivery after a crash, a sweeper re-enqueue), and the store's claim makes sure only one worker runs it.
 *
 * - `enqueue` is idempotent while the id is waiting, delayed or being handled (a second enqueue is a no-op).
 * - A handler that resolves acks the delivery — unless it called `context.retryLater(ms)`, which asks for a
 *   redelivery after `ms`; one that throws fails the delivery (the adapter retries it with a backoff, a
 *   bounded number of times).
 * - `stop()` stops taking new deliveries and waits for running handlers (up to `graceMs`); after that the
 *   handlers' signals abort and their deliveries are left for redelivery.
 */
export interface JobHandlerContext {
  /** Aborts when the consumer is stopping and the grace period ran out. */
  readonly signal: AbortSignal;
  /** 1 for the first delivery of this enqueue, 2 for the next … (adapter-level, informational). */
  readonly delivery: number;
  /** Asks for this id to be delivered again after `ms` once the handler resolves (instead of an ack). */
  retryLater(ms: number): void;
}

export type JobHandler = (analysisId: string, context: JobHandlerContext) => Promise<void>;

export interface ConsumeOptions {
  /** Handlers running at once in this process (≥ 1). */
  readonly concurrency: number;
}

export interface JobConsumer {
  /** Stops taking deliveries; resolves once running handlers finished or `graceMs` passed. */
  stop(graceMs?: number): Promise<void>;
}

export interface JobQueue {
  /** Asks for `analysisId` to be handled (after `delayMs` when given). */
  enqueue(analysisId: string, options?: { readonly delayMs?: number }): Promise<void>;
  /** Starts handing deliveries to `handler`. One consumer per queue instance. */
  consume(handler: JobHandler, options: ConsumeOptions): JobConsumer;
  /** Ids waiting or delayed (not those being handled); for readiness/metrics. */
  pendingCount(): Promise<number>;
  /** Throws when the queue backend is unreachable (readiness check). */
  ping(): Promise<void>;
  /** Stops any consumer (waiting for it) and releases connections. */
  close(): Promise<void>;
}
