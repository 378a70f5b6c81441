/**
 * The domain sliding window on onnxruntime-node against the independent Python/torch reference
 * (models/reference/sliding_window_ref.py) on the same ONNX networks and real MRI: equal to 1e-4.
 * Needs /usr/bin/python3 with torch, onnx and scipy (CI installs python3-torch, python3-onnx, python3-scipy).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { predictOnModelGrid } from '../../domain/inference/predict.ts';
import type { Shape3 } from '../../domain/inference/tiles.ts';
import { crop, type Volume } from '../../domain/model/volume.ts';
import { readNifti } from '../nifti/nifti.ts';
import { openModelRegistry } from '../models/fs-registry.ts';
import { FIXTURES, REPO_ROOT, openMs } from '../../test/helpers/fixtures.ts';
import { OnnxInferenceEngine } from './onnx-engine.ts';

const run = promisify(execFile);
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const REF = join(REPO_ROOT, 'models', 'reference', 'sliding_window_ref.py');

async function channels(
  min: readonly [number, number, number],
  max: readonly [number, number, number],
): Promise<Volume[]> {
  const out: Volume[] = [];
  for (const name of ['FLAIR', 'T2', 'T1'])
    out.push(
      crop((await readNifti(openMs('cross_sectional', 'patient07', `${name}.nii.gz`))).volume, min, max),
    );
  return out;
}

function bytes(a: Float32Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function reference(
  dir: string,
  modelDir: string,
  file: string,
  data: Float32Array[],
  shape: Shape3,
  brain: Uint8Array | undefined,
  mirror: boolean,
): Promise<{ fg: Float32Array; logits: Float32Array }> {
  const input = new Float32Array(data.length * data[0].length);
  data.forEach((d, c) => {
    input.set(d, c * d.length);
  });
  await writeFile(join(dir, 'x.f32'), bytes(input));
  const args = [REF, '--model', join(modelDir, file), '--manifest', join(modelDir, 'manifest.json')];
  args.push('--input', join(dir, 'x.f32'), '--channels', String(data.length), '--dims', ...shape.map(String));
  if (brain !== undefined) {
    await writeFile(join(dir, 'm.u8'), brain);
    args.push('--mask', join(dir, 'm.u8'));
  }
  if (!mirror) args.push('--no-mirror');
  args.push('--out', join(dir, 'p.f32'), '--logits', join(dir, 'l.f32'));
  await run(PYTHON, args, { env: { ...process.env, REF_THREADS: '1' } });
  const f = await readFile(join(dir, 'p.f32'));
  const l = await readFile(join(dir, 'l.f32'));
  return {
    fg: new Float32Array(f.buffer, f.byteOffset, f.byteLength / 4),
    logits: new Float32Array(l.buffer, l.byteOffset, l.byteLength / 4),
  };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let x = 0; x < a.length; x++) d = Math.max(d, Math.abs(a[x] - b[x]));
  return d;
}

test('sliding window on onnxruntime equals the torch reference to 1e-4 (real MRI, three cases)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'swref-'));
  const engine = new OnnxInferenceEngine({ intraOpThreads: 1 });
  t.after(async () => {
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  });
  const models = await openModelRegistry({ roots: [join(FIXTURES, 'models')], strict: true });

  // a 41×38×29 (i, j, k) block through the ventricles of patient07; brain = FLAIR > 0 within a ball, so the
  // bounding-box crop is smaller than the block
  const vols = await channels([45, 60, 50], [86, 98, 79]);
  const [nx, ny, nz] = vols[0].dims;
  const shape: Shape3 = [nz, ny, nx];
  const brain = new Uint8Array(nx * ny * nz);
  for (let k = 0, p = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, p++) {
        const r2 = ((i - 20) / 17) ** 2 + ((j - 19) / 16) ** 2 + ((k - 14) / 13) ** 2;
        brain[p] = r2 <= 1 && vols[0].data[p] > 0 ? 1 : 0;
      }
  const data = vols.map((v) => Float32Array.from(v.data));

  const cases = [
    { model: 'tiny-unet', variant: 'flair-t2-t1', chans: 3, brain, mirror: true, shape },
    { model: 'tiny-unet', variant: 'flair-t2', chans: 2, brain, mirror: false, shape },
    // FLAIR alone, no brain mask, a 12-voxel-deep slab (padded to the 16³ patch), sigmoid inside the graph
    {
      model: 'tiny-sigmoid',
      variant: 'flair',
      chans: 1,
      brain: undefined,
      mirror: true,
      shape: [12, ny, nx] as Shape3,
    },
  ];
  for (const c of cases) {
    const manifest = models.get(c.model);
    const variant = manifest.variants.find((v) => v.id === c.variant)!;
    const n = c.shape[0] * c.shape[1] * c.shape[2];
    const inputs = data.slice(0, c.chans).map((d) => d.slice(0, n));
    const session = await engine.open(models.artifact(c.model, c.variant));
    const ours = await predictOnModelGrid(
      session,
      manifest,
      variant,
      { channels: inputs, shape: c.shape, ...(c.brain ? { brain: c.brain } : {}) },
      { mirror: c.mirror },
    );
    const ref = await reference(
      dir,
      join(FIXTURES, 'models', c.model),
      variant.file,
      inputs,
      c.shape,
      c.brain,
      c.mirror,
    );
    const dLogits = maxAbsDiff(ours.output.data, ref.logits);
    const dProb = maxAbsDiff(ours.foreground, ref.fg);
    t.diagnostic(
      `${c.model}/${c.variant} mirror=${c.mirror}: max |Δlogit| ${dLogits.toExponential(2)}, max |Δp| ${dProb.toExponential(2)}`,
    );
    assert.ok(dLogits < 1e-4, `${c.model}/${c.variant}: logits differ by ${dLogits}`);
    assert.ok(dProb < 1e-4, `${c.model}/${c.variant}: probabilities differ by ${dProb}`);
    // the network is not trivial: the foreground probability varies inside the brain
    let lo = 1,
      hi = 0;
    for (const v of ours.foreground)
      if (v > 0) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    assert.ok(hi - lo > 0.01, `${c.model}: flat output ${lo}..${hi}`);
  }
});
