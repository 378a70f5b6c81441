import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readNifti, writeNifti } from '../../adapters/nifti/nifti.ts';
import { createVolume } from '../../domain/model/volume.ts';
import { labelLesions } from '../../domain/lesions/lesion-table.ts';
import { openMs } from '../../test/helpers/fixtures.ts';
import type { ChangeSummary } from '../../domain/model/analysis.ts';
import type { CommandIo } from './index.ts';
import { run } from './longitudinal.ts';

function collect(): CommandIo & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { lines, errors, out: (l) => lines.push(l), err: (l) => errors.push(l), progress: () => undefined };
}

test('longitudinal: two lesions missing from the prior are new, the rest stable; files written', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mslesion-long-'));
  try {
    const flair = openMs('cross_sectional', 'patient26', 'FLAIR.nii.gz');
    const maskPath = openMs('cross_sectional', 'patient26', 'lesion_mask.nii.gz');
    const m = (await readNifti(maskPath)).volume;
    const mask = createVolume(
      m.dims,
      m.affine,
      Uint8Array.from(m.data, (v) => (v >= 0.5 ? 1 : 0)),
    );
    const labelled = labelLesions(mask);
    // the prior lacks the current lesions 2 and 3
    const prior = Uint8Array.from(mask.data);
    for (let p = 0; p < prior.length; p++) {
      const l = labelled.labelMap.data[p];
      if (l === 2 || l === 3) prior[p] = 0;
    }
    const priorPath = join(dir, 'prior_mask.nii.gz');
    await writeNifti(priorPath, createVolume(m.dims, m.affine, prior));
    const out = join(dir, 'out');
    const io = collect();
    const code = await run(
      ['--prior-flair', flair, '--prior-mask', priorPath, '--flair', flair, '--mask', maskPath, '--out', out],
      io,
    );
    assert.equal(code, 0, io.errors.join('\n'));
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as {
      change: ChangeSummary;
      lesions: { count: number; anatomy: string };
    };
    const s = summary.change;
    assert.equal(s.newCount, 2);
    assert.equal(s.stableCount, labelled.count - 2);
    assert.equal(s.enlargedCount + s.disappearedCount + s.mergedCount + s.splitCount + s.shrunkCount, 0);
    assert.ok((s.registration.ncc ?? 0) > 0.99);
    assert.equal(summary.lesions.count, labelled.count);
    assert.equal(summary.lesions.anatomy, 'flair-heuristic');
    const change = (await readNifti(join(out, 'change_mask.nii.gz'))).volume;
    let ones = 0;
    for (let p = 0; p < change.data.length; p++) {
      if (change.data[p] === 1) {
        ones++;
        const l = labelled.labelMap.data[p];
        assert.ok(l === 2 || l === 3);
      }
      assert.notEqual(change.data[p], 2);
    }
    assert.equal(ones, labelled.sizes[2] + labelled.sizes[3]);
    const csv = (await readFile(join(out, 'lesions.csv'), 'utf8')).trim().split('\n');
    assert.equal(csv.length, labelled.count + 1);
    assert.match(csv[2], /^2,new,,/);
    assert.match(csv[1], /^1,stable,1,/);
    assert.match(io.lines.join('\n'), /new 2, enlarged 0/);

    const bad = collect();
    assert.equal(await run(['--flair', flair, '--out', out], bad), 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
