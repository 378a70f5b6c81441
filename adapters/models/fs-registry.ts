/**
 * The filesystem ModelRegistry: every `<root>/<id>/manifest.json` is validated against
 * models/manifest.schema.json (ajv) and a few rules the schema cannot express, and each variant's ONNX file is
 * hashed (sha256) at start. A model that does not match is refused: it is left out of list(), and get() on it
 * throws the coded error it was refused with (MODEL.MANIFEST_INVALID, MODEL.FILE_MISSING,
 * MODEL.CHECKSUM_MISMATCH); `strict` makes opening fail instead. Folders without a manifest.json are not models.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { DomainError } from '../../domain/errors.ts';
import type { ModelManifest } from '../../domain/model/manifest.ts';
import type { ModelArtifactRef } from '../../domain/ports/inference.port.ts';
import { findVariant, modelKey, type ModelRegistry } from '../../domain/ports/model-registry.port.ts';

export const MANIFEST_SCHEMA_PATH = resolve(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'models',
  'manifest.schema.json',
);

export interface FsModelRegistryOptions {
  /** Folders holding <id>/manifest.json (e.g. the repository's models/). */
  readonly roots: readonly string[];
  /** Default model per task (task → model id). */
  readonly defaults?: Readonly<Record<string, string>>;
  /** Throw at open when any model is refused (default false: refuse that model only). */
  readonly strict?: boolean;
  /** Only these model ids are loaded (others are ignored, not refused). */
  readonly only?: readonly string[];
}

export interface RefusedModel {
  readonly modelId: string;
  readonly dir: string;
  readonly error: DomainError;
}

interface Entry {
  readonly manifest: ModelManifest;
  readonly dir: string;
}

let validator: ValidateFunction | undefined;

async function schemaValidator(): Promise<ValidateFunction> {
  if (validator !== undefined) return validator;
  const schema = JSON.parse(await readFile(MANIFEST_SCHEMA_PATH, 'utf8')) as object;
  validator = new Ajv({ allErrors: true, strict: true }).compile(schema);
  return validator;
}

function invalid(modelId: string, message: string, details: Record<string, unknown> = {}): DomainError {
  return new DomainError('MODEL.MANIFEST_INVALID', `model ${modelId}: ${message}`, {
    issueType: 'invalid',
    details: { modelId, ...details },
  });
}

