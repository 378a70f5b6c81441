import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Vec3 } from '../model/geometry.ts';
import { voxelCount } from '../model/volume.ts';
import { countVoxels } from '../preprocess/mask-ops.ts';
import {
  chamferDistance,
  closeMask,
  dilate,
  dilateVoxels,
  erode,
  fillHoles,
  largestComponent,
  neighbourOffsets,
  openMask,
  squaredDistanceToMask,
} from './morphology.ts';
import { maskFrom } from './testing/masks.ts';

test('neighbourhoods: 6, 18 and 26 offsets of the 3×3×3 cube, never the centre', () => {
  for (const [c, n] of [
    [6, 6],
    [18, 18],
    [26, 26],
  ] as const) {
    const offs = neighbourOffsets(c);
    assert.equal(offs.length, n);
    assert.ok(offs.every(([a, b, d]) => a !== 0 || b !== 0 || d !== 0));
    assert.equal(new Set(offs.map((o) => o.join(','))).size, n);
  }
  assert.ok(neighbourOffsets(6).every((o) => Math.abs(o[0]) + Math.abs(o[1]) + Math.abs(o[2]) === 1));
});

test('one-voxel dilation of a raw array with a 6 / 26 neighbourhood, clipped at the border', () => {
  const dims: Vec3 = [5, 5, 5];
  const dot = new Uint8Array(125);
  dot[2 + 5 * (2 + 5 * 2)] = 7; // any non-zero value counts
  const sum = (a: Uint8Array): number => a.reduce((s, v) => s + v, 0);
  assert.equal(sum(dilateVoxels(dims, dot, 6)), 7);
  assert.equal(sum(dilateVoxels(dims, dot, 18)), 19);
  assert.equal(sum(dilateVoxels(dims, dot)), 27);
  const corner = new Uint8Array(125);
  corner[0] = 1;
  assert.equal(sum(dilateVoxels(dims, corner)), 8);
  assert.equal(dot[0], 0, 'the input is left alone');
});

test('chamfer distance: exact along the axes (anisotropic), at most 13 % over Euclidean when isotropic, Infinity without seeds', () => {
  const aniso = new Uint8Array(21 * 21 * 11);
  aniso[10 + 21 * (10 + 21 * 5)] = 1;
  const a = chamferDistance([21, 21, 11], aniso, [1, 1, 2]);
  const at = (i: number, j: number, k: number): number => a[i + 21 * (j + 21 * k)];
  assert.equal(at(10, 10, 5), 0);
  assert.ok(Math.abs(at(17, 10, 5) - 7) < 1e-6);
  assert.ok(Math.abs(at(10, 10, 9) - 8) < 1e-6, '4 slices of 2 mm');
  assert.ok(
    Math.abs(at(13, 14, 5) - (1 + 3 * Math.SQRT2)) < 1e-5,
    'a diagonal path: 3 diagonal steps + 1 straight',
  );
  const dims: Vec3 = [15, 15, 15];
  const seed = new Uint8Array(voxelCount(dims));
  seed[7 + 15 * (7 + 15 * 7)] = 1;
  const d = chamferDistance(dims, seed, [1.5, 1.5, 1.5]);
  let o = 0;
  for (let k = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++, o++) {
        const e = 1.5 * Math.hypot(i - 7, j - 7, k - 7);
        assert.ok(d[o] >= e - 1e-5 && d[o] <= 1.13 * e + 1e-5, `${i},${j},${k}: ${d[o]} vs ${e}`);
      }
  assert.equal(chamferDistance([2, 2, 2], new Uint8Array(8), [1, 1, 1])[5], Infinity);
});

test('the distance transform matches brute force on an anisotropic grid', () => {
  const dims: Vec3 = [13, 11, 7];
  const sp: Vec3 = [0.7, 1.1, 2.5];
  let s = 7;
  const rnd = (): number => {
    s = (1103515245 * s + 12345) % 2147483648;
    return s / 2147483648;
  };
  const seed = new Uint8Array(voxelCount(dims)).map(() => (rnd() < 0.03 ? 1 : 0));
  seed[5] = 1;
  const d2 = squaredDistanceToMask(dims, seed, sp);
  const pts: Vec3[] = [];
  let o = 0;
  for (let k = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++, o++) if (seed[o]) pts.push([i, j, k]);
  o = 0;
  for (let k = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++, o++) {
        let best = Infinity;
        for (const p of pts)
          best = Math.min(
            best,
            ((i - p[0]) * sp[0]) ** 2 + ((j - p[1]) * sp[1]) ** 2 + ((k - p[2]) * sp[2]) ** 2,
          );
        assert.ok(Math.abs(d2[o] - best) < 1e-9, `voxel ${i},${j},${k}: ${d2[o]} vs ${best}`);
      }
  assert.equal(squaredDistanceToMask([2, 2, 2], new Uint8Array(8), [1, 1, 1])[3], Infinity);
});

