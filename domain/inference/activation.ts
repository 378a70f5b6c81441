/**
 * From aggregated network outputs to the foreground probability: softmax over the label channels, a sigmoid
 * per channel, or nothing when the network already outputs probabilities (manifest.output).
 */
import type { ModelManifest } from '../model/manifest.ts';

/**
 * Foreground probability per voxel from a [K, …] channel-major array of `voxels` voxels per channel.
 * `labelIndex` is the manifest's foregroundLabel.
 */
export function foregroundProbability(
  output: Float32Array,
  channels: number,
  voxels: number,
  labelIndex: number,
  spec: ModelManifest['output'],
): Float32Array {
  if (labelIndex < 0 || labelIndex >= channels)
    throw new RangeError(`foreground label ${labelIndex} outside the ${channels} output channels`);
  const out = new Float32Array(voxels);
  const base = labelIndex * voxels;
  if (spec.kind === 'probabilities') {
    for (let v = 0; v < voxels; v++) {
      const p = output[base + v];
      out[v] = p < 0 ? 0 : p > 1 ? 1 : p;
    }
    return out;
  }
  if (spec.activation === 'sigmoid') {
    for (let v = 0; v < voxels; v++) out[v] = 1 / (1 + Math.exp(-output[base + v]));
    return out;
  }
  for (let v = 0; v < voxels; v++) {
    let max = -Infinity;
    for (let c = 0; c < channels; c++) {
      const l = output[c * voxels + v];
      if (l > max) max = l;
    }
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += Math.exp(output[c * voxels + v] - max);
    out[v] = Math.exp(output[base + v] - max) / sum;
  }
  return out;
}

/** Binary mask: probability ≥ threshold. */
export function thresholdProbability(p: Float32Array, threshold: number): Uint8Array {
  const out = new Uint8Array(p.length);
  for (let v = 0; v < p.length; v++) out[v] = p[v] >= threshold ? 1 : 0;
  return out;
}
