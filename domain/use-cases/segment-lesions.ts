/**
 * Segments MS lesions on a FLAIR (with T2 / T1 when present) and returns everything on the FLAIR grid exactly:
 *
 *   1. channel-variant selection (FLAIR+T2+T1 → FLAIR+T2 when T1 is missing → FLAIR alone; the reason recorded);
 *   2. T2 / T1 into the FLAIR grid: through patient coordinates, refined by a rigid (mutual-information)
 *      registration, since series move between acquisitions (skipped when a series already shares the FLAIR grid);
 *   3. brain mask: the given one (resampled label-aware when on another grid); else the non-zero region when the
 *      FLAIR is skull-stripped; else brain extraction (domain/preprocess/brain-extraction.ts) with the registry's
 *      brain-extraction model (or an injected extractor);
 *   4. reorientation to the manifest orientation (a voxel permutation, no interpolation), then resampling to the
 *      model spacing when it differs (linear for images, label-aware for the brain mask);
 *   5. per-channel normalisation as the manifest says, brain-box crop, sliding window (domain/inference/);
 *   6. back to the FLAIR grid: probabilities linearly (through patient coordinates), then the threshold, kept
 *      inside the brain mask grown by `brainMarginMm`.
 */
import { DomainError } from '../errors.ts';
import type { ModelUsed } from '../model/analysis.ts';
import type { ChannelName, ModelManifest } from '../model/manifest.ts';
import {
  applyAxisMapping,
  axisMappingTo,
  createVolume,
  invertAxisMapping,
  sameGrid,
  toFloat32,
  voxelCount,
  type Mask,
  type Volume,
} from '../model/volume.ts';
import { affineMaxDiff, IDENTITY, spacingOf, type Mat4, type Vec3 } from '../model/geometry.ts';
import type { InferenceEngine } from '../ports/inference.port.ts';
import type { ModelRegistry } from '../ports/model-registry.port.ts';
import { predictOnModelGrid } from '../inference/predict.ts';
import { selectVariant } from '../inference/variant.ts';
import type { Shape3 } from '../inference/tiles.ts';
import {
  boxCorners,
  meanDisplacement,
  registerImages,
  type RegistrationResult,
} from '../preprocess/registration.ts';
import { gridOf, resampleLinear, resampleMask, respacedGrid, type Grid } from '../preprocess/resample.ts';
import { detectSkullStripped } from '../preprocess/mask-ops.ts';
import { dilate, fillHoles, largestComponent } from '../imaging/morphology.ts';
import { extractBrain, type BrainExtractionOptions } from '../preprocess/brain-extraction.ts';

export const LESION_TASK = 'ms-lesion-segmentation';
export const BRAIN_TASK = 'brain-extraction';

export interface SegmentLesionsDeps {
  readonly engine: InferenceEngine;
  readonly models: ModelRegistry;
  /** Replaces the default brain extraction (extractBrain with the registry's brain-extraction model). */
  readonly extractBrain?: (flair: Volume, signal?: AbortSignal) => Promise<Mask>;
}

export interface SegmentLesionsInput {
  readonly flair: Volume;
  readonly t2?: Volume;
  readonly t1?: Volume;
  readonly brainMask?: Mask;
}

export interface SegmentLesionsOptions {
  /** Model id (default: the registry's default lesion model). */
  readonly modelId?: string;
  /** Test-time mirroring (default true). */
  readonly mirror?: boolean;
  readonly progress?: (fraction: number, step: string) => void;
  readonly signal?: AbortSignal;
  /** Rigid refinement of T2/T1 after the patient-coordinate mapping (default true). */
  readonly refineRegistration?: boolean;
  /** Lesion voxels are kept inside the brain mask grown by this margin (default 2 mm; < 0 keeps everything). */
  readonly brainMarginMm?: number;
  /** Brain-extraction model (default: the registry's default for 'brain-extraction'). */
  readonly brainModelId?: string;
  /** Options of the brain extraction (e.g. { spacing: 2 } for its fast mode). */
  readonly brainExtraction?: BrainExtractionOptions;
}

