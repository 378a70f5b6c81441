/**
 * Research import writer: NIfTI → classic MR DICOM → volume gives back the same voxels (to the int16
 * quantisation: ≤ half the rescale slope) and the same affine (≤ 1e-3 mm); the objects pass dciodvfy with 0
 * errors; the series rules recognise the contrasts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DomainError } from '../../domain/errors.ts';
import { assembleVolume } from '../../domain/imaging/assemble.ts';
import { classifySeries } from '../../domain/imaging/series-rules.ts';
import { affineMaxDiff, applyAffine, mat4, orientationCode } from '../../domain/model/geometry.ts';
import { createVolume, reorient, toFloat32, type Volume } from '../../domain/model/volume.ts';
import { openMs } from '../../test/helpers/fixtures.ts';
import { readNifti } from '../nifti/nifti.ts';
import { FolderImageSource } from './folder-source.ts';
import { imageSlicesOf } from './image.ts';
import { formatDS, quantiseToInt16, writeClassicMrSeries, type MrContrast } from './mr-writer.ts';
import { parsePart10 } from './part10.ts';
import { buildResearchStudy, writeStudyFolder } from './research-import.ts';
import { defaultSeriesRules } from './series-rules-file.ts';
import { isValidUid, newUid, uidFromName } from './uids.ts';
import { dciodvfy } from './testing/dciodvfy.ts';

function roundTrip(original: Volume, back: Volume): { maxErr: number; maxAbs: number; affine: number } {
  const o = toFloat32(original);
  const b = reorient(back, orientationCode(o.affine));
  assert.deepEqual(b.dims, o.dims);
  let maxErr = 0;
  let maxAbs = 0;
  for (let x = 0; x < o.data.length; x++) {
    maxAbs = Math.max(maxAbs, Math.abs(o.data[x]));
    maxErr = Math.max(maxErr, Math.abs(o.data[x] - b.data[x]));
  }
  return { maxErr, maxAbs, affine: affineMaxDiff(o.affine, b.affine) };
}

describe('classic MR writer (research import)', () => {
  let scratch: string;
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'mrw-'));
  });
  after(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  test('NIfTI → DICOM folder → volume: same voxels to the quantisation, same affine; rules see the contrasts', async () => {
    const contrasts: MrContrast[] = ['FLAIR', 'T2', 'T1'];
    const vols = await Promise.all(
      contrasts.map(async (c) => ({
        contrast: c,
        volume: (await readNifti(openMs('cross_sectional', 'patient26', `${c}.nii.gz`))).volume,
        source: `${c}.nii.gz`,
      })),
    );
    const study = buildResearchStudy(vols, {
      patientId: 'RT-26',
      patientName: 'Test^Roundtrip',
      studyDate: '20230301',
    });
    const out = join(scratch, 'study');
    await writeStudyFolder(study, out);
    assert.deepEqual((await readdir(out)).sort(), ['01_FLAIR', '02_T2', '03_T1']);
    await assert.rejects(
      writeStudyFolder(study, out),
      (e: unknown) => e instanceof DomainError && e.code === 'IMPORT.OUTPUT_EXISTS',
    );

    const source = new FolderImageSource(out);
    const desc = await source.findStudy(study.studyInstanceUid);
    assert.equal(desc.patientId, 'RT-26');
    assert.equal(desc.patientName, 'Test^Roundtrip');
    assert.equal(desc.studyDate, '20230301');
    const rules = defaultSeriesRules();
    for (const [x, s] of desc.series.entries()) {
      const c = classifySeries(s, rules);
      assert.equal(c.role, contrasts[x], c.reason);
      assert.equal(c.acquisition, '3D');
      assert.equal(s.attributes.manufacturer, 'ms-lesion-service research import');
      const loaded = await source.loadSeries(study.studyInstanceUid, s.seriesInstanceUid);
      const a = assembleVolume(loaded.slices);
      const r = roundTrip(vols[x].volume, a.volume);
      assert.ok(r.affine <= 1e-3, `${contrasts[x]}: affine differs by ${r.affine}`);
      const slope = loaded.slices[0].rescaleSlope;
      assert.ok(slope <= (r.maxAbs / 32767) * 1.0001, `slope ${slope}`);
      assert.ok(
        r.maxErr <= slope / 2 + 1e-6 * r.maxAbs,
        `${contrasts[x]}: error ${r.maxErr} > slope/2 ${slope / 2}`,
      );
    }
  });

  test('the same input gives the same bytes and UIDs (the demo study is reproducible)', async () => {
    const volume = (await readNifti(openMs('cross_sectional', 'patient07', 'T2.nii.gz'))).volume;
    const a = buildResearchStudy([{ contrast: 'T2', volume }], { patientId: 'X', studyDate: '20200101' });
    const b = buildResearchStudy([{ contrast: 'T2', volume }], { patientId: 'X', studyDate: '20200101' });
    assert.equal(a.studyInstanceUid, b.studyInstanceUid);
    assert.deepEqual(a.series[0].instances[7], b.series[0].instances[7]);
    const c = buildResearchStudy([{ contrast: 'T2', volume }], { patientId: 'Y', studyDate: '20200101' });
    assert.notEqual(c.studyInstanceUid, a.studyInstanceUid);
    for (const uid of [a.studyInstanceUid, a.series[0].seriesInstanceUid, newUid(), uidFromName('x')]) {
      assert.ok(isValidUid(uid), uid);
      assert.ok(uid.startsWith('2.25.'));
    }
  });

  test('dciodvfy: 0 errors on the classic MR objects written (warnings are the documented rescale ones)', async () => {
    const volume = (await readNifti(openMs('cross_sectional', 'patient07', 'FLAIR.nii.gz'))).volume;
    const study = buildResearchStudy([{ contrast: 'FLAIR', volume }], {
      patientId: 'V-07',
      patientName: 'Ünïcode^Name',
      studyDate: '20220202',
      studyTime: '101500',
    });
    const path = join(scratch, 'one.dcm');
    await writeFile(path, study.series[0].instances[40]);
    const v = dciodvfy(path);
    assert.deepEqual(v.errors, []);
    const unexpected = v.warnings.filter(
      (w) => !/Rescale|Modality LUT|not present in standard DICOM IOD|Standard Extended/.test(w),
    );
    assert.deepEqual(unexpected, []);
    execFileSync('dcmdump', [path], { stdio: 'ignore' }); // dcmtk reads it too
  });

  test('oblique, sheared and sagittal grids keep every voxel position', () => {
    const c = Math.cos(0.4);
    const s = Math.sin(0.4);
    const oblique = mat4([
      [0.9, 0, 0, -50],
      [0, 0.9 * c, -3 * s, 20],
      [0, 0.9 * s, 3 * c, 10],
    ]);
    const sheared = mat4([
      [1, 0, 0, 0],
      [0, 1, 0.5, 0],
      [0, 0, 2, 0],
    ]);
    const sagittal = mat4([
      [0, 0, -1.2, 80],
      [-1, 0, 0, 100],
      [0, -1, 0, 90],
    ]);
    for (const [label, affine] of [
      ['oblique', oblique],
      ['sheared', sheared],
      ['sagittal', sagittal],
    ] as const) {
      const data = new Float32Array(6 * 5 * 4).map((_, x) => (x * 37) % 101);
      const vol = createVolume([6, 5, 4], affine, data);
      const files = writeClassicMrSeries(
        { studyInstanceUid: '2.25.1', patientId: 'P', studyDate: '20200101' },
        {
          volume: vol,
          contrast: 'T2',
          seriesNumber: 3,
          seriesInstanceUid: '2.25.2',
          frameOfReferenceUid: '2.25.3',
          sopInstanceUid: (k) => `2.25.4.${k}`,
        },
      );
      const a = assembleVolume(files.flatMap((f) => imageSlicesOf(parsePart10(f))));
      const r = roundTrip(vol, a.volume);
      assert.equal(r.maxErr, 0, `${label}: integer voxels are stored exactly`);
      assert.ok(r.affine <= 1e-9, `${label}: affine ${r.affine}`);
      const corner = applyAffine(a.volume.affine, [
        a.volume.dims[0] - 1,
        a.volume.dims[1] - 1,
        a.volume.dims[2] - 1,
      ]);
      assert.ok(corner.every(Number.isFinite));
    }
  });

  test('formatDS keeps 16 characters; quantisation keeps zero and integers exact', () => {
    for (const x of [0, 1, -1, 0.1, 1 / 3, -123.45678901234567, 1e-7, 98765432.12345679, -0.000123456789]) {
      const s = formatDS(x);
      assert.ok(s.length <= 16, s);
      assert.ok(Math.abs(Number(s) - x) <= Math.abs(x) * 1e-9, `${x} → ${s}`);
    }
    assert.equal(formatDS(-0), '0');
    const ints = quantiseToInt16([0, -5, 300, 32767]);
    assert.equal(ints.slope, 1);
    assert.deepEqual([...ints.stored], [0, -5, 300, 32767]);
    const floats = quantiseToInt16([0, 0.5, 1234.567, -20]);
    assert.equal(floats.stored[0], 0);
    assert.ok(Math.abs(floats.stored[2] * floats.slope - 1234.567) <= floats.slope / 2);
    assert.throws(
      () => quantiseToInt16([1, Number.NaN]),
      (e: unknown) => e instanceof DomainError && e.code === 'IMPORT.NON_FINITE_VOXELS',
    );
    assert.throws(
      () => buildResearchStudy([], { patientId: 'x', studyDate: '20200101' }),
      (e: unknown) => e instanceof DomainError && e.code === 'IMPORT.NO_INPUT',
    );
  });

  test('bad study information is refused', async () => {
    const volume = createVolume([2, 2, 2], mat4([]), new Float32Array(8));
    const bad = (patient: Parameters<typeof buildResearchStudy>[1]): void => {
      assert.throws(
        () => buildResearchStudy([{ contrast: 'FLAIR', volume }], patient),
        (e: unknown) => e instanceof DomainError && e.code === 'IMPORT.INVALID_ARGUMENT',
      );
    };
    bad({ patientId: 'x', studyDate: '2020-01-01' });
    bad({ patientId: '', studyDate: '20200101' });
    bad({ patientId: 'x', studyDate: '20200101', studyInstanceUid: '1.2.abc' });
    await Promise.resolve();
  });
});
