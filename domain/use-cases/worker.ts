/**
 * A worker: consumes the job queue with a concurrency limit and runs each delivery through `runAnalysis`, and a
 * sweeper that periodically requeues analyses whose lease expired (their worker died) or whose queue delivery
 * was lost. The first sweep runs at start and re-enqueues every queued analysis, so a restarted process picks
 * up what it had before (the in-process queue forgets everything on exit; the store does not).
 *
 * With `redelivery`, the sweeper also queues the results of succeeded analyses that have no delivery status for
 * a configured channel some time after they finished: queueing them right after the run failed (the outbox was
 * unavailable, the process died in between), and nothing accepted may be lost.
 */
import type { Analysis, DeliveryChannel } from '../model/analysis.ts';
import type { AnalysisStore } from '../ports/analysis-store.port.ts';
import type { Clock } from '../ports/clock.port.ts';
import type { JobQueue } from '../ports/job-queue.port.ts';
import type { Logger } from '../ports/logger.port.ts';
import type { RunOutcome } from './run-analysis.ts';

export interface WorkerDeps {
  readonly store: AnalysisStore;
  readonly queue: JobQueue;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Runs one analysis (runAnalysis bound to its dependencies). */
  readonly run: (analysisId: string, signal: AbortSignal) => Promise<RunOutcome>;
  readonly concurrency: number;
  /** How often the sweeper looks for expired leases and lost deliveries. */
  readonly sweepIntervalMs: number;
  /** A queued analysis untouched for this long is enqueued again (a lost delivery). */
  readonly staleQueuedMs: number;
  readonly redelivery?: RedeliveryDeps;
}

export interface RedeliveryDeps {
  /** The channels results go to (an analysis without a status for one of them is queued again). */
  readonly channels: readonly DeliveryChannel[];
  /** How long after an analysis finished its own queueing is given before the sweeper steps in. */
  readonly afterMs: number;
  /** How far back the sweeper looks. */
  readonly lookbackMs: number;
  /** Queues an analysis' results on every channel; throws when they cannot be queued. */
  readonly queue: (analysis: Analysis) => Promise<unknown>;
  /** At most this many analyses per sweep (default 100). */
  readonly batch?: number;
}

export interface Worker {
  /** Requeues what it can now; returns the ids enqueued. */
  sweep(queuedBefore?: Date): Promise<readonly string[]>;
  /** Stops the sweeper and the consumer, waiting up to `graceMs` for running analyses. */
  stop(graceMs: number): Promise<void>;
}

/** Requeues expired leases and lost deliveries once; returns the ids enqueued again. */
export async function recoverJobs(
  deps: Pick<WorkerDeps, 'store' | 'queue' | 'clock' | 'logger'>,
  queuedBefore: Date,
): Promise<readonly string[]> {
  const ids = await deps.store.requeueStale({ now: deps.clock.now(), queuedBefore, limit: 1000 });
  for (const id of ids) await deps.queue.enqueue(id);
  if (ids.length > 0) deps.logger.info({ count: ids.length }, 'requeued analyses');
  return ids;
}

/**
 * Queues the results of succeeded analyses that have no delivery status for a channel (see RedeliveryDeps);
 * returns the ids queued. A failure leaves the analysis as it was, for the next sweep.
 */
export async function recoverDeliveries(
  deps: Pick<WorkerDeps, 'store' | 'clock' | 'logger'> & { readonly redelivery: RedeliveryDeps },
): Promise<readonly string[]> {
  const r = deps.redelivery;
  if (r.channels.length === 0) return [];
  const now = deps.clock.now().getTime();
  const ids = await deps.store.listUndelivered({
    channels: r.channels,
    finishedAfter: new Date(now - r.lookbackMs),
    finishedBefore: new Date(now - r.afterMs),
    limit: r.batch ?? 100,
  });
  const queued: string[] = [];
  for (const id of ids) {
    const analysis = await deps.store.get(id);
    if (analysis === undefined) continue;
    try {
      await r.queue(analysis);
      queued.push(id);
    } catch (e) {
      deps.logger.error(
        { analysisId: id, err: e instanceof Error ? e.message : String(e) },
        'results still cannot be queued for delivery; retrying at the next sweep',
      );
    }
  }
  if (queued.length > 0)
    deps.logger.warn({ count: queued.length }, 'queued results that had not been queued for delivery');
  return queued;
}

export function startWorker(deps: WorkerDeps): Worker {
  const { clock, logger } = deps;
  const stopping = new AbortController();
  const consumer = deps.queue.consume(
    async (analysisId, context) => {
      const outcome = await deps.run(analysisId, context.signal);
      if (outcome.outcome === 'retry') context.retryLater(outcome.retryInMs);
      else if (outcome.outcome === 'interrupted') context.retryLater(0);
    },
    { concurrency: deps.concurrency },
  );
  const sweep = (queuedBefore: Date): Promise<readonly string[]> => recoverJobs(deps, queuedBefore);
  const sweeper = (async () => {
    let first = true;
    while (!stopping.signal.aborted) {
      try {
        const now = clock.now();
        await sweep(first ? now : new Date(now.getTime() - deps.staleQueuedMs));
        first = false;
        if (deps.redelivery !== undefined) await recoverDeliveries({ ...deps, redelivery: deps.redelivery });
      } catch (e) {
        logger.error({ err: e instanceof Error ? e.message : String(e) }, 'sweep failed; retrying later');
      }
      await clock.sleep(deps.sweepIntervalMs, stopping.signal);
    }
  })();
  return {
    sweep: (queuedBefore) => sweep(queuedBefore ?? new Date(clock.now().getTime() - deps.staleQueuedMs)),
    async stop(graceMs) {
      stopping.abort();
      await sweeper;
      await consumer.stop(graceMs);
    },
  };
}
