/**
 * What the SQLite and PostgreSQL stores share: the row shape, row ↔ Analysis mapping and the pure patch logic
 * (merge artifacts by name and delivery by channel, clear with null). Each adapter runs it inside its own
 * transaction so an update is atomic.
 */
import { DomainError } from '../../domain/errors.ts';
import type {
  Analysis,
  AnalysisError,
  AnalysisOrder,
  AnalysisResult,
  AnalysisStatus,
  ArtifactRef,
  DeliveryStatus,
  SeriesFinding,
} from '../../domain/model/analysis.ts';
import type { AnalysisPatch } from '../../domain/ports/analysis-store.port.ts';

export const STATUSES: readonly AnalysisStatus[] = ['queued', 'running', 'succeeded', 'failed'];

/** The stored fields of an analysis, in a technology-neutral form (timestamps as ISO strings). */
export interface AnalysisRow {
  readonly id: string;
  readonly status: AnalysisStatus;
  readonly progress: number;
  readonly step: string | null;
  readonly attempts: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly startedAt: string | null;
  readonly finishedAt: string | null;
  readonly order: AnalysisOrder;
  readonly error: AnalysisError | null;
  readonly findings: readonly SeriesFinding[] | null;
  readonly result: AnalysisResult | null;
  readonly artifacts: readonly ArtifactRef[];
  readonly delivery: readonly DeliveryStatus[];
}

export function toAnalysis(row: AnalysisRow): Analysis {
  return {
    id: row.id,
    order: row.order,
    status: row.status,
    progress: row.progress,
    ...(row.step === null ? {} : { step: row.step }),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
    ...(row.startedAt === null ? {} : { startedAt: row.startedAt }),
    ...(row.finishedAt === null ? {} : { finishedAt: row.finishedAt }),
    attempts: row.attempts,
    ...(row.error === null ? {} : { error: row.error }),
    ...(row.findings === null ? {} : { findings: row.findings }),
    ...(row.result === null ? {} : { result: row.result }),
    artifacts: row.artifacts,
    delivery: row.delivery,
  };
}

export function newRow(id: string, order: AnalysisOrder, now: Date): AnalysisRow {
  const iso = now.toISOString();
  return {
    id,
    status: 'queued',
    progress: 0,
    step: null,
    attempts: 0,
    createdAt: iso,
    updatedAt: iso,
    startedAt: null,
    finishedAt: null,
    order: normalizeOrder(order),
    error: null,
    findings: null,
    result: null,
    artifacts: [],
    delivery: [],
  };
}

/** A plain copy of the order without undefined members (what is stored and given back). */
export function normalizeOrder(order: AnalysisOrder): AnalysisOrder {
  return JSON.parse(JSON.stringify(order)) as AnalysisOrder;
}

function mergeBy<T>(current: readonly T[], updates: readonly T[], key: (t: T) => string): T[] {
  const out = [...current];
  for (const u of updates) {
    const i = out.findIndex((c) => key(c) === key(u));
    if (i >= 0) out[i] = u;
    else out.push(u);
  }
  return out;
}

export function applyPatch(row: AnalysisRow, patch: AnalysisPatch, now: Date): AnalysisRow {
  if (patch.status !== undefined && !STATUSES.includes(patch.status))
    throw new DomainError('STORE.INVALID_STATUS', `unknown status ${patch.status}`, {
      issueType: 'value',
    });
  const progress =
    patch.progress === undefined
      ? row.progress
      : Math.max(0, Math.min(100, Math.round(Number.isFinite(patch.progress) ? patch.progress : 0)));
  return {
    ...row,
    status: patch.status ?? row.status,
    progress,
    step: patch.step === undefined ? row.step : patch.step,
    startedAt: patch.startedAt === undefined ? row.startedAt : patch.startedAt,
    finishedAt: patch.finishedAt === undefined ? row.finishedAt : patch.finishedAt,
    error: patch.error === undefined ? row.error : patch.error,
    findings: patch.findings === undefined ? row.findings : patch.findings,
    result: patch.result === undefined ? row.result : patch.result,
    artifacts:
      patch.artifacts === undefined
        ? row.artifacts
        : mergeBy(row.artifacts, patch.artifacts, (a) => a.name).sort((a, b) => a.name.localeCompare(b.name)),
    delivery:
      patch.delivery === undefined ? row.delivery : mergeBy(row.delivery, patch.delivery, (d) => d.channel),
    updatedAt: now.toISOString(),
  };
}

export function notFound(id: string): DomainError {
  return new DomainError('ANALYSIS.NOT_FOUND', `no analysis ${id}`, { issueType: 'not-found' });
}

export function leaseLost(id: string): DomainError {
  return new DomainError('JOB.LEASE_LOST', `the lease on analysis ${id} is no longer held`, {
    issueType: 'conflict',
  });
}

export function storeUnavailable(what: string, cause: unknown): DomainError {
  return new DomainError(
    'STORE.UNAVAILABLE',
    `${what}: ${cause instanceof Error ? cause.message : String(cause)}`,
    {
      issueType: 'transient',
      cause,
    },
  );
}
