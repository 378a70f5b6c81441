/**
 * nnU-Net v2-style sliding-window inference over a multi-channel array on the model grid: pad to the patch
 * size, tiles evenly spread (tiles.ts), each tile (and its mirror images along the allowed axes) through the
 * network in batches, outputs weighted by the cached importance map, added up, then divided by the summed
 * weights. The network is anything with `run(Tensor) → Tensor` (an InferenceSession).
 */
import { DomainError } from '../errors.ts';
import type { Tensor } from '../ports/inference.port.ts';
import { importanceMap, mirrorCombinations, tileGrid, type Shape3 } from './tiles.ts';

/** A C-order [C, D, H, W] float32 array, W fastest. */
export interface ChannelArray {
  readonly data: Float32Array;
  readonly channels: number;
  readonly shape: Shape3;
}

export interface PatchRunner {
  run(input: Tensor): Promise<Tensor>;
}

export interface SlidingWindowConfig {
  readonly patchSize: Shape3;
  readonly tileStep: number;
  readonly gaussian: boolean;
  /** Spatial axes (0 = D, 1 = H, 2 = W) to mirror over; empty = no test-time mirroring. */
  readonly mirrorAxes: readonly number[];
  /** Network inputs per run call (tiles and their mirror images share batches). Default 1. */
  readonly batchSize?: number;
}

export interface SlidingWindowOptions {
  /** Called after every network call with (network inputs done, total). */
  readonly progress?: (done: number, total: number) => void;
  /** Aborts between batches (INFERENCE.CANCELLED). */
  readonly signal?: AbortSignal;
}

function voxels(s: Shape3): number {
  return s[0] * s[1] * s[2];
}

/** Pads [C, D, H, W] with `value` to at least `min` per axis, centred (floor(diff / 2) before). */
export function padToAtLeast(
  a: ChannelArray,
  min: Shape3,
  value = 0,
): { array: ChannelArray; before: Shape3 } {
  const before: Shape3 = [0, 1, 2].map((x) =>
    Math.floor(Math.max(0, min[x] - a.shape[x]) / 2),
  ) as unknown as Shape3;
  const shape: Shape3 = [0, 1, 2].map((x) => Math.max(min[x], a.shape[x])) as unknown as Shape3;
  if (shape[0] === a.shape[0] && shape[1] === a.shape[1] && shape[2] === a.shape[2])
    return { array: a, before };
  const n = voxels(shape);
  const out = new Float32Array(a.channels * n);
  if (value !== 0) out.fill(value);
  const [D, H, W] = a.shape;
  for (let c = 0; c < a.channels; c++)
    for (let d = 0; d < D; d++)
      for (let h = 0; h < H; h++) {
        const src = ((c * D + d) * H + h) * W;
        const dst = c * n + ((d + before[0]) * shape[1] + h + before[1]) * shape[2] + before[2];
        out.set(a.data.subarray(src, src + W), dst);
      }
  return { array: { data: out, channels: a.channels, shape }, before };
}

/** The sub-block [start, start + size) of every channel. */
export function cropArray(a: ChannelArray, start: Shape3, size: Shape3): ChannelArray {
  const n = voxels(size);
  const out = new Float32Array(a.channels * n);
  const [D, H, W] = a.shape;
  for (let c = 0; c < a.channels; c++)
    for (let d = 0; d < size[0]; d++)
      for (let h = 0; h < size[1]; h++) {
        const src = ((c * D + d + start[0]) * H + h + start[1]) * W + start[2];
        out.set(a.data.subarray(src, src + size[2]), (c * size[0] + d) * size[1] * size[2] + h * size[2]);
      }
  return { data: out, channels: a.channels, shape: size };
}

/** Copies tile `start` of `src` (flipped along `flip` axes) into batch slot `dst` at offset `off`. */
function extractTile(
  src: ChannelArray,
  start: Shape3,
  patch: Shape3,
  flip: readonly boolean[],
  dst: Float32Array,
  off: number,
): void {
  const [, H, W] = src.shape;
  const [pd, ph, pw] = patch;
  const vox = voxels(src.shape);
  let o = off;
  for (let c = 0; c < src.channels; c++)
    for (let d = 0; d < pd; d++) {
      const sd = start[0] + (flip[0] ? pd - 1 - d : d);
      for (let h = 0; h < ph; h++) {
        const sh = start[1] + (flip[1] ? ph - 1 - h : h);
        const row = c * vox + (sd * H + sh) * W + start[2];
        if (flip[2]) for (let w = pw - 1; w >= 0; w--) dst[o++] = src.data[row + w];
        else {
          dst.set(src.data.subarray(row, row + pw), o);
          o += pw;
        }
      }
    }
}

interface Job {
  readonly start: Shape3;
  readonly flip: readonly boolean[];
}

/**
 * Runs the sliding window and returns the aggregated network output [K, D, H, W] on the input's grid (K from
 * the network). Throws INFERENCE.NON_FINITE_INPUT / INFERENCE.NON_FINITE_OUTPUT / INFERENCE.OUTPUT_SHAPE.
 */