test('dilation by a ball in mm respects anisotropic spacing; erosion undoes it', () => {
  const dot = maskFrom([21, 21, 11], [1, 1, 2], (i, j, k) => i === 10 && j === 10 && k === 5);
  const ball = dilate(dot, 4);
  let expected = 0;
  for (let k = 0; k < 11; k++)
    for (let j = 0; j < 21; j++)
      for (let i = 0; i < 21; i++) if ((i - 10) ** 2 + (j - 10) ** 2 + (2 * (k - 5)) ** 2 <= 16) expected++;
  assert.equal(countVoxels(ball), expected);
  assert.equal(countVoxels(erode(ball, 4)), 1);
  assert.equal(countVoxels(erode(ball, 0)), expected);
});

test('closing bridges a thin gap, opening removes a thin spur', () => {
  const twoSlabs = maskFrom(
    [30, 20, 20],
    [1, 1, 1],
    (i, j, k) => j > 3 && j < 16 && k > 3 && k < 16 && (i < 14 || i > 15) && i > 2 && i < 27,
  );
  const closed = closeMask(twoSlabs, 2);
  assert.equal(closed.data[14 + 30 * (10 + 20 * 10)], 1);
  const spur = maskFrom([30, 30, 30], [1, 1, 1], (i, j, k) => {
    const inBall = (i - 15) ** 2 + (j - 15) ** 2 + (k - 15) ** 2 < 64;
    return inBall || (j === 15 && k === 15 && i >= 15 && i < 28);
  });
  const opened = openMask(spur, 1.5);
  assert.equal(opened.data[26 + 30 * (15 + 30 * 15)], 0);
  assert.equal(opened.data[15 + 30 * (15 + 30 * 15)], 1);
});

test('hole filling: an enclosed cavity in 3-D, a tube open at both ends per slice', () => {
  const shell = maskFrom([24, 24, 24], [1, 1, 1], (i, j, k) => {
    const r2 = (i - 12) ** 2 + (j - 12) ** 2 + (k - 12) ** 2;
    return r2 < 100 && r2 >= 36;
  });
  const filled = fillHoles(shell);
  assert.equal(filled.data[12 + 24 * (12 + 24 * 12)], 1);
  assert.equal(filled.data[0], 0);
  const tube = maskFrom([20, 20, 6], [1, 1, 3], (i, j) => {
    const r2 = (i - 10) ** 2 + (j - 10) ** 2;
    return r2 < 49 && r2 >= 9;
  });
  assert.equal(fillHoles(tube).data[10 + 20 * (10 + 20 * 3)], 0, 'open at the ends: no 3-D hole');
  const sliceFilled = fillHoles(tube, { slicewise: true });
  assert.equal(sliceFilled.data[10 + 20 * (10 + 20 * 3)], 1);
  assert.equal(sliceFilled.data[0], 0);
});

test('largest component (6- and 26-connected); an empty mask stays empty', () => {
  const m = maskFrom(
    [20, 10, 10],
    [1, 1, 2],
    (i, j, k) => (i < 3 && j < 3 && k < 3) || (i > 8 && i < 16 && j > 2 && k > 2),
  );
  const big = largestComponent(m);
  assert.equal(countVoxels(big), 7 * 7 * 7);
  assert.equal(big.data[0], 0);
  // two cubes touching only at a corner: one 26-connected component, two 6-connected ones
  const corner = maskFrom(
    [6, 6, 6],
    [1, 1, 1],
    (i, j, k) => (i < 2 && j < 2 && k < 2) || (i >= 2 && i < 5 && j >= 2 && j < 5 && k >= 2 && k < 5),
  );
  assert.equal(countVoxels(largestComponent(corner, 26)), 8 + 27);
  assert.equal(countVoxels(largestComponent(corner, 6)), 27);
  assert.equal(countVoxels(largestComponent(maskFrom([4, 4, 4], [1, 1, 1], () => false))), 0);
});
