import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyAffine, invert, mat4, multiply, type Mat4, type Vec3 } from '../model/geometry.ts';
import { createVolume, voxelCount, type Volume } from '../model/volume.ts';
import { boxCorners, meanDisplacement, registerImages } from './registration.ts';
import { isDomainError } from '../errors.ts';

const sig = (x: number): number => 1 / (1 + Math.exp(-x));

/** A smooth asymmetric head phantom (scalp, skull, brain, ventricles, blobs) as a function of LPS mm. */
function phantom(p: Vec3, contrast: 'a' | 'b'): number {
  const r = Math.hypot(p[0] / 70, p[1] / 88, (p[2] - 5) / 72);
  const edge = (rr: number, at: number): number => sig((at - rr) * 60);
  const head = edge(r, 1);
  const inSkull = edge(r, 0.93);
  const brain = edge(r, 0.87);
  const blob = (c: Vec3, rad: number): number =>
    edge(Math.hypot(p[0] - c[0], p[1] - c[1], p[2] - c[2]) / rad, 1);
  const vent = Math.max(blob([-9, -5, 10], 12), blob([11, 2, 12], 9));
  const b1 = blob([22, -30, 28], 11);
  const b2 = blob([-35, 15, -12], 9);
  const [scalp, skull, tissue, csf, l1, l2] =
    contrast === 'a' ? [60, 8, 100, 30, 160, 70] : [90, 5, 40, 120, 20, 150];
  let v = scalp * (head - inSkull) + skull * (inSkull - brain) + tissue * brain;
  v += (csf - tissue) * vent * brain + (l1 - tissue) * b1 * brain + (l2 - tissue) * b2 * brain;
  return v;
}

function image(dims: Vec3, affine: Mat4, f: (p: Vec3) => number): Volume<Float32Array> {
  const d = new Float32Array(voxelCount(dims));
  let o = 0;
  for (let k = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++, o++) d[o] = f(applyAffine(affine, [i, j, k]));
  return createVolume(dims, affine, d);
}

function rigid(deg: Vec3, t: Vec3, c: Vec3 = [0, 0, 0]): Mat4 {
  const [a, b, g] = deg.map((x) => (x * Math.PI) / 180);
  const Rx = mat4([
    [1, 0, 0],
    [0, Math.cos(a), -Math.sin(a)],
    [0, Math.sin(a), Math.cos(a)],
  ]);
  const Ry = mat4([
    [Math.cos(b), 0, Math.sin(b)],
    [0, 1, 0],
    [-Math.sin(b), 0, Math.cos(b)],
  ]);
  const Rz = mat4([
    [Math.cos(g), -Math.sin(g), 0],
    [Math.sin(g), Math.cos(g), 0],
    [0, 0, 1],
  ]);
  const toC = mat4([
    [1, 0, 0, c[0]],
    [0, 1, 0, c[1]],
    [0, 0, 1, c[2]],
  ]);
  const fromC = mat4([
    [1, 0, 0, -c[0]],
    [0, 1, 0, -c[1]],
    [0, 0, 1, -c[2]],
  ]);
  const T = mat4([
    [1, 0, 0, t[0]],
    [0, 1, 0, t[1]],
    [0, 0, 1, t[2]],
  ]);
  return multiply(T, multiply(toC, multiply(Rz, multiply(Ry, multiply(Rx, fromC)))));
}

// fixed: 2 mm isotropic; moving: a 2-D-like stack 1 × 1 × 4 mm, tilted, with a different field of view
const fixedAffine = mat4([
  [2, 0, 0, -80],
  [0, 2, 0, -100],
  [0, 0, 2, -80],
]);
const fixedDims: Vec3 = [80, 100, 82];
const movingAffine = multiply(
  rigid([4, 0, -3], [0, 0, 0]),
  mat4([
    [1, 0, 0, -85],
    [0, 1, 0, -105],
    [0, 0, 4, -70],
  ]),
);
const movingDims: Vec3 = [170, 205, 38];
const brainBox = boxCorners(fixedAffine, [10, 10, 12], [70, 90, 72]);

/** The moving image seen through `truth` (fixed → moving): moving(y) = phantom(truth⁻¹ y). */
function movingFor(
  truth: Mat4,
  contrast: 'a' | 'b',
  grid: { dims: Vec3; affine: Mat4 } = { dims: movingDims, affine: movingAffine },
): Volume<Float32Array> {
  const g = invert(truth);
  return image(grid.dims, grid.affine, (y) => phantom(applyAffine(g, y), contrast));
}

const fixedA = image(fixedDims, fixedAffine, (p) => phantom(p, 'a'));

