import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mat4, type Vec3 } from '../model/geometry.ts';
import { createVolume, type Mask } from '../model/volume.ts';
import { isDomainError } from '../errors.ts';
import { readNifti } from '../../adapters/nifti/nifti.ts';
import { openMs } from '../../test/helpers/fixtures.ts';
import { anatomyFromFlair, anatomyFromParcellation18, REGION, regionMask, type Anatomy } from './anatomy.ts';
import { analyzeLesions, longestDiameter } from './lesion-table.ts';
import { locateLesion } from './location.ts';

const DIMS: Vec3 = [12, 10, 6];
// 0.5 × 1 × 3 mm voxels, origin (10, 20, 30) LPS
const AFFINE = mat4([
  [0.5, 0, 0, 10],
  [0, 1, 0, 20],
  [0, 0, 3, 30],
]);
const idx = (i: number, j: number, k: number): number => i + DIMS[0] * (j + DIMS[1] * k);

function mask(on: readonly Vec3[]): Mask {
  const data = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]);
  for (const [i, j, k] of on) data[idx(i, j, k)] = 1;
  return createVolume(DIMS, AFFINE, data);
}

function anatomy(regions: readonly [Vec3, number][]): Anatomy {
  const data = new Uint8Array(DIMS[0] * DIMS[1] * DIMS[2]).fill(REGION.BRAIN | REGION.WHITE_MATTER);
  for (const [[i, j, k], bits] of regions) data[idx(i, j, k)] = REGION.BRAIN | bits;
  return { regions: createVolume(DIMS, AFFINE, data), source: 'parcellation18', notes: [] };
}

function locate(lesion: readonly Vec3[], regions: readonly [Vec3, number][]): string {
  const labels = new Int32Array(DIMS[0] * DIMS[1] * DIMS[2]);
  for (const [i, j, k] of lesion) labels[idx(i, j, k)] = 1;
  const lo: Vec3 = [
    Math.min(...lesion.map((v) => v[0])),
    Math.min(...lesion.map((v) => v[1])),
    Math.min(...lesion.map((v) => v[2])),
  ];
  const hi: Vec3 = [
    Math.max(...lesion.map((v) => v[0])) + 1,
    Math.max(...lesion.map((v) => v[1])) + 1,
    Math.max(...lesion.map((v) => v[2])) + 1,
  ];
  return locateLesion(DIMS, labels, 1, lo, hi, anatomy(regions).regions.data).location;
}

test('location rule: one-voxel (26-neighbour) contact, precedence ventricle > cortex > infratentorial', () => {
  const lesion: Vec3[] = [
    [5, 5, 2],
    [6, 5, 2],
  ];
  // corner contact with a ventricle voxel counts
  assert.equal(locate(lesion, [[[7, 6, 3], REGION.VENTRICLE]]), 'periventricular');
  // two voxels away does not
  assert.equal(locate(lesion, [[[8, 5, 2], REGION.VENTRICLE]]), 'subcortical');
  assert.equal(locate(lesion, [[[4, 4, 1], REGION.CORTEX]]), 'juxtacortical');
  // touching both: periventricular wins
  assert.equal(
    locate(lesion, [
      [[4, 5, 2], REGION.CORTEX],
      [[7, 5, 2], REGION.VENTRICLE],
    ]),
    'periventricular',
  );
  // half of the lesion voxels infratentorial → infratentorial; infratentorial neighbours alone do not count
  assert.equal(locate(lesion, [[[5, 5, 2], REGION.INFRATENTORIAL | REGION.WHITE_MATTER]]), 'infratentorial');
  assert.equal(locate(lesion, [[[7, 5, 2], REGION.INFRATENTORIAL]]), 'subcortical');
  // juxtacortical beats infratentorial
  assert.equal(
    locate(lesion, [
      [[5, 5, 2], REGION.INFRATENTORIAL],
      [[6, 5, 2], REGION.INFRATENTORIAL],
      [[6, 6, 2], REGION.CORTEX],
    ]),
    'juxtacortical',
  );
});

