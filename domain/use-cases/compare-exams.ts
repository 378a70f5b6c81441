/**
 * Longitudinal comparison of a prior and a current exam (domain/longitudinal/README.md):
 *   1. register the prior FLAIR onto the current FLAIR (rigid, Mattes mutual information, multi-resolution —
 *      domain/preprocess/registration.ts), unless a transform is given; quality = final MI and the NCC of the
 *      two FLAIRs after registration;
 *   2. label the lesions of each exam on its own grid (same connectivity / minimum size as the lesion table);
 *   3. carry the prior lesion label map onto the current grid (label-aware resampling through the transform,
 *      prior ids kept);
 *   4. match and classify (domain/longitudinal/match.ts) → change mask (1 new, 2 enlarged) on the current FLAIR
 *      grid, the change table and the ChangeSummary.
 * Codes: LONGITUDINAL.GRID_MISMATCH (a mask is not on its FLAIR's grid), LONGITUDINAL.INVALID_OPTION, and those of
 * registration (REGISTRATION.*).
 */
import type { ChangeSummary, RegistrationQuality } from '../model/analysis.ts';
import { spacingOf, type Mat4 } from '../model/geometry.ts';
import { sameGrid, type Mask, type Volume } from '../model/volume.ts';
import { DomainError } from '../errors.ts';
import { labelLesions, voxelVolumeMm3, type LesionAnalysisOptions } from '../lesions/lesion-table.ts';
import { matchLesions, type MatchOptions } from '../longitudinal/match.ts';
import { registerImages, type RegistrationOptions } from '../preprocess/registration.ts';
import { gridOf, resampleLabels, resampleLinear } from '../preprocess/resample.ts';

export interface ExamImages {
  readonly flair: Volume;
  /** Binary lesion mask on the FLAIR grid. */
  readonly mask: Mask;
}

export interface CompareExamsOptions {
  /** Options for registerImages (fixed = current FLAIR, moving = prior FLAIR). Default rigid MI. */
  readonly registration?: RegistrationOptions;
  /** Current LPS → prior LPS (ITK convention); skips the registration when given. */
  readonly transform?: Mat4;
  readonly match?: MatchOptions;
  /** Lesion labelling of both exams (default 26-connectivity, > 3 mm³). */
  readonly lesions?: LesionAnalysisOptions;
  readonly priorStudyInstanceUid?: string;
  readonly priorStudyDate?: string;
}

export interface ChangeResult {
  readonly summary: ChangeSummary;
  /** 1 = new, 2 = enlarged, on the current FLAIR grid. */
  readonly changeMask: Mask;
  /** Current lesion ids (1 = largest) on the current grid: the ids of the change table. */
  readonly currentLesions: Volume<Int32Array>;
  /** Prior lesion ids on the prior grid, and carried onto the current grid. */
  readonly priorLesions: Volume<Int32Array>;
  readonly priorLesionsOnCurrent: Volume<Int32Array>;
  /** Current LPS → prior LPS. */
  readonly transform: Mat4;
  readonly warnings: readonly string[];
}

function checkExam(e: ExamImages, which: string): void {
  if (!sameGrid(e.mask, e.flair))
    throw new DomainError(
      'LONGITUDINAL.GRID_MISMATCH',
      `the ${which} lesion mask is not on the ${which} FLAIR grid`,
      {
        issueType: 'invalid',
      },
    );
}

/** NCC of the current FLAIR and the prior FLAIR pulled through `transform`, over voxels where both are > 0. */
function nccAfter(current: Volume, prior: Volume, transform: Mat4): number {
  const moved = resampleLinear(prior, gridOf(current), { transform });
  let n = 0,
    sa = 0,
    sb = 0,
    saa = 0,
    sbb = 0,
    sab = 0;
  const a = current.data,
    b = moved.data;
  for (let x = 0; x < a.length; x++) {
    const u = a[x],
      v = b[x];
    if (!(u > 0 && v > 0)) continue;
    n++;
    sa += u;
    sb += v;
    saa += u * u;
    sbb += v * v;
    sab += u * v;
  }
  if (n < 2) return 0;
  const cov = sab - (sa * sb) / n;
  const va = saa - (sa * sa) / n;
  const vb = sbb - (sb * sb) / n;
  return va > 0 && vb > 0 ? cov / Math.sqrt(va * vb) : 0;
}

