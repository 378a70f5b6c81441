/**
 * PatientResultsReader on the EHR's FHIR server, with the session's access token (smart.dataSource = ehr):
 * the results the service pushed there (FHIR delivery) are searched by `patient=<launched patient>`; the
 * server enforces the token's patient scopes, and this reader only ever asks for the launched patient. Paging
 * follows `next` links on the same origin only (at most 10 pages). Report PDFs come from
 * DiagnosticReport.presentedForm (inline data, or a URL on the FHIR server fetched with the token).
 *
 * Errors: SMART.SESSION_EXPIRED (401 from the EHR), SMART.FORBIDDEN (403), SMART.NOT_FOUND (404, or a
 * resource of another patient), SMART.EHR_UNAVAILABLE (network, 5xx), SMART.EHR_BAD_RESPONSE.
 */
import { DomainError } from '../../domain/errors.ts';
import type { FhirJson } from '../../domain/ports/fhir-results.port.ts';
import type {
  PatientResultsReader,
  SmartSession,
  TrendResourceType,
} from '../../domain/ports/smart-app.port.ts';

export interface EhrFhirReaderOptions {
  readonly fetch?: typeof fetch;
  readonly timeoutMs?: number;
  readonly maxPages?: number;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function patientOf(session: SmartSession): string {
  const p = session.tokens.patient;
  if (p === undefined)
    throw new DomainError('SMART.NO_PATIENT', 'the launch gave no patient context', {
      issueType: 'business-rule',
    });
  return p;
}

const notFound = (what: string): DomainError =>
  new DomainError('SMART.NOT_FOUND', `${what} is not among this patient's results`, {
    issueType: 'not-found',
  });

export class EhrFhirReader implements PatientResultsReader {
  readonly #fetch: typeof fetch;
  readonly #o: EhrFhirReaderOptions;

  constructor(options: EhrFhirReaderOptions = {}) {
    this.#o = options;
    this.#fetch = options.fetch ?? fetch;
  }

