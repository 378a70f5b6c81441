/**
 * Binary mask operations for brain masks: largest connected component, hole filling (3-D and per slice),
 * morphological dilation / erosion / closing / opening with a ball of a given radius in millimetres (exact
 * Euclidean distance transform, anisotropic voxels handled), Dice, volume, and skull-stripped-input detection.
 */
import { spacingOf, type Vec3 } from '../model/geometry.ts';
import { createVolume, voxelCount, type Mask, type Volume } from '../model/volume.ts';
import { labelComponents, type Connectivity } from '../lesions/connected-components.ts';
import { sampledPercentiles } from './filters.ts';

function binaryOf(mask: Mask): Uint8Array {
  const out = new Uint8Array(mask.data.length);
  for (let x = 0; x < out.length; x++) out[x] = mask.data[x] !== 0 ? 1 : 0;
  return out;
}

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

/** The largest connected component (empty mask stays empty). */
export function largestComponent(mask: Mask, connectivity: Connectivity = 26): Mask {
  const cc = labelComponents(mask, connectivity);
  const out = new Uint8Array(mask.data.length);
  if (cc.count === 0) return createVolume(mask.dims, mask.affine, out);
  let best = 1;
  for (let l = 2; l <= cc.count; l++) if (cc.sizes[l] > cc.sizes[best]) best = l;
  for (let x = 0; x < out.length; x++) out[x] = cc.labels[x] === best ? 1 : 0;
  return createVolume(mask.dims, mask.affine, out);
}

/**
 * Fills holes: background regions (6-connected) that do not touch the volume's border become foreground.
 * With `slicewise`, also fills 2-D holes in every slice across `axis` (default: the axis with the largest
 * spacing, i.e. across thick 2-D slices) — cavities open only at the top or bottom of a cropped scan.
 */
export function fillHoles(mask: Mask, options: { slicewise?: boolean; axis?: 0 | 1 | 2 } = {}): Mask {
  const [nx, ny, nz] = mask.dims;
  const fg = binaryOf(mask);
  const bg = new Uint8Array(fg.length);
  for (let x = 0; x < fg.length; x++) bg[x] = fg[x] === 0 ? 1 : 0;
  const cc = labelComponents({ dims: mask.dims, data: bg }, 6);
  const touches = new Uint8Array(cc.count + 1);
  let p = 0;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, p++) {
        const l = cc.labels[p];
        if (l !== 0 && (i === 0 || j === 0 || k === 0 || i === nx - 1 || j === ny - 1 || k === nz - 1))
          touches[l] = 1;
      }
  const out = fg;
  for (let x = 0; x < out.length; x++) if (cc.labels[x] !== 0 && touches[cc.labels[x]] === 0) out[x] = 1;
  if (options.slicewise === true) {
    const sp = spacingOf(mask.affine);
    const axis = options.axis ?? (sp[2] >= sp[0] && sp[2] >= sp[1] ? 2 : sp[1] >= sp[0] ? 1 : 0);
    fillHolesSlicewise(out, mask.dims, axis);
  }
  return createVolume(mask.dims, mask.affine, out);
}

/** 2-D hole filling in each slice across `axis` (4-connected background flood from the slice border). */
function fillHolesSlicewise(data: Uint8Array, dims: Vec3, axis: 0 | 1 | 2): void {
  const strides = [1, dims[0], dims[0] * dims[1]];
  const [ua, va] = axis === 0 ? [1, 2] : axis === 1 ? [0, 2] : [0, 1];
  const nu = dims[ua];
  const nv = dims[va];
  const su = strides[ua];
  const sv = strides[va];
  const seen = new Uint8Array(nu * nv);
  const stack = new Int32Array(nu * nv);
  for (let s = 0; s < dims[axis]; s++) {
    const base = s * strides[axis];
    seen.fill(0);
    let top = 0;
    const push = (u: number, v: number): void => {
      const q = u + nu * v;
      if (seen[q] !== 0 || data[base + u * su + v * sv] !== 0) return;
      seen[q] = 1;
      stack[top++] = q;
    };
    for (let u = 0; u < nu; u++) {
      push(u, 0);
      push(u, nv - 1);
    }
    for (let v = 0; v < nv; v++) {
      push(0, v);
      push(nu - 1, v);
    }
    while (top > 0) {
      const q = stack[--top];
      const u = q % nu;
      const v = (q - u) / nu;
      if (u > 0) push(u - 1, v);
      if (u < nu - 1) push(u + 1, v);
      if (v > 0) push(u, v - 1);
      if (v < nv - 1) push(u, v + 1);
    }
    for (let v = 0; v < nv; v++)
      for (let u = 0; u < nu; u++) {
        const idx = base + u * su + v * sv;
        if (data[idx] === 0 && seen[u + nu * v] === 0) data[idx] = 1;
      }
  }
}

