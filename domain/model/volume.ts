import { affineMaxDiff, column, mat4, multiply, type Mat4, type Vec3 } from './geometry.ts';

/** The voxel buffers a volume may hold. */
export type VoxelArray = Float32Array | Float64Array | Int16Array | Uint16Array | Int32Array | Uint8Array;

/**
 * A 3-D scalar image in patient space. `data[i + nx·(j + ny·k)]` is voxel (i, j, k);
 * `affine` maps (i, j, k) to LPS millimetres (see geometry.ts).
 */
export interface Volume<T extends VoxelArray = VoxelArray> {
  readonly dims: Vec3;
  readonly affine: Mat4;
  readonly data: T;
}

/** A binary or label mask on a grid (0 = background). */
export type Mask = Volume<Uint8Array>;

export function voxelCount(dims: Vec3): number {
  return dims[0] * dims[1] * dims[2];
}

export function createVolume<T extends VoxelArray>(dims: Vec3, affine: Mat4, data: T): Volume<T> {
  if (data.length !== voxelCount(dims))
    throw new RangeError(
      `volume data has ${data.length} voxels, dims ${dims.join('×')} need ${voxelCount(dims)}`,
    );
  if (affine.length !== 16) throw new RangeError('affine must have 16 elements');
  return { dims: [dims[0], dims[1], dims[2]], affine: [...affine], data };
}

export function emptyMask(like: Volume): Mask {
  return createVolume(like.dims, like.affine, new Uint8Array(voxelCount(like.dims)));
}

export function emptyFloat(like: Volume): Volume<Float32Array> {
  return createVolume(like.dims, like.affine, new Float32Array(voxelCount(like.dims)));
}

export function index(dims: Vec3, i: number, j: number, k: number): number {
  return i + dims[0] * (j + dims[1] * k);
}

/** True when two volumes share dims and affine (within `tolMm`). */
export function sameGrid(a: Volume, b: Volume, tolMm = 1e-3): boolean {
  return (
    a.dims[0] === b.dims[0] &&
    a.dims[1] === b.dims[1] &&
    a.dims[2] === b.dims[2] &&
    affineMaxDiff(a.affine, b.affine) <= tolMm
  );
}

export function toFloat32(v: Volume): Volume<Float32Array> {
  return v.data instanceof Float32Array
    ? (v as Volume<Float32Array>)
    : createVolume(v.dims, v.affine, Float32Array.from(v.data));
}

/**
 * How to permute and flip voxel axes to reach an orientation: output axis `a` reads input axis
 * `perm[a]`, reversed when `flip[a]`.
 */
export interface AxisMapping {
  readonly perm: Vec3;
  readonly flip: readonly [boolean, boolean, boolean];
}

const LETTER_AXIS: Record<string, [number, number]> = {
  L: [0, 1],
  R: [0, -1],
  P: [1, 1],
  A: [1, -1],
  S: [2, 1],
  I: [2, -1],
};

/**
 * The axis permutation/flip that brings `affine` to the target orientation code (DICOM letters,
 * e.g. 'RAS' is what nibabel calls RAS+ canonical; 'LPS' is DICOM's natural order).
 */
export function axisMappingTo(affine: Mat4, target: string): AxisMapping {
  if (!/^[LRPAIS]{3}$/.test(target)) throw new RangeError(`bad orientation code ${target}`);
  const perm: number[] = [];
  const flip: boolean[] = [];
  const used = new Set<number>();
  for (let a = 0; a < 3; a++) {
    const [patientAxis, sign] = LETTER_AXIS[target[a]];
    // pick the input voxel axis whose direction is most aligned with the wanted patient axis
    let best = -1;
    let bestVal = 0;
    for (const c of [0, 1, 2] as const) {
      if (used.has(c)) continue;
      const v = column(affine, c);
      const n = Math.hypot(v[0], v[1], v[2]);
      const val = v[patientAxis] / n;
      if (best < 0 || Math.abs(val) > Math.abs(bestVal)) {
        best = c;
        bestVal = val;
      }
    }
    used.add(best);
    perm.push(best);
    flip.push(bestVal * sign < 0);
  }
  return { perm: [perm[0], perm[1], perm[2]], flip: [flip[0], flip[1], flip[2]] };
}

/**
 * Reorders voxels (no interpolation) so that the volume's axes follow `target`. The result covers
 * exactly the same patient-space points; `undo` on the result gives back the original voxel order.
 */