test('rigid NCC recovers a known motion between a 2 mm volume and a thick-slice stack', () => {
  const truth = rigid([3, -4, 6], [4.5, -6, 3], [5, -10, 8]);
  const r = registerImages(fixedA, movingFor(truth, 'a'), { metric: 'ncc', levels: [8, 4, 2] });
  const err = meanDisplacement(r.matrix, truth, brainBox);
  assert.ok(err < 0.5, `mean corner error ${err.toFixed(3)} mm (init ${r.initialization})`);
  assert.ok(r.ncc > 0.97, `ncc ${r.ncc}`);
  assert.equal(r.metric, 'ncc');
  assert.equal(r.transform, 'rigid');
  assert.ok(r.iterations > 0 && r.levels.length === 3);
  // without registration the error is large: the test can fail
  assert.ok(meanDisplacement(mat4([]), truth, brainBox) > 8);
});

test('rigid Mattes MI aligns a different contrast (non-monotonic intensity mapping)', () => {
  const truth = rigid([-5, 2, -4], [-3, 5, -7]);
  const moving = movingFor(truth, 'b');
  const r = registerImages(fixedA, moving, { metric: 'mi', levels: [8, 4, 2] });
  const err = meanDisplacement(r.matrix, truth, brainBox);
  assert.ok(err < 0.8, `mean corner error ${err.toFixed(3)} mm`);
  assert.ok(r.value > 0.3, `MI ${r.value}`);
});

test('affine registration recovers scaling and shear on top of motion', () => {
  const lin = mat4([
    [1.04, 0.02, 0, 0],
    [-0.01, 0.97, 0.015, 0],
    [0, 0.01, 1.03, 0],
  ]);
  const truth = multiply(rigid([2, 3, -2], [2, -3, 4]), lin);
  // 2.5 mm slices: thinner than the rigid tests' 4 mm, as 12 parameters need more through-plane detail
  const grid = {
    dims: [136, 164, 60] as Vec3,
    affine: multiply(
      rigid([3, 0, -2], [0, 0, 0]),
      mat4([
        [1.25, 0, 0, -85],
        [0, 1.25, 0, -105],
        [0, 0, 2.5, -75],
      ]),
    ),
  };
  const moving = movingFor(truth, 'a', grid);
  const r = registerImages(fixedA, moving, { metric: 'ncc', transform: 'affine', levels: [8, 4, 2] });
  const err = meanDisplacement(r.matrix, truth, brainBox);
  assert.ok(err < 1.2, `mean corner error ${err.toFixed(3)} mm`);
  const rigidOnly = registerImages(fixedA, moving, { metric: 'ncc', levels: [8, 4, 2] });
  const rigidErr = meanDisplacement(rigidOnly.matrix, truth, brainBox);
  assert.ok(
    rigidErr > 2 * err,
    `affine (${err.toFixed(2)} mm) beats rigid (${rigidErr.toFixed(2)} mm) on a scaled head`,
  );
  assert.equal(r.levels.filter((l) => l.stage === 'affine').length, 2);
});

test('a fixed mask restricts the samples; bad options and no overlap are coded errors', () => {
  const truth = rigid([0, 0, 2], [2, 1, 0]);
  const moving = movingFor(truth, 'a');
  const mask = createVolume(
    fixedA.dims,
    fixedA.affine,
    Uint8Array.from(fixedA.data, (v) => (v > 90 ? 1 : 0)),
  );
  const r = registerImages(fixedA, moving, { metric: 'ncc', fixedMask: mask, levels: [8, 4] });
  assert.ok(meanDisplacement(r.matrix, truth, brainBox) < 1);
  const code = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      if (isDomainError(e)) return e.code;
      throw e;
    }
    return 'none';
  };
  assert.equal(
    code(() => registerImages(fixedA, moving, { levels: [] })),
    'REGISTRATION.INVALID_OPTION',
  );
  assert.equal(
    code(() => registerImages(fixedA, moving, { bins: 3 })),
    'REGISTRATION.INVALID_OPTION',
  );
  const empty = createVolume(fixedA.dims, fixedA.affine, new Uint8Array(fixedA.data.length));
  assert.equal(
    code(() => registerImages(fixedA, moving, { fixedMask: empty, levels: [8] })),
    'REGISTRATION.EMPTY_MASK',
  );
  const far = createVolume(
    moving.dims,
    multiply(
      mat4([
        [1, 0, 0, 5000],
        [0, 1, 0, 0],
        [0, 0, 1, 0],
      ]),
      moving.affine,
    ),
    moving.data,
  );
  assert.equal(
    code(() => registerImages(fixedA, far, { levels: [8], initialization: 'geometry' })),
    'REGISTRATION.NO_OVERLAP',
  );
});