  async #get(session: SmartSession, url: string, accept = 'application/fhir+json'): Promise<Response> {
    const base = new URL(session.fhirBaseUrl);
    if (new URL(url).origin !== base.origin)
      throw new DomainError('SMART.EHR_BAD_RESPONSE', 'the EHR pointed to another server', {
        issueType: 'security',
      });
    let res: Response;
    try {
      res = await this.#fetch(url, {
        headers: { authorization: `Bearer ${session.tokens.accessToken}`, accept },
        signal: AbortSignal.timeout(this.#o.timeoutMs ?? 20_000),
      });
    } catch (e) {
      throw new DomainError(
        'SMART.EHR_UNAVAILABLE',
        `the EHR's FHIR server does not answer: ${(e as Error).message}`,
        {
          issueType: 'transient',
          cause: e,
        },
      );
    }
    if (res.ok) return res;
    await res.body?.cancel();
    if (res.status === 401)
      throw new DomainError(
        'SMART.SESSION_EXPIRED',
        'the EHR no longer accepts the session: launch the app again',
        {
          issueType: 'login',
        },
      );
    if (res.status === 403)
      throw new DomainError('SMART.FORBIDDEN', 'the EHR refused access to these results', {
        issueType: 'forbidden',
      });
    if (res.status === 404 || res.status === 410) throw notFound('the resource');
    throw new DomainError('SMART.EHR_UNAVAILABLE', `the EHR's FHIR server answered ${res.status}`, {
      issueType: res.status >= 500 ? 'transient' : 'processing',
    });
  }

  async #json(session: SmartSession, url: string): Promise<Record<string, unknown>> {
    const res = await this.#get(session, url);
    const body: unknown = await res.json().catch(() => undefined);
    if (!isRecord(body) || typeof body.resourceType !== 'string')
      throw new DomainError('SMART.EHR_BAD_RESPONSE', 'the EHR answered something that is not FHIR JSON', {
        issueType: 'processing',
      });
    return body;
  }

  async search(
    session: SmartSession,
    type: 'Observation' | 'DiagnosticReport',
    params: Readonly<Record<string, string>>,
  ): Promise<FhirJson> {
    const base = session.fhirBaseUrl.replace(/\/+$/, '');
    const q = new URLSearchParams({ ...params, patient: patientOf(session) });
    let url: string | undefined = `${base}/${type}?${q.toString()}`;
    const entry: unknown[] = [];
    for (let page = 0; url !== undefined && page < (this.#o.maxPages ?? 10); page++) {
      const bundle = await this.#json(session, url);
      if (bundle.resourceType !== 'Bundle')
        throw new DomainError('SMART.EHR_BAD_RESPONSE', 'a search did not answer a Bundle', {
          issueType: 'processing',
        });
      for (const e of Array.isArray(bundle.entry) ? bundle.entry : []) {
        if (!isRecord(e) || !isRecord(e.resource) || e.resource.resourceType !== type) continue; // OperationOutcome, _include
        entry.push({ resource: e.resource, search: { mode: 'match' } });
      }
      const next: unknown = Array.isArray(bundle.link)
        ? (bundle.link as unknown[]).find((l) => isRecord(l) && l.relation === 'next')
        : undefined;
      url = isRecord(next) && typeof next.url === 'string' ? next.url : undefined;
    }
    return { resourceType: 'Bundle', type: 'searchset', total: entry.length, entry };
  }

  async read(session: SmartSession, type: TrendResourceType, id: string): Promise<FhirJson> {
    if (!/^[A-Za-z0-9\-.]{1,64}$/.test(id)) throw notFound(`${type}/${id}`);
    const base = session.fhirBaseUrl.replace(/\/+$/, '');
    const r = await this.#json(session, `${base}/${type}/${id}`);
    if (r.resourceType !== type) throw notFound(`${type}/${id}`);
    if (type !== 'Device') {
      const subject = isRecord(r.subject) ? r.subject.reference : undefined;
      if (subject !== `Patient/${patientOf(session)}`) throw notFound(`${type}/${id}`);
    }
    return r as FhirJson;
  }

  async reportPdf(session: SmartSession, reportId: string): Promise<Uint8Array> {
    const report = await this.read(session, 'DiagnosticReport', reportId);
    const forms = Array.isArray(report.presentedForm) ? (report.presentedForm as unknown[]) : [];
    const pdf = forms.find((f) => isRecord(f) && f.contentType === 'application/pdf');
    if (!isRecord(pdf)) throw notFound(`the PDF of DiagnosticReport/${reportId}`);
    if (typeof pdf.data === 'string') return new Uint8Array(Buffer.from(pdf.data, 'base64'));
    if (typeof pdf.url !== 'string') throw notFound(`the PDF of DiagnosticReport/${reportId}`);
    const url = new URL(pdf.url, `${session.fhirBaseUrl.replace(/\/+$/, '')}/`).toString();
    const res = await this.#get(session, url, 'application/pdf');
    const type = res.headers.get('content-type')?.split(';')[0].trim() ?? '';
    if (type === 'application/fhir+json' || type === 'application/json') {
      const binary: unknown = await res.json();
      if (isRecord(binary) && typeof binary.data === 'string')
        return new Uint8Array(Buffer.from(binary.data, 'base64'));
      throw new DomainError('SMART.EHR_BAD_RESPONSE', 'the report Binary has no data', {
        issueType: 'processing',
      });
    }
    return new Uint8Array(await res.arrayBuffer());
  }

  /** The launched Patient resource, when the token may read it (patient/Patient.r); else undefined. */
  async patient(session: SmartSession): Promise<Record<string, unknown> | undefined> {
    const can = session.tokens.scopes.some((s) => /^(patient|user)\/(Patient|\*)\.(r|rs|read|\*)$/.test(s));
    if (!can) return undefined;
    const base = session.fhirBaseUrl.replace(/\/+$/, '');
    return this.#json(session, `${base}/Patient/${patientOf(session)}`).catch(() => undefined);
  }

  async patientName(session: SmartSession): Promise<string | undefined> {
    const p = await this.patient(session);
    return p === undefined ? undefined : displayName(p);
  }

  /** The launched patient's identifiers (system|value), when the token may read the Patient. */
  async patientIdentifiers(session: SmartSession): Promise<{ system?: string; value: string }[]> {
    const p = await this.patient(session);
    const ids = p !== undefined && Array.isArray(p.identifier) ? (p.identifier as unknown[]) : [];
    return ids.flatMap((i) =>
      isRecord(i) && typeof i.value === 'string' && i.value !== ''
        ? [{ value: i.value, ...(typeof i.system === 'string' ? { system: i.system } : {}) }]
        : [],
    );
  }
}

/** A HumanName for display: text, else "Given Family". */
export function displayName(patient: Record<string, unknown>): string | undefined {
  const names = Array.isArray(patient.name) ? (patient.name as unknown[]) : [];
  const n = names.find((x) => isRecord(x) && x.use === 'official') ?? names[0];
  if (!isRecord(n)) return undefined;
  if (typeof n.text === 'string' && n.text !== '') return n.text;
  const given = Array.isArray(n.given) ? n.given.filter((g): g is string => typeof g === 'string') : [];
  const family = typeof n.family === 'string' ? n.family : '';
  const s = [...given, family].join(' ').trim();
  return s === '' ? undefined : s;
}
