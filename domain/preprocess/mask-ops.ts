/**
 * Measurements on masks for preprocessing: voxel count, volume, Dice, thresholding, and skull-stripped-input
 * detection. The morphology itself (dilation, erosion, hole filling, largest component, distance transforms)
 * is in domain/imaging/morphology.ts.
 */
import { spacingOf } from '../model/geometry.ts';
import { createVolume, type Mask, type Volume } from '../model/volume.ts';
import { largestComponent } from '../imaging/morphology.ts';
import { sampledPercentiles } from './filters.ts';

/** Number of non-zero voxels. */
export function countVoxels(mask: Mask): number {
  let n = 0;
  for (const v of mask.data) if (v !== 0) n++;
  return n;
}

/** Volume of the non-zero voxels in millilitres. */
export function maskVolumeMl(mask: Mask): number {
  const s = spacingOf(mask.affine);
  return (countVoxels(mask) * s[0] * s[1] * s[2]) / 1000;
}

/** Dice overlap of two masks on the same grid (1 when both are empty). */
export function dice(a: Mask, b: Mask): number {
  if (a.data.length !== b.data.length) throw new RangeError('masks are on different grids');
  let inter = 0;
  let na = 0;
  let nb = 0;
  for (let x = 0; x < a.data.length; x++) {
    const p = a.data[x] !== 0;
    const q = b.data[x] !== 0;
    if (p) na++;
    if (q) nb++;
    if (p && q) inter++;
  }
  return na + nb === 0 ? 1 : (2 * inter) / (na + nb);
}

/** Voxels where `v` is above `threshold`. */
export function thresholdMask(v: Volume, threshold: number): Mask {
  const out = new Uint8Array(v.data.length);
  for (let x = 0; x < out.length; x++) out[x] = v.data[x] > threshold ? 1 : 0;
  return createVolume(v.dims, v.affine, out);
}

export interface SkullStrippedReport {
  readonly skullStripped: boolean;
  /** Fraction of voxels exactly equal to the background value (0 for most stripped images). */
  readonly backgroundFraction: number;
  /** Volume of the largest non-background component (mL). */
  readonly foregroundMl: number;
  /** Median intensity on the foreground's in-plane border over the foreground median (brain edge ≳ 0.3, scalp ≲ 0.05). */
  readonly boundaryContrast: number;
  readonly reason: string;
}

/**
 * Is this image already skull-stripped? A stripped image has a large region of exactly one background value
 * (usually 0) around one brain-sized foreground whose edge is tissue (bright relative to the brain), while a raw
 * head image's foreground is the whole head (≈ 2.5–4 L with scalp) edged by faint noise. Measured on the open_ms
 * data: stripped FLAIR/T1/T2 have boundary contrast 0.30–1.11 and foreground ≈ 1.1 L; raw 2-D scans 0.003–0.05
 * and 2.6–3.1 L.
 */
export function detectSkullStripped(v: Volume): SkullStrippedReport {
  const n = v.data.length;
  let bgValue = 0;
  let zeros = 0;
  for (let x = 0; x < n; x++) if (v.data[x] === 0) zeros++;
  if (zeros < 0.05 * n) {
    // a constant other than 0 (e.g. a minimum after rescaling)?
    let mn = Infinity;
    for (let x = 0; x < n; x++) if (v.data[x] < mn) mn = v.data[x];
    let mins = 0;
    for (let x = 0; x < n; x++) if (v.data[x] === mn) mins++;
    if (mins > zeros) {
      bgValue = mn;
      zeros = mins;
    }
  }
  const backgroundFraction = zeros / n;
  const fgMask = new Uint8Array(n);
  for (let x = 0; x < n; x++) fgMask[x] = v.data[x] !== bgValue ? 1 : 0;
  const largest = largestComponent(createVolume(v.dims, v.affine, fgMask), 6);
  const foregroundMl = maskVolumeMl(largest);
  const [nx, ny] = v.dims;
  const fg = largest.data;
  let count = 0;
  for (let x = 0; x < n; x++) if (fg[x] !== 0) count++;
  let boundaryContrast = 0;
  if (count > 0) {
    const boundary: number[] = [];
    const step = Math.max(1, Math.floor(count / 200_000));
    const median = sampledPercentiles(v.data, [50], step, (_val, x) => fg[x] !== 0)[0];
    let p = 0;
    for (let k = 0; k < v.dims[2]; k++)
      for (let j = 0; j < ny; j++)
        for (let i = 0; i < nx; i++, p++) {
          if (fg[p] === 0) continue;
          if (
            i === 0 ||
            j === 0 ||
            i === nx - 1 ||
            j === ny - 1 ||
            fg[p - 1] === 0 ||
            fg[p + 1] === 0 ||
            fg[p - nx] === 0 ||
            fg[p + nx] === 0
          )
            boundary.push(v.data[p] - bgValue);
        }
    if (boundary.length > 0 && median - bgValue > 0) {
      const b = sampledPercentiles(Float64Array.from(boundary), [50], 1)[0];
      boundaryContrast = b / (median - bgValue);
    }
  }
  const bigBackground = backgroundFraction >= 0.2;
  const brainSized = foregroundMl >= 400 && foregroundMl <= 2200;
  const tissueEdge = boundaryContrast >= 0.2;
  const skullStripped = bigBackground && brainSized && tissueEdge;
  const reason = skullStripped
    ? `background ${(100 * backgroundFraction).toFixed(0)} %, foreground ${foregroundMl.toFixed(0)} mL with a tissue edge (contrast ${boundaryContrast.toFixed(2)})`
    : !bigBackground
      ? `only ${(100 * backgroundFraction).toFixed(0)} % of voxels are background`
      : !brainSized
        ? `foreground ${foregroundMl.toFixed(0)} mL is not brain-sized (400–2200 mL)`
        : `foreground edge is faint (contrast ${boundaryContrast.toFixed(2)} < 0.2): a head, not a brain`;
  return { skullStripped, backgroundFraction, foregroundMl, boundaryContrast, reason };
}
