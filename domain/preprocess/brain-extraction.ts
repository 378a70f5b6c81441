/**
 * Brain extraction and brain parcellation with whole-volume models (brainchop's MeshNets converted to ONNX:
 * models/brain-mindgrab, models/brain-anatomy18) run through the InferenceEngine port.
 *
 * Pipeline, as brainchop does it (its conventions are documented in the models' MODEL_CARD.md):
 * 1. Conform: resample the image (trilinear, patient coordinates) onto the model grid — the manifest's orientation
 *    ('AIL' for brainchop = FreeSurfer's LIA conformed volume after brainchop's transpose), spacing and shape
 *    (256³ at 1 mm), centred on the image's field of view. A coarser `spacing` (fast mode, e.g. 1.5 or 2 mm) keeps
 *    the same 256 mm field of view with fewer voxels.
 * 2. Intensities: the manifest's normalisation (min-max to [0, 1] after clipping at the 99.9th percentile of the
 *    non-zero voxels, as FastSurfer/niivue "conform" scale to uint8), then quantised to 1/255 steps (brainchop
 *    feeds uint8 data).
 * 3. Crop to the head: voxels above `cropThreshold` (mindgrab 0.5, anatomy 0.2) plus `cropPaddingMm`
 *    (mindgrab 20 mm, anatomy 0); the networks are fully convolutional (dynamic D, H, W). The crop matters: the
 *    mindgrab layers normalise over the spatial extent they see.
 * 4. One session.run → logits [1, K, d, h, w] → softmax (extraction: foreground probability; parcellation: argmax).
 * 5. Back to the image's own grid: probability by trilinear interpolation then the manifest threshold, restricted
 *    to the head (image foreground + 3 mm: no brain in the air around it), largest 26-connected component, holes
 *    filled (3-D and per slice); labels label-aware.
 *
 * Already skull-stripped inputs (detectSkullStripped) skip the model by default: their non-zero region, with holes
 * filled, is the brain.
 *
 * Codes: BRAIN.UNSUPPORTED_MODEL, BRAIN.EMPTY_INPUT, BRAIN.EMPTY_MASK, INFERENCE.OUTPUT_SHAPE,
 * INFERENCE.NON_FINITE_OUTPUT.
 */
import { DomainError } from '../errors.ts';
import type { Vec3 } from '../model/geometry.ts';
import type { ModelManifest, ModelVariant } from '../model/manifest.ts';
import { createVolume, crop, voxelCount, type Mask, type Volume } from '../model/volume.ts';
import type { InferenceEngine, ModelArtifactRef } from '../ports/inference.port.ts';
import { foregroundProbability } from '../inference/activation.ts';
import { normalizeChannel } from '../inference/normalize.ts';
import { otsuThreshold, sampledPercentiles } from './filters.ts';
import { detectSkullStripped, maskVolumeMl, thresholdMask, type SkullStrippedReport } from './mask-ops.ts';
import { dilate, fillHoles, largestComponent } from '../imaging/morphology.ts';
import {
  gridCentre,
  orientedGrid,
  resampleLabels,
  resampleLinear,
  resampleMask,
  type Grid,
} from './resample.ts';

/**
 * Model-grid spacings (mm) for extractBrain: 'accurate' is the model's own 1 mm (≈ 35 s on 2 CPU threads),
 * 'balanced' 1.5 mm (≈ 11 s, Dice −0.01 to −0.03 on open_ms), 'fast' 2 mm (≈ 5 s, Dice −0.04).
 */
export const BRAIN_EXTRACTION_SPACING = { accurate: 1, balanced: 1.5, fast: 2 } as const;

/** A registered model: its manifest and the ONNX artifact of the variant to run (ModelRegistry.artifact). */
export interface WholeVolumeModel {
  readonly manifest: ModelManifest;
  readonly artifact: ModelArtifactRef;
}

export interface ConformedRunOptions {
  /** Model-grid spacing in mm (default: the manifest's). Coarser = faster (fast mode). */
  readonly spacing?: number;
  /** Override the crop threshold (fraction of the normalised maximum). */
  readonly cropThreshold?: number;
  /** Override the crop padding (mm). */
  readonly cropPaddingMm?: number;
  /** Milliseconds clock for the timings (default performance.now). */
  readonly now?: () => number;
}

