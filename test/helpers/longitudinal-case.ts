/**
 * A synthetic follow-up pair from one real MS case (committed open_ms patient26, see test/fixtures/ATTRIBUTION.md),
 * for end-to-end tests of the longitudinal comparison with a known answer:
 *
 *   current exam = a block of the real FLAIR / T2 with every expert lesion (default: axial slices 40–99, whole
 *                  slices, so the block is still recognisably skull-stripped);
 *   prior exam   = the same block with some expert lesions "healed" (their voxels, grown by a one-voxel rim
 *                  that stays off the other lesions, set per channel to the median of the normal-appearing
 *                  tissue in a shell around them) and the head moved by a known rigid transform — the voxel
 *                  data stays as it is and the prior's affine becomes M · affine, i.e. the patient lay
 *                  differently in the scanner. No interpolation: the registration has an exact answer.
 *
 * M maps current patient (LPS) coordinates to prior ones (the ITK convention of compare-exams.ts): a rotation
 * about the block's centre followed by a translation. Deterministic: same inputs, same volumes.
 */
import { readNifti } from '../../adapters/nifti/nifti.ts';
import { applyAffine, multiply, type Mat4, type Vec3 } from '../../domain/model/geometry.ts';
import { createVolume, crop, type Mask, type Volume } from '../../domain/model/volume.ts';
import { labelLesions } from '../../domain/lesions/lesion-table.ts';
import { dilate } from '../../domain/imaging/morphology.ts';
import { openMs } from './fixtures.ts';

export interface ExamVolumes {
  readonly flair: Volume<Float32Array>;
  readonly t2: Volume<Float32Array>;
}

export interface LongitudinalCase {
  readonly current: ExamVolumes;
  readonly prior: ExamVolumes;
  /** Expert lesion mask on the current grid. */
  readonly expert: Mask;
  /** Expert lesion ids on the current grid (1 = largest). */
  readonly expertLabels: Volume<Int32Array>;
  /** Expert ids healed on the prior exam. */
  readonly healed: readonly number[];
  /** Voxels changed on the prior exam (healed lesions with their rim), on the current grid. */
  readonly healedMask: Mask;
  /** Current LPS → prior LPS. */
  readonly transform: Mat4;
  /** Corners of the block in current LPS (for displacement errors). */
  readonly corners: readonly Vec3[];
}

export interface LongitudinalCaseOptions {
  /** Voxel block [min, max) of the patient26 grid (132×168×125, 1 mm; default slices 40–99). */
  readonly cropMin?: Vec3;
  readonly cropMax?: Vec3;
  /** Ranks (1 = largest expert lesion in the block) healed on the prior exam. */
  readonly healRanks?: readonly number[];
  /** Rotation about x, y, z (degrees) and translation (mm) of M. */
  readonly rotationDeg?: Vec3;
  readonly translationMm?: Vec3;
}

const rad = (d: number): number => (d * Math.PI) / 180;

/** Rigid 4×4 (row-major): rotation Rz·Ry·Rx about `centre`, then translation `t`. */
export function rigidAbout(centre: Vec3, rotationDeg: Vec3, t: Vec3): Mat4 {
  const [ax, ay, az] = rotationDeg.map(rad);
  const rx = [1, 0, 0, 0, Math.cos(ax), -Math.sin(ax), 0, Math.sin(ax), Math.cos(ax)];
  const ry = [Math.cos(ay), 0, Math.sin(ay), 0, 1, 0, -Math.sin(ay), 0, Math.cos(ay)];
  const rz = [Math.cos(az), -Math.sin(az), 0, Math.sin(az), Math.cos(az), 0, 0, 0, 1];
  const m3 = (a: number[], b: number[]): number[] =>
    Array.from({ length: 9 }, (_, x) => {
      const r = Math.floor(x / 3),
        c = x % 3;
      return a[r * 3] * b[c] + a[r * 3 + 1] * b[3 + c] + a[r * 3 + 2] * b[6 + c];
    });
  const r = m3(rz, m3(ry, rx));
  // p' = R (p - c) + c + t
  const off = [0, 1, 2].map(
    (i) => centre[i] + t[i] - (r[i * 3] * centre[0] + r[i * 3 + 1] * centre[1] + r[i * 3 + 2] * centre[2]),
  );
  return [r[0], r[1], r[2], off[0], r[3], r[4], r[5], off[1], r[6], r[7], r[8], off[2], 0, 0, 0, 1];
}

