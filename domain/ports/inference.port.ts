/**
 * The pluggable inference port: run a batch of patches through a model variant and get its raw output.
 * Adapters: onnxruntime-node (CPU / CUDA execution provider) and a remote KServe v2 / Triton HTTP client.
 * Sliding windows, normalisation and everything else model-agnostic stay in the domain.
 */

export interface Tensor {
  readonly data: Float32Array;
  /** e.g. [N, C, D, H, W]. */
  readonly dims: readonly number[];
}

/** What an engine needs to open a model variant (resolved by the ModelRegistry). */
export interface ModelArtifactRef {
  /** '<modelId>/<variantId>': also the model name on a remote inference server. */
  readonly key: string;
  /** Absolute path of the ONNX file (local engines). */
  readonly path: string;
  readonly sha256: string;
  readonly inputName: string;
  readonly outputName: string;
  /** A typical input shape, e.g. [1, C, ...patch] (engines warm up with it; optional). */
  readonly inputShape?: readonly number[];
}

export interface InferenceSession {
  readonly key: string;
  /** Where it actually runs, e.g. 'onnxruntime-node/cpu', 'onnxruntime-node/cuda', 'kserve-v2 http://…'. */
  readonly backend: string;
  run(input: Tensor): Promise<Tensor>;
  close(): Promise<void>;
}

export interface InferenceEngine {
  /** Opens (or returns the cached, warmed-up) session for a model variant. */
  open(model: ModelArtifactRef): Promise<InferenceSession>;
  close(): Promise<void>;
}