export interface BrainExtractionOptions extends ConformedRunOptions {
  /** What to do with an input that is already skull-stripped: 'skip' the model (default) or 'run' it anyway. */
  readonly whenSkullStripped?: 'skip' | 'run';
  /** Keep the mask inside the head (image foreground, holes filled, + 3 mm); default true. */
  readonly insideHead?: boolean;
}

export interface Timings {
  readonly preprocessMs: number;
  readonly inferenceMs: number;
  readonly postprocessMs: number;
}

export interface BrainExtractionResult {
  /** Brain mask on the input image's grid. */
  readonly mask: Mask;
  /** Foreground probability on the input grid (absent when the model was skipped). */
  readonly probability?: Volume<Float32Array>;
  readonly method: 'model' | 'nonzero-region';
  readonly skullStripped: SkullStrippedReport;
  readonly volumeMl: number;
  /** The model grid (patient space) and the crop on it (D, H, W), when the model ran. */
  readonly modelGrid?: Grid;
  readonly crop?: { readonly start: Vec3; readonly size: Vec3 };
  readonly spacing?: number;
  readonly backend?: string;
  readonly timings: Timings;
}

export interface ParcellationOptions extends ConformedRunOptions {
  /** Brain mask (any grid): the input is masked with it first (brainchop's "failsafe" mode for raw scans). */
  readonly brainMask?: Mask;
}

export interface ParcellationResult {
  /** Label map on the input grid: values index `labels` (0 = background / unknown). */
  readonly labels: Mask;
  readonly labelNames: readonly string[];
  /** Volume per label name (mL). */
  readonly volumesMl: Readonly<Record<string, number>>;
  readonly modelGrid: Grid;
  readonly crop: { readonly start: Vec3; readonly size: Vec3 };
  readonly spacing: number;
  readonly backend: string;
  readonly timings: Timings;
}

interface Preprocessing {
  readonly cropThreshold: number;
  readonly cropPaddingMm: number;
  readonly quantize8: boolean;
}

/** brainchop's settings per task, unless the manifest's training.preprocessing says otherwise. */
function preprocessingOf(manifest: ModelManifest, options: ConformedRunOptions): Preprocessing {
  const base: Preprocessing =
    manifest.task === 'brain-extraction'
      ? { cropThreshold: 0.5, cropPaddingMm: 20, quantize8: true }
      : { cropThreshold: 0.2, cropPaddingMm: 0, quantize8: true };
  const raw = manifest.training?.['preprocessing'];
  const fromManifest: { cropThreshold?: number; cropPaddingMm?: number; quantize8?: boolean } = {};
  if (typeof raw === 'object' && raw !== null) {
    const r = raw as Record<string, unknown>;
    if (typeof r['cropThreshold'] === 'number') fromManifest.cropThreshold = r['cropThreshold'];
    if (typeof r['cropPaddingMm'] === 'number') fromManifest.cropPaddingMm = r['cropPaddingMm'];
    if (typeof r['quantize8'] === 'boolean') fromManifest.quantize8 = r['quantize8'];
  }
  return {
    ...base,
    ...fromManifest,
    ...(options.cropThreshold === undefined ? {} : { cropThreshold: options.cropThreshold }),
    ...(options.cropPaddingMm === undefined ? {} : { cropPaddingMm: options.cropPaddingMm }),
  };
}

function singleChannelVariant(model: WholeVolumeModel): ModelVariant {
  const m = model.manifest;
  if (m.inference.mode !== 'whole-volume')
    throw new DomainError('BRAIN.UNSUPPORTED_MODEL', `${m.id} is not a whole-volume model`, {
      issueType: 'not-supported',
      details: { modelId: m.id },
    });
  const variant = m.variants.find((v) => model.artifact.key.endsWith(`/${v.id}`)) ?? m.variants[0];
  if (variant.channels.length !== 1)
    throw new DomainError(
      'BRAIN.UNSUPPORTED_MODEL',
      `${m.id}/${variant.id} takes ${variant.channels.length} channels, not 1`,
      {
        issueType: 'not-supported',
        details: { modelId: m.id, variant: variant.id },
      },
    );
  return variant;
}

