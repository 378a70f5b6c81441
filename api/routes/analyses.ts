/** Ordering analyses, reading them, and their artifacts. */
import type { Analysis, AnalysisOptions, AnalysisStatus } from '../../domain/model/analysis.ts';
import type { ApiUseCases } from '../use-cases.ts';
import { json, type RouteTable } from '../http.ts';

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

export function analysisRoutes(
  useCases: Pick<ApiUseCases, 'submitOrder' | 'getAnalysis' | 'listAnalyses' | 'getArtifact'>,
): RouteTable {
  return {
    createAnalysis: {
      async handler(req) {
        const b = req.body as OrderBody;
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
        return json(created ? 202 : 200, analysisResource(analysis), { location: analysisPath(analysis.id) });
      },
    },
    listAnalyses: {
      async handler(req) {
        const q = req.query;
        const patient = typeof q.patient === 'string' ? parsePatientToken(q.patient) : {};
        const page = await useCases.listAnalyses({
          ...patient,
          ...(typeof q.status === 'string' ? { status: q.status as AnalysisStatus } : {}),
          ...(typeof q.study === 'string' ? { studyInstanceUid: q.study } : {}),
          limit: q.limit as number,
          offset: q.offset as number,
        });
        const { limit, offset, total } = page;
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
      },
    },
    getAnalysis: {
      async handler(req) {
        return json(200, analysisResource(await useCases.getAnalysis(req.params.id)));
      },
    },
    listArtifacts: {
      async handler(req) {
        const a = analysisResource(await useCases.getAnalysis(req.params.id)) as { artifacts: unknown[] };
        return json(200, { items: a.artifacts });
      },
    },
    getArtifact: {
      async handler(req) {
        const { ref, data } = await useCases.getArtifact(req.params.id, req.params.name);
        return {
          status: 200,
          bytes: data,
          contentType: ref.contentType,
          headers: { etag: `"${ref.sha256}"`, 'content-disposition': `attachment; filename="${ref.name}"` },
        };
      },
    },
    getReport: {
      async handler(req) {
        const { ref, data } = await useCases.getArtifact(req.params.id, REPORT);
        return {
          status: 200,
          bytes: data,
          contentType: 'application/pdf',
          headers: { etag: `"${ref.sha256}"`, 'content-disposition': `inline; filename="${REPORT}"` },
        };
      },
    },
  };
}