export async function slidingWindow(
  net: PatchRunner,
  image: ChannelArray,
  config: SlidingWindowConfig,
  options: SlidingWindowOptions = {},
): Promise<ChannelArray> {
  const patch = config.patchSize;
  if (image.data.length !== image.channels * voxels(image.shape))
    throw new RangeError(
      `array of ${image.data.length} values does not match ${image.channels}×${image.shape.join('×')}`,
    );
  for (let x = 0; x < image.data.length; x++)
    if (!Number.isFinite(image.data[x]))
      throw new DomainError('INFERENCE.NON_FINITE_INPUT', 'network input has non-finite values', {
        issueType: 'invalid',
        details: { index: x },
      });
  for (const a of config.mirrorAxes)
    if (!Number.isInteger(a) || a < 0 || a > 2) throw new RangeError(`mirror axis ${a} is not 0, 1 or 2`);
  const { array: padded, before } = padToAtLeast(image, patch);
  const shape = padded.shape;
  const tiles = tileGrid(shape, patch, config.tileStep);
  const combos = mirrorCombinations(config.mirrorAxes);
  const flips: boolean[][] = [
    [false, false, false],
    ...combos.map((c) => [0, 1, 2].map((a) => c.includes(a))),
  ];
  const jobs: Job[] = [];
  for (const start of tiles) for (const flip of flips) jobs.push({ start, flip });
  const weight = 1 / flips.length;
  const g = importanceMap(patch, config.gaussian);
  const pv = voxels(patch);
  const n = voxels(shape);
  const batchSize = Math.max(1, Math.trunc(config.batchSize ?? 1));
  const wsum = new Float32Array(n);
  for (const start of tiles) addWeights(wsum, shape, start, patch, g);

  let acc: Float32Array | null = null;
  let k = 0;
  for (let b0 = 0; b0 < jobs.length; b0 += batchSize) {
    if (options.signal?.aborted === true)
      throw new DomainError('INFERENCE.CANCELLED', 'inference was cancelled', { issueType: 'processing' });
    const batch = jobs.slice(b0, b0 + batchSize);
    const input = new Float32Array(batch.length * image.channels * pv);
    batch.forEach((job, i) => {
      extractTile(padded, job.start, patch, job.flip, input, i * image.channels * pv);
    });
    const out = await net.run({
      data: input,
      dims: [batch.length, image.channels, patch[0], patch[1], patch[2]],
    });
    const dims = out.dims;
    if (
      dims.length !== 5 ||
      dims[0] !== batch.length ||
      dims[2] !== patch[0] ||
      dims[3] !== patch[1] ||
      dims[4] !== patch[2] ||
      out.data.length !== batch.length * dims[1] * pv ||
      (acc !== null && dims[1] !== k)
    )
      throw new DomainError(
        'INFERENCE.OUTPUT_SHAPE',
        `network returned [${dims.join(', ')}] for a [${batch.length}, ${image.channels}, ${patch.join(', ')}] input`,
        { issueType: 'processing', details: { dims: [...dims] } },
      );
    for (let x = 0; x < out.data.length; x++)
      if (!Number.isFinite(out.data[x]))
        throw new DomainError('INFERENCE.NON_FINITE_OUTPUT', 'the network produced non-finite values', {
          issueType: 'processing',
          details: { index: x },
        });
    if (acc === null) {
      k = dims[1];
      acc = new Float32Array(k * n);
    }
    batch.forEach((job, i) => {
      accumulate(acc!, shape, k, out.data, i * k * pv, job, patch, g, weight);
    });
    options.progress?.(Math.min(jobs.length, b0 + batch.length), jobs.length);
  }
  if (acc === null) throw new RangeError('no tiles');
  for (let c = 0; c < k; c++) {
    const base = c * n;
    for (let v = 0; v < n; v++) acc[base + v] /= wsum[v];
  }
  const result: ChannelArray = { data: acc, channels: k, shape };
  return padded === image ? result : cropArray(result, before, image.shape);
}

function addWeights(wsum: Float32Array, shape: Shape3, start: Shape3, patch: Shape3, g: Float32Array): void {
  const [, H, W] = shape;
  let q = 0;
  for (let d = 0; d < patch[0]; d++)
    for (let h = 0; h < patch[1]; h++) {
      const row = ((start[0] + d) * H + start[1] + h) * W + start[2];
      for (let w = 0; w < patch[2]; w++) wsum[row + w] += g[q++];
    }
}

/** acc[c, tile + q] += out[c, flip(q)] · g[q] · weight (the output flipped back). */
function accumulate(
  acc: Float32Array,
  shape: Shape3,
  k: number,
  out: Float32Array,
  off: number,
  job: Job,
  patch: Shape3,
  g: Float32Array,
  weight: number,
): void {
  const [, H, W] = shape;
  const n = voxels(shape);
  const [pd, ph, pw] = patch;
  const pv = pd * ph * pw;
  const { start, flip } = job;
  for (let c = 0; c < k; c++) {
    const src = off + c * pv;
    let q = 0;
    for (let d = 0; d < pd; d++) {
      const od = flip[0] ? pd - 1 - d : d;
      for (let h = 0; h < ph; h++) {
        const oh = flip[1] ? ph - 1 - h : h;
        const row = c * n + ((start[0] + d) * H + start[1] + h) * W + start[2];
        const srcRow = src + (od * ph + oh) * pw;
        if (flip[2])
          for (let w = 0; w < pw; w++, q++) acc[row + w] += out[srcRow + pw - 1 - w] * g[q] * weight;
        else for (let w = 0; w < pw; w++, q++) acc[row + w] += out[srcRow + w] * g[q] * weight;
      }
    }
  }
}
