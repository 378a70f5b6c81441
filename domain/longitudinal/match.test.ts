import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IDENTITY, type Vec3 } from '../model/geometry.ts';
import { createVolume, type Volume } from '../model/volume.ts';
import type { ChangeClass } from '../model/analysis.ts';
import { isDomainError } from '../errors.ts';
import { matchLesions } from './match.ts';

const DIMS: Vec3 = [40, 40, 6];
const at = (i: number, j: number, k: number): number => i + DIMS[0] * (j + DIMS[1] * k);

/** A label map from boxes [id, [i0, j0, k0], [i1, j1, k1]] (inclusive corners). */
function labels(boxes: readonly [number, Vec3, Vec3][]): Volume<Int32Array> {
  const d = new Int32Array(DIMS[0] * DIMS[1] * DIMS[2]);
  for (const [id, a, b] of boxes)
    for (let k = a[2]; k <= b[2]; k++)
      for (let j = a[1]; j <= b[1]; j++) for (let i = a[0]; i <= b[0]; i++) d[at(i, j, k)] = id;
  return createVolume(DIMS, IDENTITY, d);
}

function classes(r: ReturnType<typeof matchLesions>): string[] {
  return r.changes.map((c) => `${c.class} P[${c.priorIds.join(',')}] C[${c.currentIds.join(',')}]`);
}

test('every class from hand-built lesions (1 mm voxels, one-voxel tolerance)', () => {
  const prior = labels([
    [1, [1, 1, 2], [3, 3, 2]], // 9 voxels
    [2, [10, 1, 2], [12, 3, 2]], // 9
    [3, [20, 1, 2], [23, 4, 2]], // 16
    [5, [1, 20, 2], [3, 22, 2]], // 9, nothing current near it → disappeared
    [6, [10, 20, 2], [11, 21, 2]], // 4   } two priors joined by one current lesion → merged
    [7, [14, 20, 2], [15, 21, 2]], // 4   }
    [8, [20, 20, 2], [27, 21, 2]], // 16  → two current pieces → split
    [9, [30, 1, 2], [32, 3, 2]], // 9, current shifted by 2 voxels (still overlapping one column) → stable
  ]);
  const current = labels([
    [1, [1, 1, 2], [3, 3, 2]], // 9 → 0 % → stable
    [2, [10, 1, 2], [13, 4, 2]], // 16 → +78 % → enlarged
    [3, [20, 1, 2], [22, 3, 2]], // 9 → −44 % → shrunk
    [4, [1, 30, 2], [3, 32, 2]], // nothing prior near → new
    [6, [10, 20, 2], [15, 21, 2]], // 12
    [8, [20, 20, 2], [22, 21, 2]], // 6
    [10, [25, 20, 2], [27, 21, 2]], // 6
    [9, [32, 1, 2], [34, 3, 2]], // overlaps prior 9 in column 32 (3 voxels ≥ 0.1 × 9)
  ]);
  const r = matchLesions(prior, current);
  assert.deepEqual(classes(r), [
    'new P[] C[4]',
    'enlarged P[2] C[2]',
    'merged P[6,7] C[6]',
    'split P[8] C[8,10]',
    'shrunk P[3] C[3]',
    'stable P[1] C[1]',
    'stable P[9] C[9]',
    'disappeared P[5] C[]',
  ]);
  const enlarged = r.changes.find((c) => c.class === 'enlarged');
  assert.ok(enlarged !== undefined && Math.abs(enlarged.priorVolumeMl - 0.009) < 1e-12);
  assert.ok(Math.abs(enlarged.currentVolumeMl - 0.016) < 1e-12);
  // change mask: new lesion = 1, enlarged lesion = 2 (whole lesion), everything else 0
  const m = r.changeMask.data;
  assert.equal(m[at(2, 31, 2)], 1);
  assert.equal(m[at(10, 1, 2)], 2);
  assert.equal(m[at(13, 4, 2)], 2);
  assert.equal(m[at(2, 2, 2)], 0);
  let ones = 0,
    twos = 0;
  for (const v of m) {
    if (v === 1) ones++;
    if (v === 2) twos++;
  }
  assert.equal(ones, 9);
  assert.equal(twos, 16);
  // 'growth': only the enlarged lesion's voxels beyond the dilated prior (prior 10–12 × 1–3 dilated to 9–13 × 0–4
  // covers all of 10–13 × 1–4) → nothing left; with no tolerance the growth is the 7 voxels outside 10–12 × 1–3
  const growth0 = matchLesions(prior, current, { enlargedVoxels: 'growth', toleranceVoxels: 0 });
  let g = 0;
  for (const v of growth0.changeMask.data) if (v === 2) g++;
  assert.equal(g, 7);
});

