import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyAffine,
  invert,
  mat4,
  multiply,
  orientationCode,
  spacingOf,
  type Mat4,
  type Vec3,
} from '../model/geometry.ts';
import { createVolume, voxelCount, type Volume } from '../model/volume.ts';
import {
  centredAt,
  gridCentre,
  orientedGrid,
  resampleLabels,
  resampleLinear,
  resampleMask,
  resampleNearest,
  respacedGrid,
  type Grid,
} from './resample.ts';

/** A rotated, anisotropic, translated affine. */
function obliqueAffine(spacing: Vec3, angleDeg: number, origin: Vec3): Mat4 {
  const a = (angleDeg * Math.PI) / 180;
  const c = Math.cos(a);
  const s = Math.sin(a);
  // rotation about z then x
  const R = [
    [c, -s, 0],
    [s * Math.cos(0.3), c * Math.cos(0.3), -Math.sin(0.3)],
    [s * Math.sin(0.3), c * Math.sin(0.3), Math.cos(0.3)],
  ];
  return mat4([
    [R[0][0] * spacing[0], R[0][1] * spacing[1], R[0][2] * spacing[2], origin[0]],
    [R[1][0] * spacing[0], R[1][1] * spacing[1], R[1][2] * spacing[2], origin[1]],
    [R[2][0] * spacing[0], R[2][1] * spacing[1], R[2][2] * spacing[2], origin[2]],
  ]);
}

function fill(grid: Grid, f: (p: Vec3) => number): Volume<Float32Array> {
  const out = new Float32Array(voxelCount(grid.dims));
  let o = 0;
  for (let k = 0; k < grid.dims[2]; k++)
    for (let j = 0; j < grid.dims[1]; j++)
      for (let i = 0; i < grid.dims[0]; i++) out[o++] = f(applyAffine(grid.affine, [i, j, k]));
  return createVolume(grid.dims, grid.affine, out);
}

const linearField = (p: Vec3): number => 3 + 0.5 * p[0] - 0.25 * p[1] + 0.75 * p[2];

test('trilinear resampling reproduces a linear field on an oblique anisotropic target', () => {
  const src = fill(
    { dims: [40, 36, 12], affine: obliqueAffine([1, 1.2, 4], 10, [-20, -20, -24]) },
    linearField,
  );
  const target: Grid = { dims: [30, 30, 30], affine: obliqueAffine([0.9, 0.9, 0.9], -25, [-8, -10, -12]) };
  const out = resampleLinear(src, target, { antialias: false });
  // inside the source (continuous index in [0, n − 1]) the field is exact
  const inv = multiply(invert(src.affine), target.affine);
  let checked = 0;
  let o = 0;
  for (let k = 0; k < 30; k++)
    for (let j = 0; j < 30; j++)
      for (let i = 0; i < 30; i++, o++) {
        const c = applyAffine(inv, [i, j, k]);
        if (c.every((x, a) => x >= 0 && x <= src.dims[a] - 1)) {
          checked++;
          assert.ok(Math.abs(out.data[o] - linearField(applyAffine(target.affine, [i, j, k]))) < 1e-3);
        } else if (c.some((x, a) => x < -0.5 || x > src.dims[a] - 0.5)) assert.equal(out.data[o], 0);
      }
  assert.ok(checked > 5000, `only ${checked} voxels inside`);
});

test('the transform option samples the source at T(p) (target → source)', () => {
  const g: Grid = {
    dims: [32, 32, 32],
    affine: mat4([
      [1, 0, 0, -16],
      [0, 1, 0, -16],
      [0, 0, 1, -16],
    ]),
  };
  const src = fill(g, linearField);
  const t: Vec3 = [2.5, -1.25, 0.5];
  const T = mat4([
    [1, 0, 0, t[0]],
    [0, 1, 0, t[1]],
    [0, 0, 1, t[2]],
  ]);
  const out = resampleLinear(src, g, { transform: T });
  const p: Vec3 = [10, 12, 14];
  const x = applyAffine(g.affine, p);
  const expected = linearField([x[0] + t[0], x[1] + t[1], x[2] + t[2]]);
  assert.ok(Math.abs(out.data[p[0] + 32 * (p[1] + 32 * p[2])] - expected) < 1e-4);
});

test('nearest keeps the voxel type and values; identity grid is a copy', () => {
  const data = new Int16Array(5 * 6 * 7).map((_, x) => (x * 37) % 101);
  const v = createVolume([5, 6, 7], obliqueAffine([1, 2, 3], 20, [1, 2, 3]), data);
  const out = resampleNearest(v, v);
  assert.ok(out.data instanceof Int16Array);
  assert.deepEqual(Array.from(out.data), Array.from(data));
  const lin = resampleLinear(v, v);
  for (let x = 0; x < data.length; x++) assert.ok(Math.abs(lin.data[x] - data[x]) < 1e-3);
});