function formatErrors(errors: readonly ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? 'is invalid'}`);
}

/** Rules beyond the JSON Schema. Returns the problems found (empty = fine). */
export function semanticProblems(m: ModelManifest): string[] {
  const out: string[] = [];
  const axes = new Set(Array.from(m.orientation, (c) => 'LRPAIS'.indexOf(c) >> 1));
  if (axes.size !== 3) out.push(`orientation ${m.orientation} does not name three different axes`);
  if (m.foregroundLabel >= m.output.labels.length)
    out.push(`foregroundLabel ${m.foregroundLabel} is outside labels (${m.output.labels.length})`);
  const ids = new Set<string>();
  const sets = new Set<string>();
  for (const v of m.variants) {
    if (ids.has(v.id)) out.push(`duplicate variant id ${v.id}`);
    ids.add(v.id);
    const key = v.channels.join('+');
    if (sets.has(key)) out.push(`two variants take the same channels ${key}`);
    sets.add(key);
    if (new Set(v.channels).size !== v.channels.length) out.push(`variant ${v.id} repeats a channel`);
    for (const c of v.channels)
      if (m.normalization[c] === undefined) out.push(`variant ${v.id}: no normalization for ${c}`);
  }
  for (const [c, n] of Object.entries(m.normalization)) {
    if (n.clipPercentiles !== undefined && n.clipPercentiles[0] > n.clipPercentiles[1])
      out.push(`${c}: clipPercentiles must be ascending`);
    if (n.clipValues !== undefined && n.clipValues[0] > n.clipValues[1])
      out.push(`${c}: clipValues must be ascending`);
    if (n.method !== 'fixed' && (n.clipValues !== undefined || n.mean !== undefined || n.std !== undefined))
      out.push(`${c}: clipValues/mean/std apply to method 'fixed' only`);
  }
  return out;
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** Reads and fully verifies one model folder; throws the coded reason it is refused. */
export async function verifyModelDir(dir: string): Promise<ModelManifest> {
  const folderId = dir.split(/[\\/]/).filter(Boolean).at(-1) ?? dir;
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
  } catch (e) {
    throw invalid(
      folderId,
      `manifest.json is unreadable or not JSON (${e instanceof Error ? e.message : String(e)})`,
    );
  }
  const validate = await schemaValidator();
  if (!validate(raw)) {
    const problems = formatErrors(validate.errors);
    throw invalid(folderId, `manifest does not match the schema: ${problems.join('; ')}`, { problems });
  }
  const manifest = raw as ModelManifest;
  if (manifest.id !== folderId)
    throw invalid(folderId, `manifest id ${manifest.id} differs from its folder name`);
  const problems = semanticProblems(manifest);
  if (problems.length > 0) throw invalid(manifest.id, problems.join('; '), { problems });
  for (const v of manifest.variants) {
    const path = join(dir, v.file);
    try {
      if (!(await stat(path)).isFile()) throw new Error('not a file');
    } catch (e) {
      throw new DomainError(
        'MODEL.FILE_MISSING',
        `model ${manifest.id}: variant ${v.id} file ${v.file} is missing`,
        {
          issueType: 'not-found',
          details: { modelId: manifest.id, variant: v.id, file: v.file },
          cause: e,
        },
      );
    }
    const actual = await sha256File(path);
    if (actual !== v.sha256)
      throw new DomainError(
        'MODEL.CHECKSUM_MISMATCH',
        `model ${manifest.id}: ${v.file} has sha256 ${actual}, the manifest says ${v.sha256}`,
        {
          issueType: 'security',
          details: { modelId: manifest.id, variant: v.id, expected: v.sha256, actual },
        },
      );
  }
  return manifest;
}

export class FsModelRegistry implements ModelRegistry {
  readonly refused: readonly RefusedModel[];
  readonly #models: ReadonlyMap<string, Entry>;
  readonly #defaults: Readonly<Partial<Record<string, string>>>;

  constructor(
    models: ReadonlyMap<string, Entry>,
    refused: readonly RefusedModel[],
    defaults: Readonly<Partial<Record<string, string>>>,
  ) {
    this.#models = models;
    this.refused = refused;
    this.#defaults = defaults;
  }

  list(): readonly ModelManifest[] {
    return [...this.#models.values()].map((e) => e.manifest).sort((a, b) => a.id.localeCompare(b.id));
  }

  get(modelId: string): ModelManifest {
    return this.#entry(modelId).manifest;
  }

  /** The model's folder (for tools; engines use artifact()). */
  dirOf(modelId: string): string {
    return this.#entry(modelId).dir;
  }

  defaultFor(task: string): ModelManifest {
    const configured = this.#defaults[task];
    if (configured !== undefined) return this.get(configured);
    const candidates = this.list().filter((m) => m.task === task);
    const only = candidates.at(0);
    if (candidates.length === 1 && only !== undefined) return only;
    throw new DomainError(
      'MODEL.NO_DEFAULT',
      candidates.length === 0
        ? `no model for task ${task} is installed`
        : `several models for task ${task} (${candidates.map((m) => m.id).join(', ')}): configure a default`,
      { issueType: candidates.length === 0 ? 'not-found' : 'business-rule', details: { task } },
    );
  }

  artifact(modelId: string, variantId: string): ModelArtifactRef {
    const { manifest, dir } = this.#entry(modelId);
    const v = findVariant(manifest, variantId);
    if (v === undefined)
      throw new DomainError('MODEL.VARIANT_NOT_FOUND', `model ${modelId} has no variant ${variantId}`, {
        issueType: 'not-found',
        details: { modelId, variantId, variants: manifest.variants.map((x) => x.id) },
      });
    return {
      key: modelKey(modelId, variantId),
      path: join(dir, v.file),
      sha256: v.sha256,
      inputName: manifest.input.name,
      outputName: manifest.output.name,
      inputShape: [
        1,
        v.channels.length,
        ...(manifest.inference.mode === 'sliding-window'
          ? manifest.inference.patchSize
          : manifest.inference.shape),
      ],
    };
  }

  #entry(modelId: string): Entry {
    const e = this.#models.get(modelId);
    if (e !== undefined) return e;
    const refused = this.refused.find((r) => r.modelId === modelId);
    if (refused !== undefined) throw refused.error;
    throw new DomainError('MODEL.NOT_FOUND', `no model ${modelId} is installed`, {
      issueType: 'not-found',
      details: { modelId, installed: [...this.#models.keys()] },
    });
  }
}

/** Scans the roots, verifies every model (schema, rules, sha256) and returns the registry. */
export async function openModelRegistry(options: FsModelRegistryOptions): Promise<FsModelRegistry> {
  const models = new Map<string, Entry>();
  const refused: RefusedModel[] = [];
  for (const root of options.roots) {
    let names: string[];
    try {
      names = (await readdir(root, { withFileTypes: true }))
        .filter((d) => d.isDirectory())
        .map((d) => d.name);
    } catch (e) {
      throw new DomainError('MODEL.ROOT_NOT_FOUND', `model folder ${root} cannot be read`, {
        issueType: 'not-found',
        details: { root },
        cause: e,
      });
    }
    for (const name of names.sort()) {
      if (options.only !== undefined && !options.only.includes(name)) continue;
      const dir = resolve(root, name);
      try {
        await stat(join(dir, 'manifest.json'));
      } catch {
        continue; // not a model folder (training code, a model still being built …)
      }
      try {
        const manifest = await verifyModelDir(dir);
        if (models.has(manifest.id))
          throw new DomainError('MODEL.DUPLICATE_ID', `model ${manifest.id} is installed twice`, {
            issueType: 'duplicate',
            details: { modelId: manifest.id, dirs: [models.get(manifest.id)?.dir, dir] },
          });
        models.set(manifest.id, { manifest, dir });
      } catch (e) {
        const error =
          e instanceof DomainError
            ? e
            : new DomainError('MODEL.MANIFEST_INVALID', `model ${name}: ${String(e)}`, { cause: e });
        if (options.strict === true) throw error;
        refused.push({ modelId: name, dir, error });
      }
    }
  }
  for (const [task, id] of Object.entries(options.defaults ?? {}))
    if (!models.has(id) && !refused.some((r) => r.modelId === id) && options.strict === true)
      throw new DomainError('MODEL.NOT_FOUND', `default model ${id} for ${task} is not installed`, {
        issueType: 'not-found',
        details: { task, modelId: id },
      });
  return new FsModelRegistry(models, refused, options.defaults ?? {});
}
