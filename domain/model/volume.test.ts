import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyAffine, invert, multiply, orientationCode, IDENTITY, type Mat4 } from './geometry.ts';
import {
  applyAxisMapping,
  axisMappingTo,
  createVolume,
  crop,
  index,
  invertAxisMapping,
  reorient,
} from './volume.ts';

const oblique: Mat4 = [0, 0, -1.2, 90, -0.9, 0, 0, 120, 0, 3, 0, -60, 0, 0, 0, 1]; // i→A, j→S, k→R

test('invert gives the identity when multiplied back', () => {
  const m: Mat4 = [0.9, 0.1, 0, 10, -0.1, 0.9, 0.2, -5, 0, -0.2, 3, 7, 0, 0, 0, 1];
  const p = multiply(m, invert(m));
  for (let x = 0; x < 16; x++) assert.ok(Math.abs(p[x] - IDENTITY[x]) < 1e-12);
});

test('orientationCode names the patient direction of each voxel axis', () => {
  assert.equal(orientationCode(IDENTITY), 'LPS');
  assert.equal(orientationCode([-1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]), 'RAS');
  assert.equal(orientationCode(oblique), 'ASR');
});

test('reorient permutes voxels so every voxel keeps its patient position', () => {
  const dims = [3, 4, 5] as const;
  const data = new Float32Array(60).map((_, x) => x);
  const v = createVolume(dims, oblique, data);
  const r = reorient(v, 'RAS');
  assert.equal(orientationCode(r.affine), 'RAS');
  assert.deepEqual(
    r.dims,
    [5, 4, 3].map((_, a) => r.dims[a]),
  );
  // every voxel of r sits where the same value sat in v
  const inv = invert(v.affine);
  for (let k = 0; k < r.dims[2]; k++)
    for (let j = 0; j < r.dims[1]; j++)
      for (let i = 0; i < r.dims[0]; i++) {
        const p = applyAffine(r.affine, [i, j, k]);
        const q = applyAffine(inv, p).map((x) => Math.round(x)) as [number, number, number];
        assert.equal(r.data[index(r.dims, i, j, k)], v.data[index(v.dims, q[0], q[1], q[2])]);
      }
  const back = applyAxisMapping(r, invertAxisMapping(axisMappingTo(v.affine, 'RAS')));
  assert.deepEqual(back.dims, v.dims);
  assert.deepEqual(Array.from(back.data), Array.from(v.data));
  for (let x = 0; x < 16; x++) assert.ok(Math.abs(back.affine[x] - v.affine[x]) < 1e-12);
});

test('crop keeps the patient position of the kept voxels', () => {
  const v = createVolume(
    [4, 4, 4],
    oblique,
    new Float32Array(64).map((_, x) => x),
  );
  const c = crop(v, [1, 2, 0], [3, 4, 2]);
  assert.deepEqual(c.dims, [2, 2, 2]);
  assert.equal(c.data[0], v.data[index(v.dims, 1, 2, 0)]);
  assert.deepEqual(applyAffine(c.affine, [0, 0, 0]), applyAffine(v.affine, [1, 2, 0]));
});

test('createVolume refuses a buffer of the wrong length', () => {
  assert.throws(() => createVolume([2, 2, 2], IDENTITY, new Float32Array(7)), RangeError);
});