/** The model grid for `image`: manifest orientation, spacing (or `spacing`), field of view, centred on the image. */
export function modelGridFor(image: Volume | Grid, manifest: ModelManifest, spacing?: number): Grid {
  if (manifest.inference.mode !== 'whole-volume')
    throw new DomainError('BRAIN.UNSUPPORTED_MODEL', `${manifest.id} is not a whole-volume model`, {
      issueType: 'not-supported',
    });
  const shape = manifest.inference.shape; // D, H, W
  const sp = manifest.spacing; // D, H, W
  const target: Vec3 = spacing === undefined ? [sp[2], sp[1], sp[0]] : [spacing, spacing, spacing];
  const dims: Vec3 = [
    Math.max(1, Math.round((shape[2] * sp[2]) / target[0])),
    Math.max(1, Math.round((shape[1] * sp[1]) / target[1])),
    Math.max(1, Math.round((shape[0] * sp[0]) / target[2])),
  ];
  return orientedGrid(manifest.orientation, target, dims, gridCentre(image));
}

interface ConformedRun {
  readonly grid: Grid;
  readonly cropStart: Vec3; // i, j, k on the model grid
  readonly cropSize: Vec3;
  readonly logits: Float32Array;
  readonly channels: number;
  readonly backend: string;
  readonly preprocessMs: number;
  readonly inferenceMs: number;
}

async function runConformed(
  image: Volume,
  engine: InferenceEngine,
  model: WholeVolumeModel,
  options: ConformedRunOptions,
): Promise<ConformedRun> {
  const now = options.now ?? (() => performance.now());
  const t0 = now();
  const m = model.manifest;
  const variant = singleChannelVariant(model);
  const channel = variant.channels[0];
  const norm = m.normalization[channel];
  if (norm === undefined)
    throw new DomainError('MODEL.MANIFEST_INVALID', `manifest ${m.id} has no normalisation for ${channel}`, {
      issueType: 'invalid',
    });
  const prep = preprocessingOf(m, options);
  const grid = modelGridFor(image, m, options.spacing);
  const conformed = resampleLinear(image, grid);
  let any = false;
  for (const v of conformed.data)
    if (v !== 0) {
      any = true;
      break;
    }
  if (!any)
    throw new DomainError('BRAIN.EMPTY_INPUT', 'the image is empty (all zero) on the model grid', {
      issueType: 'invalid',
    });
  const x = normalizeChannel(conformed.data, norm, undefined, channel);
  if (prep.quantize8) for (let v = 0; v < x.length; v++) x[v] = Math.round(x[v] * 255) / 255;
  // crop to the voxels above the threshold (of the maximum) plus padding, as brainchop
  let max = -Infinity;
  for (const v of x) if (v > max) max = v;
  const thr = prep.cropThreshold * max;
  const [nx, ny, nz] = grid.dims;
  const lo = [nx, ny, nz];
  const hi = [-1, -1, -1];
  let p = 0;
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++)
      for (let i = 0; i < nx; i++, p++)
        if (x[p] > thr) {
          if (i < lo[0]) lo[0] = i;
          if (i > hi[0]) hi[0] = i;
          if (j < lo[1]) lo[1] = j;
          if (j > hi[1]) hi[1] = j;
          if (k < lo[2]) lo[2] = k;
          if (k > hi[2]) hi[2] = k;
        }
  if (hi[0] < 0)
    throw new DomainError('BRAIN.EMPTY_INPUT', 'no voxel is above the crop threshold', {
      issueType: 'invalid',
    });
  const spacing = options.spacing ?? m.spacing[2];
  const pad = Math.round(prep.cropPaddingMm / spacing);
  const start: Vec3 = [Math.max(0, lo[0] - pad), Math.max(0, lo[1] - pad), Math.max(0, lo[2] - pad)];
  const end: Vec3 = [
    Math.min(nx, hi[0] + 1 + pad),
    Math.min(ny, hi[1] + 1 + pad),
    Math.min(nz, hi[2] + 1 + pad),
  ];
  const cropped = crop(createVolume(grid.dims, grid.affine, x), start, end);
  const size = cropped.dims;
  const t1 = now();
  // open without the registry's typical input shape: a warm-up at the full conformed shape would cost as much as
  // a real run (whole-volume models see a different crop every time anyway)
  const { inputShape: _unused, ...ref } = model.artifact;
  const session = await engine.open(ref);
  const out = await session.run({ data: cropped.data, dims: [1, 1, size[2], size[1], size[0]] });
  const t2 = now();
  const local = voxelCount(size);
  const k = out.dims.at(1) ?? 0;
  if (
    out.dims.length !== 5 ||
    out.dims[0] !== 1 ||
    out.dims[2] !== size[2] ||
    out.dims[3] !== size[1] ||
    out.dims[4] !== size[0] ||
    k !== m.output.labels.length ||
    out.data.length !== k * local
  )
    throw new DomainError('INFERENCE.OUTPUT_SHAPE', `${m.id} returned [${out.dims.join(', ')}]`, {
      issueType: 'processing',
      details: { dims: [...out.dims], expected: [1, m.output.labels.length, size[2], size[1], size[0]] },
    });
  for (const v of out.data)
    if (!Number.isFinite(v))
      throw new DomainError('INFERENCE.NON_FINITE_OUTPUT', `${m.id} produced non-finite values`, {
        issueType: 'processing',
      });
  return {
    grid,
    cropStart: start,
    cropSize: size,
    logits: out.data,
    channels: k,
    backend: session.backend,
    preprocessMs: t1 - t0,
    inferenceMs: t2 - t1,
  };
}

