import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { affineMaxDiff } from '../../domain/model/geometry.ts';
import { createVolume } from '../../domain/model/volume.ts';
import { openMs } from '../../test/helpers/fixtures.ts';
import { encodeNifti, parseNifti, readNifti, writeNifti } from './nifti.ts';

// Expected values printed by nibabel 5 (affine converted RAS → LPS, data summed in float64).
test('reads a real qform/sform NIfTI with the affine nibabel reports (LPS)', async () => {
  const { volume } = await readNifti(openMs('cross_sectional', 'patient26', 'FLAIR.nii.gz'));
  assert.deepEqual(volume.dims, [132, 168, 125]);
  const expected = [1, 0, 0, -65, 0, -1, 0, 99, 0, 0, 1, -51, 0, 0, 0, 1];
  assert.ok(affineMaxDiff(volume.affine, expected) < 1e-4);
  let sum = 0;
  for (const v of volume.data) sum += v;
  assert.ok(Math.abs(sum - 87529347.18) / 87529347 < 1e-6);
});

test('reads an oblique raw clinical scan (uint16, 0.72×0.72×4 mm)', async () => {
  const { volume } = await readNifti(openMs('longitudinal', 'patient01', 'study1_FLAIR.nii.gz'));
  assert.ok(volume.data instanceof Uint16Array);
  const expected = [
    0.7176, 0.0322, -0.1364, -119.235, -0.0328, 0.7178, -0.0929, -99.0194, 0.0237, 0.0178, 3.9966, -78.3814,
    0, 0, 0, 1,
  ];
  assert.ok(affineMaxDiff(volume.affine, expected) < 1e-3);
  let sum = 0;
  for (const v of volume.data) sum += v;
  assert.equal(sum, 214734319);
});

test('write then read gives back voxels and affine (uint8, int16, float32; gz and plain)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'nifti-'));
  try {
    const affine = [
      0.7176, 0.0322, -0.1364, -119.235, -0.0328, 0.7178, -0.0929, -99.0194, 0.0237, 0.0178, 3.9966, -78.3814,
      0, 0, 0, 1,
    ];
    for (const [name, data] of [
      ['a.nii.gz', new Uint8Array(24).map((_, i) => i % 2)],
      ['b.nii', new Int16Array(24).map((_, i) => i * -300)],
      ['c.nii.gz', new Float32Array(24).map((_, i) => i / 7)],
    ] as const) {
      const v = createVolume([2, 3, 4], affine, data);
      await writeNifti(join(dir, name), v, 'test');
      const back = await readNifti(join(dir, name));
      assert.deepEqual(Array.from(back.volume.data), Array.from(data));
      assert.equal(back.volume.data.constructor, data.constructor);
      assert.ok(affineMaxDiff(back.volume.affine, affine) < 1e-4);
      assert.equal(back.description, 'test');
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('corrupt and truncated files give coded errors', async () => {
  assert.throws(() => parseNifti(new Uint8Array(10)), { code: 'NIFTI.INVALID' });
  const good = encodeNifti(
    createVolume([4, 4, 4], [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], new Float32Array(64)),
    { gzip: false },
  );
  assert.throws(() => parseNifti(good.subarray(0, 400)), { code: 'NIFTI.INVALID', message: /truncated/ });
  const gz = encodeNifti(
    createVolume([4, 4, 4], [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], new Float32Array(64)),
  );
  assert.throws(() => parseNifti(gz.subarray(0, 30)), { code: 'NIFTI.INVALID' });
  const dir = await mkdtemp(join(tmpdir(), 'nifti-'));
  await writeFile(join(dir, 'x.nii'), 'hello');
  await assert.rejects(readNifti(join(dir, 'x.nii')), { code: 'NIFTI.INVALID' });
  await assert.rejects(readNifti(join(dir, 'missing.nii')), { code: 'NIFTI.NOT_FOUND' });
  await rm(dir, { recursive: true, force: true });
});
