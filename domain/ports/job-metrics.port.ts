/** What the job runner reports for monitoring (Prometheus adapter: adapters/metrics/prometheus.ts). */
import type { AnalysisStatus } from '../model/analysis.ts';

export interface JobMetrics {
  /** A pipeline step finished (the next step started, or the run ended) after `seconds`. */
  stepFinished(step: string, seconds: number): void;
  /** A run ended: `outcome` is the status written (or 'retry' / 'lost' / 'interrupted'). */
  runFinished(outcome: AnalysisStatus | 'retry' | 'lost' | 'interrupted', seconds: number): void;
}

export const NO_JOB_METRICS: JobMetrics = {
  stepFinished() {
    /* not recorded */
  },
  runFinished() {
    /* not recorded */
  },
};