export interface ChannelAlignment {
  readonly channel: 'T2' | 'T1';
  readonly method: 'same-grid' | 'patient-coordinates' | 'rigid';
  /** NCC of FLAIR vs the registered series (negative is normal across contrasts, e.g. FLAIR vs T2). */
  readonly ncc?: number;
  readonly metricValue?: number;
  /** Mean displacement (mm) of the FLAIR grid's corners by the refinement, relative to the scanner geometry. */
  readonly shiftMm?: number;
  /** FLAIR LPS → series LPS (ITK convention) found by the rigid refinement. */
  readonly transform?: Mat4;
}

export interface SegmentationOutput {
  /** Binary lesion mask on the FLAIR grid exactly. */
  readonly mask: Mask;
  /** Foreground (lesion) probability on the FLAIR grid. */
  readonly probabilities: Volume<Float32Array>;
  /** The brain mask used, on the FLAIR grid. */
  readonly brainMask: Mask;
  readonly model: ModelUsed;
  readonly warnings: string[];
  /** How each extra channel was brought onto the FLAIR grid. */
  readonly alignment: readonly ChannelAlignment[];
  /** Where the brain mask came from. */
  readonly brainMaskSource: 'given' | 'skull-stripped' | 'extracted';
  /** Where inference ran (e.g. 'onnxruntime-node/cpu'). */
  readonly backend: string;
}

/** A rigid refinement that moves the brain further than this from the scanner geometry is reported. */
const LARGE_SHIFT_MM = 10;

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true)
    throw new DomainError('INFERENCE.CANCELLED', 'segmentation was cancelled', { issueType: 'processing' });
}

function binary(mask: Mask): Mask {
  const d = new Uint8Array(mask.data.length);
  for (let x = 0; x < d.length; x++) d[x] = mask.data[x] !== 0 ? 1 : 0;
  return createVolume(mask.dims, mask.affine, d);
}

function validVolume(v: Volume, name: string): void {
  if (v.dims.some((d) => !Number.isInteger(d) || d < 1) || v.data.length !== voxelCount(v.dims))
    throw new DomainError('INFERENCE.INVALID_INPUT', `${name} is not a valid 3-D volume`, {
      issueType: 'invalid',
    });
  const sp = spacingOf(v.affine);
  if (sp.some((s) => !(s > 0 && Number.isFinite(s))))
    throw new DomainError('INFERENCE.INVALID_INPUT', `${name} has a degenerate affine`, {
      issueType: 'invalid',
    });
}

/** Brings `moving` onto the FLAIR grid; rigid refinement unless disabled. */
function align(
  flair: Volume,
  moving: Volume,
  channel: 'T2' | 'T1',
  refine: boolean,
  brain: Mask | undefined,
): { volume: Volume<Float32Array>; alignment: ChannelAlignment } {
  if (sameGrid(flair, moving))
    return { volume: toFloat32(moving), alignment: { channel, method: 'same-grid' } };
  if (!refine)
    return {
      volume: resampleLinear(moving, gridOf(flair)),
      alignment: { channel, method: 'patient-coordinates' },
    };
  let reg: RegistrationResult;
  try {
    reg = registerImages(flair, moving, {
      transform: 'rigid',
      metric: 'mi',
      initialization: 'geometry',
      ...(brain === undefined ? {} : { fixedMask: brain }),
    });
  } catch (e) {
    if (e instanceof DomainError && e.code === 'REGISTRATION.NO_OVERLAP')
      throw new DomainError(
        'INFERENCE.CHANNEL_MISALIGNED',
        `${channel} does not overlap the FLAIR in patient space`,
        {
          issueType: 'invalid',
          details: { channel },
          cause: e,
        },
      );
    throw e;
  }
  return {
    volume: resampleLinear(moving, gridOf(flair), { transform: reg.matrix }),
    alignment: {
      channel,
      method: 'rigid',
      ncc: reg.ncc,
      metricValue: reg.value,
      transform: reg.matrix,
      shiftMm: meanDisplacement(reg.matrix, IDENTITY, boxCorners(flair.affine, [0, 0, 0], flair.dims)),
    },
  };
}

