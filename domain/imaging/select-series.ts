/**
 * Ranking and selection of a study's series for an analysis. Every series is classified by the rules
 * (series-rules.ts); candidates of one role are ranked:
 *   1. 3D before 2D before unknown acquisition,
 *   2. then thinner slices first (SliceThickness; a series without it ranks after those with it),
 *   3. then the most recent series (highest SeriesNumber) first,
 *   4. then SeriesInstanceUID, so the order is always the same.
 * The analysis uses the best FLAIR (required), the best T2 and the best pre-contrast T1 (optional; a T1C is
 * never used as the T1 channel). When the best candidate cannot be built into a volume the next one is tried
 * (load-study.ts).
 */
import type { SeriesFinding, SeriesRole } from '../model/analysis.ts';
import type { SeriesDescriptor, StudyDescriptor } from '../ports/image-source.port.ts';
import { classifySeries, type SeriesClassification, type SeriesRules } from './series-rules.ts';

export interface ClassifiedSeries {
  readonly series: SeriesDescriptor;
  readonly classification: SeriesClassification;
  /** 1-based rank among the series of the same role (absent for OTHER). */
  readonly rank?: number;
}

const ACQ_ORDER = { '3D': 0, '2D': 1, unknown: 2 } as const;

export function compareCandidates(a: ClassifiedSeries, b: ClassifiedSeries): number {
  const acq = ACQ_ORDER[a.classification.acquisition] - ACQ_ORDER[b.classification.acquisition];
  if (acq !== 0) return acq;
  const ta = a.series.attributes.sliceThickness ?? Number.POSITIVE_INFINITY;
  const tb = b.series.attributes.sliceThickness ?? Number.POSITIVE_INFINITY;
  if (ta !== tb) return ta < tb ? -1 : 1;
  const na = a.series.seriesNumber ?? Number.NEGATIVE_INFINITY;
  const nb = b.series.seriesNumber ?? Number.NEGATIVE_INFINITY;
  if (na !== nb) return na > nb ? -1 : 1;
  return a.series.seriesInstanceUid < b.series.seriesInstanceUid
    ? -1
    : a.series.seriesInstanceUid > b.series.seriesInstanceUid
      ? 1
      : 0;
}

/** Classifies every series of the study and ranks the candidates of each role. */
export function classifyStudy(study: StudyDescriptor, rules: SeriesRules): ClassifiedSeries[] {
  const classified = study.series.map((series) => ({
    series,
    classification: classifySeries(series, rules),
  }));
  const ranks = new Map<string, number>();
  for (const role of ['FLAIR', 'T2', 'T1', 'T1C'] as const) {
    classified
      .filter((c) => c.classification.role === role)
      .sort(compareCandidates)
      .forEach((c, x) => ranks.set(c.series.seriesInstanceUid, x + 1));
  }
  return classified.map((c) => {
    const rank = ranks.get(c.series.seriesInstanceUid);
    return rank === undefined ? c : { ...c, rank };
  });
}

/** Candidates of a role, best first. */
export function candidates(classified: readonly ClassifiedSeries[], role: SeriesRole): ClassifiedSeries[] {
  return classified.filter((c) => c.classification.role === role).sort(compareCandidates);
}

/** Findings as the analysis records them; `selected` marks the series used, `notes` adds to their reason. */
export function findingsOf(
  classified: readonly ClassifiedSeries[],
  selected: ReadonlySet<string>,
  notes: ReadonlyMap<string, string> = new Map(),
): SeriesFinding[] {
  return classified.map((c) => {
    const note = notes.get(c.series.seriesInstanceUid);
    const description = c.series.attributes.seriesDescription;
    return {
      seriesInstanceUid: c.series.seriesInstanceUid,
      ...(c.series.seriesNumber === undefined ? {} : { seriesNumber: c.series.seriesNumber }),
      ...(description === undefined ? {} : { description }),
      role: c.classification.role,
      acquisition: c.classification.acquisition,
      reason:
        c.classification.reason +
        (c.rank === undefined ? '' : `; rank ${c.rank} of its role`) +
        (note === undefined ? '' : `; ${note}`),
      selected: selected.has(c.series.seriesInstanceUid),
      ...(c.rank === undefined ? {} : { rank: c.rank }),
    };
  });
}
