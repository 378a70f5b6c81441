/**
 * Per-channel intensity normalisation exactly as a manifest's ChannelNormalization says (see
 * domain/model/manifest.ts). Statistics are computed in float64; the result is float32.
 */
import { DomainError } from '../errors.ts';
import type { ChannelNormalization } from '../model/manifest.ts';
import type { VoxelArray } from '../model/volume.ts';

/** k-th smallest (0-based) of `a`, reordering `a` in place (quickselect, median-of-three pivots). */
export function kthSmallest(a: Float64Array, k: number): number {
  if (k < 0 || k >= a.length) throw new RangeError(`k = ${k} outside 0..${a.length - 1}`);
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    // median of three into a[mid]
    if (a[mid] < a[lo]) swap(a, mid, lo);
    if (a[hi] < a[lo]) swap(a, hi, lo);
    if (a[hi] < a[mid]) swap(a, hi, mid);
    const pivot = a[mid];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        swap(a, i, j);
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i];
  a[i] = a[j];
  a[j] = t;
}

/**
 * Percentiles (0–100) with numpy's default 'linear' interpolation: rank p/100 · (n − 1) between the two
 * neighbouring order statistics. `values` is reordered.
 */
export function percentiles(values: Float64Array, ps: readonly number[]): number[] {
  const n = values.length;
  if (n === 0) throw new RangeError('percentile of an empty set');
  return ps.map((p) => {
    if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile ${p} outside [0, 100]`);
    const rank = (p / 100) * (n - 1);
    const k = Math.floor(rank);
    const frac = rank - k;
    const a = kthSmallest(values, k);
    if (frac === 0 || k + 1 >= n) return a;
    // the next order statistic is the smallest value right of k after selection
    let b = Infinity;
    for (let x = k + 1; x < n; x++) if (values[x] < b) b = values[x];
    return a + (b - a) * frac;
  });
}

/** Which voxels define the statistics for `norm` (null = all voxels). */
function selection(
  data: VoxelArray,
  norm: ChannelNormalization,
  brain: Uint8Array | undefined,
): Uint8Array | null {
  if (norm.mask === 'all' || (norm.mask === 'brain' && brain === undefined)) return null;
  if (norm.mask === 'brain') return brain ?? null;
  const m = new Uint8Array(data.length);
  for (let x = 0; x < data.length; x++) m[x] = data[x] !== 0 ? 1 : 0;
  return m;
}

/**
 * Normalises one channel. `brain` (same length, non-zero = inside) is the brain mask on the same grid; for
 * mask 'brain' without one, all voxels count. Throws INFERENCE.EMPTY_NORMALIZATION_MASK when no voxel is selected
 * and INFERENCE.NON_FINITE_INPUT for NaN/±Inf intensities.
 */
export function normalizeChannel(
  data: VoxelArray,
  norm: ChannelNormalization,
  brain?: Uint8Array,
  channelName = 'channel',
): Float32Array {
  const n = data.length;
  if (brain !== undefined && brain.length !== n)
    throw new RangeError(`brain mask has ${brain.length} voxels, the channel ${n}`);
  for (let x = 0; x < n; x++)
    if (!Number.isFinite(data[x]))
      throw new DomainError('INFERENCE.NON_FINITE_INPUT', `${channelName} has non-finite intensities`, {
        issueType: 'invalid',
        details: { channel: channelName, voxel: x },
      });
  const sel = selection(data, norm, brain);
  let count = n;
  if (sel !== null) {
    count = 0;
    for (let x = 0; x < n; x++) if (sel[x] !== 0) count++;
  }
  if (count === 0)
    throw new DomainError(
      'INFERENCE.EMPTY_NORMALIZATION_MASK',
      `no voxel of ${channelName} lies in the '${norm.mask}' normalisation mask`,
      { issueType: 'invalid', details: { channel: channelName, mask: norm.mask } },
    );
  let lo = -Infinity;
  let hi = Infinity;
  if (norm.clipPercentiles !== undefined) {
    const v = new Float64Array(count);
    let o = 0;
    for (let x = 0; x < n; x++) if (sel === null || sel[x] !== 0) v[o++] = data[x];
    [lo, hi] = percentiles(v, norm.clipPercentiles);
  }
  if (norm.method === 'fixed' && norm.clipValues !== undefined) {
    lo = Math.max(lo, norm.clipValues[0]);
    hi = Math.min(hi, norm.clipValues[1]);
  }
  const clip = (v: number): number => (v < lo ? lo : v > hi ? hi : v);
  const out = new Float32Array(n);
  switch (norm.method) {
    case 'zscore': {
      let sum = 0;
      for (let x = 0; x < n; x++) if (sel === null || sel[x] !== 0) sum += clip(data[x]);
      const mean = sum / count;
      let ss = 0;
      for (let x = 0; x < n; x++)
        if (sel === null || sel[x] !== 0) {
          const d = clip(data[x]) - mean;
          ss += d * d;
        }
      const std = Math.max(Math.sqrt(ss / count), 1e-8);
      for (let x = 0; x < n; x++) out[x] = (clip(data[x]) - mean) / std;
      break;
    }
    case 'minmax': {
      let mn = Infinity;
      let mx = -Infinity;
      for (let x = 0; x < n; x++)
        if (sel === null || sel[x] !== 0) {
          const v = clip(data[x]);
          if (v < mn) mn = v;
          if (v > mx) mx = v;
        }
      const range = Math.max(mx - mn, 1e-8);
      for (let x = 0; x < n; x++) {
        const v = (clip(data[x]) - mn) / range;
        out[x] = v < 0 ? 0 : v > 1 ? 1 : v;
      }
      break;
    }
    case 'fixed': {
      const mean = norm.mean ?? 0;
      const std = norm.std ?? 1;
      if (!(std > 0)) throw new RangeError('fixed normalisation needs std > 0');
      for (let x = 0; x < n; x++) out[x] = (clip(data[x]) - mean) / std;
      break;
    }
    case 'none':
      for (let x = 0; x < n; x++) out[x] = clip(data[x]);
      break;
  }
  if (sel !== null) {
    const outside = norm.outsideValue ?? 0;
    for (let x = 0; x < n; x++) if (sel[x] === 0) out[x] = outside;
  }
  return out;
}
