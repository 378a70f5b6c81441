/**
 * Resampling through patient coordinates: every output voxel centre is mapped to LPS by the target grid's affine,
 * optionally through a patient-space transform (target point → source point, the ITK fixed → moving convention
 * used by registration.ts), then into the source's voxel space by the inverse of its affine.
 *
 * - 'linear': trilinear, float32 out. When the target is coarser than the source, the source is first smoothed
 *   with a Gaussian (σ = √(t² − s²)/2.355 per axis, so the output's resolution matches its spacing) unless
 *   `antialias: false`.
 * - 'nearest': nearest voxel, same voxel type as the source.
 * - 'label': label-aware — each label's trilinear weight among the 8 neighbours is summed and the heaviest label
 *   wins (equivalent to linear interpolation of one-hot maps then argmax; for a binary mask, linear ≥ 0.5).
 *
 * A point is inside the source when its continuous voxel index lies within [−0.5, n − 0.5] on every axis (the
 * voxel's own extent, edge values replicated); outside points get `background` (default 0).
 */
import {
  applyLinear,
  column,
  invert,
  multiply,
  norm,
  spacingOf,
  IDENTITY,
  type Mat4,
  type Vec3,
} from '../model/geometry.ts';
import { createVolume, voxelCount, type Mask, type Volume, type VoxelArray } from '../model/volume.ts';
import { gaussianSmooth } from './filters.ts';

export interface Grid {
  readonly dims: Vec3;
  readonly affine: Mat4;
}

export type Interpolation = 'linear' | 'nearest' | 'label';

export interface ResampleOptions {
  /** Maps target-grid LPS points to source LPS points (default identity). */
  readonly transform?: Mat4;
  /** Value outside the source (default 0). */
  readonly background?: number;
  /** Gaussian pre-smoothing when downsampling with 'linear' (default true). */
  readonly antialias?: boolean;
}

export function gridOf(v: Volume | Grid): Grid {
  return { dims: [v.dims[0], v.dims[1], v.dims[2]], affine: [...v.affine] };
}

/** LPS position of the grid's centre ((dims − 1) / 2 in voxels). */
export function gridCentre(g: Grid): Vec3 {
  const c: Vec3 = [(g.dims[0] - 1) / 2, (g.dims[1] - 1) / 2, (g.dims[2] - 1) / 2];
  const a = g.affine;
  return [
    a[0] * c[0] + a[1] * c[1] + a[2] * c[2] + a[3],
    a[4] * c[0] + a[5] * c[1] + a[6] * c[2] + a[7],
    a[8] * c[0] + a[9] * c[1] + a[10] * c[2] + a[11],
  ];
}

/**
 * A grid with the same axis directions and the same physical extent (field of view, voxel edges to voxel edges)
 * as `g`, with voxel spacing `spacing` (mm, per axis i, j, k, or one value for isotropic). Centres coincide.
 */
export function respacedGrid(g: Grid, spacing: number | Vec3): Grid {
  const sp = spacingOf(g.affine);
  const t: Vec3 = typeof spacing === 'number' ? [spacing, spacing, spacing] : spacing;
  if (!t.every((x) => x > 0 && Number.isFinite(x))) throw new RangeError('spacing must be positive');
  const dims: Vec3 = [0, 1, 2].map((a) =>
    Math.max(1, Math.round((g.dims[a] * sp[a]) / t[a])),
  ) as unknown as Vec3;
  const cols = [0, 1, 2].map((a) => {
    const v = column(g.affine, a as 0 | 1 | 2);
    const n = norm(v);
    return [(v[0] / n) * t[a], (v[1] / n) * t[a], (v[2] / n) * t[a]];
  });
  const affine = [
    cols[0][0],
    cols[1][0],
    cols[2][0],
    0,
    cols[0][1],
    cols[1][1],
    cols[2][1],
    0,
    cols[0][2],
    cols[1][2],
    cols[2][2],
    0,
    0,
    0,
    0,
    1,
  ];
  return centredAt({ dims, affine }, gridCentre(g));
}

