/**
 * The job runner: claim an analysis, mark it running, run the injected pipeline with progress reporting and a
 * lease heartbeat, and record the outcome. A job is never lost (a crashed run's lease expires and the sweeper
 * requeues it) and never run twice at once (only the lease holder may write; a worker that lost its lease
 * stops writing and its pipeline's signal aborts).
 *
 * Failures: a DomainError's code is recorded as the analysis error; anything else becomes INTERNAL.ERROR.
 * A DomainError may carry `details.findings` (SeriesFinding[], e.g. SERIES.NO_FLAIR): they are recorded too.
 * Errors with issueType `transient` or `timeout` (an unreachable PACS, say) are retried with an exponential
 * backoff until `maxAttempts`; JOB.TOO_MANY_ATTEMPTS ends an analysis whose runs keep dying.
 */
import { asDomainError, DomainError } from '../errors.ts';
import type { Analysis, AnalysisResult, ArtifactRef, SeriesFinding } from '../model/analysis.ts';
import type { AnalysisPatch, AnalysisStore, Claim } from '../ports/analysis-store.port.ts';
import type { ArtifactStore } from '../ports/artifact-store.port.ts';
import type { Clock } from '../ports/clock.port.ts';
import type { JobMetrics } from '../ports/job-metrics.port.ts';
import type { Logger } from '../ports/logger.port.ts';

/** Stores an artifact of the running analysis and records its reference on the analysis. */
export interface PipelineArtifacts {
  put(name: string, data: Uint8Array, contentType: string): Promise<ArtifactRef>;
}

export interface PipelineContext {
  readonly analysis: Analysis;
  /** Aborts when the run must stop (lease lost, worker shutting down): stop at the next opportunity. */
  readonly signal: AbortSignal;
  /** Reports progress: `fraction` 0–1 of the whole run, `step` a short name (e.g. 'load', 'segment'). */
  progress(fraction: number, step: string): Promise<void>;
  /** Records what was found about the study's series (kept also when the run then fails). */
  recordFindings(findings: readonly SeriesFinding[]): Promise<void>;
  readonly artifacts: PipelineArtifacts;
}

export interface PipelineOutput {
  readonly result?: AnalysisResult;
  readonly findings?: readonly SeriesFinding[];
  /** References returned by `ctx.artifacts.put` (already recorded; listed again is harmless). */
  readonly artifacts?: readonly ArtifactRef[];
}

export type AnalysisPipeline = (ctx: PipelineContext) => Promise<PipelineOutput>;

export interface RunAnalysisDeps {
  readonly store: AnalysisStore;
  readonly artifacts: ArtifactStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: JobMetrics;
  readonly pipeline: AnalysisPipeline;
  /** This worker's identity, recorded with its leases. */
  readonly workerId: string;
  readonly leaseMs: number;
  /** Runs allowed per analysis (crashes and transient failures included). */
  readonly maxAttempts: number;
  /** First retry delay after a transient failure; doubles per attempt up to retryMaxMs. */
  readonly retryBaseMs: number;
  readonly retryMaxMs: number;
}

export type RunOutcome =
  | { readonly outcome: 'succeeded' | 'failed'; readonly analysis: Analysis }
  | { readonly outcome: 'retry'; readonly analysis: Analysis; readonly retryInMs: number }
  /** Not claimable: finished already, leased by another worker, or unknown. */
  | { readonly outcome: 'skipped' }
  /** The lease was lost mid-run (another worker took over); nothing more was written. */
  | { readonly outcome: 'lost' }
  /** The worker is stopping: the analysis went back to queued for another run. */
  | { readonly outcome: 'interrupted'; readonly analysis: Analysis };

function isLeaseLost(e: unknown): boolean {
  return e instanceof DomainError && e.code === 'JOB.LEASE_LOST';
}

