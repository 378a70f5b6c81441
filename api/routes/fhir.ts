/**
 * The service's FHIR R4 API (application/fhir+json):
 *   GET  /fhir/metadata                       CapabilityStatement (public)
 *   POST /fhir/ServiceRequest                 order → submitOrder: 201 new / 200 repeated identifier
 *   GET  /fhir/{ServiceRequest|Observation|DiagnosticReport|ImagingStudy|Provenance|CodeSystem}/{id}
 *   GET  /fhir/Observation?subject=&code=&date=, /fhir/DiagnosticReport?subject=, /fhir/ImagingStudy?subject=
 * over the results of succeeded analyses. SMART scopes per operation come from the contract. Every read or
 * write of patient data leaves an AuditEvent (success or failure) when an AuditLog is configured.
 */
import { DomainError, isDomainError } from '../../domain/errors.ts';
import type { Analysis } from '../../domain/model/analysis.ts';
import type { AuditLog } from '../../domain/ports/audit-log.port.ts';
import type { FhirJson, FhirResults } from '../../domain/ports/fhir-results.port.ts';
import type { ApiRequest, ApiResponse, RouteTable } from '../http.ts';
import { auditedBy, type AuditContext } from '../audit.ts';
import type { ApiUseCases } from '../use-cases.ts';

export const FHIR_JSON = 'application/fhir+json';

