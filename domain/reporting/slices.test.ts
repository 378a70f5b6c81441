import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mat4 } from '../model/geometry.ts';
import { createVolume, index, type Volume } from '../model/volume.ts';
import { autoWindow, inPlaneBounds, nonEmptySlices, selectDelineationSlices } from './slices.ts';

const AFFINE = mat4([
  [1, 0, 0, 0],
  [0, 1, 0, 0],
  [0, 0, 2, 0],
]); // 2 mm slices

function labels(dims: [number, number, number], blobs: { l: number; k: number; n: number }[]): Volume {
  const data = new Int32Array(dims[0] * dims[1] * dims[2]);
  for (const b of blobs)
    for (let p = 0; p < b.n; p++) data[index(dims, p % dims[0], Math.floor(p / dims[0]), b.k)] = b.l;
  return createVolume(dims, AFFINE, data);
}

test('picks the slices that show the most lesion area, spread by the minimum separation, sorted', () => {
  const v = labels(
    [20, 20, 30],
    [
      { l: 1, k: 10, n: 100 },
      { l: 1, k: 11, n: 90 }, // same lesion, adjacent: not picked (too close, and already shown)
      { l: 2, k: 20, n: 40 },
      { l: 3, k: 3, n: 10 },
    ],
  );
  assert.deepEqual(selectDelineationSlices(v, { count: 3, minSeparationMm: 10 }), [3, 10, 20]);
  assert.deepEqual(selectDelineationSlices(v, { count: 1 }), [10]);
});

test('a slice showing a not-yet-shown lesion beats a bigger slice of an already shown one', () => {
  const v = labels(
    [20, 20, 40],
    [
      { l: 1, k: 5, n: 200 },
      { l: 1, k: 20, n: 150 }, // gain 75 once lesion 1 is shown
      { l: 2, k: 30, n: 100 }, // gain 100
    ],
  );
  assert.deepEqual(selectDelineationSlices(v, { count: 2, minSeparationMm: 4 }), [5, 30]);
});

test('the change mask decides the first pick; without lesions the largest FLAIR section is shown', () => {
  const v = labels(
    [10, 10, 20],
    [
      { l: 1, k: 4, n: 50 },
      { l: 2, k: 15, n: 5 },
    ],
  );
  const change = createVolume([10, 10, 20], AFFINE, new Uint8Array(2000));
  change.data[index([10, 10, 20], 0, 0, 15)] = 1;
  assert.deepEqual(selectDelineationSlices(v, { count: 1, changeMask: change }), [15]);
  const none = labels([10, 10, 20], []);
  const flair = labels(
    [10, 10, 20],
    [
      { l: 1, k: 7, n: 80 },
      { l: 1, k: 2, n: 20 },
    ],
  );
  assert.deepEqual(selectDelineationSlices(none, { flair }), [7]);
  assert.deepEqual(selectDelineationSlices(none), []);
});

test('autoWindow ignores the zero background and clips the brightest voxels', () => {
  const data = new Float32Array(10000);
  for (let p = 0; p < 5000; p++) data[p] = 100 + (p % 100);
  data[5000] = 1e6; // one outlier
  const w = autoWindow(createVolume([100, 100, 1], AFFINE, data));
  assert.ok(w.low >= 100 && w.low < 102, String(w.low));
  assert.ok(w.high > 195 && w.high < 200, String(w.high));
});

test('nonEmptySlices and inPlaneBounds', () => {
  const v = labels(
    [10, 10, 5],
    [
      { l: 1, k: 1, n: 12 },
      { l: 1, k: 3, n: 1 },
    ],
  );
  assert.deepEqual(nonEmptySlices(v), [1, 3]);
  assert.deepEqual(inPlaneBounds(v), { i0: 0, i1: 10, j0: 0, j1: 2 });
  assert.equal(inPlaneBounds(labels([4, 4, 1], [])), null);
});