export function compareExams(
  prior: ExamImages,
  current: ExamImages,
  options: CompareExamsOptions = {},
): ChangeResult {
  checkExam(prior, 'prior');
  checkExam(current, 'current');
  const warnings: string[] = [];
  let transform: Mat4;
  let registration: RegistrationQuality;
  if (options.transform !== undefined) {
    transform = options.transform;
    const ncc = nccAfter(current.flair, prior.flair, transform);
    registration = { method: 'given transform', metric: 'ncc', value: ncc, ncc };
  } else {
    const r = registerImages(current.flair, prior.flair, options.registration);
    transform = r.matrix;
    registration = {
      method: `${r.transform}, ${r.levels.map((l) => l.spacing).join('/')} mm pyramid, ${r.initialization} initialisation, ${r.iterations} iterations`,
      metric: r.metric === 'mi' ? 'mattes-mutual-information' : 'ncc',
      value: r.value,
      ncc: r.ncc,
    };
  }
  if (registration.ncc !== undefined && registration.ncc < 0.5)
    warnings.push(
      `registration quality is low (NCC ${registration.ncc.toFixed(2)} after registration): check the change results`,
    );

  const priorLabelled = labelLesions(prior.mask, options.lesions);
  const priorLabels = priorLabelled.labelMap;
  const currentLabels = labelLesions(current.mask, options.lesions).labelMap;
  const priorOnCurrent = resampleLabels(priorLabels, gridOf(current.flair), { transform });
  // volumes of the prior lesions on the prior's own grid (the ±30 % test compares native volumes)
  const priorVoxMl = voxelVolumeMm3(prior.mask.affine) / 1000;
  const priorVolumesMl = Float64Array.from(priorLabelled.sizes, (n) => n * priorVoxMl);
  const thickness = Math.max(...spacingOf(prior.mask.affine), ...spacingOf(current.mask.affine));
  const m = matchLesions(priorOnCurrent, currentLabels, {
    sliceThicknessMm: thickness,
    ...options.match,
    priorVolumesMl,
  });

  const count = (c: string): number => m.changes.filter((x) => x.class === c).length;
  let priorTotal = 0;
  let currentTotal = 0;
  for (let a = 1; a < priorVolumesMl.length; a++) priorTotal += priorVolumesMl[a];
  for (let b = 1; b < m.currentVolumesMl.length; b++) currentTotal += m.currentVolumesMl[b];
  const priorIdsOnCurrent = new Set<number>();
  for (const v of priorOnCurrent.data) if (v !== 0) priorIdsOnCurrent.add(v);
  const priorIds = new Set<number>();
  for (const v of priorLabels.data) if (v !== 0) priorIds.add(v);
  const lost = priorIds.size - priorIdsOnCurrent.size;
  if (lost > 0)
    warnings.push(`${lost} prior lesion(s) fell outside the current field of view or vanished on resampling`);

  const summary: ChangeSummary = {
    ...(options.priorStudyInstanceUid === undefined
      ? {}
      : { priorStudyInstanceUid: options.priorStudyInstanceUid }),
    ...(options.priorStudyDate === undefined ? {} : { priorStudyDate: options.priorStudyDate }),
    newCount: count('new'),
    enlargedCount: count('enlarged'),
    disappearedCount: count('disappeared'),
    shrunkCount: count('shrunk'),
    stableCount: count('stable'),
    mergedCount: count('merged'),
    splitCount: count('split'),
    priorTotalVolumeMl: priorTotal,
    totalVolumeChangeMl: currentTotal - priorTotal,
    totalVolumeChangePercent: priorTotal > 0 ? (100 * (currentTotal - priorTotal)) / priorTotal : null,
    registration,
    changes: m.changes,
  };
  return {
    summary,
    changeMask: m.changeMask,
    currentLesions: currentLabels,
    priorLesions: priorLabels,
    priorLesionsOnCurrent: priorOnCurrent,
    transform,
    warnings,
  };
}