/** The same grid translated so that its centre lies at `centre` (LPS). */
export function centredAt(g: Grid, centre: Vec3): Grid {
  const a = [...g.affine];
  a[3] = 0;
  a[7] = 0;
  a[11] = 0;
  const c0 = gridCentre({ dims: g.dims, affine: a });
  a[3] = centre[0] - c0[0];
  a[7] = centre[1] - c0[1];
  a[11] = centre[2] - c0[2];
  return { dims: [g.dims[0], g.dims[1], g.dims[2]], affine: a };
}

const LETTER_DIRECTION: Record<string, Vec3> = {
  L: [1, 0, 0],
  R: [-1, 0, 0],
  P: [0, 1, 0],
  A: [0, -1, 0],
  S: [0, 0, 1],
  I: [0, 0, -1],
};

/**
 * An axis-aligned grid whose voxel axes point along `orientation` (DICOM letters, e.g. 'LIA': i → Left,
 * j → Inferior, k → Anterior) with `spacing` (mm, i, j, k), `dims`, centred at `centre` (LPS).
 */
export function orientedGrid(orientation: string, spacing: Vec3, dims: Vec3, centre: Vec3): Grid {
  if (!/^[LRPAIS]{3}$/.test(orientation)) throw new RangeError(`bad orientation code ${orientation}`);
  const axes = new Set(Array.from(orientation, (c) => 'LRPAIS'.indexOf(c) >> 1));
  if (axes.size !== 3) throw new RangeError(`orientation ${orientation} repeats an axis`);
  const d = Array.from(orientation, (c) => LETTER_DIRECTION[c]);
  const affine = [
    d[0][0] * spacing[0],
    d[1][0] * spacing[1],
    d[2][0] * spacing[2],
    0,
    d[0][1] * spacing[0],
    d[1][1] * spacing[1],
    d[2][1] * spacing[2],
    0,
    d[0][2] * spacing[0],
    d[1][2] * spacing[1],
    d[2][2] * spacing[2],
    0,
    0,
    0,
    0,
    1,
  ];
  return centredAt({ dims, affine }, centre);
}

/** target voxel → source voxel (continuous index). */
function voxelMap(src: Grid, target: Grid, transform: Mat4): Mat4 {
  return multiply(invert(src.affine), multiply(transform, target.affine));
}

/** Per source axis, the spacing of the target grid measured along that axis (for anti-aliasing). */
function targetSpacingAlongSource(src: Grid, target: Grid, transform: Mat4): Vec3 {
  const ts = spacingOf(target.affine);
  const out = [0, 0, 0];
  for (const a of [0, 1, 2] as const) {
    const u = column(src.affine, a);
    const un = norm(u);
    let s = 0;
    for (const b of [0, 1, 2] as const) {
      // target axis b expressed in source patient space
      const d = applyLinear(transform, column(target.affine, b));
      const dn = norm(d);
      s += (Math.abs(u[0] * d[0] + u[1] * d[1] + u[2] * d[2]) / (un * dn)) * ts[b];
    }
    out[a] = s;
  }
  return [out[0], out[1], out[2]];
}

function antialiased(src: Volume, target: Grid, transform: Mat4): Volume {
  const ss = spacingOf(src.affine);
  const ts = targetSpacingAlongSource(src, target, transform);
  const sigma: Vec3 = [0, 1, 2].map((a) =>
    ts[a] > ss[a] * 1.05 ? Math.sqrt(ts[a] * ts[a] - ss[a] * ss[a]) / 2.355 : 0,
  ) as unknown as Vec3;
  return sigma.some((s) => s > 0) ? gaussianSmooth(src, sigma) : src;
}