test('lesion table: volumes from the real voxel size, LPS centroid, bbox, diameter, FLAIR mean, size filter', () => {
  // voxel volume 0.5 × 1 × 3 = 1.5 mm³; minimum 3 mm³ means ≥ 3 voxels (floor(3/1.5) + 1)
  const a: Vec3[] = [
    [1, 1, 1],
    [2, 1, 1],
    [3, 1, 1],
    [4, 1, 1],
    [5, 1, 1],
  ]; // 5 voxels along i: 7.5 mm³, diameter 4 × 0.5 = 2 mm
  const b: Vec3[] = [
    [8, 7, 3],
    [8, 8, 3],
    [8, 8, 4],
  ]; // 3 voxels: 4.5 mm³, diameter between (8,7,3) and (8,8,4): √(1² + 3²) mm
  const tiny: Vec3[] = [
    [10, 2, 0],
    [10, 3, 0],
  ]; // 2 voxels = 3 mm³: not strictly larger than 3 → dropped
  const m = mask([...a, ...b, ...tiny]);
  const flair = createVolume(DIMS, AFFINE, new Float32Array(m.data.length));
  for (const [n, [i, j, k]] of a.entries()) flair.data[idx(i, j, k)] = 10 * (n + 1); // mean 30
  for (const [i, j, k] of b) flair.data[idx(i, j, k)] = 7;
  const anat = anatomy([[[8, 9, 4], REGION.VENTRICLE]]);
  const r = analyzeLesions(m, flair, anat);
  assert.equal(r.summary.count, 2);
  const [l1, l2] = r.summary.lesions;
  assert.equal(l1.id, 1);
  assert.equal(l1.voxelCount, 5);
  assert.ok(Math.abs(l1.volumeMl - 0.0075) < 1e-12);
  // centroid index (3, 1, 1) → LPS (10 + 1.5, 20 + 1, 30 + 3)
  assert.deepEqual(l1.centroid, [11.5, 21, 33]);
  assert.deepEqual(l1.bboxMin, [1, 1, 1]);
  assert.deepEqual(l1.bboxMax, [6, 2, 2]);
  assert.ok(Math.abs(l1.longestDiameterMm - 2) < 1e-9);
  assert.ok(Math.abs(l1.meanFlair - 30) < 1e-9);
  assert.equal(l1.location, 'subcortical');
  assert.equal(l2.voxelCount, 3);
  assert.ok(Math.abs(l2.longestDiameterMm - Math.sqrt(10)) < 1e-9);
  assert.equal(l2.meanFlair, 7);
  assert.equal(l2.location, 'periventricular');
  assert.ok(Math.abs(r.summary.totalVolumeMl - 0.012) < 1e-12);
  assert.equal(r.summary.countByLocation.periventricular, 1);
  assert.ok(Math.abs(r.summary.volumeByLocationMl.subcortical - 0.0075) < 1e-12);
  assert.equal(r.labelMap.data[idx(10, 2, 0)], 0);
  assert.equal(r.labelMap.data[idx(8, 8, 4)], 2);
  // b is face-connected, so 6-connectivity keeps it whole; a 1 mm³ minimum keeps `tiny` as a third lesion
  assert.equal(analyzeLesions(m, flair, anat, { connectivity: 6, minVolumeMm3: 1 }).summary.count, 3);
});

test('lesion table refuses inputs on another grid', () => {
  const m = mask([[1, 1, 1]]);
  const other = createVolume([12, 10, 5], AFFINE, new Float32Array(600));
  assert.throws(
    () => analyzeLesions(m, other, anatomy([])),
    (e: unknown) => isDomainError(e) && e.code === 'LESIONS.GRID_MISMATCH',
  );
});

test('longest diameter: exact pairs and the 642-direction estimate agree on a big sphere', () => {
  const pts: number[] = [];
  const r = 20;
  for (let z = -r; z <= r; z++)
    for (let y = -r; y <= r; y++)
      for (let x = -r; x <= r; x++) {
        const d2 = x * x + y * y + z * z;
        if (d2 <= r * r && d2 > (r - 1.5) * (r - 1.5)) pts.push(x, y, z);
      }
  const all = Float64Array.from(pts);
  assert.ok(all.length / 3 > 2500); // takes the directional branch
  const est = longestDiameter(all);
  assert.ok(est <= 2 * r + 1e-9 && est >= 2 * r * 0.997, `estimate ${est}`);
  const few = Float64Array.from([0, 0, 0, 3, 4, 0, 1, 1, 1]);
  assert.equal(longestDiameter(few), 5);
});

