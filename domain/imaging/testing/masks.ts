/** Test grids for the mask tests: an axis-aligned affine of a given spacing, and masks drawn by a predicate. */
import { mat4, type Mat4, type Vec3 } from '../../model/geometry.ts';
import { createVolume, voxelCount, type Mask } from '../../model/volume.ts';

export function gridAffine(spacing: Vec3): Mat4 {
  return mat4([
    [spacing[0], 0, 0, 0],
    [0, spacing[1], 0, 0],
    [0, 0, spacing[2], 0],
  ]);
}

/** A mask on dims × spacing with 1 where `f(i, j, k)`. */
export function maskFrom(dims: Vec3, spacing: Vec3, f: (i: number, j: number, k: number) => boolean): Mask {
  const d = new Uint8Array(voxelCount(dims));
  let o = 0;
  for (let k = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++, o++) d[o] = f(i, j, k) ? 1 : 0;
  return createVolume(dims, gridAffine(spacing), d);
}
