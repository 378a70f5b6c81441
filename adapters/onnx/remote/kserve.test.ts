/**
 * API node ↔ inference node for real: the KServe v2 server runs in a child process (its own onnxruntime), the
 * client here; outputs must be identical to the local engine's, in binary and JSON modes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { DomainError } from '../../../domain/errors.ts';
import { predictOnModelGrid } from '../../../domain/inference/predict.ts';
import type { Shape3 } from '../../../domain/inference/tiles.ts';
import { openModelRegistry } from '../../models/fs-registry.ts';
import { FIXTURES, REPO_ROOT } from '../../../test/helpers/fixtures.ts';
import { OnnxInferenceEngine } from '../onnx-engine.ts';
import { KServeInferenceClient } from './kserve-client.ts';
import { tritonSafeName } from './kserve-protocol.ts';

const MODELS = join(FIXTURES, 'models');
const code = (c: string) => (e: unknown) => e instanceof DomainError && e.code === c;

interface Child {
  proc: ChildProcess;
  url: string;
  log: string[];
}

async function startChild(extra: string[] = []): Promise<Child> {
  const proc = spawn(
    process.execPath,
    [
      join(REPO_ROOT, 'adapters/onnx/remote/inference-server.main.ts'),
      '--models',
      MODELS,
      '--port',
      '0',
      '--threads',
      '1',
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const log: string[] = [];
  createInterface({ input: proc.stderr }).on('line', (l) => log.push(l));
  const lines = createInterface({ input: proc.stdout });
  const [first] = (await Promise.race([
    once(lines, 'line'),
    once(proc, 'exit').then(() => {
      throw new Error(`inference server exited: ${log.join('\n')}`);
    }),
  ])) as [string];
  return { proc, url: (JSON.parse(first) as { url: string }).url, log };
}

async function stopChild(c: Child): Promise<void> {
  if (c.proc.exitCode !== null) return;
  c.proc.kill('SIGTERM');
  await once(c.proc, 'exit');
}

function input(shape: Shape3, channels: number): Float32Array[] {
  const n = shape[0] * shape[1] * shape[2];
  return Array.from({ length: channels }, (_, c) =>
    Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.011 * (c + 1)) * 100 + 300),
  );
}

test('remote inference over KServe v2 (two processes) equals the local engine exactly', async (t) => {
  const child = await startChild();
  const local = new OnnxInferenceEngine({ intraOpThreads: 1 });
  const remote = new KServeInferenceClient({ url: child.url });
  const json = new KServeInferenceClient({ url: child.url, binary: false });
  const triton = new KServeInferenceClient({ url: child.url, modelName: tritonSafeName });
  t.after(async () => {
    await local.close();
    await stopChild(child);
  });
  const reg = await openModelRegistry({ roots: [MODELS], strict: true });
  const manifest = reg.get('tiny-unet');
  const variant = manifest.variants.find((v) => v.id === 'flair-t2')!;
  const ref = reg.artifact('tiny-unet', 'flair-t2');
  const shape: Shape3 = [20, 30, 28];
  const data = { channels: input(shape, 2), shape };

  const sLocal = await local.open(ref);
  const sRemote = await remote.open(ref);
  assert.equal(sRemote.backend, `kserve-v2 ${child.url}`);
  assert.equal(await remote.open(ref), sRemote, 'sessions are cached per key');
  const a = await predictOnModelGrid(sLocal, manifest, variant, data);
  const b = await predictOnModelGrid(sRemote, manifest, variant, data);
  assert.deepEqual(b.output.data, a.output.data, 'binary tensor data: identical aggregated logits');
  assert.deepEqual(b.foreground, a.foreground);
  const c = await predictOnModelGrid(await json.open(ref), manifest, variant, data, { mirror: false });
  const d = await predictOnModelGrid(sLocal, manifest, variant, data, { mirror: false });
  assert.deepEqual(c.output.data, d.output.data, 'JSON tensors: identical');
  const e = await (
    await triton.open(ref)
  ).run({ data: new Float32Array(2 * 16 * 24 * 24).fill(0.5), dims: [1, 2, 16, 24, 24] });
  const f = await sLocal.run({
    data: new Float32Array(2 * 16 * 24 * 24).fill(0.5),
    dims: [1, 2, 16, 24, 24],
  });
  assert.deepEqual(e.data, f.data, 'Triton-safe model name');

  // metadata and health, as a Triton client would read them
  const meta = (await (await fetch(`${child.url}/v2/models/tiny-unet%2Fflair-t2`)).json()) as Record<
    string,
    unknown
  >;
  assert.deepEqual(meta.inputs, [{ name: 'input', datatype: 'FP32', shape: [-1, 2, -1, -1, -1] }]);
  assert.equal(meta.sha256, ref.sha256);
  assert.equal((await fetch(`${child.url}/v2/health/live`)).status, 200);
  assert.equal((await fetch(`${child.url}/v2/models/tiny-unet%2Fflair-t2/ready`)).status, 200);
  assert.ok(await remote.ready());

  // coded errors
  await assert.rejects(remote.open({ ...ref, key: 'tiny-unet/nope' }), code('MODEL.VARIANT_NOT_FOUND'));
  await assert.rejects(remote.open({ ...ref, key: 'absent/flair' }), code('MODEL.NOT_FOUND'));
  await assert.rejects(
    remote.open({ ...reg.artifact('tiny-unet', 'flair'), sha256: '0'.repeat(64) }),
    code('MODEL.CHECKSUM_MISMATCH'),
  );
  await assert.rejects(
    sRemote.run({ data: new Float32Array(16 * 24 * 24), dims: [1, 1, 16, 24, 24] }),
    code('MODEL.INPUT_MISMATCH'),
  );
  const bad = await fetch(`${child.url}/v2/models/tiny-unet%2Fflair-t2/infer`, {
    method: 'POST',
    body: '{"inputs": 3}',
  });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { code: string }).code, 'INFERENCE.REMOTE_BAD_REQUEST');
});

test('503 from a busy inference node is retried; timeouts and unreachable servers are coded', async (t) => {
  const child = await startChild(['--max-in-flight', '1']);
  t.after(() => stopChild(child));
  const reg = await openModelRegistry({ roots: [MODELS], strict: true });
  const ref = reg.artifact('tiny-unet', 'flair-t2-t1');
  const client = new KServeInferenceClient({ url: child.url, retries: 8, retryDelayMs: 50 });
  const s = await client.open(ref);
  const x = new Float32Array(4 * 3 * 16 * 24 * 24).fill(1);
  const outs = await Promise.all([0, 1, 2, 3].map(() => s.run({ data: x, dims: [4, 3, 16, 24, 24] })));
  for (const o of outs) assert.deepEqual(o.data, outs[0].data);
  assert.ok(
    child.log.some((l) => l.includes('busy: 503')),
    'the server turned requests away, the client retried them',
  );

  const noRetry = new KServeInferenceClient({ url: child.url, retries: 0 });
  const sNo = await noRetry.open(ref);
  const results = await Promise.allSettled(
    [0, 1, 2].map(() => sNo.run({ data: x, dims: [4, 3, 16, 24, 24] })),
  );
  assert.ok(results.some((r) => r.status === 'rejected' && code('INFERENCE.REMOTE_UNAVAILABLE')(r.reason)));

  const hasty = new KServeInferenceClient({ url: child.url, timeoutMs: 1 });
  await assert.rejects(
    hasty.open(ref).then((h) => h.run({ data: x, dims: [4, 3, 16, 24, 24] })),
    code('INFERENCE.REMOTE_TIMEOUT'),
  );

  // a port nobody listens on
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => {
    srv.close(() => {
      r();
    });
  });
  const gone = new KServeInferenceClient({ url: `http://127.0.0.1:${port}`, retries: 1, retryDelayMs: 10 });
  await assert.rejects(gone.open(ref), code('INFERENCE.REMOTE_UNAVAILABLE'));
});
