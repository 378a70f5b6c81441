import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Vec3 } from '../model/geometry.ts';
import { createVolume, voxelCount } from '../model/volume.ts';
import { countVoxels, detectSkullStripped, dice, maskVolumeMl } from './mask-ops.ts';
import { gridAffine, maskFrom } from '../imaging/testing/masks.ts';

test('Dice and volume', () => {
  const m = maskFrom(
    [20, 10, 10],
    [1, 1, 2],
    (i, j, k) => (i < 3 && j < 3 && k < 3) || (i > 8 && i < 16 && j > 2 && k > 2),
  );
  const big = maskFrom([20, 10, 10], [1, 1, 2], (i, j, k) => i > 8 && i < 16 && j > 2 && k > 2);
  assert.equal(countVoxels(big), 7 * 7 * 7);
  assert.ok(Math.abs(maskVolumeMl(big) - (343 * 2) / 1000) < 1e-12);
  assert.equal(dice(big, big), 1);
  assert.ok(Math.abs(dice(m, big) - (2 * 343) / (343 + 343 + 27)) < 1e-12);
  assert.equal(
    dice(
      maskFrom([2, 2, 2], [1, 1, 1], () => false),
      maskFrom([2, 2, 2], [1, 1, 1], () => false),
    ),
    1,
  );
});

test('skull-stripped detection: a brain in zeros vs. a head edged by faint noise', () => {
  // 2.5 mm voxels, a 1.2 L ellipsoid "brain" with tissue-like intensities
  const dims: Vec3 = [72, 84, 66];
  const sp: Vec3 = [2.5, 2.5, 2.5];
  const g = { dims, affine: gridAffine(sp) };
  let s = 3;
  const noise = (): number => {
    s = (1103515245 * s + 12345) % 2147483648;
    return s / 2147483648;
  };
  const brain = new Float32Array(voxelCount(dims));
  const head = new Float32Array(voxelCount(dims));
  let o = 0;
  for (let k = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++, o++) {
        const r = Math.sqrt(((i - 36) / 27) ** 2 + ((j - 42) / 33) ** 2 + ((k - 33) / 24) ** 2);
        const tissue = r < 1 ? 80 + 20 * Math.cos(i / 2) + 10 * noise() : 0;
        brain[o] = tissue;
        // head: scalp up to r = 1.25, faint rim (3–6) where the scanner stopped zeroing
        head[o] = r < 1 ? tissue : r < 1.2 ? 40 * noise() + 20 : r < 1.25 ? 3 + 3 * noise() : 0;
      }
  const stripped = detectSkullStripped(createVolume(g.dims, g.affine, brain));
  assert.equal(stripped.skullStripped, true, stripped.reason);
  assert.ok(stripped.foregroundMl > 1000 && stripped.foregroundMl < 1500);
  const raw = detectSkullStripped(createVolume(g.dims, g.affine, head));
  assert.equal(raw.skullStripped, false);
  assert.match(raw.reason, /not brain-sized|faint/);
  const full = detectSkullStripped(
    createVolume(
      g.dims,
      g.affine,
      head.map((v) => v + 1 + noise()),
    ),
  );
  assert.equal(full.skullStripped, false);
  assert.match(full.reason, /background/);
});