test('anatomy from the brainchop 18-label parcellation, sampled onto a finer FLAIR grid', () => {
  // parcellation on a 2 mm grid covering the same field as a 1 mm FLAIR grid
  const pDims: Vec3 = [4, 4, 4];
  const pAff = mat4([
    [2, 0, 0, 0.5],
    [0, 2, 0, 0.5],
    [0, 0, 2, 0.5],
  ]);
  const labels = new Uint8Array(64);
  labels[0] = 3; // lateral ventricle at parcellation voxel (0,0,0)
  labels[1] = 2; // cortex at (1,0,0)
  labels[2] = 13; // brain stem at (2,0,0)
  labels[3] = 5; // cerebellar WM at (3,0,0)
  const parc = createVolume(pDims, pAff, labels);
  const flair = createVolume(
    [8, 8, 8],
    mat4([
      [1, 0, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
    ]),
    new Float32Array(512),
  );
  const a = anatomyFromParcellation18(parc, flair);
  assert.equal(a.source, 'parcellation18');
  // FLAIR voxel (0,0,0) at LPS (0,0,0) → parcellation index (−0.25) → rounds to 0: ventricle
  assert.equal(a.regions.data[0], REGION.VENTRICLE | REGION.BRAIN);
  // FLAIR voxel (2,0,0) → parcellation index 0.75 → 1: cortex
  assert.equal(a.regions.data[2], REGION.CORTEX | REGION.BRAIN);
  assert.equal(a.regions.data[4], REGION.INFRATENTORIAL | REGION.BRAIN);
  assert.equal(a.regions.data[6], REGION.INFRATENTORIAL | REGION.WHITE_MATTER | REGION.BRAIN);
  assert.equal(a.regions.data[8 * 8], REGION.VENTRICLE | REGION.BRAIN); // (0,0,1) → index 0.25 → 0
  assert.equal(a.regions.data[2 * 8], 0); // (0,2,0) → parcellation (0,1,0): unknown
  let v = 0;
  for (const x of regionMask(a, REGION.VENTRICLE).data) v += x;
  assert.equal(v, 8); // FLAIR voxels rounding to parcellation voxel 0: i, j, k ∈ {0, 1}
  labels[5] = 40;
  assert.throws(
    () => anatomyFromParcellation18(createVolume(pDims, pAff, labels), flair),
    (e: unknown) => isDomainError(e) && e.code === 'ANATOMY.BAD_LABELS',
  );
});

test('FLAIR-only anatomy fallback on a real case finds ventricles, cortex and an infratentorial region', async () => {
  const flair = (await readNifti(openMs('cross_sectional', 'patient07', 'FLAIR.nii.gz'))).volume;
  const a = anatomyFromFlair(flair);
  assert.equal(a.source, 'flair-heuristic');
  const ml = (bit: number): number => {
    let n = 0;
    for (const x of a.regions.data) if ((x & bit) !== 0) n++;
    return n / 1000; // 1 mm voxels
  };
  const vent = ml(REGION.VENTRICLE);
  assert.ok(vent > 8 && vent < 60, `ventricles ${vent} mL`);
  const cortex = ml(REGION.CORTEX);
  const wm = ml(REGION.WHITE_MATTER);
  assert.ok(cortex > 200 && cortex < 600, `cortex ${cortex} mL`);
  assert.ok(wm > 400 && wm < 900, `WM ${wm} mL`);
  const infra = ml(REGION.INFRATENTORIAL);
  assert.ok(infra > 80 && infra < 250, `infratentorial ${infra} mL`);
  // ventricles are dark on FLAIR and lie near the middle of the brain
  let s = 0;
  let n = 0;
  for (let p = 0; p < flair.data.length; p++)
    if ((a.regions.data[p] & REGION.VENTRICLE) !== 0) {
      s += flair.data[p];
      n++;
    }
  assert.ok(s / n < 45, `ventricle FLAIR mean ${s / n}`);
  const lesions = (await readNifti(openMs('cross_sectional', 'patient07', 'lesion_mask.nii.gz'))).volume;
  const table = analyzeLesions(
    createVolume(lesions.dims, lesions.affine, Uint8Array.from(lesions.data)),
    flair,
    a,
  );
  assert.equal(table.anatomySource, 'flair-heuristic');
  assert.ok(table.summary.countByLocation.periventricular >= 3);
  assert.ok(Math.abs(table.summary.totalVolumeMl - 1.29) < 0.02);
});
