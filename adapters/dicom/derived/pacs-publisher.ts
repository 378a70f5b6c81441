/**
 * PacsPublisher over STOW-RS: builds the derived objects of an analysis (SEG, TID 1500 SR, Encapsulated PDF,
 * overlay Secondary Captures) and stores them in the PACS under the analysed study, in batches (≤ 32
 * instances and ≤ 24 MB per request). Every UID derives from the analysis id, so a retry after a partial
 * failure stores the same instances again (PACS overwrite/ignore) rather than duplicating series.
 *
 * Codes: PACS.STORE_FAILED ('processing', details: refused SOP Instance UIDs and reasons) when the PACS
 * refused instances; the STOW client's own errors (PACS.UNREACHABLE, PACS.TIMEOUT, …) pass through;
 * DICOM.DERIVED_INPUT from the builders.
 */
import { DomainError } from '../../../domain/errors.ts';
import type {
  DerivedObjectKind,
  PacsPublisher,
  PublishedSeries,
  PublishReceipt,
  PublishRequest,
} from '../../../domain/ports/pacs-publisher.port.ts';
import type { StowResult } from '../../dicomweb/client.ts';
import type { DerivedContext, DerivedObject, ServiceEquipment } from './common.ts';
import { buildEncapsulatedPdf } from './encapsulated-pdf.ts';
import { buildMeasurementReport } from './measurement-report.ts';
import { buildOverlaySeries } from './overlay-series.ts';
import { buildSegmentation } from './segmentation.ts';

/** What the publisher needs from a DICOMweb client (adapters/dicomweb/client.ts DicomWebClient fits). */
export interface StowClient {
  stowInstances(instances: readonly Uint8Array[], studyInstanceUid?: string): Promise<StowResult>;
}

export interface DerivedObjectsOptions {
  readonly uidRoot?: string;
  readonly equipment?: ServiceEquipment;
  /** Overlay preview: slices with lesions (default) or every slice. */
  readonly overlaySlices?: 'lesional' | 'all';
}

export interface PublisherOptions extends DerivedObjectsOptions {
  readonly stow: StowClient;
  readonly maxInstancesPerRequest?: number;
  readonly maxBytesPerRequest?: number;
}

export interface BuiltObjects {
  readonly objects: readonly DerivedObject[];
  /** Build time per kind (ms). */
  readonly timingsMs: Readonly<Partial<Record<DerivedObjectKind, number>>>;
}

export function contextOf(request: PublishRequest, options: DerivedObjectsOptions = {}): DerivedContext {
  return {
    analysisId: request.analysisId,
    study: request.study,
    flairSeries: {
      seriesInstanceUid: request.flair.series.seriesInstanceUid,
      ...(request.flair.series.seriesNumber === undefined
        ? {}
        : { seriesNumber: request.flair.series.seriesNumber }),
      modality: request.flair.series.modality,
    },
    flairSlices: request.flair.slices,
    ...(request.flair.frameOfReferenceUid === undefined
      ? {}
      : { frameOfReferenceUid: request.flair.frameOfReferenceUid }),
    model: request.result.model,
    createdAt: request.createdAt,
    ...(options.uidRoot === undefined ? {} : { uidRoot: options.uidRoot }),
    ...(options.equipment === undefined ? {} : { equipment: options.equipment }),
  };
}