/** Trilinear resampling into `target`. */
export function resampleLinear(
  src: Volume,
  target: Grid,
  options: ResampleOptions = {},
): Volume<Float32Array> {
  const transform = options.transform ?? IDENTITY;
  const source = options.antialias === false ? src : antialiased(src, target, transform);
  const out = new Float32Array(voxelCount(target.dims));
  const bg = options.background ?? 0;
  const m = voxelMap(source, target, transform);
  const [nx, ny, nz] = source.dims;
  const sxy = nx * ny;
  const d = source.data;
  const [ox, oy, oz] = target.dims;
  let o = 0;
  for (let k = 0; k < oz; k++)
    for (let j = 0; j < oy; j++) {
      let x = m[1] * j + m[2] * k + m[3];
      let y = m[5] * j + m[6] * k + m[7];
      let z = m[9] * j + m[10] * k + m[11];
      for (let i = 0; i < ox; i++, o++, x += m[0], y += m[4], z += m[8]) {
        if (x < -0.5 || y < -0.5 || z < -0.5 || x > nx - 0.5 || y > ny - 0.5 || z > nz - 0.5) {
          out[o] = bg;
          continue;
        }
        const cx = x < 0 ? 0 : x > nx - 1 ? nx - 1 : x;
        const cy = y < 0 ? 0 : y > ny - 1 ? ny - 1 : y;
        const cz = z < 0 ? 0 : z > nz - 1 ? nz - 1 : z;
        const x0 = Math.floor(cx);
        const y0 = Math.floor(cy);
        const z0 = Math.floor(cz);
        const fx = cx - x0;
        const fy = cy - y0;
        const fz = cz - z0;
        const dx = x0 < nx - 1 ? 1 : 0;
        const dy = y0 < ny - 1 ? nx : 0;
        const dz = z0 < nz - 1 ? sxy : 0;
        const p = x0 + nx * y0 + sxy * z0;
        const c00 = d[p] + fx * (d[p + dx] - d[p]);
        const c10 = d[p + dy] + fx * (d[p + dy + dx] - d[p + dy]);
        const c01 = d[p + dz] + fx * (d[p + dz + dx] - d[p + dz]);
        const c11 = d[p + dz + dy] + fx * (d[p + dz + dy + dx] - d[p + dz + dy]);
        const c0 = c00 + fy * (c10 - c00);
        const c1 = c01 + fy * (c11 - c01);
        out[o] = c0 + fz * (c1 - c0);
      }
    }
  return createVolume(target.dims, target.affine, out);
}

function sameTypeArray<T extends VoxelArray>(like: T, n: number): T {
  const Ctor = like.constructor as new (n: number) => T;
  return new Ctor(n);
}

/** Nearest-neighbour resampling; keeps the source's voxel type. */
export function resampleNearest<T extends VoxelArray>(
  src: Volume<T>,
  target: Grid,
  options: ResampleOptions = {},
): Volume<T> {
  const transform = options.transform ?? IDENTITY;
  const out = sameTypeArray(src.data, voxelCount(target.dims));
  const bg = options.background ?? 0;
  const m = voxelMap(src, target, transform);
  const [nx, ny, nz] = src.dims;
  const d = src.data;
  const [ox, oy, oz] = target.dims;
  let o = 0;
  for (let k = 0; k < oz; k++)
    for (let j = 0; j < oy; j++) {
      let x = m[1] * j + m[2] * k + m[3];
      let y = m[5] * j + m[6] * k + m[7];
      let z = m[9] * j + m[10] * k + m[11];
      for (let i = 0; i < ox; i++, o++, x += m[0], y += m[4], z += m[8]) {
        const xi = Math.round(x);
        const yi = Math.round(y);
        const zi = Math.round(z);
        if (x < -0.5 || y < -0.5 || z < -0.5 || x > nx - 0.5 || y > ny - 0.5 || z > nz - 0.5) out[o] = bg;
        else out[o] = d[Math.min(xi, nx - 1) + nx * (Math.min(yi, ny - 1) + ny * Math.min(zi, nz - 1))];
      }
    }
  return createVolume(target.dims, target.affine, out);
}

