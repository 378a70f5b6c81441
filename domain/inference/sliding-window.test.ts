import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DomainError } from '../errors.ts';
import type { ModelManifest } from '../model/manifest.ts';
import type { Tensor } from '../ports/inference.port.ts';
import { maskBounds, predictOnModelGrid } from './predict.ts';
import { padToAtLeast, slidingWindow, type ChannelArray, type PatchRunner } from './sliding-window.ts';
import type { Shape3 } from './tiles.ts';

/** A voxel-wise "network": out0 = 2·in0 + 1, out1 = in0 − in1 (equivariant under flips, so exact results). */
class PointwiseNet implements PatchRunner {
  calls: (readonly number[])[] = [];
  async run(t: Tensor): Promise<Tensor> {
    await Promise.resolve();
    this.calls.push(t.dims);
    const [n, c, d, h, w] = t.dims;
    const v = d * h * w;
    const out = new Float32Array(n * 2 * v);
    for (let b = 0; b < n; b++)
      for (let x = 0; x < v; x++) {
        const a = t.data[(b * c + 0) * v + x];
        const z = c > 1 ? t.data[(b * c + 1) * v + x] : 0;
        out[(b * 2 + 0) * v + x] = 2 * a + 1;
        out[(b * 2 + 1) * v + x] = a - z;
      }
    return { data: out, dims: [n, 2, d, h, w] };
  }
}

function ramp(shape: Shape3, channels: number): ChannelArray {
  const n = shape[0] * shape[1] * shape[2];
  const data = new Float32Array(channels * n);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 0.37) * 3 + (i % 7);
  return { data, channels, shape };
}

function maxAbsDiffToPointwise(img: ChannelArray, out: ChannelArray): number {
  const n = img.shape[0] * img.shape[1] * img.shape[2];
  let d = 0;
  for (let x = 0; x < n; x++) {
    const a = img.data[x];
    const z = img.channels > 1 ? img.data[n + x] : 0;
    d = Math.max(d, Math.abs(out.data[x] - (2 * a + 1)), Math.abs(out.data[n + x] - (a - z)));
  }
  return d;
}

test('add-then-divide with mirroring and batching reproduces a voxel-wise network exactly', async () => {
  const img = ramp([20, 27, 33], 2);
  for (const [mirrorAxes, batchSize, gaussian] of [
    [[], 1, true],
    [[0, 1, 2], 3, true],
    [[2], 2, false],
    [[0, 2], 8, true],
  ] as const) {
    const net = new PointwiseNet();
    const out = await slidingWindow(net, img, {
      patchSize: [8, 16, 12],
      tileStep: 0.5,
      gaussian,
      mirrorAxes,
      batchSize,
    });
    assert.deepEqual(out.shape, img.shape);
    assert.equal(out.channels, 2);
    assert.ok(maxAbsDiffToPointwise(img, out) < 2e-4, `mirror ${mirrorAxes.join(',')}`);
    const tiles = 4 * 3 * 5; // starts per axis: 20→[0,4,8,12] (4), 27→3, 33→5
    const jobs = tiles * 2 ** mirrorAxes.length;
    assert.equal(net.calls.length, Math.ceil(jobs / batchSize));
    assert.equal(net.calls[0][0], Math.min(batchSize, jobs));
  }
});

test('a volume smaller than the patch is padded, then cropped back', async () => {
  const img = ramp([5, 9, 30], 1);
  const net = new PointwiseNet();
  const out = await slidingWindow(net, img, {
    patchSize: [8, 16, 12],
    tileStep: 0.5,
    gaussian: true,
    mirrorAxes: [1],
  });
  assert.deepEqual(out.shape, [5, 9, 30]);
  assert.ok(maxAbsDiffToPointwise(img, out) < 1e-5);
  assert.deepEqual(net.calls[0], [1, 1, 8, 16, 12]);
  const { array, before } = padToAtLeast(img, [8, 16, 12]);
  assert.deepEqual(before, [1, 3, 0]);
  assert.deepEqual(array.shape, [8, 16, 30]);
});

