/**
 * InferenceEngine on onnxruntime-node: one session per model variant, opened once, warmed up with a zero input of
 * the artifact's typical shape, and reused (concurrent opens share the same promise). CPU by default, with
 * intra-op threads and the graph optimisation level from config; the CUDA execution provider when configured,
 * with a fallback policy when it is not available: 'cpu' (warn and run on CPU) or 'fail'
 * (INFERENCE.CUDA_UNAVAILABLE).
 *
 * CUDA on a GPU host (Linux x64, CUDA 12 + cuDNN 9 installed): onnxruntime-node 1.30 downloads its CUDA provider
 * libraries at install time unless told to skip; this repository installs with ONNXRUNTIME_NODE_INSTALL=skip, so
 * fetch them with `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node` (equivalently
 * `npm install onnxruntime-node --onnxruntime-node-install=cuda12`); the libraries land beside the binding
 * (bin/napi-v6/linux/x64/libonnxruntime_providers_{shared,cuda}.so).
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import * as ort from 'onnxruntime-node';
import { DomainError } from '../../domain/errors.ts';
import type {
  InferenceEngine,
  InferenceSession,
  ModelArtifactRef,
  Tensor,
} from '../../domain/ports/inference.port.ts';
import { sha256File } from '../models/fs-registry.ts';

export type ExecutionProvider = 'cpu' | 'cuda';

export interface OnnxEngineLogger {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
}

export interface OnnxEngineOptions {
  /** Default 'cpu'. */
  readonly provider?: ExecutionProvider;
  /** When CUDA is asked for but unavailable: run on CPU ('cpu') or throw INFERENCE.CUDA_UNAVAILABLE ('fail', default). */
  readonly cudaFallback?: 'cpu' | 'fail';
  readonly cudaDeviceId?: number;
  /** Intra-op threads (default: the machine's available parallelism). */
  readonly intraOpThreads?: number;
  readonly interOpThreads?: number;
  /** Default 'all'. */
  readonly graphOptimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Run one zero input of the artifact's inputShape after opening (default true). */
  readonly warmUp?: boolean;
  /** Re-hash the ONNX file on open and refuse a mismatch (default true). */
  readonly verifySha256?: boolean;
  readonly logger?: OnnxEngineLogger;
}

