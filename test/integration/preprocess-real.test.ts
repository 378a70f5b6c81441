/**
 * Preprocessing on the real open_ms fixtures (committed under test/fixtures/open_ms): the ITK transform
 * convention, registration accuracy against the dataset's own transforms, the converted brainchop models
 * against their NumPy tfjs references through onnxruntime-node, brain extraction on raw 2-D FLAIR and skull-stripped
 * detection.
 *
 * The default run keeps to fast settings (registration levels 6/3 mm, brain extraction at 2 mm, one case each).
 * PREPROCESS_FULL_EVAL=1 also runs every case at 1, 1.5 and 2 mm and prints the tables quoted in
 * docs/dev-notes/preprocess.md and the models' MODEL_CARD.md (minutes on 2 cores).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readNifti } from '../../adapters/nifti/nifti.ts';
import { readItkTransform } from '../../adapters/itk/itk-transform.ts';
import { OnnxInferenceEngine } from '../../adapters/onnx/onnx-engine.ts';
import { openModelRegistry } from '../../adapters/models/fs-registry.ts';
import { IDENTITY, invert, multiply, type Mat4 } from '../../domain/model/geometry.ts';
import { boundingBox, createVolume, type Mask, type Volume } from '../../domain/model/volume.ts';
import { boxCorners, meanDisplacement, registerImages } from '../../domain/preprocess/registration.ts';
import { resampleLinear, resampleMask, respacedGrid } from '../../domain/preprocess/resample.ts';
import { detectSkullStripped, dice, maskVolumeMl } from '../../domain/preprocess/mask-ops.ts';
import {
  extractBrain,
  parcellateBrain,
  type WholeVolumeModel,
} from '../../domain/preprocess/brain-extraction.ts';
import { openMs, REPO_ROOT } from '../helpers/fixtures.ts';

const FULL = process.env.PREPROCESS_FULL_EVAL === '1';
const LONG = (pt: string, f: string): string => openMs('longitudinal', pt, f);

const engine = new OnnxInferenceEngine({ intraOpThreads: 2, warmUp: false });
after(async () => {
  await engine.close();
});

async function load(path: string): Promise<Volume> {
  return (await readNifti(path)).volume;
}

function binary(v: Volume): Mask {
  return createVolume(
    v.dims,
    v.affine,
    Uint8Array.from(v.data, (x) => (x > 0 ? 1 : 0)),
  );
}

function ncc(a: Float32Array, b: Float32Array, m: Uint8Array): number {
  let n = 0;
  let sa = 0;
  let sb = 0;
  for (let x = 0; x < a.length; x++)
    if (m[x]) {
      n++;
      sa += a[x];
      sb += b[x];
    }
  const ma = sa / n;
  const mb = sb / n;
  let saa = 0;
  let sbb = 0;
  let sab = 0;
  for (let x = 0; x < a.length; x++)
    if (m[x]) {
      saa += (a[x] - ma) ** 2;
      sbb += (b[x] - mb) ** 2;
      sab += (a[x] - ma) * (b[x] - mb);
    }
  return sab / Math.sqrt(saa * sbb);
}

interface Exam {
  flair: Volume;
  toCommon: Mat4;
  /** The dataset's brain mask brought into this FLAIR's space. */
  brain: Mask;
}

const exams = new Map<string, Promise<Exam>>();
function exam(pt: string, study: string): Promise<Exam> {
  const key = `${pt}/${study}`;
  let e = exams.get(key);
  if (e === undefined) {
    e = (async () => {
      const flair = await load(LONG(pt, `${study}_FLAIR.nii.gz`));
      const toCommon = await readItkTransform(LONG(pt, `${study}_FLAIR_to_common_space.txt`));
      const common = binary(await load(LONG(pt, 'brainmask_common_space.nii.gz')));
      // ITK: the file maps common-space points to FLAIR points, so a FLAIR voxel samples common at T⁻¹(p)
      const brain = resampleMask(common, flair, { transform: invert(toCommon) });
      return { flair, toCommon, brain };
    })();
    exams.set(key, e);
  }
  return e;
}

function corners(e: Exam): ReturnType<typeof boxCorners> {
  const bb = boundingBox(e.brain);
  assert.ok(bb !== null);
  return boxCorners(e.flair.affine, bb.min, bb.max);
}

