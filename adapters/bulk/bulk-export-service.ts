/**
 * The bulk export use cases bound to their adapters, for compose.ts: the job store in the service's database
 * (SQLite file or PostgreSQL schema), the files under the bulk dir, the FHIR mapping, the R4 validator, and
 * one runner per process. The runner starts on the first bulk request (or `start()`), so after a restart a
 * client's next status poll resumes an interrupted export; `close()` gives a running job back.
 */
import type { AnalysisStore } from '../../domain/ports/analysis-store.port.ts';
import type {
  BulkExportJob,
  BulkExportJobStore,
  BulkOutputFile,
} from '../../domain/ports/bulk-export.port.ts';
import type { Clock } from '../../domain/ports/clock.port.ts';
import type { FhirJson, FhirResults } from '../../domain/ports/fhir-results.port.ts';
import type { Logger } from '../../domain/ports/logger.port.ts';
import {
  cancelExport,
  exportFile,
  getExport,
  parseKickOff,
  startBulkExportRunner,
  startExport,
  type BulkExportDeps,
  type BulkExportRunner,
  type KickOffInput,
} from '../../domain/use-cases/bulk-export.ts';
import type { Resource } from '@medplum/fhirtypes';
import { fhirErrors } from '../fhir/validation.ts';
import { FsBulkFileStore } from './fs-bulk-files.ts';
import { PostgresBulkJobStore } from './postgres-bulk-jobs.ts';
import { SqliteBulkJobStore } from './sqlite-bulk-jobs.ts';

export interface BulkExportServiceSettings {
  readonly dir: string;
  readonly maxResourcesPerFile: number;
  readonly retentionHours: number;
  readonly maxJobsPerClient: number;
  readonly pollMs: number;
  readonly validate: boolean;
  readonly publicBaseUrl?: string;
  /** True when the API authenticates (manifest requiresAccessToken). */
  readonly requiresAccessToken: boolean;
  readonly leaseMs?: number;
}

export interface BulkExportServiceDeps {
  readonly database:
    | { readonly kind: 'sqlite'; readonly path: string }
    | { readonly kind: 'postgres'; readonly url: string; readonly schema: string };
  readonly store: AnalysisStore;
  readonly fhir: FhirResults;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly runnerId: string;
  /** Overrides the job store (tests). */
  readonly jobs?: BulkExportJobStore;
}

export interface BulkExportService {
  kickOff(input: KickOffInput): Promise<BulkExportJob>;
  status(jobId: string, owner: string): Promise<BulkExportJob>;
  cancel(jobId: string, owner: string): Promise<void>;
  file(
    jobId: string,
    name: string,
    owner: string,
  ): Promise<{ readonly data: Uint8Array; readonly file: BulkOutputFile; readonly expiresAt?: string }>;
  readonly requiresAccessToken: boolean;
  readonly retryAfterSeconds: number;
  readonly publicBaseUrl?: string;
  readonly deps: BulkExportDeps;
  /** Starts the runner in this process (idempotent; also done by the first bulk request). */
  start(): void;
  /** Stops running exports in this process for good (a running job is given back to the queue for others). */
  stopRunner(): Promise<void>;
  readinessCheck(): Promise<void>;
  close(): Promise<void>;
}

export async function createBulkExportService(
  settings: BulkExportServiceSettings,
  deps: BulkExportServiceDeps,
): Promise<BulkExportService> {
  const jobs: BulkExportJobStore =
    deps.jobs ??
    (deps.database.kind === 'sqlite'
      ? new SqliteBulkJobStore({ path: deps.database.path })
      : await PostgresBulkJobStore.open({
          connectionString: deps.database.url,
          schema: deps.database.schema,
        }));
  const files = new FsBulkFileStore(settings.dir);
  const core: BulkExportDeps = {
    jobs,
    files,
    clock: deps.clock,
    logger: deps.logger,
    listSucceeded: (offset, limit) => deps.store.list({ status: 'succeeded', offset, limit }),
    resources: (analysis) => deps.fhir.resultResources(analysis),
    ...(settings.validate
      ? {
          validate: (r: FhirJson) =>
            fhirErrors(r as unknown as Resource).map(
              (i) => i.message + (i.expression === undefined ? '' : ` (${i.expression})`),
            ),
        }
      : {}),
    settings: {
      maxResourcesPerFile: settings.maxResourcesPerFile,
      retentionMs: settings.retentionHours * 3600_000,
      maxActiveJobsPerClient: settings.maxJobsPerClient,
      leaseMs: settings.leaseMs ?? 60_000,
      retryAfterSeconds: Math.max(1, Math.round(Math.min(settings.pollMs, 10_000) / 1000)),
    },
  };
  let runner: BulkExportRunner | undefined;
  let closed = false;
  let stopped = false;
  const start = (): BulkExportRunner | undefined => {
    if (closed || stopped) return undefined;
    runner ??= startBulkExportRunner(core, { runnerId: deps.runnerId, pollMs: settings.pollMs });
    return runner;
  };
  return {
    async kickOff(input) {
      const job = await startExport(core, parseKickOff(input));
      start()?.poke();
      return job;
    },
    status(jobId, owner) {
      start();
      return getExport(core, jobId, owner);
    },
    cancel(jobId, owner) {
      start();
      return cancelExport(core, jobId, owner);
    },
    file(jobId, name, owner) {
      return exportFile(core, jobId, name, owner);
    },
    requiresAccessToken: settings.requiresAccessToken,
    retryAfterSeconds: core.settings.retryAfterSeconds,
    ...(settings.publicBaseUrl === undefined ? {} : { publicBaseUrl: settings.publicBaseUrl }),
    deps: core,
    start() {
      start();
    },
    async stopRunner() {
      stopped = true;
      if (runner !== undefined) await runner.stop();
    },
    async readinessCheck() {
      await jobs.ping();
      await files.ping();
    },
    async close() {
      if (closed) return;
      closed = true;
      stopped = true;
      if (runner !== undefined) await runner.stop();
      if (deps.jobs === undefined) await jobs.close();
    },
  };
}
