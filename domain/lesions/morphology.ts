/**
 * Binary morphology on voxel grids used by the lesion analytics: one-voxel dilation with a 6/18/26
 * neighbourhood, hole filling, and a chamfer distance transform in millimetres (anisotropic voxels).
 */
import type { Vec3 } from '../model/geometry.ts';
import { labelComponents, type Connectivity } from './connected-components.ts';

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

/** Dilates the non-zero voxels by one voxel with the given neighbourhood (26 = the full 3×3×3 cube). */
export function dilate(dims: Vec3, data: Uint8Array, connectivity: Connectivity = 26): Uint8Array {
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

/** Fills the background cavities that do not touch the volume border (6-connected background). */
export function fillHoles(dims: Vec3, data: Uint8Array): Uint8Array {
  const [nx, ny, nz] = dims;
  const bg = new Uint8Array(data.length);
  for (let p = 0; p < data.length; p++) bg[p] = data[p] === 0 ? 1 : 0;
  const cc = labelComponents({ dims, data: bg }, 6);
  const touches = new Uint8Array(cc.count + 1);
  let p = 0;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, p++)
        if (i === 0 || j === 0 || k === 0 || i === nx - 1 || j === ny - 1 || k === nz - 1)
          touches[cc.labels[p]] = 1;
  const out = new Uint8Array(data.length);
  for (let q = 0; q < data.length; q++) {
    const l = cc.labels[q];
    out[q] = l === 0 || touches[l] === 0 ? 1 : 0;
  }
  return out;
}

/**
 * Distance in mm from every voxel to the nearest seed voxel (0 on seeds), by a two-pass 3×3×3 chamfer
 * whose weights are the physical lengths of the neighbour steps (within ≈8 % of the Euclidean distance).
 * Voxels that no seed reaches get Infinity.
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