export function reorient<T extends VoxelArray>(v: Volume<T>, target: string): Volume<T> {
  return applyAxisMapping(v, axisMappingTo(v.affine, target));
}

export function applyAxisMapping<T extends VoxelArray>(v: Volume<T>, m: AxisMapping): Volume<T> {
  const inDims = v.dims;
  const outDims: Vec3 = [inDims[m.perm[0]], inDims[m.perm[1]], inDims[m.perm[2]]];
  // new voxel index o maps to old index: old[perm[a]] = flip[a] ? n-1-o[a] : o[a]
  const rows: number[][] = [
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 0],
    [0, 0, 0, 1],
  ];
  for (let a = 0; a < 3; a++) {
    const src = m.perm[a];
    if (m.flip[a]) {
      rows[src][a] = -1;
      rows[src][3] = inDims[src] - 1;
    } else rows[src][a] = 1;
  }
  const newToOld = mat4(rows);
  const affine = multiply(v.affine, newToOld);
  const Ctor = v.data.constructor as new (n: number) => T;
  const out = new Ctor(v.data.length);
  const strideIn = [1, inDims[0], inDims[0] * inDims[1]];
  const s0 = (m.flip[0] ? -1 : 1) * strideIn[m.perm[0]];
  const s1 = (m.flip[1] ? -1 : 1) * strideIn[m.perm[1]];
  const s2 = (m.flip[2] ? -1 : 1) * strideIn[m.perm[2]];
  let base = 0;
  for (let a = 0; a < 3; a++) if (m.flip[a]) base += (inDims[m.perm[a]] - 1) * strideIn[m.perm[a]];
  let o = 0;
  for (let k = 0; k < outDims[2]; k++) {
    const bk = base + k * s2;
    for (let j = 0; j < outDims[1]; j++) {
      let p = bk + j * s1;
      for (let i = 0; i < outDims[0]; i++, p += s0) out[o++] = v.data[p]!;
    }
  }
  return { dims: outDims, affine, data: out };
}

/** The mapping that undoes `m` (apply to a volume produced by applyAxisMapping(·, m)). */
export function invertAxisMapping(m: AxisMapping): AxisMapping {
  const perm = [0, 0, 0];
  const flip = [false, false, false];
  for (let a = 0; a < 3; a++) {
    perm[m.perm[a]] = a;
    flip[m.perm[a]] = m.flip[a];
  }
  return { perm: [perm[0], perm[1], perm[2]], flip: [flip[0], flip[1], flip[2]] };
}

/**
 * Inclusive-exclusive voxel bounding box of the non-zero voxels, or null when there are none. Takes any voxel
 * array with its dims (a Volume, or a raw mask such as a [D, H, W] model-grid array given as dims [W, H, D]).
 */
export function boundingBox(v: Pick<Volume, 'dims' | 'data'>): { min: Vec3; max: Vec3 } | null {
  const [nx, ny, nz] = v.dims;
  let x0 = nx,
    y0 = ny,
    z0 = nz,
    x1 = -1,
    y1 = -1,
    z1 = -1;
  let p = 0;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, p++) {
        if (v.data[p] !== 0) {
          if (i < x0) x0 = i;
          if (i > x1) x1 = i;
          if (j < y0) y0 = j;
          if (j > y1) y1 = j;
          if (k < z0) z0 = k;
          if (k > z1) z1 = k;
        }
      }
  if (x1 < 0) return null;
  return { min: [x0, y0, z0], max: [x1 + 1, y1 + 1, z1 + 1] };
}

/** Copies the sub-block [min, max) into a new volume with a shifted affine. */
export function crop<T extends VoxelArray>(v: Volume<T>, min: Vec3, max: Vec3): Volume<T> {
  const dims: Vec3 = [max[0] - min[0], max[1] - min[1], max[2] - min[2]];
  const Ctor = v.data.constructor as new (n: number) => T;
  const out = new Ctor(voxelCount(dims));
  let o = 0;
  for (let k = min[2]; k < max[2]; k++)
    for (let j = min[1]; j < max[1]; j++) {
      const start = index(v.dims, min[0], j, k);
      out.set(v.data.subarray(start, start + dims[0]), o);
      o += dims[0];
    }
  const shift = mat4([
    [1, 0, 0, min[0]],
    [0, 1, 0, min[1]],
    [0, 0, 1, min[2]],
  ]);
  return { dims, affine: multiply(v.affine, shift), data: out };
}
