import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNifti } from '../../adapters/nifti/nifti.ts';
import { sameGrid } from '../../domain/model/volume.ts';
import type { ModelManifest } from '../../domain/model/manifest.ts';
import { FIXTURES, openMs } from '../../test/helpers/fixtures.ts';
import type { CommandIo } from './index.ts';
import { run } from './segment.ts';

function collect(): CommandIo & { lines: string[]; errors: string[]; steps: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  const steps: string[] = [];
  return {
    lines,
    errors,
    steps,
    out: (l) => lines.push(l),
    err: (l) => errors.push(l),
    progress: (l) => steps.push(l),
  };
}

test('mslesion segment: NIfTI in, mask and probabilities on the FLAIR grid out; usage and coded errors', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mslesion-seg-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // tiny-unet at a coarse spacing so that the whole brain runs in seconds
  const models = join(dir, 'models');
  await cp(join(FIXTURES, 'models', 'tiny-unet'), join(models, 'tiny-unet'), { recursive: true });
  const mp = join(models, 'tiny-unet', 'manifest.json');
  const m = JSON.parse(await readFile(mp, 'utf8')) as ModelManifest;
  await writeFile(mp, JSON.stringify({ ...m, spacing: [3, 2.5, 2.5] }));

  const flair = openMs('cross_sectional', 'patient07', 'FLAIR.nii.gz');
  const t2 = openMs('cross_sectional', 'patient07', 'T2.nii.gz');
  const out = join(dir, 'out', 'mask.nii.gz');
  const prob = join(dir, 'out', 'prob.nii.gz');
  const io = collect();
  assert.equal(
    await run(
      [
        '--flair',
        flair,
        '--t2',
        t2,
        '--out',
        out,
        '--probabilities',
        prob,
        '--models-dir',
        models,
        '--no-mirror',
        '--threads',
        '1',
        '--json',
      ],
      io,
    ),
    0,
    io.errors.join('\n'),
  );
  const summary = JSON.parse(io.lines.join('\n')) as {
    model: { variant: string; reason: string };
    lesionVoxels: number;
    brainMask: string;
  };
  assert.equal(summary.model.variant, 'flair-t2');
  assert.equal(summary.model.reason, 'T1 missing: FLAIR+T2 variant');
  assert.equal(summary.brainMask, 'skull-stripped');
  const f = (await readNifti(flair)).volume;
  const mask = (await readNifti(out)).volume;
  const p = (await readNifti(prob)).volume;
  assert.ok(sameGrid(mask, f) && sameGrid(p, f), 'outputs overlay the FLAIR');
  assert.ok(mask.data instanceof Uint8Array && p.data instanceof Float32Array);
  let n = 0;
  for (const v of mask.data) if (v !== 0) n++;
  assert.equal(n, summary.lesionVoxels);
  assert.ok(
    io.steps.some((s) => s.includes('inference')),
    'progress on stderr',
  );

  const usage = collect();
  assert.equal(await run(['--flair', flair], usage), 2);
  assert.match(usage.errors.join('\n'), /--out is required/);
  const missing = collect();
  assert.equal(
    await run(['--flair', join(dir, 'absent.nii.gz'), '--out', out, '--models-dir', models], missing),
    1,
  );
  assert.match(missing.errors.join('\n'), /NIFTI\.NOT_FOUND/);
  const unknown = collect();
  assert.equal(
    await run(['--flair', flair, '--out', out, '--models-dir', models, '--model', 'nope'], unknown),
    1,
  );
  assert.match(unknown.errors.join('\n'), /MODEL\.NOT_FOUND/);
  // the manifest no longer matches the file: the model is refused with its code
  await writeFile(join(models, 'tiny-unet', 'flair.onnx'), 'tampered');
  const refused = collect();
  assert.equal(await run(['--flair', flair, '--out', out, '--models-dir', models], refused), 1);
  assert.match(refused.errors.join('\n'), /MODEL\.CHECKSUM_MISMATCH/);
});
