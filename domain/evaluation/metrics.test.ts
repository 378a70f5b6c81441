/**
 * Hand-built masks on a line of 1 mm voxels (dims [n, 1, 1]); every expected number is worked out in the
 * comments from the MSSEG rules (α 0.10, β 0.70, γ 0.65).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IDENTITY, mat4 } from '../model/geometry.ts';
import { createVolume, type Mask } from '../model/volume.ts';
import { isDomainError } from '../errors.ts';
import { evaluateSegmentation, lesionwiseDetection } from './metrics.ts';

function line(n: number, ranges: readonly [number, number][], affine = IDENTITY): Mask {
  const data = new Uint8Array(n);
  for (const [a, b] of ranges) for (let x = a; x <= b; x++) data[x] = 1;
  return createVolume([n, 1, 1], affine, data);
}

const close = (a: number | null, b: number): void => {
  assert.ok(a !== null && Math.abs(a - b) < 1e-9, `${a} ≠ ${b}`);
};

test('partial overlap detects both ways; a leaking prediction counts for precision but not recall', () => {
  // ref R1 = 0–9 (10 voxels), R2 = 20–21 (2 voxels → too small at 3 mm³, so use minVolume 0 here)
  // pred P1 = 5–14 (10), P2 = 18–27 (10)
  const ref = line(30, [
    [0, 9],
    [20, 21],
  ]);
  const pred = line(30, [
    [5, 14],
    [18, 27],
  ]);
  const s = evaluateSegmentation(pred, ref, { minVolumeMm3: 0 });
  // ("outside" always means outside every lesion of the other mask)
  // R1: overlap 5/10 = 0.5 > α; contributor P1 has 5 of 10 voxels outside the reference: 0.5 ≤ β → detected
  // R2: overlap 2/2 = 1 > α; contributor P2 has 8 of 10 outside: 0.8 > β → NOT detected
  // P1: overlap 5/10 > α; R1 has 5/10 outside the prediction ≤ β → true positive
  // P2: overlap 2/10 = 0.2 > α; R2 has 0/2 outside the prediction → true positive
  assert.equal(s.refLesions, 2);
  assert.equal(s.predLesions, 2);
  assert.equal(s.detectedRefLesions, 1);
  assert.equal(s.truePositivePredLesions, 2);
  assert.equal(s.falseNegativeLesions, 1);
  assert.equal(s.falsePositiveLesions, 0);
  close(s.recall, 0.5);
  close(s.precision, 1);
  close(s.f1, (2 * 1 * 0.5) / 1.5); // 0.6667
  // Dice: |P ∩ R| = 5 + 2 = 7, |P| = 20, |R| = 12 → 14 / 32
  close(s.dice, 0.4375);
  close(s.predVolumeMl, 0.02);
  close(s.refVolumeMl, 0.012);
  close(s.volumeErrorMl, 0.008);
  close(s.relativeVolumeErrorPercent, (100 * 8) / 12);
});

test('α is a strict minimum overlap; a small prediction inside a big lesion is a false positive', () => {
  // R = 0–19 (20); P = 0–1 (2 voxels): R overlap 2/20 = 0.10, not > α → missed.
  // P: overlap 2/2 = 1 > α, but R lies 18/20 = 0.9 outside the prediction > β → P is not a true positive.
  let s = lesionwiseDetection(line(40, [[0, 1]]), line(40, [[0, 19]]), { minVolumeMm3: 0 });
  assert.equal(s.detectedRefLesions, 0);
  assert.equal(s.truePositivePredLesions, 0);
  close(s.f1, 0);
  // P = 0–2: R overlap 3/20 = 0.15 > α and P lies fully inside R → R detected; P still a false positive
  // (R is 17/20 = 0.85 outside P)
  s = lesionwiseDetection(line(40, [[0, 2]]), line(40, [[0, 19]]), { minVolumeMm3: 0 });
  assert.equal(s.detectedRefLesions, 1);
  assert.equal(s.truePositivePredLesions, 0);
  close(s.recall, 1);
  close(s.precision, 0);
});

test('γ stops testing contributors once they cover enough of the overlap', () => {
  const ref = line(60, [[0, 19]]); // R = 0–19 (20)
  // Variant 1: Pa = 0–13 (14, inside R), Pb = 16–35 (20, overlap 16–19 = 4, 16 outside: 0.8 > β).
  // R: detected voxels 18, overlap 18/20 > α. Contributors by overlap: Pa (14), Pb (4).
  //   Pa: 0 outside ≤ β; cumulative 14/18 = 0.778 > γ → stop before Pb → R detected.
  // Pa: overlap 14/14 > α; R has 2/20 = 0.1 of its voxels (14, 15) outside every predicted lesion ≤ β → TP.
  // Pb: overlap 4/20 = 0.2 > α; the same 0.1 of R outside every prediction → TP ("outside" is outside the
  //   whole other segmentation, not outside that one lesion). precision 1, recall 1, F1 1.
  let s = lesionwiseDetection(
    line(60, [
      [0, 13],
      [16, 35],
    ]),
    ref,
    { minVolumeMm3: 0 },
  );
  assert.equal(s.detectedRefLesions, 1);
  assert.equal(s.truePositivePredLesions, 2);
  close(s.f1, 1);
  // Variant 2: Pa = 0–9 (10), Pb = 12–41 (30, overlap 12–19 = 8, 22 outside: 0.733 > β).
  // R: detected 18; Pa first: cumulative 10/18 = 0.556 ≤ γ → Pb is tested: 0.733 > β → R NOT detected.
  // Pa: overlap 1 > α; R has 2/20 (voxels 10, 11) outside every prediction ≤ β → TP.  Pb: overlap 8/30 = 0.267
  //   > α, same 2/20 → TP.
  // precision 1, recall 0, F1 0.
  s = lesionwiseDetection(
    line(60, [
      [0, 9],
      [12, 41],
    ]),
    ref,
    { minVolumeMm3: 0 },
  );
  assert.equal(s.detectedRefLesions, 0);
  assert.equal(s.truePositivePredLesions, 2);
  close(s.precision, 1);
  close(s.recall, 0);
  close(s.f1, 0);
});

test('lesions of 3 mm³ or less are ignored on both sides (become background)', () => {
  // 1 mm³ voxels: lesions need ≥ 4 voxels. ref: 0–2 (3 voxels, dropped), 10–19 (10). pred: 0–3 (4 voxels,
  // kept), 10–19.
  // P1 = 0–3 overlaps only the dropped reference lesion → outside every reference lesion → false positive.
  const ref = line(30, [
    [0, 2],
    [10, 19],
  ]);
  const pred = line(30, [
    [0, 3],
    [10, 19],
  ]);
  const s = evaluateSegmentation(pred, ref);
  assert.equal(s.refLesions, 1);
  assert.equal(s.predLesions, 2);
  assert.equal(s.detectedRefLesions, 1);
  assert.equal(s.truePositivePredLesions, 1);
  close(s.precision, 0.5);
  // Dice uses every voxel: |P ∩ R| = 3 + 10, |P| = 14, |R| = 13 → 26 / 27
  close(s.dice, 26 / 27);
  // on 0.5 mm³ voxels (0.5 × 1 × 1) the 3-voxel lesion is 1.5 mm³: still dropped; the 4-voxel one (2 mm³) too
  const half = mat4([
    [0.5, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 1, 0],
  ]);
  const s2 = evaluateSegmentation(
    line(
      30,
      [
        [0, 3],
        [10, 19],
      ],
      half,
    ),
    line(
      30,
      [
        [0, 2],
        [10, 19],
      ],
      half,
    ),
  );
  assert.equal(s2.predLesions, 1);
  close(s2.predVolumeMl, 0.007);
});

test('connectivity decides what one lesion is', () => {
  // two 2×2 squares in a 4×4×1 grid touching at one corner: (0..1,0..1) and (2..3,2..3)
  const data = new Uint8Array(16);
  for (const [i, j] of [
    [0, 0],
    [1, 0],
    [0, 1],
    [1, 1],
    [2, 2],
    [3, 2],
    [2, 3],
    [3, 3],
  ])
    data[i + 4 * j] = 1;
  const m = createVolume([4, 4, 1], IDENTITY, data);
  assert.equal(lesionwiseDetection(m, m, { minVolumeMm3: 0 }).refLesions, 2); // face connectivity (default)
  assert.equal(lesionwiseDetection(m, m, { minVolumeMm3: 0, connectivity: 26 }).refLesions, 1);
});

test('empty sides give null where the ratio is undefined', () => {
  const empty = line(10, []);
  const one = line(10, [[0, 5]]);
  const s = evaluateSegmentation(empty, one);
  assert.equal(s.precision, null);
  assert.equal(s.recall, 0);
  assert.equal(s.f1, null);
  close(s.dice, 0);
  close(s.relativeVolumeErrorPercent, -100);
  const both = evaluateSegmentation(empty, empty);
  assert.equal(both.dice, null);
  assert.equal(both.relativeVolumeErrorPercent, null);
});

test('masks on different grids are refused with a coded error', () => {
  assert.throws(
    () => evaluateSegmentation(line(10, []), line(11, [])),
    (e: unknown) => isDomainError(e) && e.code === 'EVAL.GRID_MISMATCH',
  );
});