function nonZeroBrain(flair: Volume): Mask {
  const d = new Uint8Array(flair.data.length);
  for (let x = 0; x < d.length; x++) d[x] = flair.data[x] !== 0 ? 1 : 0;
  return fillHoles(largestComponent(createVolume(flair.dims, flair.affine, d), 6), { slicewise: true });
}

function sameGridOf(a: Grid, b: Grid): boolean {
  return a.dims.every((d, i) => d === b.dims[i]) && affineMaxDiff(a.affine, b.affine) <= 1e-4;
}

function modelSpacingIjk(manifest: ModelManifest): Vec3 {
  // manifest spacing is D, H, W = k, j, i
  return [manifest.spacing[2], manifest.spacing[1], manifest.spacing[0]];
}

export async function segmentLesions(
  deps: SegmentLesionsDeps,
  input: SegmentLesionsInput,
  options: SegmentLesionsOptions = {},
): Promise<SegmentationOutput> {
  const progress = options.progress ?? (() => undefined);
  const signal = options.signal;
  const warnings: string[] = [];
  const { flair } = input;
  validVolume(flair, 'FLAIR');
  if (input.t2 !== undefined) validVolume(input.t2, 'T2');
  if (input.t1 !== undefined) validVolume(input.t1, 'T1');

  // 1. model and channel variant
  progress(0, 'select-model');
  const manifest =
    options.modelId === undefined ? deps.models.defaultFor(LESION_TASK) : deps.models.get(options.modelId);
  if (manifest.task !== LESION_TASK)
    throw new DomainError('MODEL.WRONG_TASK', `model ${manifest.id} is a ${manifest.task} model`, {
      issueType: 'business-rule',
      details: { modelId: manifest.id, task: manifest.task },
    });
  const available: ChannelName[] = ['FLAIR'];
  if (input.t2 !== undefined) available.push('T2');
  if (input.t1 !== undefined) available.push('T1');
  const { variant, reason } = selectVariant(manifest, available);
  const session = await deps.engine.open(deps.models.artifact(manifest.id, variant.id));
  checkAborted(signal);

  // 2. extra channels onto the FLAIR grid (only those the variant uses)
  let given: Mask | undefined;
  if (input.brainMask !== undefined) {
    validVolume(input.brainMask, 'brain mask');
    given = sameGrid(input.brainMask, flair)
      ? binary(input.brainMask)
      : resampleMask(input.brainMask, gridOf(flair));
    if (!sameGrid(input.brainMask, flair)) warnings.push('brain mask resampled onto the FLAIR grid');
  }
  const refine = options.refineRegistration !== false;
  const onFlair: Partial<Record<ChannelName, Volume>> = { FLAIR: flair };
  const alignment: ChannelAlignment[] = [];
  for (const ch of ['T2', 'T1'] as const) {
    const v = ch === 'T2' ? input.t2 : input.t1;
    if (v === undefined || !variant.channels.includes(ch)) continue;
    progress(0.05, `align-${ch.toLowerCase()}`);
    const r = align(flair, v, ch, refine, given);
    onFlair[ch] = r.volume;
    alignment.push(r.alignment);
    if (r.alignment.shiftMm !== undefined && r.alignment.shiftMm > LARGE_SHIFT_MM)
      warnings.push(
        `${ch} moved ${r.alignment.shiftMm.toFixed(1)} mm from the scanner geometry when registered to the FLAIR: check the alignment`,
      );
    checkAborted(signal);
  }

  // 3. brain mask on the FLAIR grid
  progress(0.2, 'brain-mask');
  let brainMask: Mask;
  let brainMaskSource: SegmentationOutput['brainMaskSource'];
  if (given !== undefined) {
    brainMask = given;
    brainMaskSource = 'given';
  } else {
    const stripped = detectSkullStripped(flair);
    if (stripped.skullStripped) {
      brainMask = nonZeroBrain(flair);
      brainMaskSource = 'skull-stripped';
    } else if (deps.extractBrain !== undefined) {
      brainMask = binary(await deps.extractBrain(flair, signal));
      if (!sameGrid(brainMask, flair)) brainMask = resampleMask(brainMask, gridOf(flair));
      brainMaskSource = 'extracted';
    } else {
      let brainModel: ModelManifest;
      try {
        brainModel =
          options.brainModelId === undefined
            ? deps.models.defaultFor(BRAIN_TASK)
            : deps.models.get(options.brainModelId);
      } catch (e) {
        throw new DomainError(
          'PREPROCESS.BRAIN_MASK_REQUIRED',
          `the FLAIR is not skull-stripped (${stripped.reason}) and no brain-extraction model is available: pass a brain mask`,
          { issueType: 'business-rule', cause: e },
        );
      }
      const variant0 = brainModel.variants[0];
      const extracted = await extractBrain(
        flair,
        deps.engine,
        { manifest: brainModel, artifact: deps.models.artifact(brainModel.id, variant0.id) },
        options.brainExtraction ?? {},
      );
      brainMask = extracted.mask;
      brainMaskSource = 'extracted';
      warnings.push(
        `brain mask by ${brainModel.id} ${brainModel.version} (${extracted.volumeMl.toFixed(0)} mL): the FLAIR is not skull-stripped`,
      );
    }
  }
  let brainVoxels = 0;
  for (const v of brainMask.data) if (v !== 0) brainVoxels++;
  if (brainVoxels === 0)
    throw new DomainError('INFERENCE.EMPTY_BRAIN_MASK', 'the brain mask is empty', { issueType: 'invalid' });
  checkAborted(signal);

  // 4. reorient to the manifest orientation, then the model spacing
  progress(0.25, 'resample');
  const mapping = axisMappingTo(flair.affine, manifest.orientation);
  const orientedBrain = applyAxisMapping(binary(brainMask), mapping);
  const orientedGrid = gridOf(orientedBrain);
  const target = respacedGrid(orientedGrid, modelSpacingIjk(manifest));
  const resample = !sameGridOf(target, orientedGrid);
  const channels = variant.channels.map((name) => {
    const v = onFlair[name === 'ANY' ? 'FLAIR' : name];
    if (v === undefined) throw new RangeError(`channel ${name} was not prepared`);
    const oriented = applyAxisMapping(toFloat32(v), mapping);
    return resample ? resampleLinear(oriented, target, { antialias: false }).data : oriented.data;
  });
  const modelBrain = resample ? resampleMask(orientedBrain, target) : orientedBrain;
  const shape: Shape3 = [target.dims[2], target.dims[1], target.dims[0]];
  checkAborted(signal);

  // 5. normalise, crop, sliding window
  progress(0.3, 'inference');
  const prediction = await predictOnModelGrid(
    session,
    manifest,
    variant,
    { channels, shape, brain: modelBrain.data },
    {
      mirror: options.mirror !== false,
      progress: (done, total) => {
        progress(0.3 + (0.6 * done) / total, 'inference');
      },
      ...(signal === undefined ? {} : { signal }),
    },
  );

  // 6. back to the FLAIR grid
  progress(0.9, 'back-to-flair');
  const modelProb = createVolume(target.dims, target.affine, prediction.foreground);
  const probabilities = resample
    ? resampleLinear(modelProb, gridOf(flair), { antialias: false })
    : applyAxisMapping(modelProb, invertAxisMapping(mapping));
  const keep = (options.brainMarginMm ?? 2) < 0 ? null : dilate(brainMask, options.brainMarginMm ?? 2).data;
  const mask = new Uint8Array(probabilities.data.length);
  for (let x = 0; x < mask.length; x++)
    mask[x] = probabilities.data[x] >= manifest.threshold && (keep === null || keep[x] !== 0) ? 1 : 0;
  progress(1, 'done');
  return {
    mask: createVolume(flair.dims, flair.affine, mask),
    probabilities: createVolume(flair.dims, flair.affine, probabilities.data),
    brainMask,
    model: {
      id: manifest.id,
      name: manifest.name,
      version: manifest.version,
      variant: variant.id,
      channels: [...variant.channels],
      sha256: variant.sha256,
      reason,
    },
    warnings,
    alignment,
    brainMaskSource,
    backend: session.backend,
  };
}
