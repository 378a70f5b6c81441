import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readNifti } from '../../adapters/nifti/nifti.ts';
import { openMs } from '../../test/helpers/fixtures.ts';
import { applyAffine } from '../model/geometry.ts';
import { createVolume } from '../model/volume.ts';
import { correctBiasField } from './bias-field.ts';

function std(a: number[]): number {
  const m = a.reduce((s, x) => s + x, 0) / a.length;
  return Math.sqrt(a.reduce((s, x) => s + (x - m) ** 2, 0) / a.length);
}

function corr(a: number[], b: number[]): number {
  const ma = a.reduce((s, x) => s + x, 0) / a.length;
  const mb = b.reduce((s, x) => s + x, 0) / b.length;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < a.length; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

test('removes a known smooth field from a real FLAIR and leaves an N4-corrected one nearly alone', async () => {
  const flair = (await readNifti(openMs('cross_sectional', 'patient26', 'FLAIR.nii.gz'))).volume;
  const [nx, ny, nz] = flair.dims;
  const mask = createVolume(
    flair.dims,
    flair.affine,
    Uint8Array.from(flair.data, (v) => (v > 0 ? 1 : 0)),
  );
  // ±30 % field: a gradient along S and a bump, in patient coordinates
  const logBias = new Float32Array(flair.data.length);
  let o = 0;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, o++) {
        const p = applyAffine(flair.affine, [i, j, k]);
        logBias[o] = 0.2 * (p[2] / 60) + 0.12 * Math.cos(p[0] / 45) * Math.sin(p[1] / 50);
      }
  const biased = createVolume(
    flair.dims,
    flair.affine,
    Float32Array.from(flair.data, (v, x) => v * Math.exp(logBias[x])),
  );
  const r = correctBiasField(biased, { mask });
  const est: number[] = [];
  const truth: number[] = [];
  const before: number[] = [];
  const after: number[] = [];
  for (let x = 0; x < flair.data.length; x += 7)
    if (mask.data[x] && flair.data[x] > 1) {
      est.push(Math.log(r.field.data[x]));
      truth.push(logBias[x]);
      before.push(Math.log(biased.data[x] / flair.data[x]));
      after.push(Math.log(r.corrected.data[x] / flair.data[x]));
    }
  const c = corr(est, truth);
  assert.ok(c > 0.9, `field correlation ${c.toFixed(3)}`);
  assert.ok(
    std(after) < 0.5 * std(before),
    `residual log-bias std ${std(after).toFixed(3)} vs ${std(before).toFixed(3)}`,
  );
  const clean = correctBiasField(flair, { mask });
  assert.ok(
    clean.logFieldStd < 0.25 * r.logFieldStd,
    `field on the corrected image ${clean.logFieldStd.toFixed(3)}`,
  );
});
