import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DomainError } from '../errors.ts';
import { kthSmallest, normalizeChannel, percentiles } from './normalize.ts';

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

test('kthSmallest agrees with sorting, duplicates included', () => {
  const rnd = lcg(7);
  for (const n of [1, 2, 3, 10, 101, 1000]) {
    const base = Float64Array.from({ length: n }, () => Math.floor(rnd() * 20));
    const sorted = Float64Array.from(base).sort();
    for (const k of [0, Math.floor(n / 3), n - 1])
      assert.equal(kthSmallest(Float64Array.from(base), k), sorted[k]);
  }
});

test("percentiles use numpy's linear interpolation", () => {
  // numpy.percentile([1, 2, 3, 4, 10], [0, 25, 50, 90, 99.5, 100]) = [1, 2, 3, 7.6, 9.88, 10]
  const got = percentiles(Float64Array.from([10, 3, 1, 4, 2]), [0, 25, 50, 90, 99.5, 100]);
  const want = [1, 2, 3, 7.6, 9.88, 10];
  got.forEach((v, i) => {
    assert.ok(Math.abs(v - want[i]) < 1e-12, `${v} vs ${want[i]}`);
  });
});

test('z-score over the brain mask, zero outside, with percentile clipping', () => {
  const data = Float32Array.from([0, 1, 2, 3, 4, 100, 7]);
  const brain = Uint8Array.from([0, 1, 1, 1, 1, 1, 0]);
  const out = normalizeChannel(data, { method: 'zscore', mask: 'brain' }, brain);
  const v = [1, 2, 3, 4, 100];
  const mean = v.reduce((a, b) => a + b) / 5;
  const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / 5);
  assert.ok(Math.abs(out[2] - (2 - mean) / std) < 1e-6);
  assert.equal(out[0], 0);
  assert.equal(out[6], 0);
  const clipped = normalizeChannel(
    data,
    { method: 'zscore', mask: 'brain', clipPercentiles: [0, 75] },
    brain,
  );
  // 75th percentile of [1, 2, 3, 4, 100] is 4: 100 is clipped to 4 before the statistics
  assert.ok(Math.abs(clipped[5] - clipped[4]) < 1e-7);
});

test('minmax, nonzero mask, fixed and none', () => {
  const data = Float32Array.from([0, 2, 4, 6, 0]);
  const mm = normalizeChannel(data, { method: 'minmax', mask: 'nonzero' });
  assert.deepEqual([...mm], [0, 0, 0.5, 1, 0]);
  const all = normalizeChannel(data, { method: 'minmax', mask: 'all' });
  assert.deepEqual(
    [...all],
    [0, 1 / 3, 2 / 3, 1, 0].map((x) => Math.fround(x)),
  );
  const fixed = normalizeChannel(data, { method: 'fixed', mask: 'all', clipValues: [1, 5], mean: 3, std: 2 });
  assert.deepEqual([...fixed], [-1, -0.5, 0.5, 1, -1]);
  const none = normalizeChannel(Int16Array.from([5, -3]), { method: 'none', mask: 'all' });
  assert.deepEqual([...none], [5, -3]);
  const outside = normalizeChannel(data, { method: 'minmax', mask: 'nonzero', outsideValue: -1 });
  assert.equal(outside[0], -1);
});

test('coded errors: empty mask, non-finite input', () => {
  assert.throws(
    () => normalizeChannel(new Float32Array(4), { method: 'zscore', mask: 'nonzero' }),
    (e: unknown) => e instanceof DomainError && e.code === 'INFERENCE.EMPTY_NORMALIZATION_MASK',
  );
  assert.throws(
    () => normalizeChannel(Float32Array.from([1, NaN]), { method: 'zscore', mask: 'all' }),
    (e: unknown) => e instanceof DomainError && e.code === 'INFERENCE.NON_FINITE_INPUT',
  );
});