test('coded errors: non-finite input/output, wrong output shape, cancellation; progress reaches the total', async () => {
  const img = ramp([8, 8, 8], 1);
  const cfg = { patchSize: [8, 8, 8] as Shape3, tileStep: 0.5, gaussian: true, mirrorAxes: [0] };
  const code = (c: string) => (e: unknown) => e instanceof DomainError && e.code === c;
  const nan: PatchRunner = {
    run: (t) => Promise.resolve({ data: new Float32Array(t.data.length).fill(NaN), dims: t.dims }),
  };
  await assert.rejects(slidingWindow(nan, img, cfg), code('INFERENCE.NON_FINITE_OUTPUT'));
  const wrong: PatchRunner = {
    run: () => Promise.resolve({ data: new Float32Array(8), dims: [1, 1, 2, 2, 2] }),
  };
  await assert.rejects(slidingWindow(wrong, img, cfg), code('INFERENCE.OUTPUT_SHAPE'));
  const bad = { ...img, data: Float32Array.from(img.data) };
  bad.data[17] = Infinity;
  await assert.rejects(slidingWindow(new PointwiseNet(), bad, cfg), code('INFERENCE.NON_FINITE_INPUT'));
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(
    slidingWindow(new PointwiseNet(), img, cfg, { signal: ac.signal }),
    code('INFERENCE.CANCELLED'),
  );
  const seen: [number, number][] = [];
  await slidingWindow(new PointwiseNet(), img, cfg, { progress: (d, t) => seen.push([d, t]) });
  assert.deepEqual(seen, [
    [1, 2],
    [2, 2],
  ]);
});

const manifest = {
  id: 'pw',
  normalization: { FLAIR: { method: 'none', mask: 'all' }, T2: { method: 'none', mask: 'all' } },
  inference: {
    mode: 'sliding-window',
    patchSize: [4, 4, 4],
    tileStep: 0.5,
    gaussian: true,
    mirrorAxes: [0, 1, 2],
  },
  output: { name: 'o', kind: 'logits', activation: 'softmax', labels: ['bg', 'fg'] },
  foregroundLabel: 1,
} as unknown as ModelManifest;
const variant = { id: 'v', channels: ['FLAIR', 'T2'], file: 'v.onnx', sha256: '' } as const;

test('model-grid prediction crops to the brain box, softmax foreground, 0 outside', async () => {
  const shape: Shape3 = [10, 12, 14];
  const n = 10 * 12 * 14;
  const flair = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.1));
  const t2 = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.05));
  const brain = new Uint8Array(n);
  for (let d = 2; d < 7; d++)
    for (let h = 3; h < 10; h++) for (let w = 1; w < 12; w++) brain[(d * 12 + h) * 14 + w] = 1;
  assert.deepEqual(maskBounds(brain, shape), { start: [2, 3, 1], size: [5, 7, 11] });
  const net = new PointwiseNet();
  const p = await predictOnModelGrid(net, manifest, variant, { channels: [flair, t2], shape, brain });
  assert.deepEqual(p.cropStart, [2, 3, 1]);
  for (let x = 0; x < n; x++) {
    if (brain[x] === 0 && p.foreground[x] !== 0) {
      // inside the bounding box but outside the mask is still predicted; outside the box is 0
      const d = Math.floor(x / 168),
        h = Math.floor((x % 168) / 14),
        w = x % 14;
      assert.ok(
        d >= 2 && d < 7 && h >= 3 && h < 10 && w >= 1 && w < 12,
        `voxel ${x} outside the crop got ${p.foreground[x]}`,
      );
    }
    if (brain[x] !== 0) {
      const l0 = 2 * flair[x] + 1,
        l1 = flair[x] - t2[x];
      const want = 1 / (1 + Math.exp(l0 - l1));
      assert.ok(Math.abs(p.foreground[x] - want) < 1e-5);
    }
  }
  const noMirror = new PointwiseNet();
  await predictOnModelGrid(
    noMirror,
    manifest,
    variant,
    { channels: [flair, t2], shape, brain },
    { mirror: false },
  );
  assert.ok(noMirror.calls.length * 8 === net.calls.length);
  await assert.rejects(
    predictOnModelGrid(net, manifest, variant, { channels: [flair, t2], shape, brain: new Uint8Array(n) }),
    (e: unknown) => e instanceof DomainError && e.code === 'INFERENCE.EMPTY_BRAIN_MASK',
  );
});

test('whole-volume mode centre-fits the grid to the network shape and maps the output back', async () => {
  const wv = {
    ...manifest,
    inference: { mode: 'whole-volume', shape: [6, 8, 8] },
  } as unknown as ModelManifest;
  const shape: Shape3 = [5, 10, 8];
  const n = 400;
  const flair = Float32Array.from({ length: n }, (_, i) => (i % 13) / 13);
  const t2 = new Float32Array(n);
  const net = new PointwiseNet();
  const p = await predictOnModelGrid(net, wv, variant, { channels: [flair, t2], shape });
  assert.deepEqual(net.calls, [[1, 2, 6, 8, 8]]);
  // H 10 → 8 crops rows 0 and 9 away: those are background (0); the rest follows the voxel-wise network
  for (let d = 0; d < 5; d++)
    for (let h = 0; h < 10; h++)
      for (let w = 0; w < 8; w++) {
        const x = (d * 10 + h) * 8 + w;
        const want = h === 0 || h === 9 ? 0 : 1 / (1 + Math.exp(2 * flair[x] + 1 - flair[x]));
        assert.ok(Math.abs(p.foreground[x] - want) < 1e-6, `${d},${h},${w}`);
      }
});