test('label-aware resampling equals argmax of linearly interpolated one-hot maps', () => {
  const g: Grid = { dims: [20, 20, 8], affine: obliqueAffine([1, 1, 3], 5, [0, 0, 0]) };
  const labels = new Uint8Array(voxelCount(g.dims));
  let o = 0;
  for (let k = 0; k < 8; k++)
    for (let j = 0; j < 20; j++)
      for (let i = 0; i < 20; i++, o++)
        labels[o] = (i - 10) ** 2 + (j - 9) ** 2 < 30 ? 2 : i > 14 ? 5 : k > 5 ? 1 : 0;
  const src = createVolume(g.dims, g.affine, labels);
  const target: Grid = { dims: [25, 25, 25], affine: obliqueAffine([0.8, 0.8, 0.9], 17, [-1, 1, 0]) };
  const out = resampleLabels(src, target);
  assert.ok(out.data instanceof Uint8Array);
  const oneHot = [0, 1, 2, 5].map((l) =>
    resampleLinear(
      createVolume(
        g.dims,
        g.affine,
        Float32Array.from(labels, (x) => (x === l ? 1 : 0)),
      ),
      target,
      {
        antialias: false,
      },
    ),
  );
  let disagreements = 0;
  let inside = 0;
  for (let x = 0; x < out.data.length; x++) {
    const ws = oneHot.map((v) => v.data[x]);
    const total = ws.reduce((a, b) => a + b, 0);
    if (total < 0.5) continue; // outside the source
    inside++;
    const best = [0, 1, 2, 5][ws.indexOf(Math.max(...ws))];
    const sorted = [...ws].sort((a, b) => b - a);
    if (sorted[0] - sorted[1] > 1e-4 && best !== out.data[x]) disagreements++;
  }
  assert.ok(inside > 1000);
  assert.equal(disagreements, 0);
});

test('a mask survives a round trip through a finer oblique grid', () => {
  const g: Grid = { dims: [40, 40, 14], affine: obliqueAffine([1, 1, 3], 0, [-20, -20, -21]) };
  const m = new Uint8Array(voxelCount(g.dims));
  let o = 0;
  for (let k = 0; k < 14; k++)
    for (let j = 0; j < 40; j++)
      for (let i = 0; i < 40; i++, o++)
        m[o] = ((i - 20) / 14) ** 2 + ((j - 18) / 11) ** 2 + ((k - 7) / 5) ** 2 < 1 ? 1 : 0;
  const mask = createVolume(g.dims, g.affine, m);
  const fine = resampleMask(
    mask,
    centredAt({ dims: [70, 70, 70], affine: obliqueAffine([0.7, 0.7, 0.7], 30, [0, 0, 0]) }, gridCentre(g)),
  );
  const back = resampleMask(fine, g);
  let inter = 0;
  let a = 0;
  let b = 0;
  for (let x = 0; x < m.length; x++) {
    a += m[x];
    b += back.data[x];
    inter += m[x] & back.data[x];
  }
  assert.ok((2 * inter) / (a + b) > 0.97, `Dice ${(2 * inter) / (a + b)}`);
});

test('respacedGrid keeps the field of view and centre; orientedGrid follows its code', () => {
  const g: Grid = { dims: [320, 320, 36], affine: obliqueAffine([0.72, 0.72, 4], 12, [-100, -120, -60]) };
  const r = respacedGrid(g, 2);
  assert.deepEqual(
    spacingOf(r.affine).map((x) => Math.round(x * 1e6) / 1e6),
    [2, 2, 2],
  );
  assert.deepEqual(r.dims, [115, 115, 72]);
  const c0 = gridCentre(g);
  const c1 = gridCentre(r);
  for (let a = 0; a < 3; a++) assert.ok(Math.abs(c0[a] - c1[a]) < 1e-6);
  assert.equal(orientationCode(r.affine), orientationCode(g.affine));
  const lia = orientedGrid('LIA', [1, 1, 1], [256, 256, 256], [1, 2, 3]);
  assert.equal(orientationCode(lia.affine), 'LIA');
  const c = gridCentre(lia);
  assert.deepEqual(
    c.map((x) => Math.round(x * 1e9) / 1e9),
    [1, 2, 3],
  );
  assert.throws(() => orientedGrid('LLA', [1, 1, 1], [2, 2, 2], [0, 0, 0]), RangeError);
});

test('downsampling is anti-aliased: a one-voxel checkerboard becomes its mean', () => {
  const g: Grid = {
    dims: [32, 32, 32],
    affine: mat4([
      [1, 0, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
    ]),
  };
  const src = fill(g, (p) => ((Math.round(p[0]) + Math.round(p[1]) + Math.round(p[2])) % 2 === 0 ? 100 : 0));
  const coarse = resampleLinear(src, respacedGrid(g, 4));
  // away from the border every coarse voxel is close to the mean (50)
  const [nx, ny] = coarse.dims;
  for (let k = 2; k < 6; k++)
    for (let j = 2; j < 6; j++)
      for (let i = 2; i < 6; i++) assert.ok(Math.abs(coarse.data[i + nx * (j + ny * k)] - 50) < 6);
  const shifted = centredAt(respacedGrid(g, 4), [14.1, 14.1, 14.1]);
  const aliased = resampleLinear(src, shifted, { antialias: false });
  let maxDev = 0;
  for (const v of aliased.data) maxDev = Math.max(maxDev, Math.abs(v - 50));
  assert.ok(maxDev > 20, 'without anti-aliasing the checkerboard aliases');
});
