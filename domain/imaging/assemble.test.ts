import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DomainError } from '../errors.ts';
import { applyAffine, type Vec3 } from '../model/geometry.ts';
import type { ImageSlice } from '../ports/image-source.port.ts';
import { assembleVolume } from './assemble.ts';

type Iop = ImageSlice['imageOrientationPatient'];
const AXIAL: Iop = [1, 0, 0, 0, 1, 0];

/** A 3×2 plane whose values encode (slice, pixel) so that order mistakes show. */
function plane(k: number, pos: Vec3, extra: Partial<ImageSlice> = {}): ImageSlice {
  const pixels = new Int16Array(6);
  for (let x = 0; x < 6; x++) pixels[x] = 100 * k + x;
  return {
    sopInstanceUid: `1.2.3.${k}`,
    instanceNumber: k + 1,
    imagePositionPatient: pos,
    imageOrientationPatient: AXIAL,
    pixelSpacing: [0.5, 0.8],
    rows: 2,
    columns: 3,
    rescaleSlope: 1,
    rescaleIntercept: 0,
    pixels,
    ...extra,
  };
}

function stack(n: number, step: Vec3, start: Vec3 = [10, -20, 30], iop: Iop = AXIAL): ImageSlice[] {
  return Array.from({ length: n }, (_, k) =>
    plane(k, [start[0] + k * step[0], start[1] + k * step[1], start[2] + k * step[2]], {
      imageOrientationPatient: iop,
    }),
  );
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof DomainError, `expected a DomainError, got ${String(e)}`);
    return e.code;
  }
  assert.fail('expected an error');
}

test('sorts by position along the normal, not InstanceNumber; affine from cosines, spacing and positions', () => {
  const slices = stack(4, [0, 0, 2.5]);
  // shuffle and give misleading instance numbers
  const shuffled = [slices[2], slices[0], slices[3], slices[1]].map((s, x) => ({
    ...s,
    instanceNumber: 10 - x,
  }));
  const a = assembleVolume(shuffled);
  assert.deepEqual(a.volume.dims, [3, 2, 4]);
  assert.deepEqual(
    a.slices.map((s) => s.sopInstanceUid),
    ['1.2.3.0', '1.2.3.1', '1.2.3.2', '1.2.3.3'],
  );
  // column spacing 0.8 along i (row direction), row spacing 0.5 along j
  assert.deepEqual([...a.volume.affine], [0.8, 0, 0, 10, 0, 0.5, 0, -20, 0, 0, 2.5, 30, 0, 0, 0, 1]);
  assert.equal(a.sliceSpacing, 2.5);
  // voxel (i=2, j=1, k=3) is pixel index 1*3+2 = 5 of slice 3
  assert.equal(a.volume.data[2 + 3 * (1 + 2 * 3)], 305);
});

test('positions along a reversed normal still give increasing k along the normal', () => {
  // row = +x, column = -y → normal = -z: the slice with the lowest z comes last
  const iop: Iop = [1, 0, 0, 0, -1, 0];
  const a = assembleVolume(stack(3, [0, 0, 1], [0, 0, 0], iop));
  assert.deepEqual(
    a.slices.map((s) => s.imagePositionPatient[2]),
    [2, 1, 0],
  );
  assert.deepEqual(applyAffine(a.volume.affine, [0, 0, 2]), [0, 0, 0]);
});

test('rescale slope and intercept are applied per plane', () => {
  const slices = stack(2, [0, 0, 1]);
  const a = assembleVolume([slices[0], { ...slices[1], rescaleSlope: 2, rescaleIntercept: -1000 }]);
  assert.equal(a.volume.data[0], 0);
  assert.equal(a.volume.data[6], 100 * 2 - 1000);
  assert.ok(a.volume.data instanceof Float32Array);
});

test('oblique orientation: every voxel lands exactly on its slice position', () => {
  const c = Math.cos(0.3);
  const s = Math.sin(0.3);
  const iop: Iop = [1, 0, 0, 0, c, s];
  const normal: Vec3 = [0, -s, c];
  const slices = stack(5, [0, -s * 3, c * 3], [1, 2, 3], iop);
  const a = assembleVolume(slices);
  for (const ref of a.slices) {
    const p = applyAffine(a.volume.affine, [0, 0, ref.k]);
    for (let d = 0; d < 3; d++) assert.ok(Math.abs(p[d] - ref.imagePositionPatient[d]) < 1e-9);
  }
  assert.ok(Math.abs(a.sliceSpacing - 3) < 1e-12);
  assert.equal(a.tiltDegrees, 0);
  assert.ok(Math.abs(a.volume.affine[6] - normal[1] * 3) < 1e-12);
});

