/**
 * Segmentation evaluation against a reference mask: voxel Dice, volumes, and lesion-wise detection with the
 * MSSEG rules (Commowick et al., Sci Rep 2018, §"Evaluation metrics"; as implemented by anima's
 * animaSegPerfAnalyzer — getDetectionMarks / getTruePositiveLesions / falsePositiveRatioTester).
 *
 * Lesion-wise rules, with ref lesions R_i and predicted lesions P_j (connected components, default face
 * connectivity as in anima, each strictly larger than `minVolumeMm3` — smaller ones become background on
 * both sides) and O(i, j) = |R_i ∩ P_j| (j = 0 / i = 0 meaning "outside every lesion" of the other mask):
 *
 *  A reference lesion R_i is DETECTED (a true positive for recall) when both hold:
 *   (1) overlap: Σ_j≥1 O(i, j) / |R_i| > α (α = 0.10);
 *   (2) the predicted lesions that overlap R_i, taken in decreasing order of overlap, are each tested
 *       until the overlap taken so far exceeds γ (γ = 0.65) of R_i's detected voxels Σ_j≥1 O(i, j):
 *       every tested P_j must not lie outside the reference lesions by more than β (β = 0.70):
 *       O(0, j) / |P_j| ≤ β. One tested P_j failing makes R_i undetected.
 *  A predicted lesion P_j is a TRUE POSITIVE (for precision) by the same test with the roles swapped:
 *   overlap Σ_i≥1 O(i, j) / |P_j| > α, and the overlapping R_i (decreasing overlap, until γ of the overlap)
 *   each satisfy O(i, 0) / |R_i| ≤ β (the reference lesion does not lie mostly outside the prediction).
 *  recall (sensitivity) = detected R / #R;  precision (PPV) = true-positive P / #P;  F1 = 2PR / (P + R).
 * Zero-overlap lesions are never tested (anima reaches them only after the overlap sum reached 100 %).
 * Where anima reports 0 for an undefined ratio (no lesions on a side) we report null.
 */
import { spacingOf } from '../model/geometry.ts';
import { sameGrid, type Mask } from '../model/volume.ts';
import { DomainError } from '../errors.ts';
import {
  labelComponents,
  minVoxelsForVolume,
  relabelBySize,
  type Connectivity,
} from '../lesions/connected-components.ts';

export interface DetectionParams {
  /** Minimum overlap fraction of a lesion (strictly greater). Default 0.10. */
  readonly alpha: number;
  /** Maximum fraction of a contributing lesion outside the other mask's lesions. Default 0.70. */
  readonly beta: number;
  /** Stop testing contributors once this fraction of the overlap is covered (strictly greater). Default 0.65. */
  readonly gamma: number;
  /** Default 6 (face connectivity, as anima). */
  readonly connectivity: Connectivity;
  /** Lesions must be strictly larger (mm³). Default 3. */
  readonly minVolumeMm3: number;
}

export const MSSEG_PARAMS: DetectionParams = {
  alpha: 0.1,
  beta: 0.7,
  gamma: 0.65,
  connectivity: 6,
  minVolumeMm3: 3,
};

export interface LesionwiseScores {
  readonly refLesions: number;
  readonly predLesions: number;
  /** Reference lesions detected (true positives for recall). */
  readonly detectedRefLesions: number;
  /** Predicted lesions that are true positives (for precision). */
  readonly truePositivePredLesions: number;
  readonly falsePositiveLesions: number;
  readonly falseNegativeLesions: number;
  readonly precision: number | null;
  readonly recall: number | null;
  readonly f1: number | null;
}

export interface SegmentationScores extends LesionwiseScores {
  /** Voxel Dice 2|P∩R| / (|P| + |R|) on the masks as given (no size filter); null when both are empty. */
  readonly dice: number | null;
  readonly predVolumeMl: number;
  readonly refVolumeMl: number;
  /** pred − ref (mL). */
  readonly volumeErrorMl: number;
  readonly absVolumeErrorMl: number;
  /** 100 · (pred − ref) / ref; null when ref is empty. */
  readonly relativeVolumeErrorPercent: number | null;
}

function checkGrids(pred: Mask, ref: Mask): void {
  if (!sameGrid(pred, ref))
    throw new DomainError(
      'EVAL.GRID_MISMATCH',
      `prediction (${pred.dims.join('×')}) and reference (${ref.dims.join('×')}) are not on the same grid; resample the prediction first`,
      { issueType: 'invalid' },
    );
}

