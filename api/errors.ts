/**
 * Errors at the REST boundary: every DomainError becomes a FHIR OperationOutcome with its stable code, and an
 * HTTP status from one table (issue type → status) with per-code overrides. The FHIR routes use the same
 * functions, so a client sees one error shape everywhere.
 */
import { asDomainError, DomainError, type IssueType } from '../domain/errors.ts';

export const ERROR_CODE_SYSTEM = 'urn:ms-lesion-service:error-code';

/** HTTP status by FHIR issue type. */
export const STATUS_BY_ISSUE_TYPE: Readonly<Record<IssueType, number>> = {
  invalid: 400,
  structure: 400,
  required: 400,
  value: 400,
  'not-found': 404,
  conflict: 409,
  duplicate: 409,
  'too-long': 413,
  'too-costly': 429,
  'not-supported': 400,
  security: 403,
  login: 401,
  forbidden: 403,
  processing: 422,
  'business-rule': 422,
  transient: 503,
  timeout: 504,
  exception: 500,
};

/** Codes whose status differs from their issue type's. */
export const STATUS_BY_CODE: Readonly<Partial<Record<string, number>>> = {
  'REQUEST.METHOD_NOT_ALLOWED': 405,
  'REQUEST.UNSUPPORTED_MEDIA_TYPE': 415,
  'REQUEST.NOT_ACCEPTABLE': 406,
  'REQUEST.NOT_IMPLEMENTED': 501,
  'ROUTE.NOT_FOUND': 404,
  'RESPONSE.INVALID': 500,
};

export function httpStatusOf(error: DomainError): number {
  return STATUS_BY_CODE[error.code] ?? STATUS_BY_ISSUE_TYPE[error.issueType];
}

export interface OperationOutcomeIssue {
  readonly severity: 'fatal' | 'error' | 'warning' | 'information';
  readonly code: IssueType;
  readonly details: { readonly coding: readonly { system: string; code: string }[]; readonly text: string };
  readonly diagnostics?: string;
  readonly expression?: readonly string[];
}

export interface OperationOutcome {
  readonly resourceType: 'OperationOutcome';
  readonly issue: readonly OperationOutcomeIssue[];
}

interface ProblemDetail {
  readonly location?: unknown;
  readonly code?: unknown;
  readonly field?: unknown;
}

/**
 * The OperationOutcome for an error. Unknown failures (not DomainErrors, or INTERNAL.*) are reported without
 * their message, which may carry internals; the caller logs them.
 */
export function toOperationOutcome(e: unknown): OperationOutcome {
  const error = asDomainError(e);
  const internal = error.issueType === 'exception';
  const text = internal ? 'internal error' : error.message;
  const problems = Array.isArray(error.details.problems) ? (error.details.problems as ProblemDetail[]) : [];
  const expression = problems
    .map((p) =>
      typeof p.location === 'string' ? p.location : typeof p.field === 'string' ? p.field : undefined,
    )
    .filter((x): x is string => x !== undefined);
  return {
    resourceType: 'OperationOutcome',
    issue: [
      {
        severity: 'error',
        code: error.issueType,
        details: { coding: [{ system: ERROR_CODE_SYSTEM, code: error.code }], text },
        ...(internal ? {} : { diagnostics: `${error.code}: ${text}` }),
        ...(expression.length > 0 ? { expression } : {}),
      },
    ],
  };
}

/** Express/body-parser errors (they carry `type` and `status`) as coded DomainErrors. */
export function fromHttpError(e: unknown, limits: { readonly bodyLimitBytes?: number } = {}): DomainError {
  if (e instanceof DomainError) return e;
  const type = typeof e === 'object' && e !== null && 'type' in e ? String(e.type) : '';
  switch (type) {
    case 'entity.too.large':
      return new DomainError(
        'REQUEST.TOO_LARGE',
        limits.bodyLimitBytes === undefined
          ? 'the request body is larger than allowed'
          : `the request body is larger than the limit of ${limits.bodyLimitBytes} bytes`,
        { issueType: 'too-long' },
      );
    case 'entity.parse.failed':
      return new DomainError('REQUEST.INVALID_JSON', 'the request body is not valid JSON', {
        issueType: 'structure',
      });
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new DomainError('REQUEST.UNSUPPORTED_MEDIA_TYPE', 'unsupported content encoding or charset', {
        issueType: 'not-supported',
      });
    case 'request.aborted':
    case 'request.size.invalid':
      return new DomainError('REQUEST.ABORTED', 'the request body was incomplete', {
        issueType: 'structure',
      });
    default:
      return asDomainError(e);
  }
}
