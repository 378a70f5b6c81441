/**
 * Pushes result transaction Bundles to an external FHIR R4 server (the outbox sender for channel 'fhir'),
 * authenticated with SMART Backend Services. One attempt per call — retries and backoff belong to the outbox
 * dispatcher; this client only says whether a failure is worth retrying:
 *
 *   2xx + transaction-response with 2xx entries  delivered
 *   401                                           token dropped, one immediate retry with a fresh token
 *   408, 429, 5xx, network error, timeout         FHIR.DELIVERY_TRANSIENT (retried by the outbox)
 *   other 4xx (400, 403, 404, 409, 412, 422 …)    FHIR.DELIVERY_REJECTED (permanent; diagnostics kept)
 *
 * Before sending, a subject known only by identifier (logical reference) is resolved on the server with
 * `Patient?identifier=system|value`; with exactly one match every `subject` gets the literal reference,
 * otherwise the logical reference is kept (valid FHIR; the EHR can reconcile it).
 */
import type { Bundle, OperationOutcome, Reference, Resource } from '@medplum/fhirtypes';
import { DomainError } from '../../domain/errors.ts';
import type { OutboxMessage, OutboxSender } from '../../domain/ports/outbox.port.ts';
import type { AccessTokenProvider } from './smart-auth.ts';

export const FHIR_JSON = 'application/fhir+json';

export interface FhirPushOptions {
  /** The server's base URL, e.g. https://ehr.example.org/fhir/R4. */
  readonly baseUrl: string;
  /** SMART Backend Services (or any bearer token source); none = unauthenticated. */
  readonly auth?: AccessTokenProvider;
  readonly timeoutMs?: number;
  /** Resolve logical patient references by identifier search (default true). */
  readonly resolvePatient?: boolean;
  readonly fetch?: typeof fetch;
}

export interface PushResult {
  readonly status: number;
  /** Per-entry statuses of the transaction-response. */
  readonly entryStatuses: readonly string[];
  readonly patientReference?: string;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function diagnostics(body: unknown): string {
  if (!isRecord(body) || body.resourceType !== 'OperationOutcome') return '';
  const oo = body as unknown as OperationOutcome;
  return oo.issue
    .map((i) => [i.code, i.details?.text ?? i.diagnostics, i.expression?.join(',')].filter(Boolean).join(' '))
    .join('; ')
    .slice(0, 1000);
}

function transient(message: string, cause?: unknown): DomainError {
  return new DomainError('FHIR.DELIVERY_TRANSIENT', message, {
    issueType: 'transient',
    ...(cause === undefined ? {} : { cause }),
  });
}

export class FhirPushClient implements OutboxSender {
  readonly channel = 'fhir' as const;
  readonly #o: FhirPushOptions;
  readonly #base: string;
  readonly #fetch: typeof fetch;

  constructor(options: FhirPushOptions) {
    this.#o = options;
    this.#base = options.baseUrl.replace(/\/+$/, '');
    this.#fetch = options.fetch ?? fetch;
  }

  get baseUrl(): string {
    return this.#base;
  }