/** Where onnxruntime-node's native binding (and the optional CUDA provider libraries) live. */
export function ortBinaryDir(): string {
  const require = createRequire(import.meta.url);
  const pkg = dirname(require.resolve('onnxruntime-node/package.json'));
  return join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

/** True when the CUDA provider libraries are installed beside the binding (a GPU may still be missing). */
export function cudaProviderInstalled(): boolean {
  const dir = ortBinaryDir();
  return (
    existsSync(join(dir, 'libonnxruntime_providers_cuda.so')) &&
    existsSync(join(dir, 'libonnxruntime_providers_shared.so'))
  );
}

let envConfigured = false;

class OrtSession implements InferenceSession {
  readonly key: string;
  readonly backend: string;
  readonly #session: ort.InferenceSession;
  readonly #input: string;
  readonly #output: string;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(key: string, backend: string, session: ort.InferenceSession, input: string, output: string) {
    this.key = key;
    this.backend = backend;
    this.#session = session;
    this.#input = input;
    this.#output = output;
  }

  run(input: Tensor): Promise<Tensor> {
    // one run at a time per session: onnxruntime already uses all intra-op threads for each run
    const next = this.#queue.then(() => this.#run(input));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  async #run(input: Tensor): Promise<Tensor> {
    if (this.#closed) throw new DomainError('INFERENCE.SESSION_CLOSED', `session ${this.key} is closed`);
    let result: ort.InferenceSession.ReturnType;
    try {
      const feed = new ort.Tensor('float32', input.data, [...input.dims]);
      result = await this.#session.run({ [this.#input]: feed }, [this.#output]);
    } catch (e) {
      throw new DomainError(
        'INFERENCE.RUN_FAILED',
        `${this.key}: ${e instanceof Error ? e.message : String(e)}`,
        {
          issueType: 'processing',
          details: { key: this.key, dims: [...input.dims] },
          cause: e,
        },
      );
    }
    const out = result[this.#output];
    if (!(out instanceof ort.Tensor) || !(out.data instanceof Float32Array))
      throw new DomainError(
        'INFERENCE.OUTPUT_TYPE',
        `${this.key}: output ${this.#output} is not a float32 tensor`,
      );
    const tensor: Tensor = { data: out.data, dims: [...out.dims] };
    return tensor;
  }

  /** Sessions belong to the engine's cache: closing one handle keeps it open for others (engine.close() releases). */
  async close(): Promise<void> {
    // nothing to do: see release()
  }

  async release(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    await this.#session.release();
  }
}

export class OnnxInferenceEngine implements InferenceEngine {
  readonly #options: OnnxEngineOptions;
  readonly #sessions = new Map<string, Promise<OrtSession>>();

  constructor(options: OnnxEngineOptions = {}) {
    this.#options = options;
    if (!envConfigured) {
      // provider-loading failures are reported through our coded errors; keep onnxruntime's own log quiet
      ort.env.logLevel = 'fatal';
      envConfigured = true;
    }
  }

  open(model: ModelArtifactRef): Promise<InferenceSession> {
    const cacheKey = `${model.key}@${model.sha256}:${model.path}:${model.inputName}→${model.outputName}`;
    let s = this.#sessions.get(cacheKey);
    if (s === undefined) {
      s = this.#create(model);
      this.#sessions.set(cacheKey, s);
      s.catch(() => this.#sessions.delete(cacheKey));
    }
    return s;
  }

  async close(): Promise<void> {
    const all = [...this.#sessions.values()];
    this.#sessions.clear();
    for (const p of all) {
      const s = await p.catch(() => null);
      if (s !== null) await s.release();
    }
  }

  #baseOptions(): ort.InferenceSession.SessionOptions {
    const o = this.#options;
    return {
      intraOpNumThreads: o.intraOpThreads ?? availableParallelism(),
      interOpNumThreads: o.interOpThreads ?? 1,
      graphOptimizationLevel: o.graphOptimization ?? 'all',
      executionMode: 'sequential',
      logSeverityLevel: 3,
    };
  }

  async #create(model: ModelArtifactRef): Promise<OrtSession> {
    if (this.#options.verifySha256 !== false) {
      let actual: string;
      try {
        actual = await sha256File(model.path);
      } catch (e) {
        throw new DomainError('MODEL.FILE_MISSING', `${model.key}: ${model.path} cannot be read`, {
          issueType: 'not-found',
          details: { key: model.key },
          cause: e,
        });
      }
      if (actual !== model.sha256)
        throw new DomainError(
          'MODEL.CHECKSUM_MISMATCH',
          `${model.key}: the ONNX file changed since it was registered`,
          {
            issueType: 'security',
            details: { key: model.key, expected: model.sha256, actual },
          },
        );
    }
    const provider = this.#options.provider ?? 'cpu';
    let session: ort.InferenceSession | undefined;
    let backend = 'onnxruntime-node/cpu';
    if (provider === 'cuda') {
      try {
        session = await ort.InferenceSession.create(model.path, {
          ...this.#baseOptions(),
          executionProviders: [{ name: 'cuda', deviceId: this.#options.cudaDeviceId ?? 0 }],
        });
        backend = `onnxruntime-node/cuda:${this.#options.cudaDeviceId ?? 0}`;
      } catch (e) {
        const reason = e instanceof Error ? e.message : String(e);
        const error = new DomainError(
          'INFERENCE.CUDA_UNAVAILABLE',
          `the CUDA execution provider cannot start (${reason}); ` +
            (cudaProviderInstalled()
              ? 'its libraries are installed: check the GPU, driver, CUDA 12 and cuDNN 9'
              : 'install its libraries with `ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node`'),
          {
            issueType: 'not-supported',
            details: { key: model.key, providerLibrariesInstalled: cudaProviderInstalled() },
            cause: e,
          },
        );
        if (this.#options.cudaFallback !== 'cpu') throw error;
        this.#options.logger?.warn(
          { key: model.key, code: error.code, reason },
          'CUDA unavailable: falling back to CPU',
        );
        backend = 'onnxruntime-node/cpu (cuda fallback)';
      }
    }
    if (session === undefined) {
      try {
        session = await ort.InferenceSession.create(model.path, {
          ...this.#baseOptions(),
          executionProviders: ['cpu'],
        });
      } catch (e) {
        throw new DomainError('MODEL.LOAD_FAILED', `${model.key}: onnxruntime cannot load ${model.path}`, {
          issueType: 'processing',
          details: { key: model.key },
          cause: e,
        });
      }
    }
    if (!session.inputNames.includes(model.inputName) || !session.outputNames.includes(model.outputName)) {
      const names = { inputs: [...session.inputNames], outputs: [...session.outputNames] };
      await session.release();
      throw new DomainError(
        'MODEL.INPUT_MISMATCH',
        `${model.key}: the graph has inputs ${names.inputs.join(', ')} and outputs ${names.outputs.join(', ')}, the manifest names ${model.inputName} → ${model.outputName}`,
        { issueType: 'invalid', details: { key: model.key, ...names } },
      );
    }
    const s = new OrtSession(model.key, backend, session, model.inputName, model.outputName);
    if (this.#options.warmUp !== false && model.inputShape !== undefined) {
      const t0 = performance.now();
      const n = model.inputShape.reduce((a, b) => a * b, 1);
      await s.run({ data: new Float32Array(n), dims: model.inputShape });
      this.#options.logger?.info(
        { key: model.key, backend, warmUpMs: Math.round(performance.now() - t0) },
        'inference session ready',
      );
    }
    return s;
  }
}
