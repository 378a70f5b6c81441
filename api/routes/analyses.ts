/**
 * Ordering analyses, reading them, and their artifacts. Each of these reads or writes patient data, so each
 * leaves an audit record (source `rest`; the analysis as ServiceRequest/<id>, the FHIR view of the order) when
 * an AuditLog is configured.
 */
import type { Analysis, AnalysisOptions, AnalysisStatus } from '../../domain/model/analysis.ts';
import type { AuditLog } from '../../domain/ports/audit-log.port.ts';
import type { ApiUseCases } from '../use-cases.ts';
import { json, type RouteTable } from '../http.ts';
import { auditedBy, type AuditContext } from '../audit.ts';

const REPORT = 'report.pdf';

export function analysisPath(id: string): string {
  return `/analyses/${id}`;
}

/** The REST representation: the stored analysis plus links. */
export function analysisResource(a: Analysis): unknown {
  const self = analysisPath(a.id);
  return {
    ...a,
    artifacts: a.artifacts.map((r) => ({ ...r, href: `${self}/artifacts/${encodeURIComponent(r.name)}` })),
    links: {
      self,
      artifacts: `${self}/artifacts`,
      ...(a.artifacts.some((r) => r.name === REPORT) ? { report: `${self}/${REPORT}` } : {}),
    },
  };
}

interface OrderBody {
  studyInstanceUid: string;
  patientId: string;
  patientIdSystem?: string;
  priorStudyInstanceUid?: string;
  placerOrderNumber?: string;
  orderReference?: string;
  options?: AnalysisOptions;
}

/** `system|value` (FHIR token) or a bare value. */
export function parsePatientToken(token: string): { patientId: string; patientIdSystem?: string } {
  const bar = token.indexOf('|');
  if (bar < 0) return { patientId: token };
  const system = token.slice(0, bar);
  return { patientId: token.slice(bar + 1), ...(system === '' ? {} : { patientIdSystem: system }) };
}

function listLink(query: Record<string, unknown>, offset: number, limit: number): string {
  const p = new URLSearchParams();
  for (const k of ['patient', 'status', 'study'] as const) {
    const v = query[k];
    if (typeof v === 'string') p.set(k, v);
  }
  p.set('limit', String(limit));
  p.set('offset', String(offset));
  return `/analyses?${p.toString()}`;
}

export interface AnalysisRouteOptions {
  readonly audit?: AuditLog;
  readonly now?: () => Date;
}

function patientOf(a: Analysis): { id: string; system?: string } {
  return {
    id: a.order.patientId,
    ...(a.order.patientIdSystem === undefined ? {} : { system: a.order.patientIdSystem }),
  };
}

/** The audit entity and patient of an analysis. */
function touch(ctx: AuditContext, a: Analysis): void {
  ctx.entities.push({ reference: `ServiceRequest/${a.id}` });
  ctx.patient ??= patientOf(a);
}

export function analysisRoutes(
  useCases: Pick<ApiUseCases, 'submitOrder' | 'getAnalysis' | 'listAnalyses' | 'getArtifact'>,
  options: AnalysisRouteOptions = {},
): RouteTable {
  const audited = auditedBy(options.audit, 'rest', options.now);
  /** Reads one analysis (or its artifact) for `id`, auditing it as a read of that order. */
  const readOf = async (ctx: AuditContext, id: string): Promise<Analysis> => {
    ctx.entities.push({ reference: `ServiceRequest/${id}` }); // also when it is not found
    const a = await useCases.getAnalysis(id);
    ctx.patient = patientOf(a);
    return a;
  };
  return {
    createAnalysis: {
      handler: audited('create', 'C', async (req, ctx) => {
        const b = req.body as OrderBody;
        ctx.patient = {
          id: b.patientId,
          ...(b.patientIdSystem === undefined ? {} : { system: b.patientIdSystem }),
        };
        const { analysis, created } = await useCases.submitOrder({
          studyInstanceUid: b.studyInstanceUid,
          patientId: b.patientId,
          ...(b.patientIdSystem === undefined ? {} : { patientIdSystem: b.patientIdSystem }),
          ...(b.priorStudyInstanceUid === undefined
            ? {}
            : { priorStudyInstanceUid: b.priorStudyInstanceUid }),
          ...(b.placerOrderNumber === undefined ? {} : { placerOrderNumber: b.placerOrderNumber }),
          ...(b.orderReference === undefined ? {} : { orderReference: b.orderReference }),
          source: 'rest',
          options: b.options ?? {},
        });
        touch(ctx, analysis);
        return json(created ? 202 : 200, analysisResource(analysis), { location: analysisPath(analysis.id) });
      }),
    },
    listAnalyses: {
      handler: audited('search', 'E', async (req, ctx) => {
        const q = req.query;
        const patient = typeof q.patient === 'string' ? parsePatientToken(q.patient) : {};
        ctx.entities.push({ query: listLink(q, q.offset as number, q.limit as number) });
        const page = await useCases.listAnalyses({
          ...patient,
          ...(typeof q.status === 'string' ? { status: q.status as AnalysisStatus } : {}),
          ...(typeof q.study === 'string' ? { studyInstanceUid: q.study } : {}),
          limit: q.limit as number,
          offset: q.offset as number,
        });
        const { limit, offset, total } = page;
        for (const a of page.items) touch(ctx, a);
        return json(200, {
          items: page.items.map(analysisResource),
          total,
          limit,
          offset,
          links: {
            self: listLink(q, offset, limit),
            ...(offset + limit < total ? { next: listLink(q, offset + limit, limit) } : {}),
            ...(offset > 0 ? { prev: listLink(q, Math.max(0, offset - limit), limit) } : {}),
          },
        });
      }),
    },
    getAnalysis: {
      handler: audited('read', 'R', async (req, ctx) =>
        json(200, analysisResource(await readOf(ctx, req.params.id))),
      ),
    },
    listArtifacts: {
      handler: audited('read', 'R', async (req, ctx) => {
        const a = analysisResource(await readOf(ctx, req.params.id)) as { artifacts: unknown[] };
        return json(200, { items: a.artifacts });
      }),
    },
    getArtifact: {
      handler: audited('read', 'R', async (req, ctx) => {
        await readOf(ctx, req.params.id);
        const { ref, data } = await useCases.getArtifact(req.params.id, req.params.name);
        return {
          status: 200,
          bytes: data,
          contentType: ref.contentType,
          headers: { etag: `"${ref.sha256}"`, 'content-disposition': `attachment; filename="${ref.name}"` },
        };
      }),
    },
    getReport: {
      handler: audited('read', 'R', async (req, ctx) => {
        await readOf(ctx, req.params.id);
        const { ref, data } = await useCases.getArtifact(req.params.id, REPORT);
        return {
          status: 200,
          bytes: data,
          contentType: 'application/pdf',
          headers: { etag: `"${ref.sha256}"`, 'content-disposition': `inline; filename="${REPORT}"` },
        };
      }),
    },
  };
}
