/**
 * Binary morphology on voxel grids, the one place for it (brain masks, lesion analytics, longitudinal
 * synthesis):
 * - neighbourhoods: `neighbourOffsets(6 | 18 | 26)`, one-voxel dilation of a raw array `dilateVoxels`;
 * - ball morphology in millimetres on Masks (exact Euclidean distance, anisotropic voxels): `dilate`, `erode`,
 *   `closeMask`, `openMask`;
 * - `fillHoles` (3-D, optionally also per slice) and `largestComponent`;
 * - distance transforms: exact `squaredDistanceToMask` (mm²) and the 26-neighbour `chamferDistance` (mm).
 * Every function returns 0/1 data and leaves its input untouched.
 */
import { spacingOf, type Vec3 } from '../model/geometry.ts';
import { createVolume, voxelCount, type Mask } from '../model/volume.ts';
import { labelComponents, type Connectivity } from '../lesions/connected-components.ts';

function binaryOf(mask: Mask): Uint8Array {
  const out = new Uint8Array(mask.data.length);
  for (let x = 0; x < out.length; x++) out[x] = mask.data[x] !== 0 ? 1 : 0;
  return out;
}

/** The 3×3×3 neighbour offsets of a connectivity (without the centre). */
export function neighbourOffsets(connectivity: Connectivity): Vec3[] {
  const out: Vec3[] = [];
  for (let dk = -1; dk <= 1; dk++)
    for (let dj = -1; dj <= 1; dj++)
      for (let di = -1; di <= 1; di++) {
        const m = Math.abs(di) + Math.abs(dj) + Math.abs(dk);
        if (m === 0 || (connectivity === 6 && m > 1) || (connectivity === 18 && m > 2)) continue;
        out.push([di, dj, dk]);
      }
  return out;
}

/**
 * Dilates the non-zero voxels of a raw voxel array by one voxel with the given neighbourhood (6, 18, or 26 =
 * the full 3×3×3 cube); the result is 0/1.
 */
export function dilateVoxels(dims: Vec3, data: Uint8Array, connectivity: Connectivity = 26): Uint8Array {
  const [nx, ny, nz] = dims;
  const out = new Uint8Array(data.length);
  const offs = neighbourOffsets(connectivity);
  let p = 0;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, p++) {
        if (data[p] === 0) continue;
        out[p] = 1;
        for (const [di, dj, dk] of offs) {
          const a = i + di,
            b = j + dj,
            c = k + dk;
          if (a < 0 || b < 0 || c < 0 || a >= nx || b >= ny || c >= nz) continue;
          out[a + nx * (b + ny * c)] = 1;
        }
      }
  return out;
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
export function squaredDistanceToMask(dims: Vec3, seed: Uint8Array, spacing: Vec3): Float64Array {
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
  const d2 = squaredDistanceToMask(mask.dims, binaryOf(mask), spacingOf(mask.affine));
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
  const d2 = squaredDistanceToMask(mask.dims, bg, spacingOf(mask.affine));
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

/**
 * Distance in mm from every voxel to the nearest seed voxel (0 on seeds), by a two-pass 3×3×3 chamfer
 * whose weights are the physical lengths of the neighbour steps (a path length: never below the Euclidean
 * distance, at most 13 % above it on isotropic voxels, e.g. 11.5 % along (2, 1, 1)).
 * Voxels that no seed reaches get Infinity. The FLAIR anatomy heuristic (domain/lesions/anatomy.ts) is tuned on
 * these path lengths; use squaredDistanceToMask for exact distances.
 */
export function chamferDistance(dims: Vec3, seeds: Uint8Array, spacing: Vec3): Float32Array {
  const [nx, ny, nz] = dims;
  const d = new Float32Array(seeds.length);
  for (let p = 0; p < seeds.length; p++) d[p] = seeds[p] !== 0 ? 0 : Infinity;
  // forward half of the neighbourhood (offsets earlier in memory order) and its mirror
  const fwd: { di: number; dj: number; dk: number; w: number }[] = [];
  for (const [di, dj, dk] of neighbourOffsets(26)) {
    const lin = di + nx * (dj + ny * dk);
    if (lin < 0) fwd.push({ di, dj, dk, w: Math.hypot(di * spacing[0], dj * spacing[1], dk * spacing[2]) });
  }
  const pass = (sign: 1 | -1): void => {
    const k0 = sign > 0 ? 0 : nz - 1;
    const j0 = sign > 0 ? 0 : ny - 1;
    const i0 = sign > 0 ? 0 : nx - 1;
    for (let k = k0; k >= 0 && k < nz; k += sign)
      for (let j = j0; j >= 0 && j < ny; j += sign)
        for (let i = i0; i >= 0 && i < nx; i += sign) {
          const p = i + nx * (j + ny * k);
          let best = d[p];
          if (best === 0) continue;
          for (const o of fwd) {
            const a = i + sign * o.di,
              b = j + sign * o.dj,
              c = k + sign * o.dk;
            if (a < 0 || b < 0 || c < 0 || a >= nx || b >= ny || c >= nz) continue;
            const v = d[a + nx * (b + ny * c)] + o.w;
            if (v < best) best = v;
          }
          d[p] = best;
        }
  };
  pass(1);
  pass(-1);
  return d;
}
