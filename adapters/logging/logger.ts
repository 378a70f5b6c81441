/**
 * The Logger port on pino: JSON lines, with patient identifiers, names, birth dates and credentials removed
 * wherever they appear in the logged object (any depth, any case of the key), so a careless log call cannot
 * leak them. Messages are the caller's responsibility: never interpolate patient data into them.
 */
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import type { Logger } from '../../domain/ports/logger.port.ts';

/** Keys whose values never reach the log (compared lower-case, without '_' and '-'). */
export const REDACTED_KEYS: readonly string[] = [
  'patientid',
  'patientname',
  'patientbirthdate',
  'birthdate',
  'patientsex',
  'patientaddress',
  'patienttelephonenumbers',
  'otherpatientids',
  'mrn',
  'ssn',
  'name',
  'given',
  'family',
  'password',
  'authorization',
  'cookie',
  'token',
  'accesstoken',
  'refreshtoken',
  'secret',
  'clientsecret',
  'apikey',
];
// The DICOM JSON tags of the same attributes (PatientName, PatientID, PatientBirthDate, OtherPatientIDs …).
const REDACTED_TAGS = new Set([
  '00100010',
  '00100020',
  '00100030',
  '00100040',
  '00101000',
  '00101001',
  '00101040',
]);
const KEYS = new Set(REDACTED_KEYS);
export const REDACTED = '[REDACTED]';

function normalise(key: string): string {
  return key.toLowerCase().replace(/[_-]/g, '');
}

/** A copy of `value` with every sensitive key's value replaced by [REDACTED]. */
export function scrub(value: unknown, depth = 0): unknown {
  if (depth > 12 || typeof value !== 'object' || value === null) return value;
  if (value instanceof Error)
    return {
      type: value.name,
      message: value.message,
      ...(scrub(Object.fromEntries(Object.entries(value)), depth + 1) as object),
    };
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = KEYS.has(normalise(k)) || REDACTED_TAGS.has(k) ? REDACTED : scrub(v, depth + 1);
  }
  return out;
}

export interface LoggerOptions {
  readonly level: string;
  /** Where lines go (default stdout). */
  readonly destination?: DestinationStream;
  /** Fields on every line (service, role …). */
  readonly base?: Readonly<Record<string, unknown>>;
}

export function createLogger(options: LoggerOptions): Logger & { readonly pino: PinoLogger } {
  const p = pino(
    {
      level: options.level,
      base: { service: 'ms-lesion-service', ...(options.base ?? {}) },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (obj) => scrub(obj) as Record<string, unknown>,
      },
    },
    options.destination,
  );
  return {
    pino: p,
    debug: (ctx, msg) => {
      p.debug(ctx, msg);
    },
    info: (ctx, msg) => {
      p.info(ctx, msg);
    },
    warn: (ctx, msg) => {
      p.warn(ctx, msg);
    },
    error: (ctx, msg) => {
      p.error(ctx, msg);
    },
  };
}