export async function runAnalysis(
  deps: RunAnalysisDeps,
  analysisId: string,
  stopSignal?: AbortSignal,
): Promise<RunOutcome> {
  const { store, clock, logger } = deps;
  const claim: Claim | undefined = await store.claim(analysisId, {
    owner: deps.workerId,
    leaseMs: deps.leaseMs,
    now: clock.now(),
  });
  if (claim === undefined) return { outcome: 'skipped' };
  const token = claim.lease.token;
  const startedMs = clock.now().getTime();
  const log = { analysisId, attempt: claim.analysis.attempts, worker: deps.workerId };

  const write = (patch: AnalysisPatch, release = false): Promise<Analysis> =>
    store.update(analysisId, patch, clock.now(), { leaseToken: token, releaseLease: release });

  if (claim.analysis.attempts > deps.maxAttempts) {
    const last = claim.analysis.error;
    const analysis = await write(
      {
        status: 'failed',
        step: null,
        finishedAt: clock.now().toISOString(),
        error: {
          code: 'JOB.TOO_MANY_ATTEMPTS',
          message:
            `gave up after ${deps.maxAttempts} attempts` +
            (last === undefined
              ? ' (the worker stopped each time)'
              : `; last error ${last.code}: ${last.message}`),
        },
      },
      true,
    );
    logger.warn(log, 'analysis abandoned after too many attempts');
    deps.metrics.runFinished('failed', 0);
    return { outcome: 'failed', analysis };
  }
  logger.info(log, 'analysis run started');

  // The run's own signal: aborted when the lease is lost or the worker stops.
  const run = new AbortController();
  const state = { leaseLost: false };
  const onStop = (): void => {
    run.abort(new DomainError('JOB.INTERRUPTED', 'the worker is stopping', { issueType: 'transient' }));
  };
  if (stopSignal?.aborted === true) onStop();
  stopSignal?.addEventListener('abort', onStop, { once: true });

  // Heartbeat: renew the lease three times per lease period until the run ends.
  const beat = new AbortController();
  const beating = (): boolean => !beat.signal.aborted;
  const heartbeat = (async () => {
    while (beating()) {
      await clock.sleep(Math.max(50, Math.floor(deps.leaseMs / 3)), beat.signal);
      if (!beating()) break;
      let held: boolean;
      try {
        held = await store.renewLease(analysisId, token, deps.leaseMs, clock.now());
      } catch (e) {
        // A store hiccup: keep the run going; the next beat tries again before the lease expires.
        logger.warn({ ...log, err: e instanceof Error ? e.message : String(e) }, 'lease renewal failed');
        continue;
      }
      if (!held) {
        state.leaseLost = true;
        run.abort(
          new DomainError('JOB.LEASE_LOST', 'the lease on this analysis was lost', { issueType: 'conflict' }),
        );
        break;
      }
    }
  })();

  let step = claim.analysis.step ?? 'start';
  let stepStartedMs = startedMs;
  let lastPercent = -1;
  let lastStep = '';
  const endStep = (): void => {
    deps.metrics.stepFinished(step, (clock.now().getTime() - stepStartedMs) / 1000);
  };
  const ctx: PipelineContext = {
    analysis: claim.analysis,
    signal: run.signal,
    async progress(fraction, newStep) {
      if (run.signal.aborted) throw run.signal.reason;
      const percent = Math.max(0, Math.min(99, Math.floor((Number.isFinite(fraction) ? fraction : 0) * 100)));
      if (newStep !== step) {
        endStep();
        step = newStep;
        stepStartedMs = clock.now().getTime();
      }
      if (percent === lastPercent && newStep === lastStep) return;
      lastPercent = percent;
      lastStep = newStep;
      await write({ progress: percent, step: newStep });
    },
    async recordFindings(findings) {
      if (run.signal.aborted) throw run.signal.reason;
      await write({ findings });
    },
    artifacts: {
      async put(name, data, contentType) {
        if (run.signal.aborted) throw run.signal.reason;
        const ref = await deps.artifacts.put(analysisId, name, data, contentType);
        await write({ artifacts: [ref] });
        return ref;
      },
    },
  };

  let output: PipelineOutput | undefined;
  let failure: DomainError | undefined;
  try {
    await write({ step: 'start', progress: 0, error: null });
    output = await deps.pipeline(ctx);
  } catch (e) {
    failure = asDomainError(e);
  } finally {
    beat.abort();
    await heartbeat;
    stopSignal?.removeEventListener('abort', onStop);
  }
  endStep();
  const seconds = (clock.now().getTime() - startedMs) / 1000;

  try {
    if (state.leaseLost || (failure !== undefined && isLeaseLost(failure))) {
      logger.warn(log, 'lease lost: another worker owns this analysis now');
      deps.metrics.runFinished('lost', seconds);
      return { outcome: 'lost' };
    }
    if (failure === undefined) {
      const out = output ?? {};
      const analysis = await write(
        {
          status: 'succeeded',
          progress: 100,
          step: null,
          finishedAt: clock.now().toISOString(),
          error: null,
          ...(out.result === undefined ? {} : { result: out.result }),
          ...(out.findings === undefined ? {} : { findings: out.findings }),
          ...(out.artifacts === undefined ? {} : { artifacts: out.artifacts }),
        },
        true,
      );
      logger.info({ ...log, seconds }, 'analysis succeeded');
      deps.metrics.runFinished('succeeded', seconds);
      return { outcome: 'succeeded', analysis };
    }
    const error = { code: failure.code, message: failure.message };
    const found = failure.details.findings;
    const findings = Array.isArray(found) ? { findings: found as SeriesFinding[] } : {};
    if (stopSignal?.aborted === true) {
      const analysis = await write({ status: 'queued', step: 'interrupted', error }, true);
      logger.info(log, 'analysis interrupted by shutdown; requeued');
      deps.metrics.runFinished('interrupted', seconds);
      return { outcome: 'interrupted', analysis };
    }
    const transient = failure.issueType === 'transient' || failure.issueType === 'timeout';
    if (transient && claim.analysis.attempts < deps.maxAttempts) {
      const retryInMs = Math.min(deps.retryMaxMs, deps.retryBaseMs * 2 ** (claim.analysis.attempts - 1));
      const analysis = await write({ status: 'queued', step: 'waiting to retry', error, ...findings }, true);
      logger.warn({ ...log, code: failure.code, retryInMs }, 'transient failure; will retry');
      deps.metrics.runFinished('retry', seconds);
      return { outcome: 'retry', analysis, retryInMs };
    }
    const analysis = await write(
      { status: 'failed', step: null, finishedAt: clock.now().toISOString(), error, ...findings },
      true,
    );
    logger.warn({ ...log, code: failure.code, seconds }, 'analysis failed');
    deps.metrics.runFinished('failed', seconds);
    return { outcome: 'failed', analysis };
  } catch (e) {
    if (isLeaseLost(e)) {
      logger.warn(log, 'lease lost before the outcome was written');
      deps.metrics.runFinished('lost', seconds);
      return { outcome: 'lost' };
    }
    throw e;
  }
}
