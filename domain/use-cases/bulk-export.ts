/**
 * FHIR Bulk Data export of the service's results for registries (Bulk Data Access IG v2,
 * https://hl7.org/fhir/uv/bulkdata/export.html): kick-off (`$export` at system or Patient level, `_type`,
 * `_since`, `Prefer: respond-async`), status polling (in progress with a percentage, then the manifest),
 * cancellation, and the NDJSON files. Jobs are durable (BulkExportJobStore): a runner claims a job under a lease
 * and heartbeats while it works; a runner that dies leaves the lease to expire and the next runner (the same
 * process after a restart, or another one) starts the job again from scratch, writing files under the new
 * attempt's names, so files of a dead attempt are never part of a manifest.
 *
 * What is exported: the result resources (FhirResults mapping) of every succeeded analysis whose results came
 * into being (finishedAt) after `_since` and not after the export's transactionTime, so that a registry that
 * passes the manifest's transactionTime as its next `_since` gets every result exactly once. Each resource
 * carries meta.lastUpdated = that instant. ImagingStudy and Device resources shared by several analyses are
 * written once per export. Every resource is validated (when a validator is given) before it is written; an
 * invalid one goes to the error files as an OperationOutcome instead.
 *
 * Codes: BULK.PREFER_ASYNC_REQUIRED, BULK.UNSUPPORTED_FORMAT, BULK.UNSUPPORTED_TYPE, BULK.UNSUPPORTED_PARAMETER,
 * BULK.INVALID_SINCE, BULK.TOO_MANY_JOBS (429), BULK.JOB_NOT_FOUND (404, also for another client's job),
 * BULK.FILE_NOT_FOUND, BULK.NOT_READY, AUTH.INSUFFICIENT_SCOPE (403).
 */
import { asDomainError, DomainError } from '../errors.ts';
import type { Analysis } from '../model/analysis.ts';
import type { AnalysisPage } from '../ports/analysis-store.port.ts';
import {
  BULK_EXPORT_TYPES,
  isBulkExportType,
  isBulkFileName,
  type BulkExportJob,
  type BulkExportJobStore,
  type BulkExportLevel,
  type BulkExportRequest,
  type BulkExportType,
  type BulkFileStore,
  type BulkJobLease,
  type BulkOutputFile,
} from '../ports/bulk-export.port.ts';
import type { Clock } from '../ports/clock.port.ts';
import type { FhirJson } from '../ports/fhir-results.port.ts';
import type { Logger } from '../ports/logger.port.ts';
import { scopesAllow } from '../ports/token-verifier.port.ts';

export interface BulkExportSettings {
  /** Resources per NDJSON file before a new file is started (default 10 000). */
  readonly maxResourcesPerFile: number;
  /** How long a finished job and its files are kept (default 24 h). */
  readonly retentionMs: number;
  /** Queued + running jobs one client may have (default 2). */
  readonly maxActiveJobsPerClient: number;
  /** Runner lease (default 60 s); heartbeats renew it. */
  readonly leaseMs: number;
  /** Suggested polling interval (Retry-After, seconds). */
  readonly retryAfterSeconds: number;
}

export const DEFAULT_BULK_EXPORT_SETTINGS: BulkExportSettings = {
  maxResourcesPerFile: 10_000,
  retentionMs: 24 * 3600_000,
  maxActiveJobsPerClient: 2,
  leaseMs: 60_000,
  retryAfterSeconds: 2,
};

export interface BulkExportDeps {
  readonly jobs: BulkExportJobStore;
  readonly files: BulkFileStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Succeeded analyses, newest first, paged. */
  listSucceeded(offset: number, limit: number): Promise<AnalysisPage>;
  /** The result resources of a succeeded analysis (the FhirResults mapping). */
  resources(analysis: Analysis): Promise<readonly FhirJson[]>;
  /** Error messages for an invalid resource (empty when valid); absent: no validation. */
  validate?: (resource: FhirJson) => readonly string[];
  readonly settings: BulkExportSettings;
}

export interface KickOffInput {
  readonly level: BulkExportLevel;
  /** Query parameters as received (strings, or arrays for repeated ones). */
  readonly query: Readonly<Record<string, unknown>>;
  /** Prefer header. */
  readonly prefer?: string;
  /** Accept header. */
  readonly accept?: string;
  /** The caller's granted scopes; undefined on an open deployment (no authentication). */
  readonly scopes?: readonly string[];
  readonly owner: string;
  readonly requestUrl: string;
}

