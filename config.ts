/**
 * Configuration: defaults < JSON file (`--config file` or MSLESION_CONFIG) < environment variables, turned into
 * a typed, validated Config. Every problem is listed at once (CONFIG.INVALID with details.problems); secrets
 * (passwords, tokens, credentials inside URLs) never appear in `describeConfig` output or logs.
 *
 * Add a setting: one line in FIELDS (path, env name, type, default) and the field in the Config interface.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DomainError } from './domain/errors.ts';

export type Role = 'api' | 'worker' | 'inference' | 'all';
export const ROLES: readonly Role[] = ['api', 'worker', 'inference', 'all'];
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  readonly role: Role;
  /** Base folder for the embedded store and artifacts (default ./var). */
  readonly dataDir: string;
  readonly http: {
    readonly host: string;
    readonly port: number;
    readonly jsonLimitBytes: number;
    readonly stowMaxBytes: number;
    /** Validate responses against the contract (tests, staging). */
    readonly validateResponses: boolean;
    /** How long a stopping server waits for open requests. */
    readonly shutdownGraceMs: number;
    /** The service's external base URL (SMART redirect URL, bulk export URLs); else from the Host header. */
    readonly publicBaseUrl?: string;
  };
  readonly store: {
    readonly kind: 'sqlite' | 'postgres';
    readonly sqlitePath: string;
    readonly postgresUrl?: string;
    readonly postgresSchema: string;
  };
  readonly queue: {
    readonly kind: 'in-process' | 'bullmq';
    readonly redisUrl?: string;
    readonly prefix: string;
    readonly name: string;
  };
  readonly artifacts: { readonly dir: string };
  readonly worker: {
    /** Identity recorded with leases (default host:pid). */
    readonly id?: string;
    readonly concurrency: number;
    readonly leaseMs: number;
    readonly maxAttempts: number;
    readonly retryBaseMs: number;
    readonly retryMaxMs: number;
    readonly sweepIntervalMs: number;
    readonly staleQueuedMs: number;
    readonly shutdownGraceMs: number;
  };
  readonly pacs?: {
    readonly dicomWebUrl: string;
    readonly username?: string;
    readonly password?: string;
    readonly timeoutMs: number;
  };
  /** Where STOW-RS uploads are stored (default <dataDir>/inbox); analyses read studies there first. */
  readonly inboxDir: string;
  /** A folder of DICOM files used as an image source after the inbox and the PACS (demo, research). */
  readonly dicomFolder?: string;
  /** Site series-classification rules (JSON) applied over the bundled defaults. */
  readonly seriesRulesPath?: string;
  readonly models: {
    readonly dir: string;
    /** Default lesion model id (else the only installed lesion model). */
    readonly defaultLesionModel?: string;
  };
  readonly inference: {
    readonly host: string;
    readonly port: number;
    readonly provider: 'cpu' | 'cuda';
    readonly cudaFallback: 'cpu' | 'fail';
    readonly maxInFlight: number;
    /** onnxruntime intra-op threads (default: its own choice, all cores). */
    readonly threads?: number;
    /** A KServe v2 / Triton inference server: workers send their patches there instead of running them. */
    readonly remoteUrl?: string;
    readonly remoteTimeoutMs: number;
  };
  /** The analysis pipeline (domain/use-cases/analyze-study.ts). */
  readonly pipeline: {
    /** Test-time mirroring over the model's allowed axes. */
    readonly mirror: boolean;
    /** Anatomy for lesion location: the parcellation model (falls back to FLAIR) or the FLAIR rule only. */
    readonly anatomy: 'parcellation' | 'flair';
    /** Spacing (mm) of brain extraction for raw (not skull-stripped) inputs: 1 accurate … 2 fast. */
    readonly brainSpacingMm: number;
    /** Spacing (mm) at which the parcellation model runs (1: at 1.5 mm brainchop loses the ventricles). */
    readonly parcellationSpacingMm: number;
    /** Store SEG / SR / PDF / overlay series back to the PACS (when one is configured). */
    readonly publishToPacs: boolean;
  };
  readonly readiness: { readonly timeoutMs: number };
  /** EHR integration (docs/dev-notes/fhir.md): API auth, FHIR push, HL7 v2 listener and ORU peer. */
  readonly ehr: {
    /** Issuer of the bearer JWTs the API accepts (absent: the API is open). */
    readonly authIssuer?: string;
    readonly authAudience?: string;
    readonly authJwksUri?: string;
    /** External FHIR server results are pushed to (absent: no FHIR delivery). */
    readonly fhirServerUrl?: string;
    readonly fhirTokenUrl?: string;
    readonly fhirClientId?: string;
    /** Private key (JWK JSON or PKCS#8 PEM) for SMART Backend Services. */
    readonly fhirPrivateKeyFile?: string;
    readonly fhirKeyAlg: 'RS384' | 'ES384';
    readonly fhirScope: string;
    /** UTC offset of DICOM study times, e.g. +01:00. */
    readonly studyTimezone?: string;
    /** MLLP order listener port (absent: no listener). */
    readonly hl7ListenPort?: number;
    readonly hl7ListenHost: string;
    readonly hl7MaxMessageBytes: number;
    /** MLLP peer for ORU^R01 results (absent: no HL7 delivery). */
    readonly oruHost?: string;
    readonly oruPort?: number;
    readonly oruReceivingApplication?: string;
    readonly oruReceivingFacility?: string;
    /** Refuse orders (FHIR, HL7) for studies the PACS does not hold. */
    readonly checkStudyOnOrder: boolean;
    readonly outboxPollMs: number;
    /**
     * A succeeded analysis whose results are not queued on a configured channel this long after it finished
     * (the queueing after the run failed: outbox down) is queued again by the worker's sweeper.
     */
    readonly redeliverAfterMs: number;
    /** How far back (hours) the sweeper looks for such analyses. */
    readonly redeliverLookbackHours: number;
  };
  /** FHIR Bulk Data export for registries (docs/dev-notes/smart-bulk.md). */
  readonly bulk: {
    /** Where export files are written (default <dataDir>/bulk-export). */
    readonly dir: string;
    readonly maxResourcesPerFile: number;
    readonly retentionHours: number;
    /** Queued + running exports per client. */
    readonly maxJobsPerClient: number;
    readonly pollMs: number;
    /** Validate every exported resource against R4 (invalid ones go to the error files). */
    readonly validate: boolean;
  };
  /** The lesion-load trend page as a SMART on FHIR app the EHR launches (docs/dev-notes/smart-bulk.md). */
  readonly smart: {
    /** The app's client id at the EHR's authorization server (absent: the app is off). */
    readonly clientId?: string;
    /** For a confidential client (client_secret_basic); a public client uses PKCE alone. */
    readonly clientSecret?: string;
    /** Comma-separated FHIR base URLs (iss) allowed to launch the app. */
    readonly issuers?: string;
    /** FHIR base URL of a standalone launch (GET /smart/launch without iss). */
    readonly standaloneIssuer?: string;
    readonly scope: string;
    /** Where the page's data come from: the service's own results, or the EHR's FHIR server. */
    readonly dataSource: 'service' | 'ehr';
    readonly sessionTtlSeconds: number;
    readonly cookieSameSite: 'lax' | 'strict' | 'none';
    /** HMAC key of the session cookie (default: random per process). */
    readonly cookieSecret?: string;
  };
  readonly log: { readonly level: LogLevel };
}