/**
 * Exact squared Euclidean distance (mm²) from every voxel to the nearest non-zero voxel of `seed`
 * (Felzenszwalb–Huttenlocher lower envelope, one pass per axis, voxel spacing as weights). Infinity when the
 * seed is empty.
 */
export function squaredDistanceToMask(seed: Uint8Array, dims: Vec3, spacing: Vec3): Float64Array {
  const n = voxelCount(dims);
  const f = new Float64Array(n);
  for (let x = 0; x < n; x++) f[x] = seed[x] !== 0 ? 0 : Infinity;
  const maxLen = Math.max(dims[0], dims[1], dims[2]);
  const line = new Float64Array(maxLen);
  const out = new Float64Array(maxLen);
  const v = new Int32Array(maxLen);
  const z = new Float64Array(maxLen + 1);
  const strides = [1, dims[0], dims[0] * dims[1]];
  for (const axis of [0, 1, 2] as const) {
    const len = dims[axis];
    const w = spacing[axis] * spacing[axis];
    const stride = strides[axis];
    const [a1, a2] = axis === 0 ? [1, 2] : axis === 1 ? [0, 2] : [0, 1];
    for (let q2 = 0; q2 < dims[a2]; q2++)
      for (let q1 = 0; q1 < dims[a1]; q1++) {
        const base = q1 * strides[a1] + q2 * strides[a2];
        for (let t = 0; t < len; t++) line[t] = f[base + t * stride];
        distance1d(line, len, w, out, v, z);
        for (let t = 0; t < len; t++) f[base + t * stride] = out[t];
      }
  }
  return f;
}

/** Where the parabolas rooted at p and q (p < q) intersect. */
function intersection(f: Float64Array, w: number, p: number, q: number): number {
  return (f[q] + w * q * q - (f[p] + w * p * p)) / (2 * w * (q - p));
}

/** 1-D squared distance transform with sample spacing² = w: out[q] = min_p w (q − p)² + f[p]. */
function distance1d(
  f: Float64Array,
  n: number,
  w: number,
  out: Float64Array,
  v: Int32Array,
  z: Float64Array,
): void {
  let k = -1;
  for (let q = 0; q < n; q++) {
    if (f[q] === Infinity) continue;
    if (k < 0) {
      k = 0;
      v[0] = q;
      z[0] = -Infinity;
      z[1] = Infinity;
      continue;
    }
    // z[0] = −∞, so the search stops at k = 0 at the latest
    let s = intersection(f, w, v[k], q);
    while (s <= z[k]) {
      k--;
      s = intersection(f, w, v[k], q);
    }
    k++;
    v[k] = q;
    z[k] = s;
    z[k + 1] = Infinity;
  }
  if (k < 0) {
    for (let q = 0; q < n; q++) out[q] = Infinity;
    return;
  }
  let j = 0;
  for (let q = 0; q < n; q++) {
    while (z[j + 1] < q) j++;
    const d = q - v[j];
    out[q] = w * d * d + f[v[j]];
  }
}

/** Dilation by a ball of `radiusMm`. */
export function dilate(mask: Mask, radiusMm: number): Mask {
  if (!(radiusMm > 0)) return createVolume(mask.dims, mask.affine, binaryOf(mask));
  const d2 = squaredDistanceToMask(binaryOf(mask), mask.dims, spacingOf(mask.affine));
  const r2 = radiusMm * radiusMm + 1e-9;
  const out = new Uint8Array(d2.length);
  for (let x = 0; x < out.length; x++) out[x] = d2[x] <= r2 ? 1 : 0;
  return createVolume(mask.dims, mask.affine, out);
}

/**
 * Erosion by a ball of `radiusMm`: a voxel stays when no background voxel lies within the radius. The volume's
 * border is not background (a brain cut by the field of view is not eaten from the cut).
 */
export function erode(mask: Mask, radiusMm: number): Mask {
  const fg = binaryOf(mask);
  if (!(radiusMm > 0)) return createVolume(mask.dims, mask.affine, fg);
  const bg = new Uint8Array(fg.length);
  for (let x = 0; x < fg.length; x++) bg[x] = fg[x] === 0 ? 1 : 0;
  const d2 = squaredDistanceToMask(bg, mask.dims, spacingOf(mask.affine));
  const r2 = radiusMm * radiusMm + 1e-9;
  const out = new Uint8Array(fg.length);
  for (let x = 0; x < out.length; x++) out[x] = fg[x] !== 0 && d2[x] > r2 ? 1 : 0;
  return createVolume(mask.dims, mask.affine, out);
}

/** Closing (dilate then erode): bridges gaps narrower than 2·radius. */
export function closeMask(mask: Mask, radiusMm: number): Mask {
  return erode(dilate(mask, radiusMm), radiusMm);
}

/** Opening (erode then dilate): removes protrusions thinner than 2·radius. */
export function openMask(mask: Mask, radiusMm: number): Mask {
  return dilate(erode(mask, radiusMm), radiusMm);
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
