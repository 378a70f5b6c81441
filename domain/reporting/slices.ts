/**
 * Choosing what to show: the "delineation examples" of the report (the most informative FLAIR slices with the
 * lesion mask outlined), the slices of the overlay preview series, an intensity window for FLAIR display and
 * the brain's bounding box for cropping. Pure functions over domain volumes.
 *
 * Delineation examples — greedy and deterministic:
 * 1. with a change mask, the first pick is the slice with the most new/enlarging voxels;
 * 2. then repeatedly the slice with the largest gain, where gain = area of lesions not yet shown on a picked
 *    slice + ½ × area of lesions already shown (a slice that shows new lesions beats one that shows the same
 *    lesions again), ties to the lower k;
 * 3. picked slices keep at least `minSeparationMm` between them (default 10 mm) so the examples spread over
 *    the brain; slices without lesion voxels are never picked;
 * 4. the result is sorted inferior → superior (ascending k). No lesions → the slice with the largest brain
 *    cross-section (when a FLAIR is given) as a single example, so the report still shows the anatomy.
 */
import { spacingOf } from '../model/geometry.ts';
import { boundingBox, type Mask, type Volume } from '../model/volume.ts';

export interface SliceSelectionOptions {
  /** How many slices at most (default 4). */
  readonly count?: number;
  /** Minimum distance between two picked slices (mm, default 10). */
  readonly minSeparationMm?: number;
  /** New/enlarging lesions: the slice with most of them is picked first. */
  readonly changeMask?: Mask;
  /** Used when there is no lesion: the slice with the largest non-zero cross-section is returned. */
  readonly flair?: Volume;
}

/** Per slice k: lesion voxels per label (label map, or a binary mask as one label). */
function perSliceLabelAreas(labels: Volume): Map<number, number>[] {
  const [nx, ny, nz] = labels.dims;
  const n = nx * ny;
  const out: Map<number, number>[] = [];
  for (let k = 0; k < nz; k++) {
    const m = new Map<number, number>();
    const base = k * n;
    for (let p = 0; p < n; p++) {
      const l = labels.data[base + p];
      if (l !== 0) m.set(l, (m.get(l) ?? 0) + 1);
    }
    out.push(m);
  }
  return out;
}

/** Number of non-zero voxels on each slice k. */
export function sliceAreas(v: Volume): Int32Array {
  const [nx, ny, nz] = v.dims;
  const n = nx * ny;
  const out = new Int32Array(nz);
  for (let k = 0; k < nz; k++) {
    let c = 0;
    const base = k * n;
    for (let p = 0; p < n; p++) if (v.data[base + p] !== 0) c++;
    out[k] = c;
  }
  return out;
}

/** Slices k that hold any non-zero voxel, ascending. */
export function nonEmptySlices(v: Volume): number[] {
  const areas = sliceAreas(v);
  const out: number[] = [];
  for (let k = 0; k < areas.length; k++) if (areas[k] > 0) out.push(k);
  return out;
}

function argmax(values: ArrayLike<number>, allowed: (k: number) => boolean): number {
  let best = -1;
  for (let k = 0; k < values.length; k++)
    if (allowed(k) && values[k] > 0 && (best < 0 || values[k] > values[best])) best = k;
  return best;
}

/**
 * The most informative slices (k, ascending) of a lesion label map or binary mask; see the module comment.
 */
export function selectDelineationSlices(labels: Volume, options: SliceSelectionOptions = {}): number[] {
  const count = Math.max(1, Math.floor(options.count ?? 4));
  const spacingK = spacingOf(labels.affine)[2];
  const minSep = Math.max(1, Math.ceil((options.minSeparationMm ?? 10) / spacingK - 1e-9));
  const areas = perSliceLabelAreas(labels);
  const nz = areas.length;
  const picked: number[] = [];
  const shown = new Set<number>();
  const farEnough = (k: number): boolean => picked.every((p) => Math.abs(p - k) >= minSep);
  const take = (k: number): void => {
    picked.push(k);
    for (const l of areas[k].keys()) shown.add(l);
  };
  if (options.changeMask !== undefined) {
    const k = argmax(sliceAreas(options.changeMask), (x) => x < nz && areas[x].size > 0);
    if (k >= 0) take(k);
  }
  while (picked.length < count) {
    let best = -1;
    let bestGain = 0;
    for (let k = 0; k < nz; k++) {
      if (!farEnough(k) || areas[k].size === 0) continue;
      let gain = 0;
      for (const [l, a] of areas[k]) gain += shown.has(l) ? a / 2 : a;
      if (gain > bestGain) {
        best = k;
        bestGain = gain;
      }
    }
    if (best < 0) break;
    take(best);
  }
  if (picked.length === 0 && options.flair !== undefined) {
    const k = argmax(sliceAreas(options.flair), () => true);
    if (k >= 0) picked.push(k);
  }
  return picked.sort((a, b) => a - b);
}

export interface IntensityWindow {
  readonly low: number;
  readonly high: number;
}

/**
 * Display window of a FLAIR: from the `lowPercentile` to the `highPercentile` of its non-zero voxels
 * (default 0.5 % and 99.7 %; exact order statistics over at most 250 000 evenly strided voxels), so a
 * skull-stripped zero background and a few very bright voxels do not compress the brain's grey levels.
 */
export function autoWindow(v: Volume, lowPercentile = 0.5, highPercentile = 99.7): IntensityWindow {
  let n = 0;
  for (let p = 0; p < v.data.length; p++) if (v.data[p] !== 0 && Number.isFinite(v.data[p])) n++;
  if (n === 0) return { low: 0, high: 1 };
  const stride = Math.max(1, Math.floor(n / 250_000));
  const sample = new Float64Array(Math.ceil(n / stride));
  let seen = 0;
  let m = 0;
  for (let p = 0; p < v.data.length; p++) {
    const x = v.data[p];
    if (x === 0 || !Number.isFinite(x)) continue;
    if (seen++ % stride === 0 && m < sample.length) sample[m++] = x;
  }
  const sorted = sample.subarray(0, m).sort();
  const at = (pct: number): number => sorted[Math.min(m - 1, Math.max(0, Math.round((pct / 100) * (m - 1))))];
  const low = at(lowPercentile);
  const high = at(highPercentile);
  if (high > low) return { low, high };
  return sorted[m - 1] > sorted[0]
    ? { low: sorted[0], high: sorted[m - 1] }
    : { low: sorted[0] - 1, high: sorted[0] + 1 };
}

/** In-plane bounding box [i0, i1) × [j0, j1) of the non-zero voxels over all slices, or null when empty. */
export function inPlaneBounds(v: Volume): { i0: number; i1: number; j0: number; j1: number } | null {
  const b = boundingBox(v);
  return b === null ? null : { i0: b.min[0], i1: b.max[0], j0: b.min[1], j1: b.max[1] };
}
