/**
 * FHIR Bulk Data export routes (Bulk Data Access IG v2) for registries:
 *
 *   GET    /fhir/$export, /fhir/Patient/$export   kick-off (Prefer: respond-async; _type, _since, _outputFormat)
 *                                                 → 202 + Content-Location (the status URL)
 *   GET    /fhir/$export-status/{jobId}           202 + X-Progress + Retry-After while running; 200 + manifest;
 *                                                 500 + OperationOutcome when the export failed
 *   DELETE /fhir/$export-status/{jobId}           cancel (or delete a finished export) → 202
 *   GET    /fhir/$export-file/{jobId}/{file}      one NDJSON file (application/fhir+ndjson)
 *
 * Every operation needs the bearer token (when the deployment authenticates); the kick-off checks the SMART
 * system scopes per exported type (system/*.rs, or system/<Type>.rs for each _type), and only the client
 * that started an export can see, download or cancel it (any other gets 404). Kick-offs and downloads are
 * audited (AuditEvent); nothing about patients is logged.
 */
import { DomainError, isDomainError } from '../../domain/errors.ts';
import type { AuditLog, AuditRecord } from '../../domain/ports/audit-log.port.ts';
import type { BulkExportJob, BulkOutputFile } from '../../domain/ports/bulk-export.port.ts';
import { manifestOf, progressText, type KickOffInput } from '../../domain/use-cases/bulk-export.ts';
import { toOperationOutcome } from '../errors.ts';
import type { ApiRequest, ApiResponse, RouteTable } from '../http.ts';

/** The bulk export use cases, bound by compose.ts. */
export interface BulkExportApi {
  /** Checks the request, creates the job and wakes the runner. */
  kickOff(input: KickOffInput): Promise<BulkExportJob>;
  status(jobId: string, owner: string): Promise<BulkExportJob>;
  cancel(jobId: string, owner: string): Promise<void>;
  file(
    jobId: string,
    name: string,
    owner: string,
  ): Promise<{ readonly data: Uint8Array; readonly file: BulkOutputFile; readonly expiresAt?: string }>;
  /** True when the API authenticates (the manifest's requiresAccessToken). */
  readonly requiresAccessToken: boolean;
  /** Suggested polling interval, seconds. */
  readonly retryAfterSeconds: number;
  /** The service's public base URL (absolute URLs in Content-Location and the manifest); else from Host. */
  readonly publicBaseUrl?: string;
}

export interface BulkExportRouteDeps {
  /** Absent: every operation answers BULK.NOT_CONFIGURED. */
  readonly api?: BulkExportApi;
  readonly audit?: AuditLog;
  readonly now?: () => Date;
}

/** The service's base URL as the client reached it (configured, else from the forwarded/Host headers). */
export function baseUrlOf(req: ApiRequest, configured?: string): string {
  if (configured !== undefined) return configured.replace(/\/+$/, '');
  const first = (v: string | undefined): string | undefined => v?.split(',')[0].trim() || undefined;
  const proto = first(req.headers['x-forwarded-proto']) === 'https' ? 'https' : 'http';
  const host = first(req.headers['x-forwarded-host']) ?? req.headers.host ?? 'localhost';
  if (!/^[A-Za-z0-9.:[\]-]{1,255}$/.test(host))
    throw new DomainError('REQUEST.BAD_HOST', 'the Host header is not a host name', { issueType: 'invalid' });
  return `${proto}://${host}`;
}

function queryString(query: Readonly<Record<string, unknown>>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    const values: unknown[] = Array.isArray(v) ? v : [v];
    for (const x of values)
      if (typeof x === 'string' || typeof x === 'number' || typeof x === 'boolean') q.append(k, String(x));
  }
  const s = q.toString();
  return s === '' ? '' : `?${s}`;
}

function expiresHeader(iso: string | undefined): Record<string, string> {
  return iso === undefined ? {} : { expires: new Date(iso).toUTCString() };
}

