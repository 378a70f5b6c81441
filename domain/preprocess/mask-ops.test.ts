import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mat4, type Vec3 } from '../model/geometry.ts';
import { createVolume, voxelCount, type Mask } from '../model/volume.ts';
import {
  closeMask,
  countVoxels,
  detectSkullStripped,
  dice,
  dilate,
  erode,
  fillHoles,
  largestComponent,
  maskVolumeMl,
  openMask,
  squaredDistanceToMask,
} from './mask-ops.ts';

function grid(dims: Vec3, spacing: Vec3): { dims: Vec3; affine: number[] } {
  return {
    dims,
    affine: [
      ...mat4([
        [spacing[0], 0, 0, 0],
        [0, spacing[1], 0, 0],
        [0, 0, spacing[2], 0],
      ]),
    ],
  };
}

function maskFrom(dims: Vec3, spacing: Vec3, f: (i: number, j: number, k: number) => boolean): Mask {
  const g = grid(dims, spacing);
  const d = new Uint8Array(voxelCount(dims));
  let o = 0;
  for (let k = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++) for (let i = 0; i < dims[0]; i++, o++) d[o] = f(i, j, k) ? 1 : 0;
  return createVolume(g.dims, g.affine, d);
}

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
  const d2 = squaredDistanceToMask(seed, dims, sp);
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
  assert.equal(squaredDistanceToMask(new Uint8Array(8), [2, 2, 2], [1, 1, 1])[3], Infinity);
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

test('largest component, Dice and volume', () => {
  const m = maskFrom(
    [20, 10, 10],
    [1, 1, 2],
    (i, j, k) => (i < 3 && j < 3 && k < 3) || (i > 8 && i < 16 && j > 2 && k > 2),
  );
  const big = largestComponent(m);
  assert.equal(countVoxels(big), 7 * 7 * 7);
  assert.equal(big.data[0], 0);
  assert.ok(Math.abs(maskVolumeMl(big) - (343 * 2) / 1000) < 1e-12);
  assert.equal(dice(big, big), 1);
  assert.ok(Math.abs(dice(m, big) - (2 * 343) / (343 + 343 + 27)) < 1e-12);
  assert.equal(countVoxels(largestComponent(maskFrom([4, 4, 4], [1, 1, 1], () => false))), 0);
});

test('skull-stripped detection: a brain in zeros vs. a head edged by faint noise', () => {
  // 2.5 mm voxels, a 1.2 L ellipsoid "brain" with tissue-like intensities
  const dims: Vec3 = [72, 84, 66];
  const sp: Vec3 = [2.5, 2.5, 2.5];
  const g = grid(dims, sp);
  let s = 3;
  const noise = (): number => {
    s = (1103515245 * s + 12345) % 2147483648;
    return s / 2147483648;
  };
  const brain = new Float32Array(voxelCount(dims));
  const head = new Float32Array(voxelCount(dims));
  let o = 0;
  for (let k = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++, o++) {
        const r = Math.sqrt(((i - 36) / 27) ** 2 + ((j - 42) / 33) ** 2 + ((k - 33) / 24) ** 2);
        const tissue = r < 1 ? 80 + 20 * Math.cos(i / 2) + 10 * noise() : 0;
        brain[o] = tissue;
        // head: scalp up to r = 1.25, faint rim (3–6) where the scanner stopped zeroing
        head[o] = r < 1 ? tissue : r < 1.2 ? 40 * noise() + 20 : r < 1.25 ? 3 + 3 * noise() : 0;
      }
  const stripped = detectSkullStripped(createVolume(g.dims, g.affine, brain));
  assert.equal(stripped.skullStripped, true, stripped.reason);
  assert.ok(stripped.foregroundMl > 1000 && stripped.foregroundMl < 1500);
  const raw = detectSkullStripped(createVolume(g.dims, g.affine, head));
  assert.equal(raw.skullStripped, false);
  assert.match(raw.reason, /not brain-sized|faint/);
  const full = detectSkullStripped(
    createVolume(
      g.dims,
      g.affine,
      head.map((v) => v + 1 + noise()),
    ),
  );
  assert.equal(full.skullStripped, false);
  assert.match(full.reason, /background/);
});