test('positions rounded to 0.1 mm (as GE writes them) are accepted and spread over the stack', () => {
  // the GE fixture's geometry: oblique axial, 7 mm along the normal (0, -0.134158, 0.99096)
  const exact = stack(
    20,
    [0, -0.134158 * 7, 0.99096 * 7],
    [-110.5, -78.3063, -72.7575],
    [1, 0, 0, 0, 0.99096, 0.134158],
  );
  const rounded = exact.map((s) => ({
    ...s,
    imagePositionPatient: s.imagePositionPatient.map((v) => Math.round(v * 10) / 10) as unknown as Vec3,
  }));
  const a = assembleVolume(rounded);
  assert.ok(a.maxPositionResidualMm < 0.18, String(a.maxPositionResidualMm));
  assert.ok(Math.abs(a.sliceSpacing - 7) < 0.01, String(a.sliceSpacing));
  assert.equal(a.tiltDegrees, 0);
});

test('a repeated plane (same SOP instance and frame) is dropped with a warning', () => {
  const slices = stack(3, [0, 0, 1]);
  const a = assembleVolume([...slices, slices[1]]);
  assert.equal(a.volume.dims[2], 3);
  assert.match(a.warnings.join(), /repeated/);
});

test('bad series get coded refusals', () => {
  const s = stack(5, [0, 0, 1]);
  assert.equal(
    code(() => assembleVolume([])),
    'SERIES.EMPTY',
  );
  assert.equal(
    code(() => assembleVolume([s[0]])),
    'SERIES.SINGLE_SLICE',
  );
  assert.equal(
    code(() => assembleVolume([s[0], s[1], s[3], s[4]])),
    'SERIES.MISSING_SLICE',
  );
  assert.equal(
    code(() => assembleVolume([...s, { ...s[2], sopInstanceUid: '9.9' }])),
    'SERIES.DUPLICATE_SLICE',
  );
  assert.equal(
    code(() => assembleVolume([s[0], s[1], { ...s[2], imagePositionPatient: [10, -20, 32.4] }, s[3], s[4]])),
    'SERIES.NON_UNIFORM_SPACING',
  );
  assert.equal(
    code(() => assembleVolume([s[0], { ...s[1], imageOrientationPatient: [1, 0, 0, 0, 0.99, 0.141] }])),
    'SERIES.MIXED_ORIENTATION',
  );
  assert.equal(
    code(() => assembleVolume([s[0], { ...s[1], rows: 3, pixels: new Int16Array(9) }])),
    'SERIES.MIXED_SIZE',
  );
  assert.equal(
    code(() => assembleVolume([s[0], { ...s[1], pixelSpacing: [0.5, 0.9] }])),
    'SERIES.MIXED_SIZE',
  );
  assert.equal(
    code(() => assembleVolume(stack(3, [0, 0, 1], [0, 0, 0], [1, 0, 0, 0.5, 0.5, 0]))),
    'SERIES.BAD_ORIENTATION',
  );
});

test('gantry tilt: a sheared affine that keeps every position exact, or a refusal when asked', () => {
  // 10° tilt: the stack advances along z and shifts along y
  const t = (10 * Math.PI) / 180;
  const slices = stack(6, [0, 2 * Math.tan(t), 2]);
  const a = assembleVolume(slices);
  assert.ok(Math.abs(a.tiltDegrees - 10) < 1e-9);
  assert.match(a.warnings.join(), /tilted/);
  for (const ref of a.slices) {
    const p = applyAffine(a.volume.affine, [0, 0, ref.k]);
    for (let d = 0; d < 3; d++) assert.ok(Math.abs(p[d] - ref.imagePositionPatient[d]) < 1e-9);
  }
  assert.equal(a.sliceSpacing, 2);
  assert.equal(
    code(() => assembleVolume(slices, { tilt: 'refuse' })),
    'SERIES.GANTRY_TILT',
  );
});

test('multi-frame planes (same SOP instance, different frames) assemble like classic ones', () => {
  const slices = stack(3, [0, 0, 1]).map((s, f) => ({ ...s, sopInstanceUid: '1.2.9', frameNumber: f + 1 }));
  const a = assembleVolume(slices.reverse());
  assert.deepEqual(
    a.slices.map((s) => s.frameNumber),
    [1, 2, 3],
  );
});
