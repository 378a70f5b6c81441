/**
 * compareExams on the real longitudinal patient01 (raw clinical FLAIRs: 0.72×0.72×4 mm then 0.72×0.72×3 mm, not
 * skull-stripped, different positioning): with the masks right — the dataset's lesion-change mask carried into
 * exam 2 as new lesions, plus synthetic stable and enlarged spheres in both exams — the registration must recover
 * the dataset's transforms and the matching must find exactly the new, stable and enlarged lesions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readNifti } from '../../adapters/nifti/nifti.ts';
import { readItkTransform } from '../../adapters/itk/itk-transform.ts';
import { openMs } from '../../test/helpers/fixtures.ts';
import { applyAffine, invert, mat4, multiply, spacingOf, type Mat4, type Vec3 } from '../model/geometry.ts';
import { createVolume, type Mask, type Volume } from '../model/volume.ts';
import { isDomainError } from '../errors.ts';
import { boxCorners, meanDisplacement } from '../preprocess/registration.ts';
import { gridOf, resampleMask } from '../preprocess/resample.ts';
import { syntheticChangeScenario } from '../longitudinal/synthetic.ts';
import { labelLesions } from '../lesions/lesion-table.ts';
import { evaluateSegmentation } from '../evaluation/metrics.ts';
import { compareExams } from './compare-exams.ts';

const binary = (v: Volume): Mask =>
  createVolume(
    v.dims,
    v.affine,
    Uint8Array.from(v.data, (x) => (x >= 0.5 ? 1 : 0)),
  );

/** True when a sphere (LPS centre in common space, radius) lies inside an exam's field of view. */
function insideExam(flair: Volume, commonToExam: Mat4): (c: Vec3, r: number) => boolean {
  const toVoxel = invert(flair.affine);
  const sp = spacingOf(flair.affine);
  return (c, r) => {
    const v = applyAffine(toVoxel, applyAffine(commonToExam, c));
    return [0, 1, 2].every((a) => v[a] - r / sp[a] - 1 >= 0 && v[a] + r / sp[a] + 1 <= flair.dims[a] - 1);
  };
}

test('patient01: registration + matching recover new, stable and enlarged lesions', async () => {
  const dir = (f: string): string => openMs('longitudinal', 'patient01', f);
  const f1 = (await readNifti(dir('study1_FLAIR.nii.gz'))).volume;
  const f2 = (await readNifti(dir('study2_FLAIR.nii.gz'))).volume;
  const gt = binary((await readNifti(dir('gt.nii.gz'))).volume);
  const brain = binary((await readNifti(dir('brainmask_common_space.nii.gz'))).volume);
  // ITK convention: each file maps common-space points to that exam's FLAIR points
  const T1 = await readItkTransform(dir('study1_FLAIR_to_common_space.txt'));
  const T2 = await readItkTransform(dir('study2_FLAIR_to_common_space.txt'));
  const sc = syntheticChangeScenario(gt, brain, {
    accept: (c, r) => insideExam(f1, T1)(c, r) && insideExam(f2, T2)(c, r),
  });
  const prior = resampleMask(sc.prior, gridOf(f1), { transform: invert(T1) });
  const current = resampleMask(sc.current, gridOf(f2), { transform: invert(T2) });

  const r = compareExams({ flair: f1, mask: prior }, { flair: f2, mask: current });

  // registration: current → prior should equal T1 · T2⁻¹ (current → common → prior) within 1 mm at the box corners
  const truth = multiply(T1, invert(T2));
  const err = meanDisplacement(r.transform, truth, boxCorners(f2.affine, [0, 0, 0], f2.dims));
  assert.ok(err < 1, `registration error ${err.toFixed(2)} mm`);
  assert.ok((r.summary.registration.ncc ?? 0) > 0.9);

  const s = r.summary;
  assert.equal(s.stableCount, 6);
  assert.equal(s.enlargedCount, 4);
  assert.equal(s.disappearedCount + s.shrunkCount + s.mergedCount + s.splitCount, 0);
  // every reference change lesion (as it lands on exam 2's grid) is new
  const gtOnExam2 = resampleMask(gt, gridOf(f2), { transform: invert(T2) });
  assert.equal(s.newCount, labelLesions(gtOnExam2).count);
  assert.deepEqual(r.warnings, []);

  // the change mask back in common space against what a perfect method reports
  const back = resampleMask(r.changeMask, gridOf(gt), { transform: T2 });
  const e = evaluateSegmentation(back, binary(sc.expectedChange));
  assert.ok((e.dice ?? 0) > 0.9, `Dice ${e.dice}`);
  assert.ok((e.f1 ?? 0) > 0.9, `lesion F1 ${e.f1}`);
  // labels: 1 for the new (reference) lesions, 2 for the enlarged spheres
  let twos = 0;
  for (const v of r.changeMask.data) if (v === 2) twos++;
  const sphere = (4 / 3) * Math.PI * 6 ** 3; // mm³ of an enlarged sphere
  const vox = spacingOf(f2.affine).reduce((a, b) => a * b, 1);
  assert.ok(Math.abs((twos * vox) / (4 * sphere) - 1) < 0.15, `enlarged voxels ${twos}`);
});

test('compareExams with a given transform on identical exams: everything stable; grid errors are coded', () => {
  const dims: Vec3 = [30, 30, 10];
  const affine = mat4([
    [1, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 2, 0],
  ]);
  const flair = createVolume(
    dims,
    affine,
    new Float32Array(9000).map((_, p) => 100 + (p % 7)),
  );
  const m = new Uint8Array(9000);
  for (let k = 3; k < 6; k++)
    for (let j = 10; j < 15; j++) for (let i = 10; i < 15; i++) m[i + 30 * (j + 30 * k)] = 1;
  const mask = createVolume(dims, affine, m);
  const r = compareExams({ flair, mask }, { flair, mask }, { transform: mat4([]) });
  assert.equal(r.summary.stableCount, 1);
  assert.equal(r.summary.newCount, 0);
  assert.equal(r.summary.totalVolumeChangeMl, 0);
  assert.equal(r.summary.totalVolumeChangePercent, 0);
  assert.equal(r.summary.registration.method, 'given transform');
  assert.ok(Math.abs((r.summary.registration.ncc ?? 0) - 1) < 1e-9);
  assert.throws(
    () =>
      compareExams({ flair, mask: createVolume([30, 30, 9], affine, new Uint8Array(8100)) }, { flair, mask }),
    (e: unknown) => isDomainError(e) && e.code === 'LONGITUDINAL.GRID_MISMATCH',
  );
});
