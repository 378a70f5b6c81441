/**
 * loadStudyInputs on real DICOM files (written by the research-import writer into a folder, read by the real
 * FolderImageSource): selection by the default rules, ranking, fallback to the next candidate, coded refusals.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FolderImageSource } from '../../adapters/dicom/folder-source.ts';
import { writeClassicMrSeries, type MrContrast } from '../../adapters/dicom/mr-writer.ts';
import { defaultSeriesRules } from '../../adapters/dicom/series-rules-file.ts';
import { DomainError } from '../errors.ts';
import type { SeriesFinding } from '../model/analysis.ts';
import { mat4 } from '../model/geometry.ts';
import { createVolume } from '../model/volume.ts';
import { loadStudyInputs } from './load-study.ts';

interface SeriesSpec {
  readonly uid: string;
  readonly contrast: MrContrast;
  readonly description: string;
  readonly number: number;
  readonly acquisition: '2D' | '3D';
  readonly spacing: number;
  readonly slices: number;
}

async function writeStudy(dir: string, study: string, series: readonly SeriesSpec[]): Promise<void> {
  for (const s of series) {
    const vol = createVolume(
      [8, 6, s.slices],
      mat4([
        [1, 0, 0, -4],
        [0, 1, 0, -3],
        [0, 0, s.spacing, 0],
      ]),
      new Float32Array(8 * 6 * s.slices).map((_, x) => (x % 97) + s.number),
    );
    const files = writeClassicMrSeries(
      { studyInstanceUid: study, patientId: 'LS-1', studyDate: '20240101' },
      {
        volume: vol,
        contrast: s.contrast,
        seriesNumber: s.number,
        seriesInstanceUid: s.uid,
        frameOfReferenceUid: `${study}.9`,
        sopInstanceUid: (k) => `${s.uid}.${k + 1}`,
        seriesDescription: s.description,
        mrAcquisitionType: s.acquisition,
      },
    );
    await mkdir(join(dir, s.uid), { recursive: true });
    for (const [k, f] of files.entries()) await writeFile(join(dir, s.uid, `${k}.dcm`), f);
  }
}

function roles(findings: readonly SeriesFinding[]): Record<string, [string, boolean, number | undefined]> {
  return Object.fromEntries(findings.map((f) => [f.description ?? '', [f.role, f.selected, f.rank]]));
}

describe('loadStudyInputs', () => {
  let dir: string;
  const rules = defaultSeriesRules();
  const STUDY = '2.25.500';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'load-study-'));
    await writeStudy(dir, STUDY, [
      {
        uid: '2.25.500.1',
        contrast: 'FLAIR',
        description: 'AX FLAIR',
        number: 2,
        acquisition: '2D',
        spacing: 3,
        slices: 6,
      },
      {
        uid: '2.25.500.2',
        contrast: 'FLAIR',
        description: 'SAG 3D FLAIR',
        number: 3,
        acquisition: '3D',
        spacing: 1,
        slices: 12,
      },
      {
        uid: '2.25.500.3',
        contrast: 'T2',
        description: 'T2 TSE',
        number: 4,
        acquisition: '2D',
        spacing: 3,
        slices: 6,
      },
      {
        uid: '2.25.500.4',
        contrast: 'T1C',
        description: 'T1 MPRAGE post gad',
        number: 6,
        acquisition: '3D',
        spacing: 1,
        slices: 12,
      },
      {
        uid: '2.25.500.5',
        contrast: 'T1',
        description: 'T1 MPRAGE',
        number: 5,
        acquisition: '3D',
        spacing: 1,
        slices: 12,
      },
      {
        uid: '2.25.500.6',
        contrast: 'OTHER',
        description: 'ep2d_diff_trace',
        number: 7,
        acquisition: '2D',
        spacing: 3,
        slices: 6,
      },
    ]);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('selects the 3D FLAIR, the T2 and the pre-contrast T1; every series is in the findings with its reason', async () => {
    const inputs = await loadStudyInputs({ images: new FolderImageSource(dir), rules }, STUDY);
    assert.equal(inputs.flair.series.seriesInstanceUid, '2.25.500.2');
    assert.equal(inputs.t2?.series.seriesInstanceUid, '2.25.500.3');
    assert.equal(inputs.t1?.series.seriesInstanceUid, '2.25.500.5');
    assert.deepEqual(inputs.flair.volume.dims, [8, 6, 12]);
    assert.equal(inputs.flair.slices.length, 12);
    assert.equal(inputs.flair.slices[0].sopInstanceUid, '2.25.500.2.1');
    assert.deepEqual(roles(inputs.findings), {
      'AX FLAIR': ['FLAIR', false, 2],
      'SAG 3D FLAIR': ['FLAIR', true, 1],
      'T2 TSE': ['T2', true, 1],
      'T1 MPRAGE': ['T1', true, 1],
      'T1 MPRAGE post gad': ['T1C', false, 1],
      ep2d_diff_trace: ['OTHER', false, undefined],
    });
    const flair = inputs.findings.find((f) => f.selected && f.role === 'FLAIR');
    assert.match(
      flair?.reason ?? '',
      /flair-by-name.*3D by rule acq-3d-by-type.*rank 1.*selected as FLAIR: 8×6×12 voxels/,
    );
  });

  test('a broken best FLAIR is noted and the next one is used; when none can be built its error is thrown', async () => {
    const copy = await mkdtemp(join(tmpdir(), 'load-study-broken-'));
    try {
      await writeStudy(copy, '2.25.600', [
        {
          uid: '2.25.600.1',
          contrast: 'FLAIR',
          description: 'AX FLAIR',
          number: 2,
          acquisition: '2D',
          spacing: 3,
          slices: 6,
        },
        {
          uid: '2.25.600.2',
          contrast: 'FLAIR',
          description: '3D FLAIR',
          number: 3,
          acquisition: '3D',
          spacing: 1,
          slices: 12,
        },
      ]);
      await unlink(join(copy, '2.25.600.2', '5.dcm'));
      const inputs = await loadStudyInputs({ images: new FolderImageSource(copy), rules }, '2.25.600');
      assert.equal(inputs.flair.series.seriesInstanceUid, '2.25.600.1');
      const broken = inputs.findings.find((f) => f.seriesInstanceUid === '2.25.600.2');
      assert.match(broken?.reason ?? '', /not usable: SERIES.MISSING_SLICE/);
      assert.equal(inputs.t2, undefined);
      assert.equal(inputs.t1, undefined);

      await unlink(join(copy, '2.25.600.1', '2.dcm'));
      await assert.rejects(
        loadStudyInputs({ images: new FolderImageSource(copy), rules }, '2.25.600'),
        (e: unknown) => {
          assert.ok(e instanceof DomainError);
          assert.equal(e.code, 'SERIES.MISSING_SLICE');
          assert.equal((e.details.findings as SeriesFinding[]).length, 2);
          return true;
        },
      );
    } finally {
      await rm(copy, { recursive: true, force: true });
    }
  });

  test('no FLAIR, and an unknown study, are refused with codes', async () => {
    const other = await mkdtemp(join(tmpdir(), 'load-study-noflair-'));
    try {
      await writeStudy(other, '2.25.700', [
        {
          uid: '2.25.700.1',
          contrast: 'T2',
          description: 'T2 TSE',
          number: 1,
          acquisition: '2D',
          spacing: 3,
          slices: 6,
        },
      ]);
      await assert.rejects(
        loadStudyInputs({ images: new FolderImageSource(other), rules }, '2.25.700'),
        (e: unknown) => {
          assert.ok(e instanceof DomainError);
          assert.equal(e.code, 'SERIES.NO_FLAIR');
          assert.equal(e.issueType, 'business-rule');
          assert.deepEqual(
            (e.details.findings as SeriesFinding[]).map((f) => f.role),
            ['T2'],
          );
          return true;
        },
      );
      await assert.rejects(
        loadStudyInputs({ images: new FolderImageSource(other), rules }, '2.25.404'),
        (e: unknown) => e instanceof DomainError && e.code === 'STUDY.NOT_FOUND',
      );
      assert.equal((await readdir(other)).length, 1);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});