export interface FhirRouteDeps {
  readonly useCases: Pick<ApiUseCases, 'submitOrder' | 'getAnalysis' | 'listAnalyses'>;
  /** The FHIR mapping (absent: every FHIR operation but metadata answers FHIR.NOT_CONFIGURED). */
  readonly fhir?: FhirResults;
  readonly audit?: AuditLog;
  /** Checks that the PACS holds a study before an order is accepted (throws STUDY.NOT_FOUND). */
  readonly checkStudy?: (studyInstanceUid: string) => Promise<void>;
  readonly now?: () => Date;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAX_ANALYSES_PER_SEARCH = 1000;

function fhirJson(status: number, body: unknown, headers?: Record<string, string>): ApiResponse {
  return { status, json: body, contentType: FHIR_JSON, ...(headers === undefined ? {} : { headers }) };
}

function notFound(type: string, id: string): DomainError {
  return new DomainError('FHIR.NOT_FOUND', `${type}/${id} is not known`, { issueType: 'not-found' });
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

export function fhirRoutes(deps: FhirRouteDeps): RouteTable {
  const now = deps.now ?? (() => new Date());
  const need = (): FhirResults => {
    if (deps.fhir === undefined)
      throw new DomainError('FHIR.NOT_CONFIGURED', 'the FHIR API is not configured in this deployment', {
        issueType: 'not-supported',
      });
    return deps.fhir;
  };

  /** Runs a handler and audits it (also when it fails); audit failures never hide the answer. */
  const audited = auditedBy(deps.audit, 'fhir', now);

  const patientOf = (a: Analysis): { id: string; system?: string } => ({
    id: a.order.patientId,
    ...(a.order.patientIdSystem === undefined ? {} : { system: a.order.patientIdSystem }),
  });

  /** A per-analysis result resource (Observation, DiagnosticReport, Provenance) by its deterministic id. */
  const readResult = (type: string) =>
    audited('read', 'R', async (req, ctx) => {
      const fhir = need();
      const id = req.params.id;
      ctx.entities.push({ reference: `${type}/${id}` });
      const analysisId = id.slice(0, 36);
      if (id.length < 38 || id[36] !== '-' || !UUID.test(analysisId)) throw notFound(type, id);
      let analysis: Analysis;
      try {
        analysis = await deps.useCases.getAnalysis(analysisId);
      } catch (e) {
        if (isDomainError(e) && e.issueType === 'not-found') throw notFound(type, id);
        throw e;
      }
      ctx.patient = patientOf(analysis);
      const found = (await fhir.resultResources(analysis)).find(
        (r) => r.resourceType === type && r.id === id,
      );
      if (found === undefined) throw notFound(type, id);
      return fhirJson(200, found);
    });

  /** Succeeded analyses of the search's subject (all pages, newest first). */
  const analysesOfSubject = async (req: ApiRequest, ctx: AuditContext): Promise<Analysis[]> => {
    const fhir = need();
    const q = req.query;
    const reference = str(q.subject) ?? str(q.patient);
    const identifier = str(q['subject:identifier']) ?? str(q['patient:identifier']);
    if (reference === undefined && identifier === undefined)
      throw new DomainError(
        'FHIR.SEARCH_NEEDS_SUBJECT',
        'a search needs subject (Patient/<id>), patient, or subject:identifier (system|value)',
        { issueType: 'required' },
      );
    const patient = fhir.patientOf(
      reference !== undefined ? { reference } : { identifier: identifier ?? '' },
    );
    ctx.patient = {
      id: patient.patientId,
      ...(patient.patientIdSystem === undefined ? {} : { system: patient.patientIdSystem }),
    };
    const out: Analysis[] = [];
    for (let offset = 0; offset < MAX_ANALYSES_PER_SEARCH; offset += 100) {
      const page = await deps.useCases.listAnalyses({ ...patient, status: 'succeeded', limit: 100, offset });
      out.push(...page.items);
      if (offset + page.items.length >= page.total || page.items.length === 0) break;
    }
    return out;
  };

  const search = (type: string) =>
    audited('search', 'E', async (req, ctx) => {
      const fhir = need();
      const analyses = await analysesOfSubject(req, ctx);
      const params: Record<string, string | readonly string[]> = {};
      for (const [k, v] of Object.entries(req.query)) {
        if (
          ['subject', 'patient', 'subject:identifier', 'patient:identifier', '_count', '_offset'].includes(k)
        )
          continue;
        if (typeof v === 'string') params[k] = v;
        else if (Array.isArray(v)) params[k] = v.filter((x): x is string => typeof x === 'string');
      }
      const resources: FhirJson[] = [];
      const seen = new Set<string>();
      for (const a of analyses)
        for (const r of fhir.matches(await fhir.resultResources(a), type, params)) {
          const key = `${r.resourceType}/${r.id ?? ''}`;
          if (seen.has(key)) continue; // an ImagingStudy shared by two analyses
          seen.add(key);
          resources.push(r);
        }
      const count = typeof req.query._count === 'number' ? req.query._count : 100;
      const offset = typeof req.query._offset === 'number' ? req.query._offset : 0;
      const page = resources.slice(offset, offset + count);
      ctx.entities.push({
        query: `${type}?${new URLSearchParams(Object.entries(req.query).map(([k, v]): [string, string] => [k, String(v)])).toString()}`,
      });
      for (const r of page) ctx.entities.push({ reference: `${r.resourceType}/${r.id ?? ''}` });
      return fhirJson(200, {
        resourceType: 'Bundle',
        type: 'searchset',
        total: resources.length,
        entry: page.map((resource) => ({
          fullUrl: `fhir/${resource.resourceType}/${resource.id ?? ''}`,
          resource,
          search: { mode: 'match' },
        })),
      });
    });

  return {
    fhirMetadata: {
      handler: () => Promise.resolve(fhirJson(200, deps.fhir?.capabilityStatement() ?? minimalCapability())),
    },
    fhirCreateServiceRequest: {
      handler: audited('create', 'C', async (req, ctx) => {
        const fhir = need();
        ctx.entities.push({ reference: 'ServiceRequest' });
        const order = fhir.orderFromServiceRequest(req.body);
        ctx.patient = {
          id: order.patientId,
          ...(order.patientIdSystem === undefined ? {} : { system: order.patientIdSystem }),
        };
        if (deps.checkStudy !== undefined) {
          await deps.checkStudy(order.studyInstanceUid);
          if (order.priorStudyInstanceUid !== undefined) await deps.checkStudy(order.priorStudyInstanceUid);
        }
        const { analysis, created } = await deps.useCases.submitOrder(order);
        ctx.entities[0] = { reference: `ServiceRequest/${analysis.id}` };
        return fhirJson(created ? 201 : 200, fhir.serviceRequest(analysis), {
          location: `/fhir/ServiceRequest/${analysis.id}`,
        });
      }),
    },
    fhirReadServiceRequest: {
      handler: audited('read', 'R', async (req, ctx) => {
        const fhir = need();
        const id = req.params.id;
        ctx.entities.push({ reference: `ServiceRequest/${id}` });
        if (!UUID.test(id)) throw notFound('ServiceRequest', id);
        let analysis: Analysis;
        try {
          analysis = await deps.useCases.getAnalysis(id);
        } catch (e) {
          if (isDomainError(e) && e.issueType === 'not-found') throw notFound('ServiceRequest', id);
          throw e;
        }
        ctx.patient = patientOf(analysis);
        return fhirJson(200, fhir.serviceRequest(analysis));
      }),
    },
    fhirReadObservation: { handler: readResult('Observation') },
    fhirReadDiagnosticReport: { handler: readResult('DiagnosticReport') },
    fhirReadProvenance: { handler: readResult('Provenance') },
    fhirReadImagingStudy: {
      handler: audited('read', 'R', async (req, ctx) => {
        const fhir = need();
        const id = req.params.id;
        ctx.entities.push({ reference: `ImagingStudy/${id}` });
        if (!/^[0-9.]{1,64}$/.test(id)) throw notFound('ImagingStudy', id);
        const page = await deps.useCases.listAnalyses({
          studyInstanceUid: id,
          status: 'succeeded',
          limit: 1,
        });
        if (page.items.length === 0) throw notFound('ImagingStudy', id);
        const analysis = page.items[0];
        ctx.patient = patientOf(analysis);
        const study = (await fhir.resultResources(analysis)).find((r) => r.resourceType === 'ImagingStudy');
        if (study === undefined) throw notFound('ImagingStudy', id);
        return fhirJson(200, study);
      }),
    },
    fhirReadCodeSystem: {
      handler(req) {
        const fhir = need();
        if (req.params.id !== 'mslesion') return Promise.reject(notFound('CodeSystem', req.params.id));
        return Promise.resolve(fhirJson(200, fhir.codeSystem()));
      },
    },
    fhirSearchObservation: { handler: search('Observation') },
    fhirSearchDiagnosticReport: { handler: search('DiagnosticReport') },
    fhirSearchImagingStudy: { handler: search('ImagingStudy') },
  };
}

/** Served when the FHIR mapping is not configured: says only that the FHIR API is off. */
function minimalCapability(): FhirJson {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-03-01',
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['application/fhir+json'],
    implementation: { description: 'ms-lesion-service (FHIR API not configured)' },
  };
}