type FieldType =
  | { kind: 'string'; min?: number }
  | { kind: 'url'; protocols: readonly string[] }
  | { kind: 'int'; min: number; max: number }
  | { kind: 'number'; min: number; max: number }
  | { kind: 'bool' }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'path' };

interface Field {
  readonly path: string;
  readonly env: string;
  readonly type: FieldType;
  readonly default?: string | number | boolean;
  readonly secret?: boolean;
}

const MiB = 1024 * 1024;
const REPO_ROOT = fileURLToPath(new URL('.', import.meta.url));
const int = (min: number, max = Number.MAX_SAFE_INTEGER): FieldType => ({ kind: 'int', min, max });
const str: FieldType = { kind: 'string', min: 1 };

export const FIELDS: readonly Field[] = [
  { path: 'role', env: 'MSLESION_ROLE', type: { kind: 'enum', values: ROLES }, default: 'all' },
  { path: 'dataDir', env: 'MSLESION_DATA_DIR', type: { kind: 'path' }, default: 'var' },
  { path: 'http.host', env: 'MSLESION_HOST', type: str, default: '0.0.0.0' },
  { path: 'http.port', env: 'MSLESION_PORT', type: int(0, 65535), default: 8080 },
  { path: 'http.jsonLimitBytes', env: 'MSLESION_JSON_LIMIT_BYTES', type: int(1024), default: MiB },
  { path: 'http.stowMaxBytes', env: 'MSLESION_STOW_MAX_BYTES', type: int(1024), default: 512 * MiB },
  {
    path: 'http.validateResponses',
    env: 'MSLESION_VALIDATE_RESPONSES',
    type: { kind: 'bool' },
    default: false,
  },
  { path: 'http.shutdownGraceMs', env: 'MSLESION_HTTP_SHUTDOWN_GRACE_MS', type: int(0), default: 10_000 },
  {
    path: 'http.publicBaseUrl',
    env: 'MSLESION_PUBLIC_BASE_URL',
    type: { kind: 'url', protocols: ['http:', 'https:'] },
  },
  {
    path: 'store.kind',
    env: 'MSLESION_STORE',
    type: { kind: 'enum', values: ['sqlite', 'postgres'] },
    default: 'sqlite',
  },
  { path: 'store.sqlitePath', env: 'MSLESION_SQLITE_PATH', type: { kind: 'path' } },
  {
    path: 'store.postgresUrl',
    env: 'MSLESION_DATABASE_URL',
    type: { kind: 'url', protocols: ['postgres:', 'postgresql:'] },
    secret: true,
  },
  { path: 'store.postgresSchema', env: 'MSLESION_DATABASE_SCHEMA', type: str, default: 'mslesion' },
  {
    path: 'queue.kind',
    env: 'MSLESION_QUEUE',
    type: { kind: 'enum', values: ['in-process', 'bullmq'] },
    default: 'in-process',
  },
  {
    path: 'queue.redisUrl',
    env: 'MSLESION_REDIS_URL',
    type: { kind: 'url', protocols: ['redis:', 'rediss:'] },
    secret: true,
  },
  { path: 'queue.prefix', env: 'MSLESION_QUEUE_PREFIX', type: str, default: 'mslesion' },
  { path: 'queue.name', env: 'MSLESION_QUEUE_NAME', type: str, default: 'analyses' },
  { path: 'artifacts.dir', env: 'MSLESION_ARTIFACTS_DIR', type: { kind: 'path' } },
  { path: 'worker.id', env: 'MSLESION_WORKER_ID', type: str },
  { path: 'worker.concurrency', env: 'MSLESION_WORKER_CONCURRENCY', type: int(1, 64), default: 1 },
  { path: 'worker.leaseMs', env: 'MSLESION_LEASE_MS', type: int(300), default: 60_000 },
  { path: 'worker.maxAttempts', env: 'MSLESION_MAX_ATTEMPTS', type: int(1, 100), default: 3 },
  { path: 'worker.retryBaseMs', env: 'MSLESION_RETRY_BASE_MS', type: int(0), default: 10_000 },
  { path: 'worker.retryMaxMs', env: 'MSLESION_RETRY_MAX_MS', type: int(0), default: 300_000 },
  { path: 'worker.sweepIntervalMs', env: 'MSLESION_SWEEP_INTERVAL_MS', type: int(50), default: 15_000 },
  { path: 'worker.staleQueuedMs', env: 'MSLESION_STALE_QUEUED_MS', type: int(1000), default: 600_000 },
  { path: 'worker.shutdownGraceMs', env: 'MSLESION_WORKER_SHUTDOWN_GRACE_MS', type: int(0), default: 30_000 },
  {
    path: 'pacs.dicomWebUrl',
    env: 'MSLESION_PACS_URL',
    type: { kind: 'url', protocols: ['http:', 'https:'] },
  },
  { path: 'pacs.username', env: 'MSLESION_PACS_USERNAME', type: str },
  { path: 'pacs.password', env: 'MSLESION_PACS_PASSWORD', type: str, secret: true },
  { path: 'pacs.timeoutMs', env: 'MSLESION_PACS_TIMEOUT_MS', type: int(100), default: 60_000 },
  { path: 'inboxDir', env: 'MSLESION_INBOX_DIR', type: { kind: 'path' } },
  { path: 'dicomFolder', env: 'MSLESION_DICOM_FOLDER', type: { kind: 'path' } },
  { path: 'seriesRulesPath', env: 'MSLESION_SERIES_RULES', type: { kind: 'path' } },
  {
    path: 'models.dir',
    env: 'MSLESION_MODELS_DIR',
    type: { kind: 'path' },
    default: resolve(REPO_ROOT, 'models'),
  },
  { path: 'models.defaultLesionModel', env: 'MSLESION_DEFAULT_MODEL', type: str },
  { path: 'inference.host', env: 'MSLESION_INFERENCE_HOST', type: str, default: '0.0.0.0' },
  { path: 'inference.port', env: 'MSLESION_INFERENCE_PORT', type: int(0, 65535), default: 8500 },
  {
    path: 'inference.provider',
    env: 'MSLESION_INFERENCE_PROVIDER',
    type: { kind: 'enum', values: ['cpu', 'cuda'] },
    default: 'cpu',
  },
  {
    path: 'inference.cudaFallback',
    env: 'MSLESION_INFERENCE_CUDA_FALLBACK',
    type: { kind: 'enum', values: ['cpu', 'fail'] },
    default: 'fail',
  },
  { path: 'inference.maxInFlight', env: 'MSLESION_INFERENCE_MAX_IN_FLIGHT', type: int(1, 256), default: 4 },
  { path: 'inference.threads', env: 'MSLESION_INFERENCE_THREADS', type: int(1, 256) },
  {
    path: 'inference.remoteUrl',
    env: 'MSLESION_INFERENCE_URL',
    type: { kind: 'url', protocols: ['http:', 'https:'] },
  },
  {
    path: 'inference.remoteTimeoutMs',
    env: 'MSLESION_INFERENCE_TIMEOUT_MS',
    type: int(100),
    default: 120_000,
  },
  { path: 'pipeline.mirror', env: 'MSLESION_TTA_MIRROR', type: { kind: 'bool' }, default: true },
  {
    path: 'pipeline.anatomy',
    env: 'MSLESION_ANATOMY',
    type: { kind: 'enum', values: ['parcellation', 'flair'] },
    default: 'parcellation',
  },
  {
    path: 'pipeline.brainSpacingMm',
    env: 'MSLESION_BRAIN_SPACING_MM',
    type: { kind: 'number', min: 0.5, max: 4 },
    default: 1.5,
  },
  {
    path: 'pipeline.parcellationSpacingMm',
    env: 'MSLESION_PARCELLATION_SPACING_MM',
    type: { kind: 'number', min: 0.5, max: 4 },
    default: 1,
  },
  { path: 'pipeline.publishToPacs', env: 'MSLESION_PACS_PUBLISH', type: { kind: 'bool' }, default: true },
  { path: 'readiness.timeoutMs', env: 'MSLESION_READINESS_TIMEOUT_MS', type: int(50), default: 3000 },
  {
    path: 'ehr.authIssuer',
    env: 'MSLESION_AUTH_ISSUER',
    type: { kind: 'url', protocols: ['http:', 'https:'] },
  },
  { path: 'ehr.authAudience', env: 'MSLESION_AUTH_AUDIENCE', type: str },
  {
    path: 'ehr.authJwksUri',
    env: 'MSLESION_AUTH_JWKS_URI',
    type: { kind: 'url', protocols: ['http:', 'https:'] },
  },
  {
    path: 'ehr.fhirServerUrl',
    env: 'MSLESION_FHIR_SERVER_URL',
    type: { kind: 'url', protocols: ['http:', 'https:'] },
  },
  {
    path: 'ehr.fhirTokenUrl',
    env: 'MSLESION_FHIR_TOKEN_URL',
    type: { kind: 'url', protocols: ['http:', 'https:'] },
  },
  { path: 'ehr.fhirClientId', env: 'MSLESION_FHIR_CLIENT_ID', type: str },
  { path: 'ehr.fhirPrivateKeyFile', env: 'MSLESION_FHIR_PRIVATE_KEY_FILE', type: { kind: 'path' } },
  {
    path: 'ehr.fhirKeyAlg',
    env: 'MSLESION_FHIR_KEY_ALG',
    type: { kind: 'enum', values: ['RS384', 'ES384'] },
    default: 'ES384',
  },
  {
    path: 'ehr.fhirScope',
    env: 'MSLESION_FHIR_SCOPE',
    type: str,
    default:
      'system/Device.cu system/ImagingStudy.cu system/Observation.cu system/DiagnosticReport.cu system/Provenance.cu system/Patient.rs',
  },
  { path: 'ehr.studyTimezone', env: 'MSLESION_STUDY_TIMEZONE', type: str },
  { path: 'ehr.hl7ListenPort', env: 'MSLESION_HL7_PORT', type: int(0, 65535) },
  { path: 'ehr.hl7ListenHost', env: 'MSLESION_HL7_HOST', type: str, default: '127.0.0.1' },
  { path: 'ehr.hl7MaxMessageBytes', env: 'MSLESION_HL7_MAX_BYTES', type: int(1024), default: MiB },
  { path: 'ehr.oruHost', env: 'MSLESION_ORU_HOST', type: str },
  { path: 'ehr.oruPort', env: 'MSLESION_ORU_PORT', type: int(1, 65535) },
  { path: 'ehr.oruReceivingApplication', env: 'MSLESION_ORU_RECEIVING_APP', type: str },
  { path: 'ehr.oruReceivingFacility', env: 'MSLESION_ORU_RECEIVING_FACILITY', type: str },
  {
    path: 'ehr.checkStudyOnOrder',
    env: 'MSLESION_CHECK_STUDY_ON_ORDER',
    type: { kind: 'bool' },
    default: false,
  },
  { path: 'ehr.outboxPollMs', env: 'MSLESION_OUTBOX_POLL_MS', type: int(50), default: 2000 },
  { path: 'ehr.redeliverAfterMs', env: 'MSLESION_REDELIVER_AFTER_MS', type: int(0), default: 60_000 },
  {
    path: 'ehr.redeliverLookbackHours',
    env: 'MSLESION_REDELIVER_LOOKBACK_HOURS',
    type: int(1, 24 * 366),
    default: 168,
  },
  { path: 'bulk.dir', env: 'MSLESION_BULK_DIR', type: { kind: 'path' } },
  {
    path: 'bulk.maxResourcesPerFile',
    env: 'MSLESION_BULK_MAX_PER_FILE',
    type: int(1, 1_000_000),
    default: 10_000,
  },
  { path: 'bulk.retentionHours', env: 'MSLESION_BULK_RETENTION_HOURS', type: int(1, 24 * 90), default: 24 },
  { path: 'bulk.maxJobsPerClient', env: 'MSLESION_BULK_MAX_JOBS', type: int(1, 100), default: 2 },
  { path: 'bulk.pollMs', env: 'MSLESION_BULK_POLL_MS', type: int(50), default: 5000 },
  { path: 'bulk.validate', env: 'MSLESION_BULK_VALIDATE', type: { kind: 'bool' }, default: true },
  { path: 'smart.clientId', env: 'MSLESION_SMART_CLIENT_ID', type: str },
  { path: 'smart.clientSecret', env: 'MSLESION_SMART_CLIENT_SECRET', type: str, secret: true },
  { path: 'smart.issuers', env: 'MSLESION_SMART_ISSUERS', type: str },
  {
    path: 'smart.standaloneIssuer',
    env: 'MSLESION_SMART_STANDALONE_ISS',
    type: { kind: 'url', protocols: ['http:', 'https:'] },
  },
  {
    path: 'smart.scope',
    env: 'MSLESION_SMART_SCOPE',
    type: str,
    default: 'launch openid fhirUser patient/Observation.rs patient/DiagnosticReport.rs',
  },
  {
    path: 'smart.dataSource',
    env: 'MSLESION_SMART_DATA_SOURCE',
    type: { kind: 'enum', values: ['service', 'ehr'] },
    default: 'service',
  },
  {
    path: 'smart.sessionTtlSeconds',
    env: 'MSLESION_SMART_SESSION_TTL_S',
    type: int(60, 86_400),
    default: 3600,
  },
  {
    path: 'smart.cookieSameSite',
    env: 'MSLESION_SMART_COOKIE_SAMESITE',
    type: { kind: 'enum', values: ['lax', 'strict', 'none'] },
    default: 'lax',
  },
  {
    path: 'smart.cookieSecret',
    env: 'MSLESION_SMART_COOKIE_SECRET',
    type: { kind: 'string', min: 32 },
    secret: true,
  },
  {
    path: 'log.level',
    env: 'MSLESION_LOG_LEVEL',
    type: { kind: 'enum', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    default: 'info',
  },
];

export interface ConfigSources {
  /** Environment (default process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** JSON file; default: env MSLESION_CONFIG when set. */
  readonly file?: string;
  /** Values that win over everything (CLI flags), by path, e.g. { 'http.port': 9000 }. */
  readonly overrides?: Readonly<Record<string, string | number | boolean>>;
  /** Base for relative paths (default the working directory). */
  readonly cwd?: string;
}

type Raw = Record<string, unknown>;

function flatten(obj: Raw, prefix = '', out: Map<string, unknown> = new Map()): Map<string, unknown> {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix === '' ? k : `${prefix}.${k}`;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) flatten(v as Raw, key, out);
    else out.set(key, v);
  }
  return out;
}