test('ITK convention on the data: FLAIR_to_common_space maps common points to FLAIR points', async () => {
  const common = binary(await load(LONG('patient01', 'brainmask_common_space.nii.gz')));
  const grid = respacedGrid(common, 3);
  const inGrid = resampleMask(common, grid).data;
  const e1 = await exam('patient01', 'study1');
  const e2 = await exam('patient01', 'study2');
  const asFile = ncc(
    resampleLinear(e1.flair, grid, { transform: e1.toCommon, antialias: false }).data,
    resampleLinear(e2.flair, grid, { transform: e2.toCommon, antialias: false }).data,
    inGrid,
  );
  const inverted = ncc(
    resampleLinear(e1.flair, grid, { transform: invert(e1.toCommon), antialias: false }).data,
    resampleLinear(e2.flair, grid, { transform: invert(e2.toCommon), antialias: false }).data,
    inGrid,
  );
  assert.ok(asFile > 0.9, `NCC of the two exams in common space ${asFile.toFixed(3)}`);
  assert.ok(inverted < 0.3, `the inverse direction misaligns them (NCC ${inverted.toFixed(3)})`);
});

interface RegCase {
  readonly name: string;
  readonly pt: string;
  readonly study: string;
  readonly moving: string;
}

const INTRA: readonly RegCase[] = [
  { name: 'patient01 study1 T2W → FLAIR', pt: 'patient01', study: 'study1', moving: 'T2W' },
  { name: 'patient03 study2 T1W → FLAIR', pt: 'patient03', study: 'study2', moving: 'T1W' },
  ...(FULL
    ? [
        { name: 'patient01 study1 T1W → FLAIR', pt: 'patient01', study: 'study1', moving: 'T1W' },
        { name: 'patient01 study2 T2W → FLAIR', pt: 'patient01', study: 'study2', moving: 'T2W' },
        { name: 'patient01 study2 T1W → FLAIR', pt: 'patient01', study: 'study2', moving: 'T1W' },
        { name: 'patient03 study1 T2W → FLAIR', pt: 'patient03', study: 'study1', moving: 'T2W' },
        { name: 'patient03 study2 T2W → FLAIR', pt: 'patient03', study: 'study2', moving: 'T2W' },
      ]
    : []),
];

const fastLevels = [6, 3];
const configs = FULL
  ? ([
      ['rigid', [6, 3, 1.5]],
      ['rigid', fastLevels],
      ['affine', [6, 3, 1.5]],
    ] as const)
  : ([['rigid', fastLevels]] as const);

for (const c of INTRA)
  test(`registration ${c.name} agrees with the dataset transform`, async () => {
    const e = await exam(c.pt, c.study);
    const moving = await load(LONG(c.pt, `${c.study}_${c.moving}.nii.gz`));
    const truth = await readItkTransform(LONG(c.pt, `${c.study}_${c.moving}_intrastudy_to_FLAIR.txt`));
    const pts = corners(e);
    for (const [transform, levels] of configs) {
      const t0 = performance.now();
      const r = registerImages(e.flair, moving, { transform, levels, fixedMask: e.brain });
      const ms = performance.now() - t0;
      const err = meanDisplacement(r.matrix, truth, pts);
      const before = meanDisplacement(IDENTITY, truth, pts);
      console.log(
        `  ${c.name} ${transform} [${levels.join(',')}]: ${err.toFixed(2)} mm (headers only ${before.toFixed(2)} mm), ` +
          `MI ${r.value.toFixed(3)}, NCC ${r.ncc.toFixed(3)}, ${r.iterations} it, ${(ms / 1000).toFixed(1)} s`,
      );
      assert.ok(err < 1.5, `${c.name}: mean brain-box corner displacement ${err.toFixed(2)} mm`);
    }
  });

