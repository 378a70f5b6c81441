/**
 * Job metrics on prom-client: runs by outcome, run and pipeline-step durations, and gauges of analyses by
 * status and of queued deliveries (read from the store and queue when Prometheus scrapes). The HTTP metrics
 * are registered by the API on the same registry.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AnalysisStore } from '../../domain/ports/analysis-store.port.ts';
import type { JobMetrics } from '../../domain/ports/job-metrics.port.ts';
import type { JobQueue } from '../../domain/ports/job-queue.port.ts';
import type { Logger } from '../../domain/ports/logger.port.ts';

const STEP_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

export interface PrometheusMetricsOptions {
  readonly registry: Registry;
  readonly store: AnalysisStore;
  readonly queue: JobQueue;
  readonly logger: Logger;
  /** Also export Node process metrics (default true). */
  readonly processMetrics?: boolean;
}

export function createPrometheusMetrics(options: PrometheusMetricsOptions): JobMetrics {
  const { registry, store, queue, logger } = options;
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'mslesion_' });
  const runs = new Counter({
    name: 'mslesion_analysis_runs_total',
    help: 'Analysis runs by outcome (succeeded, failed, retry, lost, interrupted)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const runSeconds = new Histogram({
    name: 'mslesion_analysis_run_duration_seconds',
    help: 'Duration of analysis runs by outcome',
    labelNames: ['outcome'] as const,
    buckets: STEP_BUCKETS,
    registers: [registry],
  });
  const stepSeconds = new Histogram({
    name: 'mslesion_pipeline_step_duration_seconds',
    help: 'Duration of pipeline steps',
    labelNames: ['step'] as const,
    buckets: STEP_BUCKETS,
    registers: [registry],
  });
  new Gauge({
    name: 'mslesion_analyses',
    help: 'Analyses in the store by status',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      try {
        const counts = await store.countByStatus();
        for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
      } catch (e) {
        logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'metrics: store unavailable');
      }
    },
  });
  new Gauge({
    name: 'mslesion_queue_pending',
    help: 'Deliveries waiting or delayed in the job queue',
    registers: [registry],
    async collect() {
      try {
        this.set(await queue.pendingCount());
      } catch (e) {
        logger.warn({ err: e instanceof Error ? e.message : String(e) }, 'metrics: queue unavailable');
      }
    },
  });
  return {
    stepFinished(step, seconds) {
      stepSeconds.observe({ step }, seconds);
    },
    runFinished(outcome, seconds) {
      runs.inc({ outcome });
      runSeconds.observe({ outcome }, seconds);
    },
  };
}
