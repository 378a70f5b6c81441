/**
 * Enhanced MR (multi-frame): an Enhanced MR Image built from the real classic Philips series reads back, frame
 * by frame through the functional groups, into exactly the volume the classic series gives; it passes
 * dciodvfy; the folder source describes it as one instance of 170 frames; per-frame rescale values are used.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { assembleVolume } from '../../domain/imaging/assemble.ts';
import { classifySeries } from '../../domain/imaging/series-rules.ts';
import { affineMaxDiff, mat4 } from '../../domain/model/geometry.ts';
import { createVolume } from '../../domain/model/volume.ts';
import { dicomSeriesDir } from '../../test/helpers/fixtures.ts';
import { classicToEnhancedMr, sourceReferences } from './enhanced-mr-writer.ts';
import { FolderImageSource } from './folder-source.ts';
import { identityOf, imageSlicesOf, SOP_CLASS } from './image.ts';
import { writeClassicMrSeries } from './mr-writer.ts';
import { parsePart10 } from './part10.ts';
import { defaultSeriesRules } from './series-rules-file.ts';
import { dciodvfy } from './testing/dciodvfy.ts';

describe('Enhanced MR multi-frame', () => {
  let scratch: string;
  let classic: Uint8Array[];
  let enhanced: Uint8Array;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'enh-'));
    const dir = dicomSeriesDir('philips_ingenia_t1_mprage');
    classic = await Promise.all(
      (await readdir(dir)).sort().map(async (f) => new Uint8Array(await readFile(join(dir, f)))),
    );
    // shuffle the input: frames are ordered by position, whatever order the instances come in
    const shuffled = classic
      .map((b, x) => ({ b, key: (x * 7919) % classic.length }))
      .sort((p, q) => p.key - q.key);
    enhanced = classicToEnhancedMr(
      shuffled.map((x) => x.b),
      { seriesDescription: 'ADNI_Sag3D MPRAGE (enhanced)' },
    );
  });
  after(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  test('frames read back into the same volume as the classic series', () => {
    const p = parsePart10(enhanced);
    const id = identityOf(p);
    assert.equal(id.sopClassUid, SOP_CLASS.EnhancedMRImage);
    assert.equal(id.numberOfFrames, classic.length);
    const frames = imageSlicesOf(p);
    assert.equal(frames.length, classic.length);
    assert.deepEqual(
      frames.map((f) => f.frameNumber),
      frames.map((_, x) => x + 1),
    );
    const fromEnhanced = assembleVolume(frames);
    const fromClassic = assembleVolume(classic.flatMap((b) => imageSlicesOf(parsePart10(b))));
    assert.deepEqual(fromEnhanced.volume.dims, fromClassic.volume.dims);
    assert.ok(affineMaxDiff(fromEnhanced.volume.affine, fromClassic.volume.affine) <= 1e-9);
    assert.deepEqual(fromEnhanced.volume.data, fromClassic.volume.data);
    assert.equal(fromEnhanced.slices[0].sopInstanceUid, id.sopInstanceUid);
    // each frame points back at its classic source, in slice order
    assert.deepEqual(
      sourceReferences(enhanced),
      fromClassic.slices.map((s) => s.sopInstanceUid),
    );
  });

  test('dciodvfy: 0 errors', async () => {
    const path = join(scratch, 'enhanced.dcm');
    await writeFile(path, enhanced);
    const v = dciodvfy(path);
    assert.deepEqual(v.errors, []);
    // the only warning comes from the source's own patient name (a retired PN form)
    assert.ok(
      v.warnings.every((w) => /Patient's Name|DICOMDIR/.test(w)),
      v.warnings.join('\n'),
    );
  });

  test('the folder source describes it as one multi-frame instance; the rules classify it', async () => {
    const dir = join(scratch, 'folder');
    await mkdir(dir);
    await writeFile(join(dir, 'enhanced.dcm'), enhanced);
    const source = new FolderImageSource(dir);
    const [studyUid] = await source.listStudies();
    const study = await source.findStudy(studyUid);
    assert.equal(study.series.length, 1);
    const [s] = study.series;
    assert.equal(s.numberOfInstances, 1);
    assert.equal(s.numberOfFrames, classic.length);
    assert.equal(s.sopClassUid, SOP_CLASS.EnhancedMRImage);
    assert.equal(s.attributes.echoTime, 2.93);
    const c = classifySeries(s, defaultSeriesRules());
    assert.deepEqual([c.role, c.acquisition], ['T1', '3D'], c.reason);
    const loaded = await source.loadSeries(studyUid, s.seriesInstanceUid);
    assert.equal(loaded.slices.length, classic.length);
  });

  test('per-frame rescale values (when the classic slices differ) are applied frame by frame', async () => {
    const vol = createVolume(
      [4, 3, 5],
      mat4([
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 2],
      ]),
      new Float32Array(60).map((_, x) => x),
    );
    const files = writeClassicMrSeries(
      { studyInstanceUid: '2.25.11', patientId: 'P', studyDate: '20200101' },
      {
        volume: vol,
        contrast: 'T1',
        seriesNumber: 1,
        seriesInstanceUid: '2.25.12',
        frameOfReferenceUid: '2.25.13',
        sopInstanceUid: (k) => `2.25.14.${k}`,
      },
    );
    const path = join(scratch, 'slice2.dcm');
    await writeFile(path, files[2]);
    execFileSync('dcmodify', ['-nb', '-m', '(0028,1053)=2', '-m', '(0028,1052)=-7', path], {
      stdio: 'ignore',
    });
    files[2] = new Uint8Array(await readFile(path));
    const multi = classicToEnhancedMr(files);
    const a = assembleVolume(imageSlicesOf(parsePart10(multi)));
    const b = assembleVolume(files.flatMap((f) => imageSlicesOf(parsePart10(f))));
    assert.deepEqual(a.volume.data, b.volume.data);
    assert.equal(a.volume.data[2 * 12 + 1], (2 * 12 + 1) * 2 - 7);
    const out = join(scratch, 'multi.dcm');
    await writeFile(out, multi);
    assert.deepEqual(dciodvfy(out).errors, []);
  });
});