const INTER = FULL ? ['patient01', 'patient03'] : ['patient03'];
for (const pt of INTER)
  test(`registration ${pt} prior FLAIR → current FLAIR agrees with the dataset transforms`, async () => {
    const prior = await exam(pt, 'study1');
    const current = await exam(pt, 'study2');
    // current point → common (T2⁻¹) → prior (T1)
    const truth = multiply(prior.toCommon, invert(current.toCommon));
    const pts = corners(current);
    for (const [transform, levels] of configs) {
      const t0 = performance.now();
      const r = registerImages(current.flair, prior.flair, { transform, levels, fixedMask: current.brain });
      const ms = performance.now() - t0;
      const err = meanDisplacement(r.matrix, truth, pts);
      const before = meanDisplacement(IDENTITY, truth, pts);
      console.log(
        `  ${pt} prior → current ${transform} [${levels.join(',')}]: ${err.toFixed(2)} mm (headers only ${before.toFixed(1)} mm), ` +
          `NCC ${r.ncc.toFixed(3)}, init ${r.initialization}, ${r.iterations} it, ${(ms / 1000).toFixed(1)} s`,
      );
      assert.ok(err < 1.5, `${pt}: mean brain-box corner displacement ${err.toFixed(2)} mm`);
      assert.ok(r.ncc > 0.6);
    }
  });

interface Reference {
  shape: [number, number, number];
  points: [number, number, number][];
  values: number[][];
}

/** Same formula as reference_input() in models/brain-mindgrab/tfjs_meshnet.py. */
function referenceInput(shape: readonly [number, number, number]): Float32Array {
  const [D, H, W] = shape;
  const out = new Float32Array(D * H * W);
  let o = 0;
  for (let d = 0; d < D; d++)
    for (let h = 0; h < H; h++)
      for (let w = 0; w < W; w++, o++)
        out[o] = 0.5 + 0.25 * Math.sin(0.37 * d + 0.11 * h) + 0.25 * Math.cos(0.23 * w - 0.19 * d + 0.07 * h);
  return out;
}

const registry = openModelRegistry({
  roots: [join(REPO_ROOT, 'models')],
  only: ['brain-mindgrab', 'brain-anatomy18'],
  strict: true,
});

async function brainModel(id: string): Promise<WholeVolumeModel> {
  const r = await registry;
  return { manifest: r.get(id), artifact: r.artifact(id, 'any') };
}

for (const id of ['brain-mindgrab', 'brain-anatomy18'])
  test(`${id}: onnxruntime-node matches the NumPy tfjs forward pass`, async () => {
    const model = await brainModel(id);
    const ref = JSON.parse(
      await readFile(join(REPO_ROOT, 'models', id, 'reference.json'), 'utf8'),
    ) as Reference;
    const session = await engine.open(model.artifact);
    const [D, H, W] = ref.shape;
    const out = await session.run({ data: referenceInput(ref.shape), dims: [1, 1, D, H, W] });
    const K = model.manifest.output.labels.length;
    assert.deepEqual(out.dims, [1, K, D, H, W]);
    let maxErr = 0;
    ref.points.forEach(([d, h, w], p) => {
      for (let c = 0; c < K; c++) {
        const got = out.data[c * D * H * W + (d * H + h) * W + w];
        maxErr = Math.max(maxErr, Math.abs(got - ref.values[p][c]) / (1 + Math.abs(ref.values[p][c])));
      }
    });
    assert.ok(maxErr < 2e-4, `max relative error ${maxErr}`);
  });

test('skull-stripped detection on real images', async () => {
  for (const pt of ['patient07', 'patient26']) {
    const r = detectSkullStripped(await load(openMs('cross_sectional', pt, 'FLAIR.nii.gz')));
    assert.equal(r.skullStripped, true, `${pt}: ${r.reason}`);
  }
  for (const f of ['study1_FLAIR.nii.gz', 'study1_T2W.nii.gz']) {
    const r = detectSkullStripped(await load(LONG('patient03', f)));
    assert.equal(r.skullStripped, false, `${f}: ${r.reason}`);
  }
});

test('an already skull-stripped FLAIR keeps its non-zero region without running the model', async () => {
  const flair = await load(openMs('cross_sectional', 'patient07', 'FLAIR.nii.gz'));
  const r = await extractBrain(flair, engine, await brainModel('brain-mindgrab'));
  assert.equal(r.method, 'nonzero-region');
  assert.ok(
    dice(
      r.mask,
      binary(
        createVolume(
          flair.dims,
          flair.affine,
          Float32Array.from(flair.data, (v) => (v !== 0 ? 1 : 0)),
        ),
      ),
    ) > 0.99,
  );
});

interface BrainCase {
  readonly name: string;
  image(): Promise<Volume>;
  truth(): Promise<Mask>;
}

