/**
 * `npm run bench -- sliding-window [--threads 2] [--mirror] [--skip-torch] [--batch N]`
 *
 * A 182×218×182 3-channel volume (patient07's FLAIR, T2, T1 from the committed fixtures, put back on the 1 mm
 * MNI grid) through the 1.4 M-parameter nnU-Net-shaped U-Net of models/testing/make_test_models.py --bench
 * (16-32-64-128 features, patch 96³, step 0.5, Gaussian weighting), whole volume (no brain crop):
 *   - onnxruntime-node: the domain sliding window (normalisation + slidingWindow) on OnnxInferenceEngine;
 *   - torch CPU: models/reference/sliding_window_ref.py, the same algorithm on the same network (weights from the
 *     same ONNX file, executed with torch functions), the same number of threads.
 * Each side runs in its own process, so its peak RSS is its own. Prints a table and a JSON line. Uses
 * /usr/bin/python3 (torch, onnx, scipy); the network is generated into .tmp/bench/ on first use.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { normalizeInputs } from '../domain/inference/predict.ts';
import { slidingWindow } from '../domain/inference/sliding-window.ts';
import { foregroundProbability } from '../domain/inference/activation.ts';
import type { Shape3 } from '../domain/inference/tiles.ts';
import { createVolume, type Volume } from '../domain/model/volume.ts';
import { readNifti } from '../adapters/nifti/nifti.ts';
import { openModelRegistry } from '../adapters/models/fs-registry.ts';
import { OnnxInferenceEngine } from '../adapters/onnx/onnx-engine.ts';
import { REPO_ROOT, openMs } from '../test/helpers/fixtures.ts';

const run = promisify(execFile);
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const WORK = join(REPO_ROOT, '.tmp', 'bench', 'sliding-window');
const MODELS = join(WORK, 'models');
const MNI: Shape3 = [182, 218, 182]; // i, j, k
const MNI_ORIGIN_LPS = [-90, 126, -72];

interface SideResult {
  seconds: number;
  peakRssMiB: number;
  tiles: number;
  networkCalls: number;
  threads: number;
  openSeconds?: number;
  torch?: string;
}

/** The fixture (cropped around the brain) back on the 182×218×182 MNI grid. */
async function mniVolume(name: string): Promise<Volume<Float32Array>> {
  const v = (await readNifti(openMs('cross_sectional', 'patient07', `${name}.nii.gz`))).volume;
  const off = [
    Math.round(v.affine[3] - MNI_ORIGIN_LPS[0]),
    Math.round(MNI_ORIGIN_LPS[1] - v.affine[7]),
    Math.round(v.affine[11] - MNI_ORIGIN_LPS[2]),
  ];
  const out = new Float32Array(MNI[0] * MNI[1] * MNI[2]);
  const [nx, ny, nz] = v.dims;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++)
        out[i + off[0] + MNI[0] * (j + off[1] + MNI[1] * (k + off[2]))] = v.data[i + nx * (j + ny * k)];
  return createVolume(MNI, [1, 0, 0, -90, 0, -1, 0, 126, 0, 0, 1, -72, 0, 0, 0, 1], out);
}

async function prepare(): Promise<void> {
  await mkdir(WORK, { recursive: true });
  if (!existsSync(join(MODELS, 'bench-unet', 'manifest.json'))) {
    console.error('generating the 1.4 M-parameter benchmark network …');
    await run(PYTHON, [join(REPO_ROOT, 'models', 'testing', 'make_test_models.py'), '--bench', MODELS]);
  }
  if (!existsSync(join(WORK, 'x.f32'))) {
    const vols = await Promise.all(['FLAIR', 'T2', 'T1'].map(mniVolume));
    const n = vols[0].data.length;
    const x = new Float32Array(3 * n);
    vols.forEach((v, c) => {
      x.set(v.data, c * n);
    });
    await writeFile(join(WORK, 'x.f32'), new Uint8Array(x.buffer));
  }
}

/** The onnxruntime side, in its own process (`--worker`): prints one JSON line. */
async function worker(threads: number, mirror: boolean, batch: number | undefined): Promise<void> {
  const reg = await openModelRegistry({ roots: [MODELS], strict: true });
  const manifest = reg.get('bench-unet');
  const variant = manifest.variants[0];
  if (manifest.inference.mode !== 'sliding-window')
    throw new Error('bench-unet must be a sliding-window model');
  const raw = await readFile(join(WORK, 'x.f32'));
  const x = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const n = MNI[0] * MNI[1] * MNI[2];
  const shape: Shape3 = [MNI[2], MNI[1], MNI[0]];
  const engine = new OnnxInferenceEngine({ intraOpThreads: threads });
  const t0 = performance.now();
  const session = await engine.open(reg.artifact('bench-unet', variant.id));
  const openSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  const input = normalizeInputs(manifest, variant, {
    channels: [0, 1, 2].map((c) => x.subarray(c * n, (c + 1) * n)),
    shape,
  });
  let calls = 0;
  const out = await slidingWindow(
    session,
    input,
    {
      patchSize: manifest.inference.patchSize,
      tileStep: manifest.inference.tileStep,
      gaussian: manifest.inference.gaussian,
      mirrorAxes: mirror ? manifest.inference.mirrorAxes : [],
      batchSize: batch ?? manifest.inference.batchSize ?? 1,
    },
    { progress: (d) => (calls = d) },
  );
  const seconds = (performance.now() - t1) / 1000;
  const fg = foregroundProbability(out.data, out.channels, n, manifest.foregroundLabel, manifest.output);
  await writeFile(join(WORK, 'p-ort.f32'), new Uint8Array(fg.buffer));
  const tiles = calls / (mirror ? 2 ** manifest.inference.mirrorAxes.length : 1);
  await engine.close();
  const result: SideResult = {
    seconds,
    openSeconds,
    tiles,
    networkCalls: calls,
    threads,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
  };
  console.log(JSON.stringify(result));
}

