/**
 * Bias-field (intensity inhomogeneity) correction — a simple N4-like scheme in the log domain:
 *
 *   log I = log T + b,  b smooth.
 *
 * On a coarse grid (default 4 mm) inside the mask (default: the foreground above Otsu's threshold), iterate:
 * 1. sharpen: classify the current corrected log intensities into `classes` tissue classes (1-D k-means), the
 *    tissue estimate of a voxel is its class mean (piecewise-constant T, as N3/N4's sharpened histogram);
 * 2. fit: b = the residual log I − log T smoothed by normalised Gaussian convolution (σ = `sigmaMm`, 0 weight
 *    outside the mask, so the field extends smoothly into the background);
 * 3. centre b to zero mean inside the mask (the overall intensity level is kept).
 * The field is then interpolated onto the image grid and divided out.
 *
 * It is not ITK's N4 (no B-spline lattice, no Wiener deconvolution of the histogram: hard classes absorb part of
 * the field, so it under-corrects): on a real FLAIR with a known ±20 % synthetic field it removes ≈ 60 % of the
 * field's log-standard deviation and adds almost nothing to an already N4-corrected image (1–2 s at 4 mm).
 */
import { spacingOf, type Vec3 } from '../model/geometry.ts';
import { createVolume, type Mask, type Volume } from '../model/volume.ts';
import { gaussianSmooth, otsuThreshold, sampledPercentiles } from './filters.ts';
import { resampleLinear, resampleMask, respacedGrid } from './resample.ts';

export interface BiasFieldOptions {
  /** Voxels that inform the field (any grid). Default: foreground above Otsu's threshold. */
  readonly mask?: Mask;
  /** Working grid spacing (mm), default 4. */
  readonly spacingMm?: number;
  /** Smoothness of the field: Gaussian σ in mm (default 20). */
  readonly sigmaMm?: number;
  /** Sharpen/fit iterations (default 15). */
  readonly iterations?: number;
  /** Tissue classes for the sharpening step (default 3). */
  readonly classes?: number;
}

export interface BiasFieldResult {
  /** Image divided by the field (float32, same grid). */
  readonly corrected: Volume<Float32Array>;
  /** Multiplicative field on the image grid (mean 1 inside the mask). */
  readonly field: Volume<Float32Array>;
  /** Standard deviation of log(field) inside the mask: how strong the correction was. */
  readonly logFieldStd: number;
}

function kmeans1d(values: Float64Array, k: number, iterations = 20): Float64Array {
  const sorted = Float64Array.from(values).sort();
  const centres = new Float64Array(k);
  for (let c = 0; c < k; c++) centres[c] = sorted[Math.floor(((c + 0.5) / k) * (sorted.length - 1))];
  const sums = new Float64Array(k);
  const counts = new Float64Array(k);
  for (let it = 0; it < iterations; it++) {
    sums.fill(0);
    counts.fill(0);
    for (const v of values) {
      let best = 0;
      for (let c = 1; c < k; c++) if (Math.abs(v - centres[c]) < Math.abs(v - centres[best])) best = c;
      sums[best] += v;
      counts[best]++;
    }
    let moved = 0;
    for (let c = 0; c < k; c++)
      if (counts[c] > 0) {
        const m = sums[c] / counts[c];
        moved = Math.max(moved, Math.abs(m - centres[c]));
        centres[c] = m;
      }
    if (moved < 1e-6) break;
  }
  return centres;
}

/** Estimates and removes a smooth multiplicative bias field. */
export function correctBiasField(image: Volume, options: BiasFieldOptions = {}): BiasFieldResult {
  const spacing = options.spacingMm ?? 4;
  const sigma = options.sigmaMm ?? 20;
  const iterations = options.iterations ?? 15;
  const k = options.classes ?? 3;
  const sp = spacingOf(image.affine);
  const coarseGrid = respacedGrid(image, [
    Math.max(spacing, sp[0]),
    Math.max(spacing, sp[1]),
    Math.max(spacing, sp[2]),
  ] as Vec3);
  const coarse = resampleLinear(image, coarseGrid);
  const n = coarse.data.length;
  let mask: Uint8Array;
  if (options.mask !== undefined) mask = resampleMask(options.mask, coarseGrid).data;
  else {
    const step = Math.max(1, Math.floor(image.data.length / 300_000));
    const [lo, hi] = sampledPercentiles(image.data, [1, 99.5], step);
    const t = otsuThreshold(image.data, lo, hi, 128, step);
    mask = new Uint8Array(n);
    for (let x = 0; x < n; x++) mask[x] = coarse.data[x] > t ? 1 : 0;
  }
  // only positive intensities have a logarithm
  let count = 0;
  for (let x = 0; x < n; x++) {
    if (mask[x] !== 0 && !(coarse.data[x] > 0)) mask[x] = 0;
    if (mask[x] !== 0) count++;
  }
  const field = new Float32Array(n); // log field on the coarse grid
  if (count >= 100) {
    const logI = new Float64Array(n);
    for (let x = 0; x < n; x++) if (mask[x] !== 0) logI[x] = Math.log(coarse.data[x]);
    const weight = createVolume(coarseGrid.dims, coarseGrid.affine, Float32Array.from(mask));
    const smoothW = gaussianSmooth(weight, sigma).data;
    const inside = new Float64Array(count);
    for (let it = 0; it < iterations; it++) {
      let o = 0;
      for (let x = 0; x < n; x++) if (mask[x] !== 0) inside[o++] = logI[x] - field[x];
      const centres = kmeans1d(inside, k);
      const residual = new Float32Array(n);
      for (let x = 0; x < n; x++) {
        if (mask[x] === 0) continue;
        const v = logI[x] - field[x];
        let best = 0;
        for (let c = 1; c < k; c++) if (Math.abs(v - centres[c]) < Math.abs(v - centres[best])) best = c;
        residual[x] = logI[x] - centres[best];
      }
      const smoothR = gaussianSmooth(createVolume(coarseGrid.dims, coarseGrid.affine, residual), sigma).data;
      let mean = 0;
      for (let x = 0; x < n; x++) {
        field[x] = smoothW[x] > 1e-6 ? smoothR[x] / smoothW[x] : 0;
        if (mask[x] !== 0) mean += field[x];
      }
      mean /= count;
      for (let x = 0; x < n; x++) field[x] -= mean;
    }
  }
  let s2 = 0;
  for (let x = 0; x < n; x++) if (mask[x] !== 0) s2 += field[x] * field[x];
  const logFieldStd = count > 0 ? Math.sqrt(s2 / count) : 0;
  const fine = resampleLinear(createVolume(coarseGrid.dims, coarseGrid.affine, field), image, {
    antialias: false,
  });
  const mult = new Float32Array(image.data.length);
  const corrected = new Float32Array(image.data.length);
  for (let x = 0; x < mult.length; x++) {
    mult[x] = Math.exp(fine.data[x]);
    corrected[x] = image.data[x] / mult[x];
  }
  return {
    corrected: createVolume(image.dims, image.affine, corrected),
    field: createVolume(image.dims, image.affine, mult),
    logFieldStd,
  };
}
