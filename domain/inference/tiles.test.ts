import { test } from 'node:test';
import assert from 'node:assert/strict';
import { importanceMap, mirrorCombinations, roundHalfEven, tileGrid, tileStarts } from './tiles.ts';

test('tile starts match nnU-Net v2 (values from the Python reference)', () => {
  // expected values printed by models/reference/sliding_window_ref.py:steps
  assert.deepEqual(tileStarts(182, 96, 0.5), [0, 43, 86]);
  assert.deepEqual(tileStarts(218, 96, 0.5), [0, 41, 81, 122]);
  assert.deepEqual(tileStarts(100, 96, 0.5), [0, 4]);
  assert.deepEqual(tileStarts(96, 96, 0.5), [0]);
  assert.deepEqual(tileStarts(145, 96, 0.5), [0, 24, 49]);
  assert.deepEqual(tileStarts(50, 16, 0.5), [0, 7, 14, 20, 27, 34]);
  assert.deepEqual(tileStarts(37, 24, 0.5), [0, 6, 13]); // 6.5 rounds half to even
  assert.deepEqual(tileStarts(121, 20, 0.5), [0, 9, 18, 28, 37, 46, 55, 64, 73, 83, 92, 101]);
  assert.deepEqual(tileStarts(57, 16, 0.25), [0, 4, 7, 11, 15, 19, 22, 26, 30, 34, 37, 41]);
  assert.deepEqual(tileStarts(41, 16, 1), [0, 12, 25]);
});

test('tiles cover every voxel, the last flush with the edge, steps never exceed step · patch', () => {
  for (const [size, patch, step] of [
    [200, 64, 0.5],
    [65, 64, 0.5],
    [300, 17, 0.33],
  ] as const) {
    const s = tileStarts(size, patch, step);
    assert.equal(s[0], 0);
    assert.equal(s.at(-1), size - patch);
    for (let i = 1; i < s.length; i++) assert.ok(s[i] - s[i - 1] <= Math.ceil(patch * step));
  }
  assert.equal(tileGrid([182, 218, 182], [96, 96, 96], 0.5).length, 36);
  assert.throws(() => tileStarts(10, 16, 0.5), RangeError);
  assert.throws(() => tileStarts(20, 16, 0), RangeError);
});

test('roundHalfEven rounds like numpy', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 2.4, 2.6, 7].map(roundHalfEven), [0, 2, 2, 4, 2, 3, 7]);
});

test('importance map: σ = patch/8 Gaussian at patch//2, peak 1, never 0, cached', () => {
  const g = importanceMap([16, 24, 24], true);
  const at = (d: number, h: number, w: number): number => g[(d * 24 + h) * 24 + w];
  assert.equal(at(8, 12, 12), 1);
  // scipy.ndimage.gaussian_filter values (see the reference script)
  assert.ok(Math.abs(at(8, 12, 0) - 0.00033546262) < 1e-9);
  assert.ok(Math.abs(at(3, 5, 7) - 0.00072010676) < 1e-9);
  assert.ok(Math.abs(at(0, 0, 0) - 3.7751344e-11) < 1e-15);
  assert.ok(g.every((v) => v > 0 && v <= 1));
  assert.equal(importanceMap([16, 24, 24], true), g);
  const small = importanceMap([5, 7, 6], true);
  assert.ok(Math.abs(small[(4 * 7 + 6) * 6 + 5] - 4.782623e-7) < 1e-12);
  assert.ok(importanceMap([4, 4, 4], false).every((v) => v === 1));
});

test('mirror combinations follow itertools.combinations order', () => {
  assert.deepEqual(mirrorCombinations([0, 1, 2]), [[0], [1], [2], [0, 1], [0, 2], [1, 2], [0, 1, 2]]);
  assert.deepEqual(mirrorCombinations([2]), [[2]]);
  assert.deepEqual(mirrorCombinations([]), []);
});