export async function run_(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      threads: { type: 'string', default: '2' },
      mirror: { type: 'boolean', default: false },
      'skip-torch': { type: 'boolean', default: false },
      batch: { type: 'string' },
      worker: { type: 'boolean', default: false },
    },
  });
  const threads = Number(values.threads);
  const batch = values.batch === undefined ? undefined : Number(values.batch);
  if (values.worker) {
    await worker(threads, values.mirror, batch);
    return;
  }
  await prepare();
  const wargs = [join(REPO_ROOT, 'bench', 'sliding-window.ts'), '--worker', '--threads', String(threads)];
  if (values.mirror) wargs.push('--mirror');
  if (batch !== undefined) wargs.push('--batch', String(batch));
  console.error('onnxruntime-node …');
  const ortOut = await run(process.execPath, wargs, { maxBuffer: 1 << 20 });
  const ort = JSON.parse(ortOut.stdout.trim().split('\n').at(-1) ?? '{}') as SideResult;
  let torch: SideResult | null = null;
  let maxDiff: number | null = null;
  if (!values['skip-torch']) {
    console.error('torch …');
    const modelDir = join(MODELS, 'bench-unet');
    const args = [join(REPO_ROOT, 'models', 'reference', 'sliding_window_ref.py')];
    args.push('--model', join(modelDir, 'flair-t2-t1.onnx'), '--manifest', join(modelDir, 'manifest.json'));
    args.push(
      '--input',
      join(WORK, 'x.f32'),
      '--channels',
      '3',
      '--dims',
      String(MNI[2]),
      String(MNI[1]),
      String(MNI[0]),
    );
    if (!values.mirror) args.push('--no-mirror');
    args.push('--out', join(WORK, 'p-torch.f32'), '--timing', join(WORK, 'torch.json'));
    await run(PYTHON, args, { env: { ...process.env, REF_THREADS: String(threads) } });
    torch = JSON.parse(await readFile(join(WORK, 'torch.json'), 'utf8')) as SideResult;
    const a = await readFile(join(WORK, 'p-ort.f32'));
    const b = await readFile(join(WORK, 'p-torch.f32'));
    const pa = new Float32Array(a.buffer, a.byteOffset, a.byteLength / 4);
    const pb = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    maxDiff = 0;
    for (let i = 0; i < pa.length; i++) maxDiff = Math.max(maxDiff, Math.abs(pa[i] - pb[i]));
  }
  const ratio = torch === null ? null : ort.seconds / torch.seconds;
  const rows = [
    ['side', 'seconds', 'peak RSS MiB', 'tiles', 'network calls', 'threads'],
    [
      'onnxruntime-node',
      ort.seconds.toFixed(1),
      ort.peakRssMiB.toFixed(0),
      ort.tiles,
      ort.networkCalls,
      ort.threads,
    ],
    ...(torch === null
      ? []
      : [
          [
            `torch ${torch.torch ?? ''}`,
            torch.seconds.toFixed(1),
            torch.peakRssMiB.toFixed(0),
            torch.tiles,
            torch.networkCalls,
            torch.threads,
          ],
        ]),
  ];
  for (const r of rows) console.log(r.map((c) => String(c).padEnd(18)).join(''));
  if (ratio !== null)
    console.log(
      `onnxruntime / torch time: ${ratio.toFixed(2)} (target ≤ 0.60); peak ≤ 2048 MiB: ${ort.peakRssMiB <= 2048}`,
    );
  if (maxDiff !== null)
    console.log(`max |Δ foreground probability| onnxruntime vs torch: ${maxDiff.toExponential(2)}`);
  console.log(
    JSON.stringify({
      bench: 'sliding-window',
      volume: MNI,
      patch: [96, 96, 96],
      mirror: values.mirror,
      onnxruntime: ort,
      torch,
      ratio,
      maxAbsDiff: maxDiff,
    }),
  );
}

export { run_ as run };

// `node bench/sliding-window.ts --worker …` (spawned by run) measures the onnxruntime side on its own
if (import.meta.main) await run_(process.argv.slice(2));
