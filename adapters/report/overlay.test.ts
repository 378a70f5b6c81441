import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DomainError } from '../../domain/errors.ts';
import { mat4 } from '../../domain/model/geometry.ts';
import { createVolume, index } from '../../domain/model/volume.ts';
import { decodePng, encodePng, renderOverlaySlice } from './overlay.ts';
import { CHANGE_RGB, LESION_RGB } from './palette.ts';

// i → left, j → anterior (NIfTI-like after RAS→LPS of a flipped grid), 1 mm
const AFFINE = mat4([
  [1, 0, 0, 0],
  [0, -1, 0, 0],
  [0, 0, 1, 0],
]);
const DIMS: [number, number, number] = [40, 40, 3];

function volumes() {
  const flair = createVolume(DIMS, AFFINE, new Float32Array(40 * 40 * 3).fill(100));
  const mask = createVolume(DIMS, AFFINE, new Uint8Array(40 * 40 * 3));
  // a 4×4 lesion at i 10–13, j 30–33 (anterior part, patient left of centre) on slice 1
  for (let j = 30; j < 34; j++) for (let i = 10; i < 14; i++) mask.data[index(DIMS, i, j, 1)] = 1;
  return { flair, mask };
}

function colourAt(img: { width: number; data: Uint8Array }, x: number, y: number): number[] {
  const o = 3 * (y * img.width + x);
  return [img.data[o], img.data[o + 1], img.data[o + 2]];
}

test('the outline surrounds the lesion, shown anterior-up, and leaves its inside grey', () => {
  const { flair, mask } = volumes();
  const r = renderOverlaySlice(flair, mask, 1, { scale: 2, window: { low: 0, high: 200 } });
  assert.deepEqual([r.image.width, r.image.height, r.mmPerPixel], [80, 80, 0.5]);
  // j = 30..33 is anterior → displayed near the top: rows (39-33)*2 .. (39-30)*2+1 = 12..19; columns 20..27
  assert.deepEqual(colourAt(r.image, 23, 15), [128, 128, 128]);
  assert.deepEqual(colourAt(r.image, 19, 15), [...LESION_RGB]);
  assert.deepEqual(colourAt(r.image, 28, 15), [...LESION_RGB]);
  assert.deepEqual(colourAt(r.image, 23, 11), [...LESION_RGB]);
  assert.deepEqual(colourAt(r.image, 23, 20), [...LESION_RGB]);
  assert.deepEqual(colourAt(r.image, 23, 60), [128, 128, 128]);
  assert.equal(r.lesionOutlinePixels, 4 * 8 + 4);
  const none = renderOverlaySlice(flair, mask, 0, { scale: 2 });
  assert.equal(none.lesionOutlinePixels, 0);
});

test('change outlines are drawn over lesion outlines; the banner is burned in', () => {
  const { flair, mask } = volumes();
  const r = renderOverlaySlice(flair, mask, 1, { scale: 4, changeMask: mask, banner: ['AI-GENERATED'] });
  assert.equal(r.lesionOutlinePixels, r.changeOutlinePixels);
  assert.deepEqual(colourAt(r.image, 39, 30), [...CHANGE_RGB]);
  let yellow = 0;
  for (let y = 0; y < 20; y++)
    for (let x = 0; x < 160; x++)
      if (colourAt(r.image, x, y)[2] < 60 && colourAt(r.image, x, y)[0] > 200) yellow++;
  assert.ok(yellow > 100, String(yellow));
});

test('PNG round trip; bad slices and grids are refused', () => {
  const { flair, mask } = volumes();
  const r = renderOverlaySlice(flair, mask, 1, { scale: 1 });
  const back = decodePng(encodePng(r.image));
  assert.deepEqual(back.data, r.image.data);
  assert.throws(
    () => renderOverlaySlice(flair, mask, 3),
    (e: unknown) => e instanceof DomainError && e.code === 'REPORT.BAD_SLICE',
  );
  const other = createVolume(
    [40, 40, 3],
    mat4([
      [2, 0, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
    ]),
    new Uint8Array(4800),
  );
  assert.throws(
    () => renderOverlaySlice(flair, other, 1),
    (e: unknown) => e instanceof DomainError && e.code === 'REPORT.GRID_MISMATCH',
  );
});
