import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyAffine, mat4, type Mat4, type Vec3 } from '../model/geometry.ts';
import { createVolume, voxelCount, type Volume } from '../model/volume.ts';
import { coregister, warpMaskToFixed, warpToFixed } from './coregister.ts';
import { dice } from './mask-ops.ts';

const sig = (x: number): number => 1 / (1 + Math.exp(-x));
const blob = (p: Vec3, c: Vec3, r: Vec3): number =>
  sig((1 - Math.hypot((p[0] - c[0]) / r[0], (p[1] - c[1]) / r[1], (p[2] - c[2]) / r[2])) * 20);
const scene = (p: Vec3): number =>
  100 * blob(p, [0, 0, 0], [60, 75, 55]) -
  60 * blob(p, [-10, 5, 8], [12, 20, 10]) +
  80 * blob(p, [25, -30, 20], [10, 10, 10]);

function image(dims: Vec3, affine: Mat4, f: (p: Vec3) => number): Volume<Float32Array> {
  const d = new Float32Array(voxelCount(dims));
  let o = 0;
  for (let k = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++, o++) d[o] = f(applyAffine(affine, [i, j, k]));
  return createVolume(dims, affine, d);
}

function ncc(a: Float32Array, b: Float32Array): number {
  const n = a.length;
  const ma = a.reduce((s, x) => s + x, 0) / n;
  const mb = b.reduce((s, x) => s + x, 0) / n;
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let x = 0; x < n; x++) {
    ab += (a[x] - ma) * (b[x] - mb);
    aa += (a[x] - ma) ** 2;
    bb += (b[x] - mb) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

test('coregister brings a moved series onto the fixed grid; headers-only does not', () => {
  const fixed = image(
    [50, 60, 46],
    mat4([
      [3, 0, 0, -75],
      [0, 3, 0, -90],
      [0, 0, 3, -69],
    ]),
    scene,
  );
  const shift: Vec3 = [6, -4, 5];
  // the moving scanner frame sees the head moved by `shift`: moving(y) = scene(y − shift)
  const movingAffine = mat4([
    [2, 0, 0, -80],
    [0, 2, 0, -95],
    [0, 0, 4, -70],
  ]);
  const moving = image([80, 95, 36], movingAffine, (p) =>
    scene([p[0] - shift[0], p[1] - shift[1], p[2] - shift[2]]),
  );
  const r = coregister(fixed, moving, { metric: 'ncc', levels: [8, 4] });
  assert.deepEqual(r.image.dims, fixed.dims);
  assert.ok(
    Math.abs(r.matrix[3] - shift[0]) < 0.5 &&
      Math.abs(r.matrix[7] - shift[1]) < 0.5 &&
      Math.abs(r.matrix[11] - shift[2]) < 0.5,
    `translation ${[r.matrix[3], r.matrix[7], r.matrix[11]].map((x) => x.toFixed(2)).join(', ')}`,
  );
  const aligned = ncc(r.image.data, fixed.data);
  const naive = coregister(fixed, moving, { headersOnly: true });
  assert.equal(naive.registration, undefined);
  assert.ok(aligned > 0.99 && aligned > ncc(naive.image.data, fixed.data) + 0.02, `NCC ${aligned}`);
  // masks and label maps follow the same matrix
  const movingMask = createVolume(
    moving.dims,
    moving.affine,
    Uint8Array.from(moving.data, (v) => (v > 50 ? 1 : 0)),
  );
  const fixedMask = createVolume(
    fixed.dims,
    fixed.affine,
    Uint8Array.from(fixed.data, (v) => (v > 50 ? 1 : 0)),
  );
  assert.ok(dice(warpMaskToFixed(movingMask, fixed, r.matrix), fixedMask) > 0.95);
  const labels = warpToFixed(movingMask, fixed, r.matrix, 'label');
  assert.ok(labels.data instanceof Uint8Array);
});
