/**
 * Every failure the domain knows about carries a stable code ('AREA.REASON', e.g. 'SERIES.NO_FLAIR')
 * that users and integrators can script against, and a FHIR OperationOutcome issue type so that every
 * boundary (REST, FHIR, HL7 ERR, CLI) can render it the same way. Codes are listed where they are thrown;
 * api/errors.ts turns them into HTTP statuses.
 */

/** FHIR R4 IssueType values used by this service. */
export type IssueType =
  | 'invalid'
  | 'structure'
  | 'required'
  | 'value'
  | 'not-found'
  | 'conflict'
  | 'duplicate'
  | 'too-long'
  | 'too-costly'
  | 'not-supported'
  | 'security'
  | 'login'
  | 'forbidden'
  | 'processing'
  | 'business-rule'
  | 'transient'
  | 'timeout'
  | 'exception';

export interface DomainErrorOptions {
  readonly issueType?: IssueType;
  /** Machine-readable context (never patient identifiers). */
  readonly details?: Readonly<Record<string, unknown>>;
  readonly cause?: unknown;
}

export class DomainError extends Error {
  readonly code: string;
  readonly issueType: IssueType;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: string, message: string, options: DomainErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (!/^[A-Z0-9_]+(\.[A-Z0-9_]+)+$/.test(code)) throw new TypeError(`bad error code ${code}`);
    this.name = 'DomainError';
    this.code = code;
    this.issueType = options.issueType ?? 'processing';
    this.details = options.details ?? {};
  }
}

export function isDomainError(e: unknown): e is DomainError {
  return e instanceof DomainError;
}

/** Wraps anything thrown into a DomainError (unknown failures become INTERNAL.ERROR). */
export function asDomainError(e: unknown, fallbackCode = 'INTERNAL.ERROR'): DomainError {
  if (e instanceof DomainError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new DomainError(fallbackCode, message, { issueType: 'exception', cause: e });
}
