/**
 * FHIR Bulk Data export (https://hl7.org/fhir/uv/bulkdata/export.html) as the domain needs it: durable export
 * jobs (BulkExportJobStore — SQLite or PostgreSQL, leased so that one runner works a job at a time and a job
 * whose runner died is taken over) and the NDJSON files they produce (BulkFileStore — the data dir).
 * domain/use-cases/bulk-export.ts drives both.
 */

export type BulkExportLevel = 'system' | 'patient';
export type BulkExportState = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

/** The resource types an export can contain (the service's result resources). */
export const BULK_EXPORT_TYPES = [
  'Observation',
  'DiagnosticReport',
  'ImagingStudy',
  'Device',
  'Provenance',
] as const;
export type BulkExportType = (typeof BULK_EXPORT_TYPES)[number];

export function isBulkExportType(t: string): t is BulkExportType {
  return (BULK_EXPORT_TYPES as readonly string[]).includes(t);
}

export interface BulkExportRequest {
  readonly level: BulkExportLevel;
  readonly types: readonly BulkExportType[];
  /** ISO instant: only results that came into being after it. */
  readonly since?: string;
  /** Always application/fhir+ndjson (the only format offered). */
  readonly outputFormat: 'application/fhir+ndjson';
  /** The kick-off URL as the client sent it (the manifest's `request`). */
  readonly requestUrl: string;
  /** The client that asked (token client id; 'anonymous' on an open deployment): only it may see the job. */
  readonly owner: string;
}

export interface BulkOutputFile {
  readonly type: string;
  /** File name inside the job's folder: `<Type>-<attempt>-<n>.ndjson`, e.g. Observation-1-1.ndjson. */
  readonly name: string;
  readonly count: number;
  readonly bytes: number;
}

export interface BulkExportJob {
  /** UUID v4. */
  readonly id: string;
  readonly request: BulkExportRequest;
  readonly state: BulkExportState;
  /** 0–100. */
  readonly progress: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly startedAt?: string;
  readonly finishedAt?: string;
  /** The instant the export's snapshot was taken (manifest transactionTime; the client's next _since). */
  readonly transactionTime?: string;
  /** When the job and its files are deleted. */
  readonly expiresAt?: string;
  readonly attempts: number;
  readonly output: readonly BulkOutputFile[];
  /** OperationOutcome files (resources that could not be exported). */
  readonly errors: readonly BulkOutputFile[];
  readonly error?: { readonly code: string; readonly message: string };
}

export interface BulkJobLease {
  readonly token: string;
  /** Epoch ms. */
  readonly expiresAt: number;
}

export interface BulkJobCompletion {
  readonly transactionTime: string;
  readonly output: readonly BulkOutputFile[];
  readonly errors: readonly BulkOutputFile[];
  readonly expiresAt: string;
}

export interface BulkExportJobStore {
  /** A new queued job. */
  create(request: BulkExportRequest, now: Date): Promise<BulkExportJob>;
  get(id: string): Promise<BulkExportJob | undefined>;
  /** Queued or running jobs of a client (the per-client limit). */
  countActive(owner: string): Promise<number>;
  /**
   * Takes the oldest queued job, or a running one whose lease expired (its runner died): state running,
   * attempts + 1, startedAt = now, progress 0, a fresh lease. Undefined when there is none.
   */
  claim(request: {
    readonly owner: string;
    readonly leaseMs: number;
    readonly now: Date;
  }): Promise<{ readonly job: BulkExportJob; readonly lease: BulkJobLease } | undefined>;
  /** Extends the lease and records progress; false when the lease is lost or the job was cancelled. */
  heartbeat(id: string, token: string, progress: number, leaseMs: number, now: Date): Promise<boolean>;
  /** Final outcome under the lease; false when the lease is lost or the job was cancelled. */
  complete(id: string, token: string, completion: BulkJobCompletion, now: Date): Promise<boolean>;
  fail(
    id: string,
    token: string,
    error: { readonly code: string; readonly message: string },
    expiresAt: string,
    now: Date,
  ): Promise<boolean>;
  /** Gives a job back (state queued) under its lease, e.g. when the runner stops; false when the lease is lost. */
  release(id: string, token: string, now: Date): Promise<boolean>;
  /** Marks a job cancelled (to be removed); false when it does not exist or is already cancelled. */
  cancel(id: string, now: Date): Promise<boolean>;
  /** Ids of jobs past their expiry, and of cancelled jobs (oldest first). */
  expired(now: Date, limit: number): Promise<readonly string[]>;
  remove(id: string): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** Where export files live (one folder per job). Writes are atomic (whole file or nothing). */
export interface BulkFileStore {
  write(jobId: string, name: string, data: Uint8Array): Promise<void>;
  /** The file, or undefined when there is none. */
  read(jobId: string, name: string): Promise<Uint8Array | undefined>;
  /** Removes a job's folder (no error when there is none). */
  removeAll(jobId: string): Promise<void>;
  ping(): Promise<void>;
}

const FILE = /^[A-Za-z]{1,40}-[0-9]{1,4}-[0-9]{1,6}\.ndjson$/;

/** True for an export file name (`<Type>-<attempt>-<n>.ndjson`, also for OperationOutcome files). */
export function isBulkFileName(name: string): boolean {
  return FILE.test(name);
}
