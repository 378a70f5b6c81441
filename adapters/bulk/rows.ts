/** The bulk_export_jobs row as both job stores read it, and its mapping to the port's BulkExportJob. */
import type {
  BulkExportJob,
  BulkExportRequest,
  BulkExportState,
  BulkOutputFile,
} from '../../domain/ports/bulk-export.port.ts';

export interface BulkJobRow {
  readonly id: string;
  readonly request: BulkExportRequest;
  readonly state: BulkExportState;
  readonly progress: number;
  readonly attempts: number;
  readonly created_at: string;
  readonly updated_at: string;
  readonly started_at: string | null;
  readonly finished_at: string | null;
  readonly transaction_time: string | null;
  /** Epoch ms. */
  readonly expires_at: number | null;
  readonly output: readonly BulkOutputFile[];
  readonly errors: readonly BulkOutputFile[];
  readonly error: { readonly code: string; readonly message: string } | null;
}

export function fromRow(r: BulkJobRow): BulkExportJob {
  return {
    id: r.id,
    request: r.request,
    state: r.state,
    progress: Math.round(r.progress * 10) / 10,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    ...(r.started_at === null ? {} : { startedAt: r.started_at }),
    ...(r.finished_at === null ? {} : { finishedAt: r.finished_at }),
    ...(r.transaction_time === null ? {} : { transactionTime: r.transaction_time }),
    ...(r.expires_at === null ? {} : { expiresAt: new Date(r.expires_at).toISOString() }),
    attempts: r.attempts,
    output: r.output,
    errors: r.errors,
    ...(r.error === null ? {} : { error: r.error }),
  };
}