function coerce(field: Field, value: unknown, from: string, cwd: string, problems: string[]): unknown {
  const where = `${field.path} (${from})`;
  const t = field.type;
  const text = typeof value === 'string' ? value.trim() : value;
  switch (t.kind) {
    case 'int': {
      const n =
        typeof text === 'number'
          ? text
          : typeof text === 'string' && /^-?\d+$/.test(text)
            ? Number(text)
            : NaN;
      if (!Number.isInteger(n) || n < t.min || n > t.max) {
        problems.push(
          `${where}: must be an integer ${t.min}–${t.max === Number.MAX_SAFE_INTEGER ? '∞' : t.max}`,
        );
        return undefined;
      }
      return n;
    }
    case 'number': {
      const n =
        typeof text === 'number' ? text : typeof text === 'string' && text !== '' ? Number(text) : NaN;
      if (!Number.isFinite(n) || n < t.min || n > t.max) {
        problems.push(`${where}: must be a number ${t.min}–${t.max}`);
        return undefined;
      }
      return n;
    }
    case 'bool':
      if (typeof text === 'boolean') return text;
      if (typeof text === 'string' && /^(true|1|yes|on)$/i.test(text)) return true;
      if (typeof text === 'string' && /^(false|0|no|off)$/i.test(text)) return false;
      problems.push(`${where}: must be true or false`);
      return undefined;
    case 'enum':
      if (typeof text === 'string' && t.values.includes(text)) return text;
      problems.push(`${where}: must be one of ${t.values.join(', ')}`);
      return undefined;
    case 'url': {
      if (typeof text === 'string') {
        try {
          const u = new URL(text);
          if (t.protocols.includes(u.protocol)) return text.replace(/\/+$/, '');
        } catch {
          // reported below
        }
      }
      problems.push(`${where}: must be a ${t.protocols.map((p) => p.replace(':', '')).join('/')} URL`);
      return undefined;
    }
    case 'path':
      if (typeof text === 'string' && text.length > 0) return isAbsolute(text) ? text : resolve(cwd, text);
      problems.push(`${where}: must be a non-empty path`);
      return undefined;
    case 'string':
      if (typeof text === 'string' && text.length >= (t.min ?? 0)) return text;
      problems.push(`${where}: must be a non-empty string`);
      return undefined;
  }
}

