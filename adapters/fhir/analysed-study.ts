/**
 * The study as it was analysed, for the FHIR ImagingStudy (and the ORU): the PACS's series minus the ones this
 * service filed back into the study after analysing it (SEG, SR, Encapsulated PDF, overlay Secondary Capture,
 * adapters/dicom/derived). Without this rule the ImagingStudy grows each time results are published (6 → 10
 * series after a second analysis of the same study), so a re-delivery would push a changed FHIR message.
 *
 * Rule: a series is this service's own when
 *   1. its SeriesInstanceUID is one of the derived series UIDs of an analysis of this study — those UIDs are a
 *      function of the analysis id (adapters/dicom/derived/uids.ts), so this holds whatever the PACS returns
 *      as metadata; or
 *   2. its Manufacturer is exactly the service's equipment manufacturer (`ms-lesion-service`, what every
 *      derived object carries) — for analyses the caller does not know of (another deployment's store).
 * Everything else stays, including series of other vendors' AI tools and studies made by the research import
 * (Manufacturer `ms-lesion-service research import`: source images, not results).
 */
import type { Analysis } from '../../domain/model/analysis.ts';
import type { ImageSource, SeriesDescriptor, StudyDescriptor } from '../../domain/ports/image-source.port.ts';
import { DEFAULT_EQUIPMENT } from '../dicom/derived/common.ts';
import { DEFAULT_UID_ROOT, derivedSeriesUids } from '../dicom/derived/uids.ts';

export interface DerivedSeriesRule {
  /** UID root the publisher uses (default 2.25, as composed). */
  readonly uidRoot?: string;
  /** The publisher's equipment manufacturer (default `ms-lesion-service`). */
  readonly manufacturer?: string;
}

/** The derived series UIDs of these analyses (ids that cannot carry derived objects are skipped). */
export function derivedSeriesUidSet(analysisIds: Iterable<string>, uidRoot = DEFAULT_UID_ROOT): Set<string> {
  const out = new Set<string>();
  for (const id of analysisIds) {
    try {
      for (const uid of derivedSeriesUids(id, uidRoot)) out.add(uid);
    } catch {
      // not an id the publisher accepts (DICOM.BAD_ANALYSIS_ID): no object of it can be in the PACS
    }
  }
  return out;
}

/** True when `series` is one this service derived (see the rule above). */
export function isServiceDerivedSeries(
  series: SeriesDescriptor,
  derivedUids: ReadonlySet<string>,
  manufacturer: string = DEFAULT_EQUIPMENT.manufacturer,
): boolean {
  return derivedUids.has(series.seriesInstanceUid) || series.attributes.manufacturer?.trim() === manufacturer;
}

/** The study without the series this service derived from the given analyses (or any, by Manufacturer). */
export function withoutDerivedSeries(
  study: StudyDescriptor,
  analysisIds: Iterable<string>,
  rule: DerivedSeriesRule = {},
): StudyDescriptor {
  const uids = derivedSeriesUidSet(analysisIds, rule.uidRoot);
  const series = study.series.filter((s) => !isServiceDerivedSeries(s, uids, rule.manufacturer));
  return series.length === study.series.length ? study : { ...study, series };
}

/** The study as the analysis recorded it (its FLAIR/T2/T1 series): when the PACS cannot be asked. */
export function studyFromAnalysis(analysis: Analysis): StudyDescriptor {
  const s = analysis.result?.series;
  const refs = s === undefined ? [] : [s.flair, s.t2, s.t1].filter((x) => x !== undefined);
  const studyDate = analysis.result?.studyDate;
  return {
    studyInstanceUid: analysis.order.studyInstanceUid,
    ...(studyDate === undefined ? {} : { studyDate }),
    series: refs.map((r) => ({
      studyInstanceUid: analysis.order.studyInstanceUid,
      seriesInstanceUid: r.seriesInstanceUid,
      modality: 'MR',
      numberOfInstances: r.instances,
      attributes: {
        ...(r.description === undefined ? {} : { seriesDescription: r.description }),
        scanningSequence: [],
        sequenceVariant: [],
        scanOptions: [],
        imageType: [],
      },
    })),
  };
}

export interface AnalysedStudyDeps extends DerivedSeriesRule {
  /** Where the study is read (absent: what the analysis recorded). */
  readonly imageSource?: Pick<ImageSource, 'findStudy'>;
  /** Ids of every analysis of a study (their derived series are left out too). */
  readonly analysisIdsOfStudy?: (studyInstanceUid: string) => Promise<readonly string[]>;
}

/**
 * The analysed study of `analysis`: read from the image source without this service's derived series; what the
 * analysis recorded when the source cannot be read (PACS down, study gone).
 */
export async function analysedStudy(analysis: Analysis, deps: AnalysedStudyDeps): Promise<StudyDescriptor> {
  const uid = analysis.order.studyInstanceUid;
  if (deps.imageSource === undefined) return studyFromAnalysis(analysis);
  let study: StudyDescriptor;
  try {
    study = await deps.imageSource.findStudy(uid);
  } catch {
    return studyFromAnalysis(analysis);
  }
  const others = deps.analysisIdsOfStudy === undefined ? [] : await deps.analysisIdsOfStudy(uid);
  return withoutDerivedSeries(study, [analysis.id, ...others], deps);
}
