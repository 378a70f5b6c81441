/**
 * Inference on the model grid (already reoriented to the manifest orientation and resampled to its spacing):
 * normalise each channel as the manifest says → crop to the brain's bounding box → sliding window (or one
 * whole-volume pass) → softmax / sigmoid → foreground probability on the whole grid (0 outside the crop).
 */
import { DomainError } from '../errors.ts';
import type { ModelManifest, ModelVariant } from '../model/manifest.ts';
import { boundingBox, type VoxelArray } from '../model/volume.ts';
import { foregroundProbability } from './activation.ts';
import { normalizeChannel } from './normalize.ts';
import { cropArray, slidingWindow, type ChannelArray, type PatchRunner } from './sliding-window.ts';
import type { Shape3 } from './tiles.ts';

export interface ModelGridInput {
  /** One buffer per variant channel, in the variant's order, C-order [D, H, W] (a Volume buffer). */
  readonly channels: readonly VoxelArray[];
  readonly shape: Shape3;
  /** Brain mask on the same grid (non-zero inside): normalisation statistics and the crop. */
  readonly brain?: Uint8Array;
}

export interface ModelGridOptions {
  /** Test-time mirroring over the manifest's mirror axes (default true). */
  readonly mirror?: boolean;
  /** Voxels added around the brain's bounding box before cropping (default 0, as nnU-Net). */
  readonly cropMargin?: number;
  readonly progress?: (done: number, total: number) => void;
  readonly signal?: AbortSignal;
}

export interface ModelGridPrediction {
  /** Foreground probability, [D, H, W]. */
  readonly foreground: Float32Array;
  /** The aggregated raw network output over the crop, [K, d, h, w]. */
  readonly output: ChannelArray;
  readonly cropStart: Shape3;
  readonly cropSize: Shape3;
}

/** Bounding box [min, max) of the non-zero voxels of a [D, H, W] mask, grown by `margin`; null when empty. */
export function maskBounds(
  mask: Uint8Array,
  shape: Shape3,
  margin = 0,
): { start: Shape3; size: Shape3 } | null {
  const [D, H, W] = shape;
  // w is fastest in memory: the volume axes (i, j, k) are (w, h, d)
  const b = boundingBox({ dims: [W, H, D], data: mask });
  if (b === null) return null;
  const lo = [b.min[2], b.min[1], b.min[0]];
  const hi = [b.max[2], b.max[1], b.max[0]];
  const start = [0, 1, 2].map((a) => Math.max(0, lo[a] - margin));
  const end = [0, 1, 2].map((a) => Math.min(shape[a], hi[a] + margin));
  return {
    start: [start[0], start[1], start[2]],
    size: [end[0] - start[0], end[1] - start[1], end[2] - start[2]],
  };
}

/** Normalises the variant's channels into one [C, D, H, W] array. */
export function normalizeInputs(
  manifest: ModelManifest,
  variant: ModelVariant,
  input: ModelGridInput,
): ChannelArray {
  const n = input.shape[0] * input.shape[1] * input.shape[2];
  if (input.channels.length !== variant.channels.length)
    throw new DomainError(
      'MODEL.INPUT_MISMATCH',
      `variant ${variant.id} takes ${variant.channels.length} channels, ${input.channels.length} given`,
      { issueType: 'invalid', details: { variant: variant.id } },
    );
  const data = new Float32Array(variant.channels.length * n);
  variant.channels.forEach((name, c) => {
    const norm = manifest.normalization[name];
    if (norm === undefined)
      throw new DomainError(
        'MODEL.MANIFEST_INVALID',
        `manifest ${manifest.id} has no normalisation for ${name}`,
        {
          issueType: 'invalid',
          details: { modelId: manifest.id, channel: name },
        },
      );
    const ch = input.channels[c];
    if (ch.length !== n) throw new RangeError(`channel ${name} has ${ch.length} voxels, the grid ${n}`);
    data.set(normalizeChannel(ch, norm, input.brain, name), c * n);
  });
  return { data, channels: variant.channels.length, shape: input.shape };
}