/** Builds every derived object the request allows (SEG first: the SR references it). */
export function buildDerivedObjects(
  request: PublishRequest,
  options: DerivedObjectsOptions = {},
): BuiltObjects {
  const want = new Set<DerivedObjectKind>(request.kinds ?? ['SEG', 'SR', 'PDF', 'SC']);
  const ctx = contextOf(request, options);
  const objects: DerivedObject[] = [];
  const timingsMs: Partial<Record<DerivedObjectKind, number>> = {};
  const timed = <T>(kind: DerivedObjectKind, f: () => T): T => {
    const t = performance.now();
    const r = f();
    timingsMs[kind] = Math.round((performance.now() - t) * 10) / 10;
    return r;
  };
  const flair = request.flair.volume;
  const change = request.changeMask === undefined ? {} : { changeMask: request.changeMask };
  let segRef: { sopInstanceUid: string; seriesInstanceUid: string; hasChangeSegment: boolean } | undefined;
  if (want.has('SEG')) {
    const seg = timed('SEG', () => buildSegmentation({ ...ctx, flair, mask: request.mask, ...change }));
    objects.push(seg);
    segRef = {
      sopInstanceUid: seg.sopInstanceUid,
      seriesInstanceUid: seg.seriesInstanceUid,
      hasChangeSegment: seg.segments > 1,
    };
  }
  if (want.has('SR'))
    objects.push(
      timed('SR', () =>
        buildMeasurementReport({
          ...ctx,
          result: request.result,
          ...(segRef === undefined ? {} : { segmentation: segRef }),
        }),
      ),
    );
  const pdf = request.reportPdf;
  if (want.has('PDF') && pdf !== undefined)
    objects.push(timed('PDF', () => buildEncapsulatedPdf({ ...ctx, pdf })));
  if (want.has('SC'))
    objects.push(
      ...timed('SC', () =>
        buildOverlaySeries({
          ...ctx,
          flair,
          mask: request.mask,
          ...change,
          ...(options.overlaySlices === undefined ? {} : { slices: options.overlaySlices }),
        }),
      ),
    );
  return { objects, timingsMs };
}

function batches(objects: readonly DerivedObject[], maxCount: number, maxBytes: number): DerivedObject[][] {
  const out: DerivedObject[][] = [];
  let cur: DerivedObject[] = [];
  let bytes = 0;
  for (const o of objects) {
    if (cur.length > 0 && (cur.length >= maxCount || bytes + o.bytes.length > maxBytes)) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(o);
    bytes += o.bytes.length;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

export function summarize(studyInstanceUid: string, objects: readonly DerivedObject[]): PublishReceipt {
  const bySeries = new Map<string, { kind: DerivedObjectKind; uids: string[] }>();
  let bytes = 0;
  for (const o of objects) {
    bytes += o.bytes.length;
    const s = bySeries.get(o.seriesInstanceUid) ?? { kind: o.kind, uids: [] };
    s.uids.push(o.sopInstanceUid);
    bySeries.set(o.seriesInstanceUid, s);
  }
  const series: PublishedSeries[] = [...bySeries.entries()].map(([uid, s]) => ({
    kind: s.kind,
    seriesInstanceUid: uid,
    sopInstanceUids: s.uids,
  }));
  return { studyInstanceUid, series, instances: objects.length, bytes };
}

export class DicomWebPacsPublisher implements PacsPublisher {
  readonly #options: PublisherOptions;

  constructor(options: PublisherOptions) {
    this.#options = options;
  }

  async publish(request: PublishRequest): Promise<PublishReceipt> {
    const { objects } = buildDerivedObjects(request, this.#options);
    const studyUid = request.study.studyInstanceUid;
    const refused: { sopInstanceUid?: string; reason?: number; message?: string }[] = [];
    for (const batch of batches(
      objects,
      this.#options.maxInstancesPerRequest ?? 32,
      this.#options.maxBytesPerRequest ?? 24 * 1024 * 1024,
    )) {
      const r = await this.#options.stow.stowInstances(
        batch.map((o) => o.bytes),
        studyUid,
      );
      for (const outcome of r.instances)
        if (!outcome.stored)
          refused.push({
            ...(outcome.sopInstanceUid === undefined ? {} : { sopInstanceUid: outcome.sopInstanceUid }),
            ...(outcome.failureReason === undefined ? {} : { reason: outcome.failureReason }),
            ...(outcome.error === undefined ? {} : { message: outcome.error.message }),
          });
    }
    if (refused.length > 0)
      throw new DomainError(
        'PACS.STORE_FAILED',
        `the PACS refused ${refused.length} of ${objects.length} result instances`,
        {
          issueType: 'processing',
          details: { refused: refused.slice(0, 20) },
        },
      );
    return summarize(studyUid, objects);
  }
}
