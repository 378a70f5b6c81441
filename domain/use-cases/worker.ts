/**
 * A worker: consumes the job queue with a concurrency limit and runs each delivery through `runAnalysis`, and a
 * sweeper that periodically requeues analyses whose lease expired (their worker died) or whose queue delivery
 * was lost. The first sweep runs at start and re-enqueues every queued analysis, so a restarted process picks
 * up what it had before (the in-process queue forgets everything on exit; the store does not).
 */
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
