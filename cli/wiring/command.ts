/**
 * What the CLI commands share: the dispatcher's I/O, the CLI.USAGE error, turning a coded failure into its
 * exit code, and the inference wiring of the commands that run models (models folder, model registry with
 * refused models reported, local onnxruntime or a remote KServe v2 engine, and their flags).
 *
 * The engines are imported on demand, so a command that only needs `usage` (evaluate, dicom2nifti …) never
 * loads onnxruntime.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DomainError, isDomainError } from '../../domain/errors.ts';
import type { InferenceEngine } from '../../domain/ports/inference.port.ts';
import { openModelRegistry, type FsModelRegistry } from '../../adapters/models/fs-registry.ts';

/**
 * The CommandIo of cli/commands/index.ts, declared again here (structurally the same) so that commands need
 * not import the command table, which imports them.
 */
export interface CommandIo {
  out(line: string): void;
  err(line: string): void;
  /** One-line progress updates (overwritten in a terminal). */
  progress(line: string): void;
}

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A bad command line (exit code 2). */
export function usage(message: string): DomainError {
  return new DomainError('CLI.USAGE', message, { issueType: 'invalid' });
}

/**
 * The exit code of a failed command: a DomainError is printed as `mslesion <command>: CODE: message` and gives
 * 2 for CLI.USAGE, else 1; anything else is a bug and is thrown on.
 */
export function failed(command: string, io: Pick<CommandIo, 'err'>, e: unknown): number {
  if (!isDomainError(e)) throw e;
  io.err(`mslesion ${command}: ${e.code}: ${e.message}`);
  return e.code === 'CLI.USAGE' ? 2 : 1;
}

/** `--threads N`: a positive integer, or undefined when the flag is absent. */
export function threadsFlag(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9]\d*$/.test(value)) throw usage('--threads must be a positive integer');
  return Number(value);
}

export interface EngineFlags {
  readonly provider?: 'cpu' | 'cuda';
  readonly cudaFallback?: 'cpu' | 'fail';
  readonly threads?: number;
  /** A KServe v2 / Triton server that runs the networks instead of this process. */
  readonly inferenceUrl?: string;
}

/** Validates the engine flags of a parsed command line (`--provider`, `--cuda-fallback`, `--threads`, `--inference-url`). */
export function engineFlags(values: {
  readonly provider?: string;
  readonly 'cuda-fallback'?: string;
  readonly threads?: string;
  readonly 'inference-url'?: string;
}): EngineFlags {
  const { provider, 'cuda-fallback': cudaFallback } = values;
  if (provider !== undefined && provider !== 'cpu' && provider !== 'cuda')
    throw usage('--provider must be cpu or cuda');
  if (cudaFallback !== undefined && cudaFallback !== 'cpu' && cudaFallback !== 'fail')
    throw usage('--cuda-fallback must be cpu or fail');
  const threads = threadsFlag(values.threads);
  return {
    ...(provider === undefined ? {} : { provider }),
    ...(cudaFallback === undefined ? {} : { cudaFallback }),
    ...(threads === undefined ? {} : { threads }),
    ...(values['inference-url'] === undefined ? {} : { inferenceUrl: values['inference-url'] }),
  };
}

/**
 * The model registry of a command: `--models-dir`, else MSLESION_MODELS_DIR, else the repository's models/;
 * the default lesion model from MSLESION_DEFAULT_MODEL when set. Every refused model is reported on stderr.
 */
export async function openCommandModels(
  command: string,
  io: Pick<CommandIo, 'err'>,
  modelsDir?: string,
): Promise<FsModelRegistry> {
  const dir = resolve(modelsDir ?? process.env.MSLESION_MODELS_DIR ?? resolve(REPO_ROOT, 'models'));
  const defaultModel = process.env.MSLESION_DEFAULT_MODEL;
  const models = await openModelRegistry({
    roots: [dir],
    ...(defaultModel === undefined || defaultModel === ''
      ? {}
      : { defaults: { 'ms-lesion-segmentation': defaultModel } }),
  });
  for (const r of models.refused)
    io.err(`mslesion ${command}: model ${r.modelId} refused: ${r.error.code}: ${r.error.message}`);
  return models;
}

/** The inference engine of a command: the remote server when `--inference-url` is given, else onnxruntime here. */
export async function openCommandEngine(
  command: string,
  io: Pick<CommandIo, 'err'>,
  flags: EngineFlags = {},
): Promise<InferenceEngine> {
  if (flags.inferenceUrl !== undefined) {
    const { KServeInferenceClient } = await import('../../adapters/onnx/remote/kserve-client.ts');
    return new KServeInferenceClient({ url: flags.inferenceUrl });
  }
  const { OnnxInferenceEngine } = await import('../../adapters/onnx/onnx-engine.ts');
  return new OnnxInferenceEngine({
    provider: flags.provider ?? 'cpu',
    cudaFallback: flags.cudaFallback ?? 'fail',
    ...(flags.threads === undefined ? {} : { intraOpThreads: flags.threads }),
    logger: {
      info: () => undefined,
      warn: (o, msg) => {
        io.err(`mslesion ${command}: ${msg ?? ''} ${JSON.stringify(o)}`);
      },
    },
  });
}
