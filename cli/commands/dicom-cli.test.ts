/**
 * The research command line: import-nifti (NIfTI → DICOM study folder) and dicom2nifti (DICOM folder →
 * .nii.gz + sidecars), run in-process with captured output.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNifti } from '../../adapters/nifti/nifti.ts';
import { affineMaxDiff, orientationCode } from '../../domain/model/geometry.ts';
import { reorient, toFloat32 } from '../../domain/model/volume.ts';
import { dicomSeriesDir, openMs } from '../../test/helpers/fixtures.ts';
import { run as dicom2nifti } from './dicom2nifti.ts';
import { run as importNifti } from './import-nifti.ts';

function io(): {
  out: string[];
  err: string[];
  progress: string[];
  io: { out(l: string): void; err(l: string): void; progress(l: string): void };
} {
  const out: string[] = [];
  const err: string[] = [];
  const progress: string[] = [];
  return {
    out,
    err,
    progress,
    io: { out: (l) => out.push(l), err: (l) => err.push(l), progress: (l) => progress.push(l) },
  };
}

describe('import-nifti and dicom2nifti', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dicom-cli-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('NIfTI → import-nifti → dicom2nifti gives back the volumes; sidecars carry classification and geometry, no patient data', async () => {
    const flair = openMs('cross_sectional', 'patient07', 'FLAIR.nii.gz');
    const t2 = openMs('cross_sectional', 'patient07', 'T2.nii.gz');
    const a = io();
    const studyDir = join(dir, 'study');
    const code = await importNifti(
      [
        '--flair',
        flair,
        '--t2',
        t2,
        '--patient-id',
        'SECRET-ID-7',
        '--patient-name',
        'Secret^Name',
        '--study-date',
        '20210304',
        '--out',
        studyDir,
        '--json',
      ],
      a.io,
    );
    assert.equal(code, 0, a.err.join('\n'));
    const summary = JSON.parse(a.out.join('\n')) as {
      studyInstanceUid: string;
      series: { contrast: string; instances: number }[];
    };
    assert.deepEqual(
      summary.series.map((s) => s.contrast),
      ['FLAIR', 'T2'],
    );
    assert.ok(!a.out.join('').includes('SECRET'), 'no patient data on the output');
    const again = io();
    assert.equal(
      await importNifti(
        ['--flair', flair, '--patient-id', 'SECRET-ID-7', '--study-date', '20210304', '--out', studyDir],
        again.io,
      ),
      1,
    );
    assert.match(again.err.join(''), /IMPORT.OUTPUT_EXISTS/);

    const b = io();
    const niftiDir = join(dir, 'nifti');
    assert.equal(await dicom2nifti([studyDir, '--out', niftiDir], b.io), 0, b.err.join('\n'));
    const files = (await readdir(niftiDir)).sort();
    assert.deepEqual(files, [
      '001_FLAIR_research_import.json',
      '001_FLAIR_research_import.nii.gz',
      '002_T2_research_import.json',
      '002_T2_research_import.nii.gz',
    ]);
    const sidecarText = await readFile(join(niftiDir, '001_FLAIR_research_import.json'), 'utf8');
    assert.ok(
      !sidecarText.includes('SECRET') && !sidecarText.includes('Secret'),
      'no patient data in the sidecar',
    );
    const sidecar = JSON.parse(sidecarText) as {
      classification: { role: string; acquisition: string; rule: string };
      geometry: { dims: number[]; orientation: string };
    };
    assert.deepEqual(
      [sidecar.classification.role, sidecar.classification.acquisition, sidecar.classification.rule],
      ['FLAIR', '3D', 'flair-by-name'],
    );
    const original = toFloat32((await readNifti(flair)).volume);
    const back = reorient(
      (await readNifti(join(niftiDir, '001_FLAIR_research_import.nii.gz'))).volume,
      orientationCode(original.affine),
    );
    assert.deepEqual(back.dims, original.dims);
    assert.ok(affineMaxDiff(back.affine, original.affine) <= 1e-3);
    let maxAbs = 0;
    let maxErr = 0;
    for (let x = 0; x < original.data.length; x++) {
      maxAbs = Math.max(maxAbs, Math.abs(original.data[x]));
      maxErr = Math.max(maxErr, Math.abs(original.data[x] - back.data[x]));
    }
    assert.ok(maxErr <= (maxAbs / 65534) * 1.001 + 1e-6, `error ${maxErr}`);
  });

  test('a real vendor series converts (integer data stay int16); bad usage and empty folders are refused', async () => {
    const c = io();
    const out = join(dir, 'ge');
    assert.equal(
      await dicom2nifti([dicomSeriesDir('ge_fse_pd_axial'), '--out', out, '--json'], c.io),
      0,
      c.err.join('\n'),
    );
    const summary = JSON.parse(c.out.join('\n')) as {
      converted: { role: string; dims: number[] }[];
      failed: unknown[];
    };
    assert.deepEqual(
      summary.converted.map((x) => [x.role, x.dims]),
      [['OTHER', [256, 256, 20]]],
    );
    const nii = (await readdir(out)).find((f) => f.endsWith('.nii.gz')) ?? '';
    assert.ok((await readNifti(join(out, nii))).volume.data instanceof Int16Array);

    const u = io();
    assert.equal(await dicom2nifti([dicomSeriesDir('ge_fse_pd_axial')], u.io), 2);
    assert.match(u.err.join(''), /--out is required/);
    assert.equal(await importNifti(['--flair', 'x.nii.gz', '--out', dir], io().io), 2);
    assert.equal(
      await importNifti(
        [
          '--flair',
          'x.nii.gz',
          '--patient-id',
          'p',
          '--study-date',
          '20200101',
          '--out',
          join(dir, 'x'),
          '--token',
          't',
        ],
        io().io,
      ),
      2,
    );
    const missing = io();
    assert.equal(
      await importNifti(
        [
          '--flair',
          join(dir, 'absent.nii.gz'),
          '--patient-id',
          'p',
          '--study-date',
          '20200101',
          '--out',
          join(dir, 'x'),
        ],
        missing.io,
      ),
      1,
    );
    assert.match(missing.err.join(''), /NIFTI.NOT_FOUND/);
    const empty = io();
    assert.equal(await dicom2nifti([join(dir, 'nifti'), '--out', join(dir, 'none')], empty.io), 1);
    assert.match(empty.err.join(''), /STUDY.NOT_FOUND/);
  });
});
