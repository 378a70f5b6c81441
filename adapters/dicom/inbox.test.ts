/**
 * The file-system DICOM inbox (STOW-RS semantics) and the folder image source that reads it back.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DomainError } from '../../domain/errors.ts';
import { assembleVolume } from '../../domain/imaging/assemble.ts';
import { mat4 } from '../../domain/model/geometry.ts';
import { createVolume } from '../../domain/model/volume.ts';
import { dicomSeriesDir } from '../../test/helpers/fixtures.ts';
import { FolderImageSource } from './folder-source.ts';
import { FsDicomInbox } from './inbox.ts';
import { writeClassicMrSeries } from './mr-writer.ts';

function series(study: string, seriesUid: string, n: number): Uint8Array[] {
  const vol = createVolume(
    [5, 4, n],
    mat4([
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 2],
    ]),
    new Float32Array(20 * n).map((_, x) => x),
  );
  return writeClassicMrSeries(
    { studyInstanceUid: study, patientId: 'INBOX', studyDate: '20240301' },
    {
      volume: vol,
      contrast: 'FLAIR',
      seriesNumber: 1,
      seriesInstanceUid: seriesUid,
      frameOfReferenceUid: `${study}.99`,
      sopInstanceUid: (k) => `${seriesUid}.${k + 1}`,
    },
  );
}

async function allFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out.sort();
}

describe('FsDicomInbox and FolderImageSource', () => {
  let root: string;
  let scratch: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'inbox-'));
    scratch = await mkdtemp(join(tmpdir(), 'inbox-scratch-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(scratch, { recursive: true, force: true });
  });

  test('stores instances per study/series; a repeat is an idempotent duplicate; the study reads back', async () => {
    const inbox = await FsDicomInbox.open(root);
    const files = series('2.25.900', '2.25.900.1', 6);
    const first = await inbox.store(files);
    assert.ok(first.instances.every((x) => x.stored && x.duplicate !== true));
    assert.equal(first.instances[0].sopInstanceUid, '2.25.900.1.1');
    const again = await inbox.store(files.slice(0, 2));
    assert.deepEqual(
      again.instances.map((x) => [x.stored, x.duplicate]),
      [
        [true, true],
        [true, true],
      ],
    );
    assert.deepEqual(await readdir(join(root, '.incoming')), []);
    const source = inbox.imageSource();
    const study = await source.findStudy('2.25.900');
    assert.equal(study.series[0].numberOfInstances, 6);
    const a = assembleVolume((await source.loadSeries('2.25.900', '2.25.900.1')).slices);
    assert.deepEqual(a.volume.dims, [5, 4, 6]);
    await assert.rejects(
      source.findStudy('2.25.901'),
      (e: unknown) => e instanceof DomainError && e.code === 'STUDY.NOT_FOUND',
    );
  });

  test('bad instances are refused one by one with a code and a DICOM failure reason; nothing half-written', async () => {
    const inbox = await FsDicomInbox.open(root);
    const good = series('2.25.910', '2.25.910.1', 3);
    // wrong modality: a CT copy of a real instance
    const ct = join(scratch, 'ct.dcm');
    const src = join(
      dicomSeriesDir('siemens_avanto_t1_mprage'),
      (await readdir(dicomSeriesDir('siemens_avanto_t1_mprage'))).sort()[0],
    );
    await copyFile(src, ct);
    await chmod(ct, 0o644);
    execFileSync('dcmodify', ['-nb', '-m', '(0008,0060)=CT', ct], { stdio: 'ignore' });
    const rle = join(scratch, 'rle.dcm');
    execFileSync('dcmcrle', [src, rle], { stdio: 'ignore' });
    const badUid = join(scratch, 'baduid.dcm');
    await writeFile(badUid, good[0]);
    execFileSync('dcmodify', ['-nb', '-m', '(0020,000e)=../../etc', badUid], { stdio: 'ignore' });
    const other = series('2.25.911', '2.25.911.1', 2)[0];
    const result = await inbox.store(
      [
        good[0],
        good[1].slice(0, good[1].length - 10),
        new TextEncoder().encode('plain text'),
        new Uint8Array(await readFile(badUid)),
        other,
        good[2],
      ],
      { studyInstanceUid: '2.25.910' },
    );
    assert.deepEqual(
      result.instances.map((x) => [x.stored, x.error?.code, x.failureReason]),
      [
        [true, undefined, undefined],
        [false, 'DICOM.TRUNCATED', 0xc000],
        [false, 'DICOM.NOT_PART10', 0xc000],
        [false, 'DICOM.INVALID_UID', 0xc000],
        [false, 'STOW.STUDY_MISMATCH', 0x0110],
        [true, undefined, undefined],
      ],
    );
    const refused = await inbox.store([
      new Uint8Array(await readFile(ct)),
      new Uint8Array(await readFile(rle)),
    ]);
    assert.deepEqual(
      refused.instances.map((x) => [x.stored, x.error?.code, x.failureReason]),
      [
        [false, 'DICOM.WRONG_MODALITY', 0x0122],
        [false, 'DICOM.COMPRESSED_UNSUPPORTED', 0xc122],
      ],
    );
    const stored = await allFiles(join(root, '2.25.910'));
    assert.deepEqual(
      stored.map((p) => p.slice(root.length + 1)),
      ['2.25.910/2.25.910.1/2.25.910.1.1.dcm', '2.25.910/2.25.910.1/2.25.910.1.3.dcm'],
    );
    assert.deepEqual(await readdir(join(root, '.incoming')), []);
    await assert.rejects(readdir(join(root, '2.25.911')));

    const small = await FsDicomInbox.open(root, { maxInstanceBytes: 100 });
    const [tooBig] = (await small.store([good[0]])).instances;
    assert.equal(tooBig.error?.code, 'STOW.TOO_LARGE');
  });

  test('opening the inbox removes partial files a crash left behind', async () => {
    await writeFile(join(root, '.incoming', 'deadbeef.partial'), 'half');
    await FsDicomInbox.open(root);
    assert.deepEqual(await readdir(join(root, '.incoming')), []);
  });

  test('folder source: recursive, several studies, broken files listed as skipped, new files seen', async () => {
    const dir = join(scratch, 'mixed');
    await mkdir(join(dir, 'a', 'deep'), { recursive: true });
    await mkdir(join(dir, 'b'), { recursive: true });
    const s1 = series('2.25.920', '2.25.920.1', 4);
    const s2 = series('2.25.921', '2.25.921.1', 3);
    for (const [k, f] of s1.entries()) await writeFile(join(dir, 'a', 'deep', `x${k}`), f);
    for (const [k, f] of s2.slice(0, 2).entries()) await writeFile(join(dir, 'b', `y${k}.dcm`), f);
    await writeFile(join(dir, 'README.txt'), 'not dicom');
    await writeFile(join(dir, 'b', 'broken.dcm'), s2[2].slice(0, 300));
    await writeFile(join(dir, '.hidden.dcm'), s2[2]);
    const source = new FolderImageSource(dir);
    assert.deepEqual(await source.listStudies(), ['2.25.920', '2.25.921']);
    assert.deepEqual(
      source.skipped.map((s) => [s.path, s.code]),
      [
        ['README.txt', 'DICOM.NOT_PART10'],
        [join('b', 'broken.dcm'), 'DICOM.TRUNCATED'],
      ],
    );
    assert.equal((await source.findStudy('2.25.921')).series[0].numberOfInstances, 2);
    await writeFile(join(dir, 'b', 'y2.dcm'), s2[2]);
    assert.equal((await source.findStudy('2.25.921')).series[0].numberOfInstances, 3);
    await assert.rejects(
      source.loadSeries('2.25.921', '2.25.921.7'),
      (e: unknown) => e instanceof DomainError && e.code === 'SERIES.NOT_FOUND',
    );
    await assert.rejects(
      new FolderImageSource(join(dir, 'absent')).listStudies(),
      (e: unknown) => e instanceof DomainError && e.code === 'FOLDER.UNREADABLE',
    );
  });
});
