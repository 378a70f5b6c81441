import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mat4, RAS_TO_LPS, multiply } from '../model/geometry.ts';
import { displayMapping, displayToVoxel, voxelToDisplay } from './display.ts';

test('LPS axial volume: shown as stored, anterior up, patient right on the left', () => {
  const m = displayMapping(
    mat4([
      [1, 0, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
    ]),
    [10, 20, 5],
  );
  assert.equal(m.plane, 'axial');
  assert.deepEqual([m.transpose, m.flipX, m.flipY], [false, false, false]);
  assert.deepEqual(m.patientOrientation, ['L', 'P']);
  assert.deepEqual([m.width, m.height], [10, 20]);
});

test('RAS (NIfTI-style) axial volume: both in-plane axes flipped', () => {
  const lps = multiply(
    RAS_TO_LPS,
    mat4([
      [1, 0, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
    ]),
  );
  const m = displayMapping(lps, [10, 20, 5]);
  assert.deepEqual([m.transpose, m.flipX, m.flipY], [false, true, true]);
  // voxel (0, 0) is patient right-anterior: display bottom? no — anterior is up, right is left: top-left … of the flipped grid
  assert.deepEqual(voxelToDisplay(m, 0, 0), [9, 19]);
  assert.deepEqual(displayToVoxel(m, 9, 19), [0, 0]);
  assert.deepEqual(m.patientOrientation, ['L', 'P']);
});

test('i along anterior-posterior, j along left-right (transposed axial)', () => {
  const m = displayMapping(
    mat4([
      [0, 0.5, 0, 0],
      [2, 0, 0, 0],
      [0, 0, 3, 0],
    ]),
    [30, 40, 5],
  );
  assert.equal(m.transpose, true);
  assert.deepEqual([m.width, m.height, m.spacingX, m.spacingY], [40, 30, 0.5, 2]);
  for (const [i, j] of [
    [0, 0],
    [7, 3],
    [29, 39],
  ] as const) {
    const [x, y] = voxelToDisplay(m, i, j);
    assert.deepEqual(displayToVoxel(m, x, y), [i, j]);
  }
});

test('sagittal and coronal stacks follow the radiological convention', () => {
  // sagittal: i → posterior (+y), j → inferior (−z), k → left
  const sag = displayMapping(
    mat4([
      [0, 0, 1, 0],
      [1, 0, 0, 0],
      [0, -1, 0, 0],
    ]),
    [10, 10, 10],
  );
  assert.equal(sag.plane, 'sagittal');
  assert.deepEqual(sag.patientOrientation, ['P', 'I']);
  assert.deepEqual([sag.flipX, sag.flipY], [false, false]);
  // coronal: i → right (−x), j → superior (+z), k → anterior
  const cor = displayMapping(
    mat4([
      [-1, 0, 0, 0],
      [0, 0, -1, 0],
      [0, 1, 0, 0],
    ]),
    [10, 10, 10],
  );
  assert.equal(cor.plane, 'coronal');
  assert.deepEqual([cor.flipX, cor.flipY], [true, true]);
  assert.deepEqual(cor.patientOrientation, ['L', 'I']);
});