/** Copies a crop-sized buffer into a model-grid buffer (zeros elsewhere). */
function uncrop<T extends Float32Array | Uint8Array>(local: T, run: ConformedRun, full: T): T {
  const [nx, ny] = run.grid.dims;
  const [sx, sy, sz] = run.cropSize;
  let o = 0;
  for (let k = 0; k < sz; k++)
    for (let j = 0; j < sy; j++) {
      const dst = run.cropStart[0] + nx * (run.cropStart[1] + j + ny * (run.cropStart[2] + k));
      full.set(local.subarray(o, o + sx), dst);
      o += sx;
    }
  return full;
}

/**
 * The head: voxels above a fraction of Otsu's threshold (between the robust low and high intensities), largest
 * component, holes filled (3-D and per slice), dilated by 3 mm.
 */
export function headMask(image: Volume): Mask {
  const step = Math.max(1, Math.floor(image.data.length / 300_000));
  const [lo, hi] = sampledPercentiles(image.data, [1, 99.5], step);
  const t = 0.3 * otsuThreshold(image.data, lo, hi, 128, step);
  const m = new Uint8Array(image.data.length);
  for (let x = 0; x < m.length; x++) m[x] = image.data[x] > t ? 1 : 0;
  const head = fillHoles(largestComponent(createVolume(image.dims, image.affine, m), 26), {
    slicewise: true,
  });
  // dilation can close new cavities: fill again so that the head has no holes
  return fillHoles(dilate(head, 3), { slicewise: true });
}

/** The non-zero region of a skull-stripped image, holes filled. */
function nonzeroRegion(image: Volume): Mask {
  const m = new Uint8Array(image.data.length);
  for (let x = 0; x < m.length; x++) m[x] = image.data[x] !== 0 ? 1 : 0;
  return fillHoles(largestComponent(createVolume(image.dims, image.affine, m), 6), { slicewise: true });
}