function setPath(obj: Raw, path: string, value: unknown): void {
  const keys = path.split('.');
  let cur = obj;
  for (const k of keys.slice(0, -1)) {
    cur[k] ??= {};
    cur = cur[k] as Raw;
  }
  cur[keys[keys.length - 1]] = value;
}

/** Reads and validates the configuration. Throws CONFIG.INVALID listing every problem. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? process.env;
  const cwd = sources.cwd ?? process.cwd();
  const problems: string[] = [];
  const values = new Map<string, { value: unknown; from: string }>();
  for (const f of FIELDS)
    if (f.default !== undefined) values.set(f.path, { value: f.default, from: 'default' });

  const file = sources.file ?? env.MSLESION_CONFIG;
  if (file !== undefined && file !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(resolve(cwd, file), 'utf8'));
    } catch (e) {
      problems.push(`config file ${file}: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (parsed !== undefined) {
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        problems.push(`config file ${file}: must hold a JSON object`);
      else
        for (const [path, value] of flatten(parsed as Raw)) {
          if (!FIELDS.some((f) => f.path === path))
            problems.push(`config file ${file}: unknown setting ${path}`);
          else values.set(path, { value, from: 'file' });
        }
    }
  }
  for (const f of FIELDS) {
    const v = env[f.env];
    if (v !== undefined && v !== '') values.set(f.path, { value: v, from: `env ${f.env}` });
  }
  for (const [path, value] of Object.entries(sources.overrides ?? {})) {
    if (!FIELDS.some((f) => f.path === path)) problems.push(`unknown setting ${path}`);
    else values.set(path, { value, from: 'command line' });
  }

  const out: Raw = {};
  for (const f of FIELDS) {
    const v = values.get(f.path);
    if (v === undefined) continue;
    const c = coerce(f, v.value, v.from, cwd, problems);
    if (c !== undefined) setPath(out, f.path, c);
  }

  // Derived defaults and cross-field rules.
  const dataDir = (out.dataDir as string | undefined) ?? resolve(cwd, 'var');
  const store = (out.store ?? {}) as Raw;
  store.sqlitePath ??= resolve(dataDir, 'mslesion.db');
  out.store = store;
  if (store.kind === 'postgres' && store.postgresUrl === undefined)
    problems.push('store.postgresUrl (MSLESION_DATABASE_URL) is required when store.kind is postgres');
  if (typeof store.postgresSchema === 'string' && !/^[a-z_][a-z0-9_]{0,62}$/.test(store.postgresSchema))
    problems.push('store.postgresSchema: must be a lower-case SQL identifier');
  const queue = (out.queue ?? {}) as Raw;
  out.queue = queue;
  if (queue.kind === 'bullmq' && queue.redisUrl === undefined)
    problems.push('queue.redisUrl (MSLESION_REDIS_URL) is required when queue.kind is bullmq');
  const artifacts = (out.artifacts ?? {}) as Raw;
  artifacts.dir ??= resolve(dataDir, 'artifacts');
  out.inboxDir ??= resolve(dataDir, 'inbox');
  const bulk = (out.bulk ?? {}) as Raw;
  bulk.dir ??= resolve(dataDir, 'bulk-export');
  out.bulk = bulk;
  out.artifacts = artifacts;
  const worker = (out.worker ?? {}) as Raw;
  if (
    typeof worker.retryBaseMs === 'number' &&
    typeof worker.retryMaxMs === 'number' &&
    worker.retryMaxMs < worker.retryBaseMs
  )
    problems.push('worker.retryMaxMs must be ≥ worker.retryBaseMs');
  const pacs = out.pacs as Raw | undefined;
  if (pacs !== undefined) {
    if (pacs.dicomWebUrl === undefined) {
      if (pacs.username !== undefined || pacs.password !== undefined)
        problems.push('pacs.dicomWebUrl (MSLESION_PACS_URL) is required when PACS credentials are set');
      delete out.pacs;
    } else if ((pacs.username === undefined) !== (pacs.password === undefined))
      problems.push('pacs.username and pacs.password go together');
  }
  const ehr = (out.ehr ?? {}) as Raw;
  if (ehr.authIssuer !== undefined && ehr.authAudience === undefined)
    problems.push('ehr.authAudience (MSLESION_AUTH_AUDIENCE) is required with ehr.authIssuer');
  if (
    ehr.fhirServerUrl !== undefined &&
    (ehr.fhirClientId === undefined) !== (ehr.fhirPrivateKeyFile === undefined)
  )
    problems.push('ehr.fhirClientId and ehr.fhirPrivateKeyFile go together (SMART Backend Services)');
  if ((ehr.oruHost === undefined) !== (ehr.oruPort === undefined))
    problems.push('ehr.oruHost and ehr.oruPort go together');
  const smart = (out.smart ?? {}) as Raw;
  if (typeof smart.issuers === 'string')
    for (const iss of smart.issuers
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x !== '')) {
      let ok = false;
      try {
        ok = ['http:', 'https:'].includes(new URL(iss).protocol);
      } catch {
        // reported below
      }
      if (!ok) problems.push(`smart.issuers: ${iss} is not an http/https URL`);
    }
  if (smart.clientId !== undefined && smart.issuers === undefined && smart.standaloneIssuer === undefined)
    problems.push('smart.clientId needs smart.issuers (EHR launch) or smart.standaloneIssuer');
  const http = (out.http ?? {}) as Raw;
  if (
    smart.cookieSameSite === 'none' &&
    !(typeof http.publicBaseUrl === 'string' && http.publicBaseUrl.startsWith('https:'))
  )
    problems.push(
      'smart.cookieSameSite none needs an https http.publicBaseUrl (browsers drop insecure SameSite=None)',
    );
  if (problems.length > 0)
    throw new DomainError(
      'CONFIG.INVALID',
      `configuration has ${problems.length} problem(s): ${problems.join('; ')}`,
      {
        issueType: 'invalid',
        details: { problems },
      },
    );
  return out as unknown as Config;
}

function maskUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '***';
  }
}

/** The configuration with every secret masked, for logs and `serve --print-config`. */
export function describeConfig(config: Config): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(config)) as Raw;
  for (const f of FIELDS) {
    if (f.secret !== true) continue;
    const keys = f.path.split('.');
    const parent = keys.slice(0, -1).reduce<Raw | undefined>((o, k) => o?.[k] as Raw | undefined, copy);
    const last = keys[keys.length - 1];
    if (parent === undefined || parent[last] === undefined) continue;
    const v = parent[last];
    parent[last] = f.type.kind === 'url' && typeof v === 'string' ? maskUrl(v) : '***';
  }
  return copy;
}