  async #call(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    const url = path === '' ? this.#base : `${this.#base}/${path}`;
    for (let attempt = 0; ; attempt++) {
      const token = this.#o.auth === undefined ? undefined : await this.#o.auth.getToken();
      let res: Response;
      try {
        res = await this.#fetch(url, {
          method,
          headers: {
            accept: FHIR_JSON,
            ...(body === undefined ? {} : { 'content-type': FHIR_JSON }),
            ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
          },
          ...(body === undefined ? {} : { body: JSON.stringify(body) }),
          signal: AbortSignal.timeout(this.#o.timeoutMs ?? 30_000),
        });
      } catch (e) {
        throw transient(`${method} ${url} failed: ${(e as Error).message}`, e);
      }
      const text = await res.text().catch(() => '');
      let parsed: unknown;
      try {
        parsed = text === '' ? undefined : JSON.parse(text);
      } catch {
        // not JSON (a proxy's HTML error page …): diagnostics stay empty
      }
      if (res.status === 401 && token !== undefined && attempt === 0) {
        this.#o.auth?.invalidate(token);
        continue;
      }
      return { status: res.status, body: parsed };
    }
  }

  #fail(what: string, status: number, body: unknown): never {
    const why = diagnostics(body);
    const message = `${what} answered HTTP ${status}${why === '' ? '' : `: ${why}`}`;
    if (status === 408 || status === 429 || status >= 500) throw transient(message);
    throw new DomainError('FHIR.DELIVERY_REJECTED', message, {
      issueType: status === 401 || status === 403 ? 'security' : 'invalid',
      details: { status },
    });
  }

  /** Resolves `Patient?identifier=system|value` to a literal reference (exactly one match), else undefined. */
  async resolvePatient(identifier: { system?: string; value?: string }): Promise<string | undefined> {
    if (identifier.value === undefined) return undefined;
    const token =
      identifier.system === undefined ? identifier.value : `${identifier.system}|${identifier.value}`;
    const { status, body } = await this.#call(
      'GET',
      `Patient?identifier=${encodeURIComponent(token)}&_count=2`,
    );
    if (status !== 200) this.#fail('patient search', status, body);
    const entries =
      isRecord(body) && Array.isArray(body.entry) ? (body.entry as { resource?: Resource }[]) : [];
    const ids = entries.flatMap((e) =>
      e.resource?.resourceType === 'Patient' && e.resource.id ? [e.resource.id] : [],
    );
    return ids.length === 1 ? `Patient/${ids[0]}` : undefined;
  }

  /** Posts a transaction Bundle once (see the module comment for the outcome rules). */
  async push(bundle: Bundle): Promise<PushResult> {
    const shape: { resourceType?: unknown; type?: unknown } = bundle;
    if (shape.resourceType !== 'Bundle' || shape.type !== 'transaction')
      throw new DomainError('FHIR.BAD_PAYLOAD', 'the outbox payload is not a transaction Bundle', {
        issueType: 'invalid',
      });
    let patientReference: string | undefined;
    if (this.#o.resolvePatient !== false) {
      const logical = bundle.entry
        ?.map((e) => (e.resource as { subject?: Reference } | undefined)?.subject)
        .find((s) => s?.reference === undefined && s?.identifier?.value !== undefined);
      if (logical?.identifier !== undefined) {
        patientReference = await this.resolvePatient(logical.identifier);
        if (patientReference !== undefined) bundle = withSubject(bundle, patientReference);
      }
    }
    const { status, body } = await this.#call('POST', '', bundle);
    if (status < 200 || status >= 300) this.#fail('transaction', status, body);
    const entryStatuses =
      isRecord(body) && Array.isArray(body.entry)
        ? (body.entry as { response?: { status?: string } }[]).map((e) => e.response?.status ?? '')
        : [];
    const bad = entryStatuses.find((s) => !/^2\d\d/.test(s));
    if (bad !== undefined) this.#fail('transaction entry', Number.parseInt(bad, 10) || 500, body);
    return { status, entryStatuses, ...(patientReference === undefined ? {} : { patientReference }) };
  }

  async send(message: OutboxMessage): Promise<void> {
    let bundle: Bundle;
    try {
      bundle = JSON.parse(message.payload) as Bundle;
    } catch (e) {
      throw new DomainError('FHIR.BAD_PAYLOAD', 'the outbox payload is not JSON', {
        issueType: 'invalid',
        cause: e,
      });
    }
    await this.push(bundle);
  }
}

/** The bundle with every logical `subject` replaced by the literal reference (identifier kept). */
export function withSubject(bundle: Bundle, reference: string): Bundle {
  return {
    ...bundle,
    entry: bundle.entry?.map((e) => {
      const subject = (e.resource as { subject?: Reference } | undefined)?.subject;
      if (subject === undefined || subject.reference !== undefined) return e;
      const resource = structuredClone(e.resource) as Resource & { subject: Reference };
      resource.subject = {
        reference,
        ...(subject.identifier === undefined ? {} : { identifier: subject.identifier }),
      };
      return { ...e, resource };
    }),
  };
}
