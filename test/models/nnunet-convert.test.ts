/**
 * models/convert/convert_nnunet.py on small nnU-Net-shaped trained-model folders built for the test (v2 with
 * new- and old-style plans, v1 with plans.pkl; several folds), since no real checkpoint is reachable: the
 * converted ONNX (run by onnxruntime-node) must reproduce the original torch networks' fold-averaged logits,
 * and the manifest must carry nnU-Net's spacing, patch, normalisation, mirroring, labels and orientation.
 * Needs /usr/bin/python3 with torch and onnx.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openModelRegistry } from '../../adapters/models/fs-registry.ts';
import { OnnxInferenceEngine } from '../../adapters/onnx/onnx-engine.ts';
import { predictOnModelGrid } from '../../domain/inference/predict.ts';
import { REPO_ROOT } from '../helpers/fixtures.ts';

const run = promisify(execFile);
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const CONVERT = join(REPO_ROOT, 'models', 'convert', 'convert_nnunet.py');

async function f32(path: string): Promise<Float32Array> {
  const b = await readFile(path);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

test('nnU-Net v1 and v2 checkpoints convert to ONNX + manifest that reproduce the torch networks', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nnunet-'));
  const engine = new OnnxInferenceEngine({ intraOpThreads: 1 });
  t.after(async () => {
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  });
  await run(PYTHON, [join(REPO_ROOT, 'models', 'convert', 'testing', 'make_fake_nnunet.py'), dir]);
  const probes = JSON.parse(await readFile(join(dir, 'probes.json'), 'utf8')) as Record<
    string,
    { input: number[]; output: number[]; folder: string }
  >;
  const out = join(dir, 'models');
  const convert = (id: string, ...args: string[]) =>
    run(PYTHON, [
      CONVERT,
      '--out',
      join(out, id),
      '--id',
      id,
      '--name',
      `converted ${id}`,
      '--version',
      '1.0',
      ...args,
    ]);
  await convert(
    'conv-v2',
    '--orientation',
    'LPS',
    '--variant',
    `flair-t2=${probes.v2.folder}`,
    '--folds',
    '0',
    '1',
  );
  await convert(
    'conv-v2old',
    '--orientation',
    'RAS',
    '--variant',
    `flair=${probes.v2old.folder}`,
    '--foreground',
    'lesion',
  );
  await convert(
    'conv-v1',
    '--orientation',
    'RAS',
    '--variant',
    `flair-t1=${probes.v1.folder}`,
    '--folds',
    '0',
    '1',
  );

  const reg = await openModelRegistry({ roots: [out], strict: true }); // schema + sha256 verified
  for (const [id, key] of [
    ['conv-v2', 'v2'],
    ['conv-v2old', 'v2old'],
    ['conv-v1', 'v1'],
  ] as const) {
    const m = reg.get(id);
    const s = await engine.open(reg.artifact(id, m.variants[0].id));
    const y = await s.run({ data: await f32(join(dir, `${key}.probe.f32`)), dims: probes[key].input });
    assert.deepEqual(y.dims, probes[key].output);
    const want = await f32(join(dir, `${key}.expected.f32`));
    let d = 0;
    for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(y.data[i] - want[i]));
    t.diagnostic(`${id}: max |Δlogit| vs the original torch network ${d.toExponential(2)}`);
    assert.ok(d < 1e-4, `${id}: ${d}`);
  }

  const v2 = reg.get('conv-v2');
  assert.deepEqual(v2.variants[0].channels, ['FLAIR', 'T2']);
  assert.deepEqual(v2.spacing, [3, 0.9, 0.9]);
  assert.equal(v2.orientation, 'LPS');
  assert.deepEqual(v2.inference, {
    mode: 'sliding-window',
    patchSize: [16, 32, 32],
    tileStep: 0.5,
    gaussian: true,
    mirrorAxes: [1, 2],
    batchSize: 1,
  });
  assert.deepEqual(v2.normalization.FLAIR, { method: 'zscore', mask: 'brain' });
  assert.deepEqual(v2.output.labels, ['background', 'lesion']);
  assert.equal(v2.foregroundLabel, 1);

  const old = reg.get('conv-v2old');
  // transpose_forward [2, 0, 1] of RAS images: network D = i (R), H = k (S), W = j (A)
  assert.equal(old.orientation, 'ASR');
  assert.deepEqual(old.normalization.FLAIR, {
    method: 'fixed',
    mask: 'all',
    clipValues: [10, 300],
    mean: 100,
    std: 20,
  });
  assert.deepEqual(old.output.labels, ['background', 'edema', 'lesion']);
  assert.equal(old.foregroundLabel, 2);

  const v1 = reg.get('conv-v1');
  assert.deepEqual(v1.spacing, [2, 1, 1]);
  assert.deepEqual(v1.normalization, {
    FLAIR: { method: 'zscore', mask: 'brain' },
    T1: { method: 'zscore', mask: 'all' },
  });
  if (v1.inference.mode !== 'sliding-window') assert.fail('sliding-window expected');
  assert.deepEqual(v1.inference.mirrorAxes, [0, 1, 2]);
  assert.equal(v1.training?.source, 'nnU-Net v1');

  // the converted model runs through the service's sliding window
  const shape = [20, 40, 36] as const;
  const n = shape[0] * shape[1] * shape[2];
  const chan = (s: number) => Float32Array.from({ length: n }, (_, i) => 100 + 50 * Math.sin(i * 0.01 * s));
  const p = await predictOnModelGrid(
    await engine.open(reg.artifact('conv-v2', 'flair-t2')),
    v2,
    v2.variants[0],
    {
      channels: [chan(1), chan(2)],
      shape,
    },
  );
  assert.ok(p.foreground.every((x) => x >= 0 && x <= 1));

  // clear refusals
  await assert.rejects(
    convert('bad', '--orientation', 'RAS', '--variant', `x=${dir}`),
    /holds neither plans\.json/,
  );
  await assert.rejects(
    convert(
      'bad2',
      '--orientation',
      'RAS',
      '--variant',
      `x=${probes.v2.folder}`,
      '--channel-map',
      'FLAIR=XYZ',
      '--folds',
      '7',
    ),
    /missing checkpoint/,
  );
});