/** out[t] = a[t + offset] per channel over the `target` shape (0 where that falls outside `a`). */
export function shiftInto(a: ChannelArray, target: Shape3, offset: Shape3): ChannelArray {
  const n = target[0] * target[1] * target[2];
  const out = new Float32Array(a.channels * n);
  const [D, H, W] = a.shape;
  const src = D * H * W;
  const w0 = Math.max(0, -offset[2]);
  const w1 = Math.min(target[2], W - offset[2]);
  if (w1 > w0)
    for (let c = 0; c < a.channels; c++)
      for (let d = 0; d < target[0]; d++) {
        const sd = d + offset[0];
        if (sd < 0 || sd >= D) continue;
        for (let h = 0; h < target[1]; h++) {
          const sh = h + offset[1];
          if (sh < 0 || sh >= H) continue;
          const s = c * src + (sd * H + sh) * W + offset[2];
          out.set(a.data.subarray(s + w0, s + w1), c * n + (d * target[1] + h) * target[2] + w0);
        }
      }
  return { data: out, channels: a.channels, shape: target };
}

/** The offset that centres `target` in `shape` (centre crop and/or zero padding, floor((S − T) / 2)). */
export function centeringOffset(shape: Shape3, target: Shape3): Shape3 {
  return [
    Math.floor((shape[0] - target[0]) / 2),
    Math.floor((shape[1] - target[1]) / 2),
    Math.floor((shape[2] - target[2]) / 2),
  ];
}

export async function predictOnModelGrid(
  net: PatchRunner,
  manifest: ModelManifest,
  variant: ModelVariant,
  input: ModelGridInput,
  options: ModelGridOptions = {},
): Promise<ModelGridPrediction> {
  const shape = input.shape;
  const n = shape[0] * shape[1] * shape[2];
  if (input.brain !== undefined && input.brain.length !== n)
    throw new RangeError(`brain mask has ${input.brain.length} voxels, the grid ${n}`);
  const normalized = normalizeInputs(manifest, variant, input);
  const inf = manifest.inference;
  let output: ChannelArray;
  let cropStart: Shape3 = [0, 0, 0];
  let cropSize: Shape3 = shape;
  if (inf.mode === 'sliding-window') {
    const bounds = input.brain === undefined ? null : maskBounds(input.brain, shape, options.cropMargin ?? 0);
    if (input.brain !== undefined && bounds === null)
      throw new DomainError('INFERENCE.EMPTY_BRAIN_MASK', 'the brain mask is empty on the model grid', {
        issueType: 'invalid',
      });
    if (bounds !== null) ({ start: cropStart, size: cropSize } = bounds);
    const cropped = bounds === null ? normalized : cropArray(normalized, cropStart, cropSize);
    output = await slidingWindow(
      net,
      cropped,
      {
        patchSize: inf.patchSize,
        tileStep: inf.tileStep,
        gaussian: inf.gaussian,
        mirrorAxes: options.mirror === false ? [] : inf.mirrorAxes,
        batchSize: inf.batchSize ?? 1,
      },
      {
        ...(options.progress ? { progress: options.progress } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      },
    );
  } else {
    const offset = centeringOffset(shape, inf.shape);
    const array = shiftInto(normalized, inf.shape, offset);
    const out = await net.run({ data: array.data, dims: [1, array.channels, ...inf.shape] });
    const local = inf.shape[0] * inf.shape[1] * inf.shape[2];
    const k = out.dims.at(1) ?? 0;
    if (
      out.dims.length !== 5 ||
      out.dims[0] !== 1 ||
      out.dims[2] !== inf.shape[0] ||
      out.dims[3] !== inf.shape[1] ||
      out.dims[4] !== inf.shape[2] ||
      out.data.length !== k * local
    )
      throw new DomainError('INFERENCE.OUTPUT_SHAPE', `network returned [${out.dims.join(', ')}]`, {
        issueType: 'processing',
        details: { dims: [...out.dims] },
      });
    for (const v of out.data)
      if (!Number.isFinite(v))
        throw new DomainError('INFERENCE.NON_FINITE_OUTPUT', 'the network produced non-finite values', {
          issueType: 'processing',
        });
    options.progress?.(1, 1);
    output = { data: out.data, channels: k, shape: inf.shape };
    cropStart = offset;
    cropSize = inf.shape;
  }
  const localVoxels = cropSize[0] * cropSize[1] * cropSize[2];
  const fgLocal = foregroundProbability(
    output.data,
    output.channels,
    localVoxels,
    manifest.foregroundLabel,
    manifest.output,
  );
  // local voxel t sits at grid voxel t + cropStart; the rest of the grid is background (probability 0)
  const foreground =
    localVoxels === n && cropStart.every((x) => x === 0)
      ? fgLocal
      : shiftInto({ data: fgLocal, channels: 1, shape: cropSize }, shape, [
          -cropStart[0],
          -cropStart[1],
          -cropStart[2],
        ]).data;
  return { foreground, output, cropStart, cropSize };
}
