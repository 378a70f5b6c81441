/**
 * segmentLesions on real MRI (open_ms patient07, skull-stripped FLAIR/T2/T1 on one grid) with real ONNX
 * networks through onnxruntime-node. The test model copies are tiny-unet / tiny-sigmoid with a coarser spacing
 * (so the whole brain runs in seconds), written to a temp folder with fresh hashes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DomainError } from '../errors.ts';
import { multiply, mat4, type Mat4 } from '../model/geometry.ts';
import {
  applyAxisMapping,
  axisMappingTo,
  createVolume,
  crop,
  invertAxisMapping,
  sameGrid,
  type Mask,
  type Volume,
} from '../model/volume.ts';
import type { ModelManifest } from '../model/manifest.ts';
import { readNifti } from '../../adapters/nifti/nifti.ts';
import { openModelRegistry, sha256File, type FsModelRegistry } from '../../adapters/models/fs-registry.ts';
import { OnnxInferenceEngine } from '../../adapters/onnx/onnx-engine.ts';
import { FIXTURES, REPO_ROOT, openMs } from '../../test/helpers/fixtures.ts';
import { maskVolumeMl } from '../preprocess/mask-ops.ts';
import { segmentLesions } from './segment-lesions.ts';

const code = (c: string) => (e: unknown) => e instanceof DomainError && e.code === c;

async function coarseModels(
  root: string,
  extraRoots: string[] = [],
  only?: string[],
): Promise<FsModelRegistry> {
  const edits: Record<string, Partial<ModelManifest>> = {
    'tiny-unet': { spacing: [3, 2.5, 2.5] },
    'tiny-sigmoid': { spacing: [2.5, 2.5, 2.5], task: 'testing' },
  };
  for (const [id, edit] of Object.entries(edits)) {
    await cp(join(FIXTURES, 'models', id), join(root, id), { recursive: true });
    const path = join(root, id, 'manifest.json');
    const m = JSON.parse(await readFile(path, 'utf8')) as ModelManifest;
    const variants = await Promise.all(
      m.variants.map(async (v) => ({ ...v, sha256: await sha256File(join(root, id, v.file)) })),
    );
    await writeFile(path, JSON.stringify({ ...m, ...edit, variants }));
  }
  return openModelRegistry({
    roots: [root, ...extraRoots],
    strict: true,
    ...(only === undefined ? {} : { only }),
  });
}

async function patient07(): Promise<{ flair: Volume; t2: Volume; t1: Volume }> {
  const read = async (n: string): Promise<Volume> =>
    (await readNifti(openMs('cross_sectional', 'patient07', `${n}.nii.gz`))).volume;
  return { flair: await read('FLAIR'), t2: await read('T2'), t1: await read('T1') };
}

function translate(v: Volume, t: [number, number, number]): Volume {
  const shift: Mat4 = mat4([
    [1, 0, 0, t[0]],
    [0, 1, 0, t[1]],
    [0, 0, 1, t[2]],
  ]);
  return createVolume(v.dims, multiply(shift, v.affine), v.data);
}

test('whole brain, three channels on the FLAIR grid: mask, probabilities and brain mask overlay the FLAIR', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'seg-'));
  const engine = new OnnxInferenceEngine({ intraOpThreads: 1 });
  t.after(async () => {
    await engine.close();
    await rm(root, { recursive: true, force: true });
  });
  const models = await coarseModels(root);
  const { flair, t2, t1 } = await patient07();
  const steps: [number, string][] = [];
  const out = await segmentLesions(
    { engine, models },
    { flair, t2, t1 },
    { modelId: 'tiny-unet', mirror: false, progress: (f, s) => steps.push([f, s]) },
  );
  assert.ok(
    sameGrid(out.mask, flair, 1e-9) &&
      sameGrid(out.probabilities, flair, 1e-9) &&
      sameGrid(out.brainMask, flair, 1e-9),
  );
  assert.deepEqual(out.model, {
    id: 'tiny-unet',
    name: 'Tiny test U-Net (softmax)',
    version: '0.0.1',
    variant: 'flair-t2-t1',
    channels: ['FLAIR', 'T2', 'T1'],
    sha256: models.get('tiny-unet').variants[0].sha256,
    reason: 'all channels present: FLAIR+T2+T1 variant',
  });
  assert.equal(out.brainMaskSource, 'skull-stripped');
  assert.deepEqual(
    out.alignment.map((a) => a.method),
    ['same-grid', 'same-grid'],
  );
  assert.equal(out.backend, 'onnxruntime-node/cpu');
  let brain = 0;
  let maskVox = 0;
  let outside = 0;
  for (let x = 0; x < flair.data.length; x++) {
    const p = out.probabilities.data[x];
    assert.ok(p >= 0 && p <= 1);
    if (out.brainMask.data[x] !== 0) brain++;
    if (out.mask.data[x] !== 0) maskVox++;
    if (flair.data[x] === 0 && out.brainMask.data[x] !== 0) outside++;
  }
  assert.ok(brain > 900_000 && brain < 1_600_000, `brain ${brain} voxels (≈1.2 L at 1 mm)`);
  assert.ok(outside < 0.01 * brain, 'the skull-stripped brain mask is the non-zero region');
  assert.ok(maskVox > 0 && maskVox < brain, `mask ${maskVox} voxels`);
  assert.equal(steps.at(-1)?.[0], 1);
  for (let i = 1; i < steps.length; i++)
    assert.ok(steps[i][0] >= steps[i - 1][0], 'progress never goes back');
  assert.ok(steps.some(([, s]) => s === 'inference'));
});

test('T1 missing and T2 displaced by 4 mm: FLAIR+T2 variant, rigid registration recovers the shift', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'seg-'));
  const engine = new OnnxInferenceEngine({ intraOpThreads: 1 });
  t.after(async () => {
    await engine.close();
    await rm(root, { recursive: true, force: true });
  });
  const models = await coarseModels(root);
  const { flair, t2 } = await patient07();
  const moved = translate(t2, [4, -2, 1]);
  const out = await segmentLesions(
    { engine, models },
    { flair, t2: moved },
    { modelId: 'tiny-unet', mirror: false },
  );
  assert.equal(out.model.variant, 'flair-t2');
  assert.equal(out.model.reason, 'T1 missing: FLAIR+T2 variant');
  const a = out.alignment[0];
  assert.equal(a.method, 'rigid');
  // FLAIR point p sits at p + (4, −2, 1) in the displaced T2
  const m = a.transform!;
  assert.ok(
    Math.abs(m[3] - 4) < 0.6 && Math.abs(m[7] + 2) < 0.6 && Math.abs(m[11] - 1) < 0.6,
    `translation ${m[3]}, ${m[7]}, ${m[11]}`,
  );
  assert.ok(Math.abs((a.shiftMm ?? 0) - Math.hypot(4, 2, 1)) < 0.6, `shift ${a.shiftMm} mm`);
  assert.deepEqual(out.warnings, []);
});

test('the input voxel order does not matter: a permuted/flipped FLAIR gives the same result', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'seg-'));
  const engine = new OnnxInferenceEngine({ intraOpThreads: 1 });
  t.after(async () => {
    await engine.close();
    await rm(root, { recursive: true, force: true });
  });
  const models = await coarseModels(root);
  const { flair } = await patient07();
  const block = crop(flair, [20, 30, 30], [110, 130, 100]);
  const brain: Mask = createVolume(
    block.dims,
    block.affine,
    Uint8Array.from(block.data, (v) => (v > 0 ? 1 : 0)),
  );
  const a = await segmentLesions(
    { engine, models },
    { flair: block, brainMask: brain },
    { modelId: 'tiny-unet' },
  );
  const mapping = axisMappingTo(block.affine, 'SRP');
  const permuted = applyAxisMapping(block, mapping);
  const b = await segmentLesions(
    { engine, models },
    { flair: permuted, brainMask: applyAxisMapping(brain, mapping) },
    { modelId: 'tiny-unet' },
  );
  assert.equal(a.model.variant, 'flair');
  assert.equal(a.model.reason, 'T2 and T1 missing: FLAIR variant');
  assert.equal(a.brainMaskSource, 'given');
  const back = applyAxisMapping(b.probabilities, invertAxisMapping(mapping));
  assert.ok(sameGrid(back, a.probabilities, 1e-6));
  let d = 0;
  for (let x = 0; x < back.data.length; x++)
    d = Math.max(d, Math.abs(back.data[x] - a.probabilities.data[x]));
  assert.ok(d < 1e-5, `max |Δp| ${d}`);
});

test('brain mask: resampled when on another grid, extractor when not skull-stripped, coded errors', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'seg-'));
  const engine = new OnnxInferenceEngine({ intraOpThreads: 1 });
  t.after(async () => {
    await engine.close();
    await rm(root, { recursive: true, force: true });
  });
  const models = await coarseModels(root);
  const { flair } = await patient07();
  const block = crop(flair, [30, 40, 40], [100, 120, 90]);
  const brain: Mask = createVolume(
    block.dims,
    block.affine,
    Uint8Array.from(block.data, (v) => (v > 0 ? 1 : 0)),
  );
  // the brain mask on a coarser 2 mm grid (nearest voxel of every other voxel)
  const coarse = crop(brain, [0, 0, 0], [70, 80, 50]);
  const half = createVolume(
    [35, 40, 25],
    multiply(
      coarse.affine,
      mat4([
        [2, 0, 0, 0.5],
        [0, 2, 0, 0.5],
        [0, 0, 2, 0.5],
      ]),
    ),
    Uint8Array.from({ length: 35 * 40 * 25 }, (_, x) => {
      const i = x % 35,
        j = Math.floor(x / 35) % 40,
        k = Math.floor(x / 1400);
      return coarse.data[2 * i + 70 * (2 * j + 80 * 2 * k)];
    }),
  );
  const r = await segmentLesions(
    { engine, models },
    { flair: block, brainMask: half },
    { modelId: 'tiny-unet', mirror: false },
  );
  assert.ok(r.warnings.includes('brain mask resampled onto the FLAIR grid'));
  assert.ok(sameGrid(r.brainMask, block));

  // a crop is not a skull-stripped whole brain: brain extraction is needed
  await assert.rejects(
    segmentLesions({ engine, models }, { flair: block }, { modelId: 'tiny-unet' }),
    code('PREPROCESS.BRAIN_MASK_REQUIRED'),
  );
  let calls = 0;
  const extracted = await segmentLesions(
    {
      engine,
      models,
      extractBrain: (v) => {
        calls++;
        return Promise.resolve(
          createVolume(
            v.dims,
            v.affine,
            Uint8Array.from(v.data, (x) => (x > 0 ? 1 : 0)),
          ),
        );
      },
    },
    { flair: block },
    { modelId: 'tiny-unet', mirror: false },
  );
  assert.equal(calls, 1);
  assert.equal(extracted.brainMaskSource, 'extracted');
  await assert.rejects(
    segmentLesions({ engine, models }, { flair: block, brainMask: brain }, { modelId: 'tiny-sigmoid' }),
    code('MODEL.WRONG_TASK'),
  );
  // the only lesion model in this registry is the default
  const byDefault = await segmentLesions(
    { engine, models },
    { flair: block, brainMask: brain },
    { mirror: false },
  );
  assert.equal(byDefault.model.id, 'tiny-unet');
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(
    segmentLesions(
      { engine, models },
      { flair: block, brainMask: brain },
      { modelId: 'tiny-unet', signal: ac.signal },
    ),
    code('INFERENCE.CANCELLED'),
  );
});

test('a raw clinical FLAIR (not skull-stripped): the brain-extraction model provides the mask', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'seg-'));
  const engine = new OnnxInferenceEngine({ intraOpThreads: 2 });
  t.after(async () => {
    await engine.close();
    await rm(root, { recursive: true, force: true });
  });
  // tiny-unet (coarse) beside the committed brainchop mindgrab model
  const models = await coarseModels(root, [join(REPO_ROOT, 'models')], ['tiny-unet', 'brain-mindgrab']);
  const flair = (await readNifti(openMs('longitudinal', 'patient01', 'study1_FLAIR.nii.gz'))).volume;
  const out = await segmentLesions(
    { engine, models },
    { flair },
    { modelId: 'tiny-unet', mirror: false, brainExtraction: { spacing: 2 } },
  );
  assert.equal(out.brainMaskSource, 'extracted');
  assert.ok(sameGrid(out.mask, flair, 1e-9) && sameGrid(out.brainMask, flair, 1e-9));
  const ml = maskVolumeMl(out.brainMask);
  assert.ok(ml > 900 && ml < 2000, `brain ${ml.toFixed(0)} mL`);
  assert.ok(out.warnings.some((w) => w.startsWith('brain mask by brain-mindgrab')));
  // lesion voxels only inside the (slightly grown) brain
  let outside = 0;
  for (let x = 0; x < out.mask.data.length; x++)
    if (out.mask.data[x] !== 0 && out.brainMask.data[x] === 0) outside++;
  let inside = 0;
  for (const v of out.mask.data) if (v !== 0) inside++;
  assert.ok(outside <= 0.2 * Math.max(1, inside), `${outside} of ${inside} lesion voxels outside the brain`);
});