const NDJSON_FORMATS = ['application/fhir+ndjson', 'application/ndjson', 'ndjson'];
const UNSUPPORTED_PARAMETERS = ['_typeFilter', '_elements', 'patient', 'includeAssociatedData'];
/** FHIR instant (a time zone is required). */
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

function strings(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

function bad(code: string, message: string, issueType: 'invalid' | 'not-supported' | 'value'): DomainError {
  return new DomainError(code, message, { issueType });
}

/** Checks a kick-off request and turns it into the job's request. Throws the BULK.* / AUTH.* codes. */
export function parseKickOff(input: KickOffInput): BulkExportRequest {
  const prefer = (input.prefer ?? '')
    .split(',')
    .map((p) => p.trim().toLowerCase())
    .filter((p) => p !== '');
  if (!prefer.includes('respond-async'))
    throw bad(
      'BULK.PREFER_ASYNC_REQUIRED',
      'a bulk export is asynchronous: send the header Prefer: respond-async',
      'invalid',
    );
  const accept = input.accept?.split(';')[0].trim().toLowerCase();
  if (
    accept !== undefined &&
    accept !== '' &&
    !['application/fhir+json', 'application/json', '*/*'].includes(accept)
  )
    throw bad('BULK.UNSUPPORTED_ACCEPT', 'the kick-off answers application/fhir+json only', 'not-supported');
  for (const p of UNSUPPORTED_PARAMETERS)
    if (input.query[p] !== undefined)
      throw bad(
        'BULK.UNSUPPORTED_PARAMETER',
        `the parameter ${p} is not supported by this server`,
        'not-supported',
      );
  const formats = strings(input.query._outputFormat);
  if (formats.length > 1) throw bad('BULK.UNSUPPORTED_FORMAT', 'give _outputFormat once', 'invalid');
  if (formats.length === 1 && !NDJSON_FORMATS.includes(formats[0]))
    throw bad(
      'BULK.UNSUPPORTED_FORMAT',
      `_outputFormat ${formats[0]} is not offered (application/fhir+ndjson only)`,
      'not-supported',
    );
  const requested = strings(input.query._type)
    .flatMap((t) => t.split(','))
    .map((t) => t.trim())
    .filter((t) => t !== '');
  for (const t of requested)
    if (!isBulkExportType(t))
      throw bad(
        'BULK.UNSUPPORTED_TYPE',
        `_type ${t} is not exported by this server (${BULK_EXPORT_TYPES.join(', ')})`,
        'not-supported',
      );
  const allowed = (t: BulkExportType): boolean =>
    input.scopes === undefined || scopesAllow(input.scopes, { resourceType: t, permissions: ['r', 's'] });
  let types: BulkExportType[];
  if (requested.length > 0) {
    types = [...new Set(requested as BulkExportType[])];
    const refused = types.filter((t) => !allowed(t));
    if (refused.length > 0)
      throw new DomainError(
        'AUTH.INSUFFICIENT_SCOPE',
        `exporting ${refused.join(', ')} needs the scope system/*.rs or ${refused.map((t) => `system/${t}.rs`).join(' ')}`,
        { issueType: 'forbidden', details: { required: refused.map((t) => `system/${t}.rs`) } },
      );
  } else {
    // No _type: every type the token allows (system/*.rs: all of them).
    types = BULK_EXPORT_TYPES.filter(allowed);
    if (types.length === 0)
      throw new DomainError('AUTH.INSUFFICIENT_SCOPE', 'a bulk export needs the scope system/*.rs', {
        issueType: 'forbidden',
        details: { required: ['system/*.rs'] },
      });
  }
  const sinces = strings(input.query._since);
  if (sinces.length > 1) throw bad('BULK.INVALID_SINCE', 'give _since once', 'invalid');
  let since: string | undefined;
  if (sinces.length === 1) {
    const t = Date.parse(sinces[0]);
    if (!INSTANT.test(sinces[0]) || Number.isNaN(t))
      throw bad(
        'BULK.INVALID_SINCE',
        '_since must be a FHIR instant with a time zone, e.g. 2026-03-01T00:00:00Z',
        'value',
      );
    since = new Date(t).toISOString();
  }
  return {
    level: input.level,
    types,
    ...(since === undefined ? {} : { since }),
    outputFormat: 'application/fhir+ndjson',
    requestUrl: input.requestUrl,
    owner: input.owner,
  };
}

/** Creates the job (at most maxActiveJobsPerClient queued/running per client). */
export async function startExport(deps: BulkExportDeps, request: BulkExportRequest): Promise<BulkExportJob> {
  const active = await deps.jobs.countActive(request.owner);
  if (active >= deps.settings.maxActiveJobsPerClient)
    throw new DomainError(
      'BULK.TOO_MANY_JOBS',
      `this client already has ${active} export(s) in progress; wait for one to finish or cancel it`,
      { issueType: 'too-costly', details: { retryAfterSeconds: deps.settings.retryAfterSeconds * 5 } },
    );
  const job = await deps.jobs.create(request, deps.clock.now());
  deps.logger.info({ jobId: job.id, level: request.level, types: request.types }, 'bulk export queued');
  return job;
}

function notFound(id: string): DomainError {
  return new DomainError('BULK.JOB_NOT_FOUND', `no export job ${id}`, { issueType: 'not-found' });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The caller's job (another client's, a cancelled or an expired job is not found). */
export async function getExport(deps: BulkExportDeps, id: string, owner: string): Promise<BulkExportJob> {
  if (!UUID.test(id)) throw notFound(id);
  const job = await deps.jobs.get(id);
  const now = deps.clock.now().getTime();
  if (
    job === undefined ||
    job.request.owner !== owner ||
    job.state === 'cancelled' ||
    (job.expiresAt !== undefined && Date.parse(job.expiresAt) <= now)
  )
    throw notFound(id);
  return job;
}

/** Cancels (or deletes, once finished) the caller's job and its files. */
export async function cancelExport(deps: BulkExportDeps, id: string, owner: string): Promise<void> {
  const job = await getExport(deps, id, owner);
  if (!(await deps.jobs.cancel(job.id, deps.clock.now()))) throw notFound(id);
  await deps.files.removeAll(job.id);
  deps.logger.info({ jobId: job.id, state: job.state }, 'bulk export cancelled');
}

/** One output or error file of the caller's completed job. */
export async function exportFile(
  deps: BulkExportDeps,
  id: string,
  name: string,
  owner: string,
): Promise<{ readonly data: Uint8Array; readonly file: BulkOutputFile; readonly expiresAt?: string }> {
  const job = await getExport(deps, id, owner);
  const missing = new DomainError('BULK.FILE_NOT_FOUND', `no file ${name} in export ${id}`, {
    issueType: 'not-found',
  });
  if (!isBulkFileName(name)) throw missing;
  if (job.state !== 'completed')
    throw new DomainError('BULK.NOT_READY', `export ${id} is not complete`, { issueType: 'not-found' });
  const file = [...job.output, ...job.errors].find((f) => f.name === name);
  if (file === undefined) throw missing;
  const data = await deps.files.read(job.id, name);
  if (data === undefined) throw missing;
  return { data, file, ...(job.expiresAt === undefined ? {} : { expiresAt: job.expiresAt }) };
}

export interface BulkManifest {
  readonly transactionTime: string;
  readonly request: string;
  readonly requiresAccessToken: boolean;
  readonly output: readonly { readonly type: string; readonly url: string; readonly count: number }[];
  readonly error: readonly { readonly type: string; readonly url: string; readonly count: number }[];
}

/** The completion manifest of a completed job; `fileUrl` makes a file's absolute URL. */
export function manifestOf(
  job: BulkExportJob,
  fileUrl: (name: string) => string,
  requiresAccessToken: boolean,
): BulkManifest {
  const entry = (f: BulkOutputFile) => ({ type: f.type, url: fileUrl(f.name), count: f.count });
  return {
    transactionTime: job.transactionTime ?? job.startedAt ?? job.createdAt,
    request: job.request.requestUrl,
    requiresAccessToken,
    output: job.output.map(entry),
    error: job.errors.map(entry),
  };
}

/** X-Progress text for a job in progress. */
export function progressText(job: BulkExportJob): string {
  return job.state === 'queued' ? 'queued' : `in-progress ${Math.round(job.progress)}%`;
}

/** Accumulates one resource type's lines and writes full files. */
class TypeWriter {
  readonly files: BulkOutputFile[] = [];
  #lines: string[] = [];
  #n = 0;
  readonly #deps: BulkExportDeps;
  readonly #jobId: string;
  readonly #type: string;
  readonly #attempt: number;

  constructor(deps: BulkExportDeps, jobId: string, type: string, attempt: number) {
    this.#deps = deps;
    this.#jobId = jobId;
    this.#type = type;
    this.#attempt = attempt;
  }

  async add(line: string): Promise<void> {
    this.#lines.push(line);
    if (this.#lines.length >= this.#deps.settings.maxResourcesPerFile) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#lines.length === 0) return;
    this.#n += 1;
    const name = `${this.#type}-${this.#attempt}-${this.#n}.ndjson`;
    const data = new TextEncoder().encode(this.#lines.join('\n') + '\n');
    await this.#deps.files.write(this.#jobId, name, data);
    this.files.push({ type: this.#type, name, count: this.#lines.length, bytes: data.byteLength });
    this.#lines = [];
  }
}

const SHARED_TYPES = new Set(['ImagingStudy', 'Device']);
const PAGE = 100;

class Aborted extends Error {}

function operationOutcomeLine(resource: FhirJson, problems: readonly string[]): string {
  const ref = `${resource.resourceType}/${resource.id ?? ''}`;
  return JSON.stringify({
    resourceType: 'OperationOutcome',
    issue: problems.slice(0, 20).map((p) => ({
      severity: 'error',
      code: 'invalid',
      details: {
        coding: [{ system: 'urn:ms-lesion-service:error-code', code: 'FHIR.INVALID_RESOURCE' }],
        text: `${ref} is not valid FHIR R4: ${p}`,
      },
      expression: [resource.resourceType],
    })),
  });
}

/**
 * Runs a claimed job to its end: writes the files and completes it, or fails it with a coded error. Returns
 * 'aborted' (and leaves the job to its lease) when the lease is lost, the job is cancelled, or `signal` aborts.
 */
export async function runExportJob(
  deps: BulkExportDeps,
  job: BulkExportJob,
  lease: BulkJobLease,
  signal?: AbortSignal,
): Promise<'completed' | 'failed' | 'aborted'> {
  const transactionTime = job.startedAt ?? deps.clock.now().toISOString();
  const tx = Date.parse(transactionTime);
  const since = job.request.since === undefined ? undefined : Date.parse(job.request.since);
  const types = new Set<string>(job.request.types);
  const writers = new Map<string, TypeWriter>();
  const writer = (type: string): TypeWriter => {
    let w = writers.get(type);
    if (w === undefined) {
      w = new TypeWriter(deps, job.id, type, job.attempts);
      writers.set(type, w);
    }
    return w;
  };
  const seenAnalyses = new Set<string>();
  const seenShared = new Set<string>();
  const t0 = deps.clock.now().getTime();
  let total = 0;
  let processed = 0;
  let lastBeat = 0;
  let exported = 0;
  let invalid = 0;
  const beat = async (): Promise<void> => {
    if (signal?.aborted === true) throw new Aborted('stopping');
    const progress = total === 0 ? 99 : Math.min(99, (processed / total) * 100);
    const ok = await deps.jobs.heartbeat(
      job.id,
      lease.token,
      progress,
      deps.settings.leaseMs,
      deps.clock.now(),
    );
    if (!ok) throw new Aborted('lease lost or job cancelled');
  };
  try {
    await deps.files.removeAll(job.id); // a new attempt starts from nothing
    for (let offset = 0; ; offset += PAGE) {
      const page = await deps.listSucceeded(offset, PAGE);
      if (offset === 0) total = page.total;
      for (const a of page.items) {
        if (seenAnalyses.has(a.id)) continue; // the list shifted while paging
        seenAnalyses.add(a.id);
        processed += 1;
        const produced = a.finishedAt ?? a.updatedAt;
        const at = Date.parse(produced);
        if (at > tx || (since !== undefined && at <= since)) continue;
        for (const r of await deps.resources(a)) {
          if (!types.has(r.resourceType)) continue;
          const key = `${r.resourceType}/${r.id ?? ''}`;
          if (SHARED_TYPES.has(r.resourceType)) {
            if (seenShared.has(key)) continue;
            seenShared.add(key);
          }
          const meta =
            typeof r.meta === 'object' && r.meta !== null ? (r.meta as Record<string, unknown>) : {};
          const resource: FhirJson = { ...r, meta: { ...meta, lastUpdated: new Date(at).toISOString() } };
          const problems = deps.validate?.(resource) ?? [];
          if (problems.length > 0) {
            invalid += 1;
            await writer('OperationOutcome').add(operationOutcomeLine(resource, problems));
          } else {
            exported += 1;
            await writer(r.resourceType).add(JSON.stringify(resource));
          }
        }
        if (processed - lastBeat >= 10) {
          lastBeat = processed;
          await beat();
        }
      }
      if (page.items.length < PAGE || offset + PAGE >= page.total) break;
    }
    await beat();
    for (const w of writers.values()) await w.flush();
    const files = [...writers.values()].flatMap((w) => w.files);
    const output = files.filter((f) => f.type !== 'OperationOutcome');
    output.sort((a, b) => a.type.localeCompare(b.type) || a.name.localeCompare(b.name));
    const errors = files.filter((f) => f.type === 'OperationOutcome');
    const now = deps.clock.now();
    const ok = await deps.jobs.complete(
      job.id,
      lease.token,
      {
        transactionTime,
        output,
        errors,
        expiresAt: new Date(now.getTime() + deps.settings.retentionMs).toISOString(),
      },
      now,
    );
    if (!ok) throw new Aborted('lease lost or job cancelled');
    deps.logger.info(
      {
        jobId: job.id,
        analyses: processed,
        resources: exported,
        invalid,
        files: files.length,
        ms: deps.clock.now().getTime() - t0,
      },
      'bulk export completed',
    );
    return 'completed';
  } catch (e) {
    if (e instanceof Aborted) {
      const current = await deps.jobs.get(job.id).catch(() => undefined);
      if (current === undefined || current.state === 'cancelled') await deps.files.removeAll(job.id);
      else if (signal?.aborted === true) await deps.jobs.release(job.id, lease.token, deps.clock.now());
      deps.logger.info({ jobId: job.id, reason: e.message }, 'bulk export stopped');
      return 'aborted';
    }
    const error = asDomainError(e, 'BULK.EXPORT_FAILED');
    deps.logger.error({ jobId: job.id, code: error.code, err: error.message }, 'bulk export failed');
    const now = deps.clock.now();
    await deps.files.removeAll(job.id).catch(() => undefined);
    await deps.jobs.fail(
      job.id,
      lease.token,
      {
        code: error.code,
        message: error.issueType === 'exception' ? 'the export failed (internal error)' : error.message,
      },
      new Date(now.getTime() + deps.settings.retentionMs).toISOString(),
      now,
    );
    return 'failed';
  }
}

/** Removes expired and cancelled jobs with their files; returns how many. */
export async function sweepExports(deps: BulkExportDeps, limit = 100): Promise<number> {
  const ids = await deps.jobs.expired(deps.clock.now(), limit);
  for (const id of ids) {
    await deps.files.removeAll(id);
    await deps.jobs.remove(id);
  }
  return ids.length;
}

/** Claims and runs the next job; false when there was none. */
export async function runNextExport(
  deps: BulkExportDeps,
  runnerId: string,
  signal?: AbortSignal,
): Promise<boolean> {
  const claim = await deps.jobs.claim({
    owner: runnerId,
    leaseMs: deps.settings.leaseMs,
    now: deps.clock.now(),
  });
  if (claim === undefined) return false;
  deps.logger.info({ jobId: claim.job.id, attempt: claim.job.attempts }, 'bulk export started');
  await runExportJob(deps, claim.job, claim.lease, signal);
  return true;
}

export interface BulkExportRunner {
  /** Looks for work now (after a kick-off). */
  poke(): void;
  /** Stops after the current step; a running job is given back (queued) for the next runner. */
  stop(): Promise<void>;
}

/** Runs jobs one at a time in this process: polls every pollMs (or when poked) and sweeps expired jobs. */
export function startBulkExportRunner(
  deps: BulkExportDeps,
  options: { readonly runnerId: string; readonly pollMs: number },
): BulkExportRunner {
  const stopping = new AbortController();
  let wake = new AbortController();
  const stopped = (): boolean => stopping.signal.aborted;
  const loop = (async () => {
    while (!stopped()) {
      try {
        await sweepExports(deps);
        while (!stopped() && (await runNextExport(deps, options.runnerId, stopping.signal))) {
          // next job
        }
      } catch (e) {
        deps.logger.error({ err: e instanceof Error ? e.message : String(e) }, 'bulk export runner error');
      }
      if (stopped()) break;
      await deps.clock.sleep(options.pollMs, AbortSignal.any([wake.signal, stopping.signal]));
      wake = new AbortController();
    }
  })();
  return {
    poke() {
      wake.abort();
    },
    async stop() {
      stopping.abort();
      await loop;
    },
  };
}