/** Brain mask of `image` (any contrast) on its own grid. */
export async function extractBrain(
  image: Volume,
  engine: InferenceEngine,
  model: WholeVolumeModel,
  options: BrainExtractionOptions = {},
): Promise<BrainExtractionResult> {
  const now = options.now ?? (() => performance.now());
  const t0 = now();
  const stripped = detectSkullStripped(image);
  if (stripped.skullStripped && (options.whenSkullStripped ?? 'skip') === 'skip') {
    const mask = nonzeroRegion(image);
    const ms = now() - t0;
    return {
      mask,
      method: 'nonzero-region',
      skullStripped: stripped,
      volumeMl: maskVolumeMl(mask),
      timings: { preprocessMs: ms, inferenceMs: 0, postprocessMs: 0 },
    };
  }
  const detectMs = now() - t0;
  const run = await runConformed(image, engine, model, options);
  const t2 = now();
  const m = model.manifest;
  const local = voxelCount(run.cropSize);
  const pLocal = foregroundProbability(run.logits, run.channels, local, m.foregroundLabel, m.output);
  const pGrid = uncrop(pLocal, run, new Float32Array(voxelCount(run.grid.dims)));
  const probability = resampleLinear(createVolume(run.grid.dims, run.grid.affine, pGrid), image, {
    antialias: false,
  });
  let mask = thresholdMask(probability, m.threshold - 1e-7);
  if (options.insideHead !== false) {
    // the brain lies inside the head: drop anything the network puts in the background around it
    const head = headMask(image);
    for (let x = 0; x < mask.data.length; x++) if (head.data[x] === 0) mask.data[x] = 0;
  }
  mask = fillHoles(largestComponent(mask, 26), { slicewise: true });
  const volumeMl = maskVolumeMl(mask);
  if (volumeMl === 0)
    throw new DomainError('BRAIN.EMPTY_MASK', 'brain extraction found no brain', {
      issueType: 'processing',
      details: { modelId: m.id },
    });
  const t3 = now();
  return {
    mask,
    probability,
    method: 'model',
    skullStripped: stripped,
    volumeMl,
    modelGrid: run.grid,
    crop: { start: run.cropStart, size: run.cropSize },
    spacing: options.spacing ?? m.spacing[2],
    backend: run.backend,
    timings: {
      preprocessMs: detectMs + run.preprocessMs,
      inferenceMs: run.inferenceMs,
      postprocessMs: t3 - t2,
    },
  };
}

/** Anatomical labels (e.g. the 18 FreeSurfer-style classes of brain-anatomy18) on the image's own grid. */
export async function parcellateBrain(
  image: Volume,
  engine: InferenceEngine,
  model: WholeVolumeModel,
  options: ParcellationOptions = {},
): Promise<ParcellationResult> {
  const now = options.now ?? (() => performance.now());
  const t0 = now();
  let input = image;
  let brain: Mask | undefined;
  if (options.brainMask !== undefined) {
    brain = resampleMask(options.brainMask, image);
    const d = new Float32Array(image.data.length);
    for (let x = 0; x < d.length; x++) d[x] = brain.data[x] !== 0 ? image.data[x] : 0;
    input = createVolume(image.dims, image.affine, d);
  }
  const maskMs = now() - t0;
  const run = await runConformed(input, engine, model, options);
  const t2 = now();
  const local = voxelCount(run.cropSize);
  const labLocal = new Uint8Array(local);
  const K = run.channels;
  for (let v = 0; v < local; v++) {
    let best = 0;
    let bestV = run.logits[v];
    for (let c = 1; c < K; c++) {
      const l = run.logits[c * local + v];
      if (l > bestV) {
        bestV = l;
        best = c;
      }
    }
    labLocal[v] = best;
  }
  const labGrid = uncrop(labLocal, run, new Uint8Array(voxelCount(run.grid.dims)));
  const labels = resampleLabels(createVolume(run.grid.dims, run.grid.affine, labGrid), image);
  if (brain !== undefined)
    for (let x = 0; x < labels.data.length; x++) if (brain.data[x] === 0) labels.data[x] = 0;
  const names = model.manifest.output.labels;
  const counts = new Float64Array(names.length);
  for (const l of labels.data) counts[l]++;
  const s = image.affine;
  const voxelMl =
    (Math.hypot(s[0], s[4], s[8]) * Math.hypot(s[1], s[5], s[9]) * Math.hypot(s[2], s[6], s[10])) / 1000;
  const volumesMl: Record<string, number> = {};
  names.forEach((n, l) => {
    if (l > 0) volumesMl[n] = counts[l] * voxelMl;
  });
  const t3 = now();
  return {
    labels,
    labelNames: names,
    volumesMl,
    modelGrid: run.grid,
    crop: { start: run.cropStart, size: run.cropSize },
    spacing: options.spacing ?? model.manifest.spacing[2],
    backend: run.backend,
    timings: {
      preprocessMs: maskMs + run.preprocessMs,
      inferenceMs: run.inferenceMs,
      postprocessMs: t3 - t2,
    },
  };
}
