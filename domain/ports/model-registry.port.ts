/**
 * Where models come from: manifests (domain/model/manifest.ts) verified at start (schema, sha256 of every
 * variant file), and the artifact reference an InferenceEngine opens. Adapter: adapters/models/ (a folder of
 * models/<id>/manifest.json). Codes: MODEL.NOT_FOUND, MODEL.VARIANT_NOT_FOUND, MODEL.NO_DEFAULT.
 */
import type { ModelManifest, ModelVariant } from '../model/manifest.ts';
import type { ModelArtifactRef } from './inference.port.ts';

export interface ModelRegistry {
  /** Every verified model, sorted by id. */
  list(): readonly ModelManifest[];
  /** Throws MODEL.NOT_FOUND. */
  get(modelId: string): ModelManifest;
  /** The model used when an order names none (configured default, else the only model for the task). */
  defaultFor(task: string): ModelManifest;
  /** The ONNX artifact of one variant. Throws MODEL.NOT_FOUND / MODEL.VARIANT_NOT_FOUND. */
  artifact(modelId: string, variantId: string): ModelArtifactRef;
}

/** '<modelId>/<variantId>': the artifact key, also the model name on a remote inference server. */
export function modelKey(modelId: string, variantId: string): string {
  return `${modelId}/${variantId}`;
}

/** Splits a model key; null when it is not '<modelId>/<variantId>'. */
export function parseModelKey(key: string): { modelId: string; variantId: string } | null {
  const m = /^([^/]+)\/([^/]+)$/.exec(key);
  return m === null ? null : { modelId: m[1], variantId: m[2] };
}

/** The manifest variant with that id, or undefined. */
export function findVariant(manifest: ModelManifest, variantId: string): ModelVariant | undefined {
  return manifest.variants.find((v) => v.id === variantId);
}