/** Label-aware resampling (see the file comment); keeps the source's voxel type (integer labels). */
export function resampleLabels<T extends VoxelArray>(
  src: Volume<T>,
  target: Grid,
  options: ResampleOptions = {},
): Volume<T> {
  const transform = options.transform ?? IDENTITY;
  const out = sameTypeArray(src.data, voxelCount(target.dims));
  const bg = options.background ?? 0;
  const m = voxelMap(src, target, transform);
  const [nx, ny, nz] = src.dims;
  const sxy = nx * ny;
  const d = src.data;
  const [ox, oy, oz] = target.dims;
  const labels = new Float64Array(8);
  const weights = new Float64Array(8);
  let o = 0;
  for (let k = 0; k < oz; k++)
    for (let j = 0; j < oy; j++) {
      let x = m[1] * j + m[2] * k + m[3];
      let y = m[5] * j + m[6] * k + m[7];
      let z = m[9] * j + m[10] * k + m[11];
      for (let i = 0; i < ox; i++, o++, x += m[0], y += m[4], z += m[8]) {
        if (x < -0.5 || y < -0.5 || z < -0.5 || x > nx - 0.5 || y > ny - 0.5 || z > nz - 0.5) {
          out[o] = bg;
          continue;
        }
        const cx = x < 0 ? 0 : x > nx - 1 ? nx - 1 : x;
        const cy = y < 0 ? 0 : y > ny - 1 ? ny - 1 : y;
        const cz = z < 0 ? 0 : z > nz - 1 ? nz - 1 : z;
        const x0 = Math.floor(cx);
        const y0 = Math.floor(cy);
        const z0 = Math.floor(cz);
        const fx = cx - x0;
        const fy = cy - y0;
        const fz = cz - z0;
        const dx = x0 < nx - 1 ? 1 : 0;
        const dy = y0 < ny - 1 ? nx : 0;
        const dz = z0 < nz - 1 ? sxy : 0;
        const p = x0 + nx * y0 + sxy * z0;
        // fast path: all eight neighbours share a label
        const l0 = d[p];
        if (
          d[p + dx] === l0 &&
          d[p + dy] === l0 &&
          d[p + dy + dx] === l0 &&
          d[p + dz] === l0 &&
          d[p + dz + dx] === l0 &&
          d[p + dz + dy] === l0 &&
          d[p + dz + dy + dx] === l0
        ) {
          out[o] = l0;
          continue;
        }
        let nl = 0;
        const add = (label: number, w: number): void => {
          for (let t = 0; t < nl; t++)
            if (labels[t] === label) {
              weights[t] += w;
              return;
            }
          labels[nl] = label;
          weights[nl] = w;
          nl++;
        };
        add(d[p], (1 - fx) * (1 - fy) * (1 - fz));
        add(d[p + dx], fx * (1 - fy) * (1 - fz));
        add(d[p + dy], (1 - fx) * fy * (1 - fz));
        add(d[p + dy + dx], fx * fy * (1 - fz));
        add(d[p + dz], (1 - fx) * (1 - fy) * fz);
        add(d[p + dz + dx], fx * (1 - fy) * fz);
        add(d[p + dz + dy], (1 - fx) * fy * fz);
        add(d[p + dz + dy + dx], fx * fy * fz);
        let best = 0;
        for (let t = 1; t < nl; t++) if (weights[t] > weights[best]) best = t;
        out[o] = labels[best];
      }
    }
  return createVolume(target.dims, target.affine, out);
}

/** Resamples with the named interpolation ('linear' gives float32, the others keep the voxel type). */
export function resampleTo(
  src: Volume,
  target: Grid,
  interpolation: Interpolation,
  options: ResampleOptions = {},
): Volume {
  if (interpolation === 'linear') return resampleLinear(src, target, options);
  if (interpolation === 'nearest') return resampleNearest(src, target, options);
  return resampleLabels(src, target, options);
}

/** A binary mask resampled label-aware (linear weight ≥ 0.5) into `target`. */
export function resampleMask(mask: Mask, target: Grid, options: ResampleOptions = {}): Mask {
  const binary = new Uint8Array(mask.data.length);
  for (let x = 0; x < binary.length; x++) binary[x] = mask.data[x] !== 0 ? 1 : 0;
  return resampleLabels(createVolume(mask.dims, mask.affine, binary), target, options);
}

/** Resampled to isotropic `spacing` mm over the same field of view (axis directions kept). */
export function resampleToSpacing(
  v: Volume,
  spacing: number | Vec3,
  interpolation: Interpolation = 'linear',
): Volume {
  return resampleTo(v, respacedGrid(v, spacing), interpolation);
}

/** Brings a result computed on another grid back onto `original` (e.g. the FLAIR grid). */
export function backToGrid(v: Volume, original: Grid, interpolation: Interpolation): Volume {
  return resampleTo(v, original, interpolation, { antialias: false });
}
