import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADVANCE, forEachTextPixel, glyph, hasGlyph, textWidth } from './bitmap-font.ts';

test('every character of chart labels and burned-in banners has a glyph; others are drawn as "?"', () => {
  for (const ch of 'ABCXYZ0123456789.,:-+±%()/=×AI-GENERATED NOT FOR DIAGNOSIS slice 12/180')
    assert.ok(hasGlyph(ch), ch);
  assert.equal(hasGlyph('\u0001'), false);
  assert.deepEqual(glyph('\u0001'), glyph('?'));
  assert.notDeepEqual(glyph('A'), glyph('?'));
  // dashes and the minus sign draw as '-'
  for (const ch of ['−', '–', '—']) assert.deepEqual(glyph(ch), glyph('-'), ch);
});

test('lower case is drawn as small capitals (empty top rows, the capital below)', () => {
  const a = glyph('a');
  assert.deepEqual(a.slice(0, 2), [0, 0]);
  assert.notDeepEqual(a, glyph('A'));
  assert.equal(a[2], glyph('A')[0]);
});

test('text width: ADVANCE per character, no gap after the last, 0 when empty; code points count once', () => {
  assert.equal(textWidth('AB', 2), 22);
  assert.equal(textWidth('', 3), 0);
  assert.equal(textWidth('A', 1), 5);
  assert.equal(textWidth('±×', 1), 2 * ADVANCE - 1);
});

test('text pixels: the glyph bits, left to right, one ADVANCE per character', () => {
  const px: [number, number][] = [];
  forEachTextPixel('-.', (x, y) => px.push([x, y]));
  // '-' is the full middle row (row 3, columns 0–4); '.' a 2×2 block at the bottom (columns 1–2 + ADVANCE)
  assert.deepEqual(px, [
    [0, 3],
    [1, 3],
    [2, 3],
    [3, 3],
    [4, 3],
    [ADVANCE + 1, 5],
    [ADVANCE + 2, 5],
    [ADVANCE + 1, 6],
    [ADVANCE + 2, 6],
  ]);
  let n = 0;
  forEachTextPixel('', () => n++);
  assert.equal(n, 0);
});