export function bulkExportRoutes(deps: BulkExportRouteDeps): RouteTable {
  const now = deps.now ?? (() => new Date());
  const need = (): BulkExportApi => {
    if (deps.api === undefined)
      throw new DomainError('BULK.NOT_CONFIGURED', 'bulk export is not configured in this deployment', {
        issueType: 'not-supported',
      });
    return deps.api;
  };
  const ownerOf = (req: ApiRequest): string => req.principal?.subject ?? 'anonymous';

  const audit = async (
    req: ApiRequest,
    record: Pick<AuditRecord, 'action' | 'interaction' | 'entities'>,
    error?: unknown,
  ): Promise<void> => {
    if (deps.audit === undefined) return;
    const failed = error !== undefined;
    await deps.audit
      .record({
        recorded: now().toISOString(),
        ...record,
        outcome: !failed ? '0' : isDomainError(error) && error.issueType !== 'exception' ? '4' : '8',
        ...(failed ? { outcomeDescription: isDomainError(error) ? error.code : 'INTERNAL.ERROR' } : {}),
        agent: { who: ownerOf(req) },
        source: 'fhir',
        ...(req.headers['x-request-id'] === undefined ? {} : { requestId: req.headers['x-request-id'] }),
      })
      .catch(() => undefined);
  };

  const kickOff =
    (level: 'system' | 'patient', path: string) =>
    async (req: ApiRequest): Promise<ApiResponse> => {
      const query = `${path}${queryString(req.query)}`;
      try {
        const api = need();
        const base = baseUrlOf(req, api.publicBaseUrl);
        const job = await api.kickOff({
          level,
          query: req.query,
          ...(req.headers.prefer === undefined ? {} : { prefer: req.headers.prefer }),
          ...(req.headers.accept === undefined ? {} : { accept: req.headers.accept }),
          ...(req.principal === undefined ? {} : { scopes: req.principal.scopes }),
          owner: ownerOf(req),
          requestUrl: `${base}${query}`,
        });
        await audit(req, { action: 'E', interaction: 'operation', entities: [{ query }] });
        return {
          status: 202,
          headers: { 'content-location': `${base}/fhir/$export-status/${job.id}` },
        };
      } catch (e) {
        await audit(req, { action: 'E', interaction: 'operation', entities: [{ query }] }, e);
        if (isDomainError(e) && e.code === 'BULK.TOO_MANY_JOBS') {
          const after = typeof e.details.retryAfterSeconds === 'number' ? e.details.retryAfterSeconds : 10;
          return { status: 429, json: toOperationOutcome(e), headers: { 'retry-after': String(after) } };
        }
        throw e;
      }
    };

  return {
    bulkExportSystem: { handler: kickOff('system', '/fhir/$export') },
    bulkExportPatient: { handler: kickOff('patient', '/fhir/Patient/$export') },
    bulkExportStatus: {
      async handler(req): Promise<ApiResponse> {
        const api = need();
        const job = await api.status(req.params.jobId, ownerOf(req));
        const retry = String(api.retryAfterSeconds);
        if (job.state === 'queued' || job.state === 'running')
          return { status: 202, headers: { 'x-progress': progressText(job), 'retry-after': retry } };
        if (job.state === 'failed') {
          const e = new DomainError(
            job.error?.code ?? 'BULK.EXPORT_FAILED',
            job.error?.message ?? 'the export failed',
            { issueType: 'processing' },
          );
          return { status: 500, json: toOperationOutcome(e) };
        }
        const base = baseUrlOf(req, api.publicBaseUrl);
        const manifest = manifestOf(
          job,
          (name) => `${base}/fhir/$export-file/${job.id}/${name}`,
          api.requiresAccessToken,
        );
        return {
          status: 200,
          json: manifest,
          headers: expiresHeader(job.expiresAt),
        };
      },
    },
    bulkExportCancel: {
      async handler(req) {
        await need().cancel(req.params.jobId, ownerOf(req));
        return { status: 202 };
      },
    },
    bulkExportFile: {
      async handler(req) {
        const entities = [{ query: `/fhir/$export-file/${req.params.jobId}/${req.params.file}` }];
        try {
          const r = await need().file(req.params.jobId, req.params.file, ownerOf(req));
          await audit(req, { action: 'R', interaction: 'read', entities });
          return {
            status: 200,
            bytes: r.data,
            contentType: 'application/fhir+ndjson',
            headers: expiresHeader(r.expiresAt),
          };
        } catch (e) {
          await audit(req, { action: 'R', interaction: 'read', entities }, e);
          throw e;
        }
      },
    },
  };
}
