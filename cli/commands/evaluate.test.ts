import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { readNifti, writeNifti } from '../../adapters/nifti/nifti.ts';
import { writeItkTransform } from '../../adapters/itk/itk-transform.ts';
import { mat4, multiply } from '../../domain/model/geometry.ts';
import { createVolume } from '../../domain/model/volume.ts';
import { openMs } from '../../test/helpers/fixtures.ts';
import type { CommandIo } from './index.ts';
import { run } from './evaluate.ts';

function collect(): CommandIo & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lines, errors, out: (l) => lines.push(l), err: (l) => errors.push(l), progress: () => undefined };
}

test('evaluate: a shifted header is undone by --pred-transform; JSON output; batch with two sites', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mslesion-eval-'));
  try {
    const refPath = openMs('cross_sectional', 'patient07', 'lesion_mask.nii.gz');
    const ref = (await readNifti(refPath)).volume;
    // the same voxels, but the header says they sit 5 mm further left (LPS +x)
    const shift = mat4([
      [1, 0, 0, 5],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
    ]);
    const moved = join(dir, 'moved.nii.gz');
    await writeNifti(moved, createVolume(ref.dims, multiply(shift, ref.affine), Uint8Array.from(ref.data)));
    const itk = join(dir, 'ref_to_pred.txt');
    await writeItkTransform(itk, shift); // reference point p ↦ p + 5 mm: where that voxel now is in the prediction

    let io = collect();
    assert.equal(await run(['--pred', moved, '--ref', refPath, '--json'], io), 0);
    const noTransform = JSON.parse(io.lines.join('\n')) as { dice: number; note?: string };
    assert.ok(noTransform.dice < 0.5, `misaligned Dice ${noTransform.dice}`);
    assert.match(noTransform.note ?? '', /through the headers/);

    io = collect();
    assert.equal(await run(['--pred', moved, '--ref', refPath, '--pred-transform', itk, '--json'], io), 0);
    const aligned = JSON.parse(io.lines.join('\n')) as {
      dice: number;
      f1: number;
      refLesions: number;
      params: { alpha: number; connectivity: number };
    };
    assert.equal(aligned.dice, 1);
    assert.equal(aligned.f1, 1);
    assert.equal(aligned.refLesions, 33); // face connectivity, > 3 mm³
    assert.equal(aligned.params.alpha, 0.1);

    io = collect();
    assert.equal(
      await run(['--pred', moved, '--ref', refPath, '--pred-transform', itk, '--connectivity', '26'], io),
      0,
    );
    assert.match(io.lines.join('\n'), /of 30 reference lesions detected/);

    // batch: site A has the perfect case, site B a mask with its lower half removed
    const half = join(dir, 'half.nii.gz');
    const cut = Uint8Array.from(ref.data);
    for (let p = 0; p < cut.length / 2; p++) cut[p] = 0; // drop the lower half of the slices
    await writeNifti(half, createVolume(ref.dims, ref.affine, cut));
    const csv = join(dir, 'cases.csv');
    await writeFile(
      csv,
      `case,site,pred,ref,pred_transform\nc1,A,moved.nii.gz,${refPath},ref_to_pred.txt\nc2,B,half.nii.gz,${refPath},\n`,
    );
    const out = join(dir, 'out');
    io = collect();
    assert.equal(await run(['--batch', csv, '--out', out], io), 0);
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as {
      strata: { sites: { site: string; dice: { mean: number } }[]; overall: { cases: number } };
      blandAltman: { n: number; bias: number };
    };
    assert.equal(summary.strata.overall.cases, 2);
    assert.equal(summary.strata.sites[0].site, 'A');
    assert.equal(summary.strata.sites[0].dice.mean, 1);
    assert.ok(summary.strata.sites[1].dice.mean < 1);
    assert.ok(summary.blandAltman.bias < 0); // the half mask under-estimates volume
    const png = PNG.sync.read(await readFile(join(out, 'bland-altman.png')));
    assert.ok(png.width > 100 && png.height > 100);
    const rows = (await readFile(join(out, 'cases.csv'), 'utf8')).trim().split('\n');
    assert.equal(rows.length, 3);
    assert.match(await readFile(join(out, 'by-site.md'), 'utf8'), /\| A \| 1 \| 1\.000 ± 0\.000 \|/);

    io = collect();
    assert.equal(await run(['--pred', moved], io), 2);
    assert.match(io.errors.join('\n'), /CLI\.USAGE/);
    io = collect();
    assert.equal(await run(['--pred', join(dir, 'nope.nii.gz'), '--ref', refPath], io), 1);
    assert.match(io.errors.join('\n'), /NIFTI\./);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
