/**
 * Tile placement and importance weighting of the nnU-Net v2 sliding window, as small pure functions.
 * All shapes are D, H, W (the manifest's order); arrays are C-order with W fastest (= a Volume buffer).
 */

export type Shape3 = readonly [number, number, number];

/** Rounds half to even, like numpy.round (nnU-Net rounds tile starts with it). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * Tile starts along one axis: ceil((size − patch) / (step · patch)) + 1 tiles spread evenly, the first at 0 and
 * the last flush with the edge (size − patch). `size` must be ≥ `patch` (pad first).
 */
export function tileStarts(size: number, patch: number, step: number): number[] {
  if (!(step > 0 && step <= 1)) throw new RangeError(`tile step must be in (0, 1], got ${step}`);
  if (size < patch) throw new RangeError(`axis of ${size} voxels is smaller than the patch (${patch})`);
  const n = Math.ceil((size - patch) / (patch * step)) + 1;
  if (n === 1) return [0];
  const actual = (size - patch) / (n - 1);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(roundHalfEven(actual * i));
  return out;
}

/** Every tile's start (D, H, W), D slowest. */
export function tileGrid(shape: Shape3, patch: Shape3, step: number): Shape3[] {
  const sd = tileStarts(shape[0], patch[0], step);
  const sh = tileStarts(shape[1], patch[1], step);
  const sw = tileStarts(shape[2], patch[2], step);
  const out: Shape3[] = [];
  for (const d of sd) for (const h of sh) for (const w of sw) out.push([d, h, w]);
  return out;
}

/** scipy.ndimage's discrete Gaussian kernel (truncate 4σ) evaluated at offset x, unnormalised weights summed. */
function gaussian1d(n: number): Float64Array {
  const sigma = n / 8;
  const radius = Math.trunc(4 * sigma + 0.5);
  let sum = 0;
  for (let x = -radius; x <= radius; x++) sum += Math.exp((-0.5 * x * x) / (sigma * sigma));
  const centre = Math.floor(n / 2);
  const out = new Float64Array(n);
  for (let p = 0; p < n; p++) {
    const x = p - centre;
    out[p] = Math.abs(x) <= radius ? Math.exp((-0.5 * x * x) / (sigma * sigma)) / sum : 0;
  }
  return out;
}

const gaussianCache = new Map<string, Float32Array>();

/**
 * The importance map over a patch: a unit impulse at patch // 2 blurred with σ = patch / 8 (what nnU-Net computes
 * with scipy's gaussian_filter), scaled to a maximum of 1, zeros replaced by the smallest non-zero value so that
 * no voxel ever gets weight 0. Without Gaussian weighting every voxel weighs 1. Cached per shape; never mutate.
 */
export function importanceMap(patch: Shape3, gaussian: boolean): Float32Array {
  const key = `${patch.join('x')}:${gaussian}`;
  const cached = gaussianCache.get(key);
  if (cached !== undefined) return cached;
  const n = patch[0] * patch[1] * patch[2];
  const map = new Float32Array(n);
  if (!gaussian) map.fill(1);
  else {
    const [gd, gh, gw] = [gaussian1d(patch[0]), gaussian1d(patch[1]), gaussian1d(patch[2])];
    const peak = gd[Math.floor(patch[0] / 2)] * gh[Math.floor(patch[1] / 2)] * gw[Math.floor(patch[2] / 2)];
    let o = 0;
    for (let d = 0; d < patch[0]; d++)
      for (let h = 0; h < patch[1]; h++) {
        const dh = gd[d] * gh[h];
        for (let w = 0; w < patch[2]; w++) map[o++] = (dh * gw[w]) / peak;
      }
    let minNonZero = Infinity;
    for (let x = 0; x < n; x++) if (map[x] > 0 && map[x] < minNonZero) minNonZero = map[x];
    for (let x = 0; x < n; x++) if (map[x] === 0) map[x] = minNonZero;
  }
  gaussianCache.set(key, map);
  return map;
}

/** Every non-empty subset of the mirror axes, in itertools.combinations order (size 1 first). */
export function mirrorCombinations(axes: readonly number[]): number[][] {
  const out: number[][] = [];
  const sorted = [...new Set(axes)];
  const rec = (start: number, size: number, acc: number[]): void => {
    if (acc.length === size) {
      out.push([...acc]);
      return;
    }
    for (let i = start; i < sorted.length; i++) {
      acc.push(sorted[i]);
      rec(i + 1, size, acc);
      acc.pop();
    }
  };
  for (let size = 1; size <= sorted.length; size++) rec(0, size, []);
  return out;
}