function median(values: number[]): number {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function asFloat32(v: Volume): Volume<Float32Array> {
  return createVolume(v.dims, v.affine, Float32Array.from(v.data));
}

export async function buildLongitudinalCase(
  options: LongitudinalCaseOptions = {},
): Promise<LongitudinalCase> {
  const cropMin = options.cropMin ?? [0, 0, 40];
  const cropMax = options.cropMax ?? [132, 168, 100];
  const read = async (name: string): Promise<Volume> =>
    crop(
      (await readNifti(openMs('cross_sectional', 'patient26', `${name}.nii.gz`))).volume,
      cropMin,
      cropMax,
    );
  const [flairRaw, t2Raw, maskRaw] = await Promise.all([read('FLAIR'), read('T2'), read('lesion_mask')]);
  const flair = asFloat32(flairRaw);
  const t2 = asFloat32(t2Raw);
  const expert = createVolume(
    maskRaw.dims,
    maskRaw.affine,
    Uint8Array.from(maskRaw.data, (v) => (v > 0 ? 1 : 0)),
  );
  const labelled = labelLesions(expert);
  const labels = labelled.labelMap;
  const ranks = options.healRanks ?? [2, 9, 10, 16];
  const healed = ranks.filter((r) => r < labelled.sizes.length);

  // the voxels to heal: each lesion grown by one voxel, never onto another lesion
  const anyLesion = dilate(expert, 1);
  const healedData = new Uint8Array(expert.data.length);
  const priorFlair = Float32Array.from(flair.data);
  const priorT2 = Float32Array.from(t2.data);
  for (const id of healed) {
    const own = createVolume(
      expert.dims,
      expert.affine,
      Uint8Array.from(labels.data, (v) => (v === id ? 1 : 0)),
    );
    const rim = dilate(own, 1);
    const shell = dilate(own, 4);
    const fv: number[] = [];
    const tv: number[] = [];
    for (let p = 0; p < expert.data.length; p++)
      if (shell.data[p] !== 0 && anyLesion.data[p] === 0 && flair.data[p] > 0) {
        fv.push(flair.data[p]);
        tv.push(t2.data[p]);
      }
    const f = median(fv);
    const t = median(tv);
    for (let p = 0; p < expert.data.length; p++) {
      const mine = rim.data[p] !== 0 && (labels.data[p] === 0 || labels.data[p] === id);
      if (!mine || flair.data[p] <= 0) continue;
      healedData[p] = 1;
      priorFlair[p] = f;
      priorT2[p] = t;
    }
  }

  const [nx, ny, nz] = flair.dims;
  const corners: Vec3[] = [];
  for (const i of [0, nx - 1])
    for (const j of [0, ny - 1])
      for (const k of [0, nz - 1]) corners.push(applyAffine(flair.affine, [i, j, k]));
  const centre = applyAffine(flair.affine, [(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2]);
  const transform = rigidAbout(
    centre,
    options.rotationDeg ?? [2, -1.5, 3],
    options.translationMm ?? [3.5, -2.5, 4],
  );
  const priorAffine = multiply(transform, flair.affine);
  return {
    current: { flair, t2 },
    prior: {
      flair: createVolume(flair.dims, priorAffine, priorFlair),
      t2: createVolume(t2.dims, priorAffine, priorT2),
    },
    expert,
    expertLabels: labels,
    healed,
    healedMask: createVolume(expert.dims, expert.affine, healedData),
    transform,
    corners,
  };
}
