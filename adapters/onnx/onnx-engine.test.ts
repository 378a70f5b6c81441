import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DomainError } from '../../domain/errors.ts';
import { openModelRegistry } from '../models/fs-registry.ts';
import { FIXTURES } from '../../test/helpers/fixtures.ts';
import { cudaProviderInstalled, OnnxInferenceEngine } from './onnx-engine.ts';

const MODELS = join(FIXTURES, 'models');
const code = (c: string) => (e: unknown) => e instanceof DomainError && e.code === c;

function patch(n: number, c: number, seed: number): Float32Array {
  const a = new Float32Array(n * c * 16 * 24 * 24);
  for (let i = 0; i < a.length; i++) a[i] = Math.sin(i * 0.013 + seed);
  return a;
}

test('runs real ONNX variants on CPU: batched, cached per variant, deterministic', async (t) => {
  const logs: object[] = [];
  const engine = new OnnxInferenceEngine({
    intraOpThreads: 1,
    logger: { info: (o) => logs.push(o), warn: (o) => logs.push(o) },
  });
  t.after(() => engine.close());
  const reg = await openModelRegistry({ roots: [MODELS], strict: true });
  const ref = reg.artifact('tiny-unet', 'flair-t2-t1');
  const [s1, s2] = await Promise.all([engine.open(ref), engine.open(ref)]);
  assert.equal(s1, s2, 'concurrent opens share one session');
  assert.equal(s1.backend, 'onnxruntime-node/cpu');
  assert.equal(logs.length, 1, 'warmed up once');
  const other = await engine.open(reg.artifact('tiny-unet', 'flair'));
  assert.notEqual(other, s1);

  const x = patch(2, 3, 0.5);
  const out = await s1.run({ data: x, dims: [2, 3, 16, 24, 24] });
  assert.deepEqual(out.dims, [2, 2, 16, 24, 24]);
  // batch item 1 alone gives the same logits as inside the batch (instance norm is per sample)
  const second = await s1.run({ data: x.slice(3 * 16 * 24 * 24), dims: [1, 3, 16, 24, 24] });
  const half = out.data.subarray(2 * 16 * 24 * 24);
  let d = 0;
  for (let i = 0; i < half.length; i++) d = Math.max(d, Math.abs(half[i] - second.data[i]));
  assert.ok(d < 1e-5, `batch vs single: ${d}`);
  await s1.close(); // a handle's close keeps the cached session usable
  const again = await (await engine.open(ref)).run({ data: x, dims: [2, 3, 16, 24, 24] });
  assert.deepEqual(again.data, out.data);
  await assert.rejects(
    s1.run({ data: new Float32Array(10), dims: [1, 1, 2, 5, 1] }),
    code('INFERENCE.RUN_FAILED'),
  );
});

test('CUDA requested without the provider: INFERENCE.CUDA_UNAVAILABLE, or CPU under the cpu fallback policy', async (t) => {
  const reg = await openModelRegistry({ roots: [MODELS], strict: true });
  const ref = reg.artifact('tiny-sigmoid', 'flair');
  if (cudaProviderInstalled()) {
    t.skip('CUDA provider libraries are installed here; this test covers hosts without them');
    return;
  }
  const failing = new OnnxInferenceEngine({ provider: 'cuda', intraOpThreads: 1 });
  t.after(() => failing.close());
  await assert.rejects(failing.open(ref), (e: unknown) => {
    assert.ok(e instanceof DomainError);
    assert.equal(e.code, 'INFERENCE.CUDA_UNAVAILABLE');
    assert.equal(e.issueType, 'not-supported');
    assert.match(e.message, /ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node/);
    return true;
  });
  const warnings: object[] = [];
  const fallback = new OnnxInferenceEngine({
    provider: 'cuda',
    cudaFallback: 'cpu',
    intraOpThreads: 1,
    logger: { info: () => undefined, warn: (o) => warnings.push(o) },
  });
  t.after(() => fallback.close());
  const s = await fallback.open(ref);
  assert.equal(s.backend, 'onnxruntime-node/cpu (cuda fallback)');
  assert.equal(warnings.length, 1);
  const out = await s.run({ data: new Float32Array(16 ** 3).fill(0.3), dims: [1, 1, 16, 16, 16] });
  assert.ok(
    out.data.every((p) => p > 0 && p < 1),
    'sigmoid outputs',
  );
});

test('a file changed after registration, or a manifest naming the wrong tensors, is refused', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'engine-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  await cp(join(MODELS, 'tiny-sigmoid'), join(root, 'tiny-sigmoid'), { recursive: true });
  const reg = await openModelRegistry({ roots: [root], strict: true });
  const ref = reg.artifact('tiny-sigmoid', 'flair');
  const engine = new OnnxInferenceEngine({ intraOpThreads: 1 });
  t.after(() => engine.close());
  await assert.rejects(engine.open({ ...ref, inputName: 'nope' }), code('MODEL.INPUT_MISMATCH'));
  await appendFile(ref.path, Uint8Array.of(1));
  await assert.rejects(engine.open(ref), code('MODEL.CHECKSUM_MISMATCH'));
  await assert.rejects(engine.open({ ...ref, path: join(root, 'absent.onnx') }), code('MODEL.FILE_MISSING'));
});
