import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PNG } from 'pngjs';
import { niceTicks, renderChart, type Rgb } from './chart.ts';
import { blandAltmanPng } from './bland-altman.ts';

function count(png: PNG, c: Rgb, box?: [number, number, number, number]): number {
  const [x0, y0, x1, y1] = box ?? [0, 0, png.width, png.height];
  let n = 0;
  for (let y = y0; y < y1; y++)
    for (let x = x0; x < x1; x++) {
      const o = 4 * (y * png.width + x);
      if (png.data[o] === c[0] && png.data[o + 1] === c[1] && png.data[o + 2] === c[2]) n++;
    }
  return n;
}

test('nice ticks are 1/2/5 × 10^k and cover the range', () => {
  assert.deepEqual(niceTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(-0.23, 0.41, 6), [-0.2, 0, 0.2, 0.4]); // raw step 0.107 → 0.2
  assert.deepEqual(niceTicks(3, 3, 4), [2.8, 3, 3.2]); // padded to 2.7–3.3, raw step 0.15 → 0.2
});

test('chart: scatter points land where their coordinates say, dashed lines have gaps, text is drawn', () => {
  const red: Rgb = [200, 0, 0];
  const blue: Rgb = [31, 119, 180];
  const bytes = renderChart({
    width: 400,
    height: 300,
    title: 'Test',
    xLabel: 'X',
    yLabel: 'Y',
    xRange: [0, 10],
    yRange: [0, 10],
    series: [
      {
        kind: 'scatter',
        points: [
          { x: 0, y: 0 },
          { x: 10, y: 10 },
        ],
        color: blue,
        label: 'a',
      },
    ],
    referenceLines: [{ y: 5, color: red, dashed: true }],
  });
  const png = PNG.sync.read(bytes);
  assert.equal(png.width, 400);
  assert.equal(png.height, 300);
  // two discs of radius 5 (≈ 90 px each) plus the legend marker
  const b = count(png, blue);
  assert.ok(b > 150 && b < 400, `blue pixels ${b}`);
  // the dashed line: red pixels in about half of the plot width, two rows thick
  const r = count(png, red);
  assert.ok(r > 150 && r < 500, `red pixels ${r}`);
  // the title is black text at the top
  assert.ok(count(png, [0, 0, 0], [0, 0, 400, 45]) > 30);
  // the point (10, 10) is at the top-right corner of the plot area: blue there, none at the bottom-right
  assert.ok(count(png, blue, [300, 0, 400, 120]) > 40);
  assert.equal(count(png, blue, [300, 150, 400, 300]), 0);
});

test('Bland–Altman PNG: bias and ±1.96 SD lines, one colour per site', () => {
  const bytes = blandAltmanPng({
    n: 3,
    points: [
      { id: 'a', site: 'S1', mean: 9, diff: 2 },
      { id: 'b', site: 'S1', mean: 5, diff: -2 },
      { id: 'c', site: 'S2', mean: 3, diff: 0 },
    ],
    bias: 0,
    sd: 2,
    lowerLimit: -3.92,
    upperLimit: 3.92,
  });
  const png = PNG.sync.read(bytes);
  assert.ok(count(png, [200, 0, 0]) > 500); // two dashed limit lines with labels
  assert.ok(count(png, [31, 119, 180]) > 100); // site S1
  assert.ok(count(png, [214, 39, 40]) > 50); // site S2
});