/** Voxel Dice of two binary masks on one grid (non-zero = foreground). */
export function dice(pred: Mask, ref: Mask): number | null {
  checkGrids(pred, ref);
  let inter = 0,
    a = 0,
    b = 0;
  const p = pred.data,
    r = ref.data;
  for (let x = 0; x < p.length; x++) {
    const u = p[x] !== 0,
      v = r[x] !== 0;
    if (u) a++;
    if (v) b++;
    if (u && v) inter++;
  }
  return a + b === 0 ? null : (2 * inter) / (a + b);
}

/**
 * Decides for every lesion of side A (rows) whether it is a true positive against side B (columns).
 * `overlap(i, j)` = voxels of A_i ∩ B_j, index 0 = outside every lesion of that side; sizes are lesion sizes.
 */
function truePositives(
  na: number,
  nb: number,
  overlap: (i: number, j: number) => number,
  sizeA: Int32Array,
  sizeB: Int32Array,
  p: DetectionParams,
): number {
  let tp = 0;
  for (let i = 1; i <= na; i++) {
    const contributors: { j: number; o: number }[] = [];
    let detected = 0;
    for (let j = 1; j <= nb; j++) {
      const o = overlap(i, j);
      if (o > 0) {
        contributors.push({ j, o });
        detected += o;
      }
    }
    if (!(detected / sizeA[i] > p.alpha)) continue;
    contributors.sort((x, y) => y.o - x.o || x.j - y.j);
    let cum = 0;
    let ok = true;
    for (const { j, o } of contributors) {
      const outside = overlap(0, j) / sizeB[j];
      if (outside > p.beta) {
        ok = false;
        break;
      }
      cum += o / detected;
      if (cum > p.gamma) break;
    }
    if (ok) tp++;
  }
  return tp;
}

/** Lesion-wise detection counts and precision/recall/F1 under the MSSEG rules (see the file comment). */
export function lesionwiseDetection(
  pred: Mask,
  ref: Mask,
  params: Partial<DetectionParams> = {},
): LesionwiseScores {
  checkGrids(pred, ref);
  const p: DetectionParams = { ...MSSEG_PARAMS, ...params };
  const sp = spacingOf(ref.affine);
  const minVox = minVoxelsForVolume(p.minVolumeMm3, sp[0] * sp[1] * sp[2]);
  const r = relabelBySize(labelComponents(ref, p.connectivity), minVox);
  const s = relabelBySize(labelComponents(pred, p.connectivity), minVox);
  const nr = r.count,
    ns = s.count;
  const cols = ns + 1;
  const table = new Float64Array((nr + 1) * cols);
  const rl = r.labels,
    sl = s.labels;
  for (let x = 0; x < rl.length; x++) {
    const a = rl[x],
      b = sl[x];
    if (a !== 0 || b !== 0) table[a * cols + b]++;
  }
  const o = (i: number, j: number): number => table[i * cols + j];
  const detected = nr > 0 && ns > 0 ? truePositives(nr, ns, o, r.sizes, s.sizes, p) : 0;
  const tpPred = nr > 0 && ns > 0 ? truePositives(ns, nr, (i, j) => o(j, i), s.sizes, r.sizes, p) : 0;
  const precision = ns > 0 ? tpPred / ns : null;
  const recall = nr > 0 ? detected / nr : null;
  const f1 =
    precision === null || recall === null
      ? null
      : precision + recall === 0
        ? 0
        : (2 * precision * recall) / (precision + recall);
  return {
    refLesions: nr,
    predLesions: ns,
    detectedRefLesions: detected,
    truePositivePredLesions: tpPred,
    falsePositiveLesions: ns - tpPred,
    falseNegativeLesions: nr - detected,
    precision,
    recall,
    f1,
  };
}

/** Everything `mslesion evaluate` reports for one case. */
export function evaluateSegmentation(
  pred: Mask,
  ref: Mask,
  params: Partial<DetectionParams> = {},
): SegmentationScores {
  checkGrids(pred, ref);
  const sp = spacingOf(ref.affine);
  const voxMl = (sp[0] * sp[1] * sp[2]) / 1000;
  let a = 0,
    b = 0;
  for (let x = 0; x < pred.data.length; x++) {
    if (pred.data[x] !== 0) a++;
    if (ref.data[x] !== 0) b++;
  }
  const predVolumeMl = a * voxMl;
  const refVolumeMl = b * voxMl;
  return {
    dice: dice(pred, ref),
    predVolumeMl,
    refVolumeMl,
    volumeErrorMl: predVolumeMl - refVolumeMl,
    absVolumeErrorMl: Math.abs(predVolumeMl - refVolumeMl),
    relativeVolumeErrorPercent: b === 0 ? null : (100 * (a - b)) / b,
    ...lesionwiseDetection(pred, ref, params),
  };
}