test('tolerance: touching lesions match through the one-voxel dilation, a gap needs a wider one', () => {
  const prior = labels([[1, [5, 5, 2], [7, 7, 2]]]);
  const adjacent = labels([[1, [8, 5, 2], [10, 7, 2]]]); // no common voxel, shares a face
  assert.deepEqual(classes(matchLesions(prior, adjacent)), ['stable P[1] C[1]']);
  assert.deepEqual(classes(matchLesions(prior, adjacent, { toleranceVoxels: 0 })), [
    'new P[] C[1]',
    'disappeared P[1] C[]',
  ]);
  const gap = labels([[1, [9, 5, 2], [11, 7, 2]]]); // one empty column (i = 8) between them
  assert.equal(matchLesions(prior, gap).changes.length, 2);
  assert.deepEqual(classes(matchLesions(prior, gap, { toleranceVoxels: 2 })), ['stable P[1] C[1]']);
  // through-plane: one slice apart counts with the cube (26-neighbour) dilation
  const below = labels([[1, [5, 5, 3], [7, 7, 3]]]);
  assert.deepEqual(classes(matchLesions(prior, below)), ['stable P[1] C[1]']);
});

test('minimum overlap fraction: a big new lesion grazing an old one is new', () => {
  // prior 3×3; current 10×10 whose corner voxel (8,8) touches the dilated prior (5–7 dilated → 4–8)
  const prior = labels([[1, [5, 5, 2], [7, 7, 2]]]);
  const current = labels([[1, [8, 8, 2], [17, 17, 2]]]);
  // overlap |D(P) ∩ C| = 1 voxel; min size 9 → needs ≥ 0.9 → matched at f = 0.10 (1 ≥ 0.9)
  assert.deepEqual(classes(matchLesions(prior, current)), ['enlarged P[1] C[1]']);
  // at f = 0.2 it needs ≥ 1.8 voxels → not matched
  assert.deepEqual(classes(matchLesions(prior, current, { minOverlapFraction: 0.2 })), [
    'new P[] C[1]',
    'disappeared P[1] C[]',
  ]);
});

test('±30 % boundaries: +30 % is enlarged, +20 % stable, −30 % shrunk (guard off)', () => {
  const prior = labels([[1, [5, 5, 2], [14, 5, 2]]]); // 10 voxels
  const cls = (n: number): ChangeClass => {
    const r = matchLesions(prior, labels([[1, [5, 5, 2], [4 + n, 5, 2]]]), { partialVolumeGuard: false });
    return r.changes[0].class;
  };
  assert.equal(cls(13), 'enlarged');
  assert.equal(cls(12), 'stable');
  assert.equal(cls(8), 'stable');
  assert.equal(cls(7), 'shrunk');
});

test('partial-volume guard: the change must exceed half a slice of the lesion cross-section', () => {
  // 10 → 13 mm³ (+30 %): r_eq(13 mm³) = 1.46 mm, guard π·1.46²·1/2 = 3.33 mm³ > 3 mm³ → stable
  const small = matchLesions(labels([[1, [5, 5, 2], [14, 5, 2]]]), labels([[1, [5, 5, 2], [17, 5, 2]]]));
  assert.equal(small.changes[0].class, 'stable');
  // 100 → 130 mm³: r_eq(130) = 3.14 mm, guard π·3.14²·1/2 = 15.5 mm³ < 30 → enlarged
  const prior = labels([[1, [5, 5, 2], [14, 14, 2]]]);
  const grown = labels([[1, [5, 5, 2], [14, 17, 2]]]);
  assert.equal(matchLesions(prior, grown).changes[0].class, 'enlarged');
  // …but between 4 mm slices the guard is π·3.14²·4/2 = 62 mm³ > 30 → stable
  assert.equal(matchLesions(prior, grown, { sliceThicknessMm: 4 }).changes[0].class, 'stable');
  // native prior volumes replace the resampled counts: 100 → 120 voxels is +20 % (stable), but a prior measured
  // as 60 mm³ on its own grid makes it +100 % → enlarged
  const bit = labels([[1, [5, 5, 2], [14, 16, 2]]]);
  assert.equal(matchLesions(prior, bit).changes[0].class, 'stable');
  const native = Float64Array.from([0, 0.06]);
  const r = matchLesions(prior, bit, { priorVolumesMl: native });
  assert.equal(r.changes[0].class, 'enlarged');
  assert.equal(r.changes[0].priorVolumeMl, 0.06);
});

test('matching refuses a prior on another grid and bad options', () => {
  const a = labels([]);
  const b = createVolume([40, 40, 5], IDENTITY, new Int32Array(8000));
  assert.throws(
    () => matchLesions(b, a),
    (e: unknown) => isDomainError(e) && e.code === 'LONGITUDINAL.GRID_MISMATCH',
  );
  assert.throws(
    () => matchLesions(a, a, { minOverlapFraction: 0 }),
    (e: unknown) => isDomainError(e) && e.code === 'LONGITUDINAL.INVALID_OPTION',
  );
});