const BRAIN_CASES: BrainCase[] = [
  ...['patient01', 'patient03'].flatMap((pt) =>
    ['study1', 'study2'].map((s) => ({
      name: `${pt} ${s} raw 2-D FLAIR`,
      image: async () => (await exam(pt, s)).flair,
      truth: async () => (await exam(pt, s)).brain,
    })),
  ),
  ...['patient07', 'patient26'].map((pt) => ({
    name: `${pt} skull-stripped FLAIR`,
    image: () => load(openMs('cross_sectional', pt, 'FLAIR.nii.gz')),
    truth: async () => {
      const f = await load(openMs('cross_sectional', pt, 'FLAIR.nii.gz'));
      return createVolume(
        f.dims,
        f.affine,
        Uint8Array.from(f.data, (v) => (v !== 0 ? 1 : 0)),
      );
    },
  })),
];

test('brain extraction (mindgrab, fast 2 mm) on a raw 2-D FLAIR agrees with the dataset brain mask', async () => {
  const model = await brainModel('brain-mindgrab');
  const c = BRAIN_CASES[0];
  const image = await c.image();
  const r = await extractBrain(image, engine, model, { spacing: 2 });
  const d = dice(r.mask, await c.truth());
  console.log(
    `  ${c.name} @2 mm: Dice ${d.toFixed(3)}, ${r.volumeMl.toFixed(0)} mL (truth ${maskVolumeMl(await c.truth()).toFixed(0)} mL), ` +
      `crop ${r.crop?.size.join('×')}, inference ${(r.timings.inferenceMs / 1000).toFixed(1)} s, total ${((r.timings.preprocessMs + r.timings.inferenceMs + r.timings.postprocessMs) / 1000).toFixed(1)} s`,
  );
  assert.equal(r.method, 'model');
  assert.equal(r.skullStripped.skullStripped, false);
  assert.ok(d > 0.85, `Dice ${d.toFixed(3)}`);
  assert.deepEqual(r.mask.dims, image.dims, 'the mask overlays the FLAIR grid');
  assert.deepEqual(r.mask.affine, image.affine);
});

if (FULL)
  test('full evaluation: brain extraction at 1, 1.5 and 2 mm on every case; parcellation volumes', async () => {
    const model = await brainModel('brain-mindgrab');
    for (const c of BRAIN_CASES)
      for (const spacing of [1, 1.5, 2]) {
        const r = await extractBrain(await c.image(), engine, model, { spacing, whenSkullStripped: 'run' });
        const truth = await c.truth();
        console.log(
          `  | ${c.name} | ${spacing} | ${dice(r.mask, truth).toFixed(3)} | ${r.volumeMl.toFixed(0)} | ${maskVolumeMl(truth).toFixed(0)} | ` +
            `${r.crop?.size.join('×')} | ${(r.timings.inferenceMs / 1000).toFixed(1)} | ${((r.timings.preprocessMs + r.timings.postprocessMs) / 1000).toFixed(1)} |`,
        );
      }
    const anatomy = await brainModel('brain-anatomy18');
    const flair = await load(openMs('cross_sectional', 'patient07', 'FLAIR.nii.gz'));
    const t1 = await load(openMs('cross_sectional', 'patient07', 'T1.nii.gz'));
    const a = await parcellateBrain(flair, engine, anatomy);
    const b = await parcellateBrain(t1, engine, anatomy);
    for (let l = 1; l < a.labelNames.length; l++) {
      let inter = 0;
      let na = 0;
      let nb = 0;
      for (let x = 0; x < a.labels.data.length; x++) {
        const p = a.labels.data[x] === l;
        const q = b.labels.data[x] === l;
        if (p) na++;
        if (q) nb++;
        if (p && q) inter++;
      }
      console.log(
        `  | ${a.labelNames[l]} | ${(a.volumesMl[a.labelNames[l]] ?? 0).toFixed(1)} | ${(b.volumesMl[b.labelNames[l]] ?? 0).toFixed(1)} | ${((2 * inter) / (na + nb)).toFixed(3)} |`,
      );
    }
    console.log(
      `  anatomy18 inference: FLAIR ${(a.timings.inferenceMs / 1000).toFixed(1)} s, T1 ${(b.timings.inferenceMs / 1000).toFixed(1)} s`,
    );
  });
