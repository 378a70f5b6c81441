/**
 * Small image filters used by preprocessing: separable Gaussian smoothing in millimetres (anisotropic voxels
 * handled), robust intensity statistics, and Otsu's threshold.
 */
import { spacingOf, type Vec3 } from '../model/geometry.ts';
import { createVolume, type Volume, type VoxelArray } from '../model/volume.ts';
import { percentiles } from '../inference/normalize.ts';

/** 1-D normalised Gaussian kernel for σ in voxels (radius ⌈3σ⌉); [1] when σ is ~0. */
export function gaussianKernel(sigmaVoxels: number): Float64Array {
  if (!(sigmaVoxels > 0.05)) return Float64Array.of(1);
  const r = Math.max(1, Math.ceil(3 * sigmaVoxels));
  const k = new Float64Array(2 * r + 1);
  let s = 0;
  for (let x = -r; x <= r; x++) {
    const v = Math.exp((-0.5 * x * x) / (sigmaVoxels * sigmaVoxels));
    k[x + r] = v;
    s += v;
  }
  for (let x = 0; x < k.length; x++) k[x] /= s;
  return k;
}

/**
 * Convolves along one voxel axis in place (`data` float32, C-order with i fastest). Weights are renormalised at
 * the borders so that edges keep their level (no dark rim).
 */
function convolveAxis(data: Float32Array, dims: Vec3, axis: 0 | 1 | 2, kernel: Float64Array): void {
  if (kernel.length === 1) return;
  const n = dims[axis];
  const r = (kernel.length - 1) / 2;
  const stride = axis === 0 ? 1 : axis === 1 ? dims[0] : dims[0] * dims[1];
  const line = new Float64Array(n);
  const out = new Float64Array(n);
  const [nx, ny, nz] = dims;
  // iterate over all lines parallel to `axis`
  const outer = axis === 0 ? [ny, nz] : axis === 1 ? [nx, nz] : [nx, ny];
  for (let b = 0; b < outer[1]; b++)
    for (let a = 0; a < outer[0]; a++) {
      const base = axis === 0 ? nx * (a + ny * b) : axis === 1 ? a + nx * ny * b : a + nx * b;
      for (let t = 0; t < n; t++) line[t] = data[base + t * stride];
      for (let t = 0; t < n; t++) {
        let s = 0;
        let w = 0;
        const lo = Math.max(0, t - r);
        const hi = Math.min(n - 1, t + r);
        for (let u = lo; u <= hi; u++) {
          const kw = kernel[u - t + r];
          s += kw * line[u];
          w += kw;
        }
        out[t] = s / w;
      }
      for (let t = 0; t < n; t++) data[base + t * stride] = out[t];
    }
}

/** Gaussian smoothing with σ in millimetres per voxel axis (i, j, k) or one σ for all; float32 result. */
export function gaussianSmooth(v: Volume, sigmaMm: number | Vec3): Volume<Float32Array> {
  const sp = spacingOf(v.affine);
  const s: Vec3 = typeof sigmaMm === 'number' ? [sigmaMm, sigmaMm, sigmaMm] : sigmaMm;
  const data = Float32Array.from(v.data);
  for (const a of [0, 1, 2] as const) convolveAxis(data, v.dims, a, gaussianKernel(s[a] / sp[a]));
  return createVolume(v.dims, v.affine, data);
}

/** Percentiles (0–100) of the voxels where `mask` is non-zero (all voxels when absent). */
export function maskedPercentiles(data: VoxelArray, ps: readonly number[], mask?: Uint8Array): number[] {
  let n = 0;
  if (mask === undefined) n = data.length;
  else for (let x = 0; x < data.length; x++) if (mask[x] !== 0) n++;
  if (n === 0) throw new RangeError('percentile of an empty set');
  const v = new Float64Array(n);
  let o = 0;
  for (let x = 0; x < data.length; x++) if (mask === undefined || mask[x] !== 0) v[o++] = data[x];
  return percentiles(v, ps);
}

/** Percentiles of a strided subsample (every `step`-th voxel) — fast robust statistics on big volumes. */
export function sampledPercentiles(
  data: VoxelArray,
  ps: readonly number[],
  step: number,
  keep?: (value: number, index: number) => boolean,
): number[] {
  const vals: number[] = [];
  for (let x = 0; x < data.length; x += Math.max(1, Math.floor(step)))
    if (keep === undefined || keep(data[x], x)) vals.push(data[x]);
  if (vals.length === 0) throw new RangeError('percentile of an empty set');
  return percentiles(Float64Array.from(vals), ps);
}

/** Otsu's threshold over values in [lo, hi] with `bins` bins (the value maximising between-class variance). */
export function otsuThreshold(data: VoxelArray, lo: number, hi: number, bins = 256, step = 1): number {
  if (!(hi > lo)) return lo;
  const h = new Float64Array(bins);
  const scale = bins / (hi - lo);
  let total = 0;
  for (let x = 0; x < data.length; x += step) {
    const v = data[x];
    if (v < lo || v > hi) continue;
    h[Math.min(bins - 1, Math.floor((v - lo) * scale))]++;
    total++;
  }
  if (total === 0) return lo;
  let sumAll = 0;
  for (let b = 0; b < bins; b++) sumAll += b * h[b];
  let wB = 0;
  let sumB = 0;
  let best = 0;
  let bestVar = -1;
  for (let b = 0; b < bins; b++) {
    wB += h[b];
    if (wB === 0) continue;
    const wF = total - wB;
    if (wF === 0) break;
    sumB += b * h[b];
    const mB = sumB / wB;
    const mF = (sumAll - sumB) / wF;
    const between = wB * wF * (mB - mF) * (mB - mF);
    if (between > bestVar) {
      bestVar = between;
      best = b;
    }
  }
  return lo + (best + 1) / scale;
}
