/**
 * The OpenAPI document (openapi/openapi.yaml) as the running contract: its operations, one compiled ajv
 * validator per operation for parameters and JSON bodies, and response validators (used by tests and, when
 * enabled, by the app itself). OpenAPI 3.1 schemas are JSON Schema 2020-12, so ajv's 2020 dialect reads them.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { parse as parseYaml } from 'yaml';
import { DomainError } from '../domain/errors.ts';

// ajv-formats is CommonJS; under Node's ESM loader its default export is the plugin function.
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

export const DEFAULT_SPEC_PATH = new URL('../openapi/openapi.yaml', import.meta.url);
const DOC_ID = 'urn:ms-lesion-service:openapi';
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'] as const;
type Method = (typeof METHODS)[number];

type Json = Record<string, unknown>;

export interface Parameter {
  readonly name: string;
  readonly in: 'path' | 'query' | 'header' | 'cookie';
  readonly required: boolean;
  readonly schema: Json;
}

export interface Operation {
  readonly operationId: string;
  readonly method: Method;
  /** OpenAPI path template, e.g. /analyses/{id}. */
  readonly path: string;
  readonly parameters: readonly Parameter[];
  /** Media types the request body may have (empty: no body). */
  readonly requestMediaTypes: readonly string[];
  readonly requestBodyRequired: boolean;
  /** Security requirement: undefined or [] means public; otherwise scopes per alternative. */
  readonly security: readonly Readonly<Record<string, readonly string[]>>[];
  readonly tags: readonly string[];
}

export interface ValidationProblem {
  /** Where: 'body.studyInstanceUid', 'query.limit', 'path.id' … */
  readonly location: string;
  readonly message: string;
}

export interface Contract {
  readonly document: Json;
  readonly operations: readonly Operation[];
  operation(operationId: string): Operation;
  /** Coerces (strings → numbers …) and applies defaults in place; returns the problems (empty when valid). */
  validateParameters(operationId: string, where: 'path' | 'query', values: Json): ValidationProblem[];
  validateBody(operationId: string, mediaType: string, body: unknown): ValidationProblem[];
  /** Problems with a response: undeclared status or media type, or a JSON body that violates its schema. */
  validateResponse(
    operationId: string,
    status: number,
    mediaType: string | undefined,
    body: unknown,
  ): string[];
}

function isJsonMediaType(mediaType: string): boolean {
  const t = mediaType.split(';')[0].trim().toLowerCase();
  return t === 'application/json' || t.endsWith('+json');
}

function problems(errors: ErrorObject[] | null | undefined, prefix: string): ValidationProblem[] {
  return (errors ?? []).map((e) => {
    const path = e.instancePath
      .split('/')
      .filter((x) => x !== '')
      .map((x) => x.replaceAll('~1', '/').replaceAll('~0', '~'));
    if (e.keyword === 'required') path.push((e.params as { missingProperty: string }).missingProperty);
    if (e.keyword === 'additionalProperties')
      path.push((e.params as { additionalProperty: string }).additionalProperty);
    const location = [prefix, ...path].join('.');
    const message =
      e.keyword === 'additionalProperties' ? 'is not allowed here' : (e.message ?? 'is invalid');
    return { location, message };
  });
}

/** A deep copy with `#/components/schemas/X` refs pointing at the registered `$defs` document. */
function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (typeof value !== 'object' || value === null) return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value as Json)) {
    if (k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/'))
      out[k] = `${DOC_ID}#/$defs/${v.slice('#/components/schemas/'.length)}`;
    else out[k] = rewriteRefs(v);
  }
  return out;
}

function newAjv(coerce: boolean, schemas: Json): Ajv2020 {
  const ajv = new Ajv2020({
    strict: true,
    strictTypes: false,
    strictTuples: false,
    allowUnionTypes: true,
    allErrors: true,
    coerceTypes: coerce,
    useDefaults: coerce,
    validateFormats: true,
  });
  addFormats(ajv);
  ajv.addKeyword({ keyword: 'example' });
  ajv.addSchema({ $id: DOC_ID, $defs: rewriteRefs(schemas) });
  return ajv;
}

/** Loads and compiles the contract. Throws when the document is malformed. */
export function loadContract(specPath: string | URL = DEFAULT_SPEC_PATH): Contract {
  const document = parseYaml(readFileSync(specPath, 'utf8')) as Json;
  const paths = (document.paths ?? {}) as Record<string, Json>;
  const components = (document.components ?? {}) as Json;
  const globalSecurity = (document.security ?? []) as Record<string, string[]>[];
  const resolve = (obj: Json): Json => {
    const ref = obj.$ref;
    if (typeof ref !== 'string') return obj;
    const m = /^#\/components\/(\w+)\/([\w.-]+)$/.exec(ref);
    if (m === null) throw new Error(`unsupported $ref ${ref}`);
    const target = (components[m[1]] as Json | undefined)?.[m[2]] as Json | undefined;
    if (target === undefined) throw new Error(`dangling $ref ${ref}`);
    return resolve(target);
  };
  const schemas = (components.schemas ?? {}) as Json;
  const body = newAjv(false, schemas);
  const params = newAjv(true, schemas);
  const compile = (ajv: Ajv2020, schema: unknown): ValidateFunction =>
    ajv.compile(rewriteRefs(schema) as Json);
  const operations: Operation[] = [];
  const paramValidators = new Map<string, ValidateFunction>();
  const bodyValidators = new Map<string, ValidateFunction>();
  const responseValidators = new Map<string, ValidateFunction | null>();
  const responses = new Map<string, Json>();

  for (const [path, item] of Object.entries(paths)) {
    const shared = ((item.parameters ?? []) as Json[]).map(resolve);
    for (const method of METHODS) {
      const op = item[method] as Json | undefined;
      if (op === undefined) continue;
      const operationId = op.operationId;
      if (typeof operationId !== 'string')
        throw new Error(`${method.toUpperCase()} ${path} has no operationId`);
      if (operations.some((o) => o.operationId === operationId))
        throw new Error(`duplicate operationId ${operationId}`);
      const own = ((op.parameters ?? []) as Json[]).map(resolve);
      const merged = new Map<string, Json>();
      for (const p of [...shared, ...own]) merged.set(`${String(p.in)}:${String(p.name)}`, p);
      const parameters: Parameter[] = [...merged.values()].map((p) => ({
        name: String(p.name),
        in: p.in as Parameter['in'],
        required: p.required === true,
        schema: (p.schema ?? {}) as Json,
      }));
      for (const where of ['path', 'query'] as const) {
        const ps = parameters.filter((p) => p.in === where);
        paramValidators.set(
          `${operationId}:${where}`,
          compile(params, {
            type: 'object',
            properties: Object.fromEntries(ps.map((p) => [p.name, p.schema])),
            required: ps.filter((p) => p.required).map((p) => p.name),
            additionalProperties: false,
          }),
        );
      }
      const rb = op.requestBody === undefined ? undefined : resolve(op.requestBody as Json);
      const content = (rb?.content ?? {}) as Record<string, Json>;
      for (const [mediaType, media] of Object.entries(content))
        if (isJsonMediaType(mediaType) && media.schema !== undefined)
          bodyValidators.set(`${operationId}:${mediaType}`, compile(body, media.schema));
      const rs = (op.responses ?? {}) as Record<string, Json>;
      for (const [status, r0] of Object.entries(rs)) {
        const r = resolve(r0);
        responses.set(`${operationId}:${status}`, r);
        for (const [mediaType, media] of Object.entries((r.content ?? {}) as Record<string, Json>)) {
          const key = `${operationId}:${status}:${mediaType}`;
          if (!isJsonMediaType(mediaType) || media.schema === undefined) {
            responseValidators.set(key, null);
            continue;
          }
          responseValidators.set(key, compile(body, media.schema));
        }
      }
      operations.push({
        operationId,
        method,
        path,
        parameters,
        requestMediaTypes: Object.keys(content),
        requestBodyRequired: rb?.required === true,
        security: (op.security ?? globalSecurity) as Record<string, string[]>[],
        tags: (op.tags ?? []) as string[],
      });
    }
  }

  const byId = new Map(operations.map((o) => [o.operationId, o]));
  const operation = (operationId: string): Operation => {
    const o = byId.get(operationId);
    if (o === undefined) throw new Error(`unknown operation ${operationId}`);
    return o;
  };

  return {
    document,
    operations,
    operation,
    validateParameters(operationId, where, values) {
      const v = paramValidators.get(`${operationId}:${where}`);
      if (v === undefined) throw new Error(`unknown operation ${operationId}`);
      return v(values) ? [] : problems(v.errors, where);
    },
    validateBody(operationId, mediaType, value) {
      const v = bodyValidators.get(`${operationId}:${mediaType}`);
      if (v === undefined) return [];
      return v(value) ? [] : problems(v.errors, 'body');
    },
    validateResponse(operationId, status, mediaType, value) {
      operation(operationId);
      const declared = responses.has(`${operationId}:${status}`) ? String(status) : 'default';
      const r = responses.get(`${operationId}:${declared}`);
      if (r === undefined) return [`status ${status} is not declared for ${operationId}`];
      const media = Object.keys(r.content ?? {});
      if (media.length === 0)
        return mediaType === undefined ? [] : [`${operationId} ${status} declares no body`];
      if (mediaType === undefined) return [`${operationId} ${status} must have a body (${media.join(', ')})`];
      const base = mediaType.split(';')[0].trim().toLowerCase();
      const match = media.find((m) => m === base) ?? media.find((m) => m === 'application/octet-stream');
      if (match === undefined)
        return [`${operationId} ${status}: media type ${base} not declared (${media.join(', ')})`];
      const v = responseValidators.get(`${operationId}:${declared}:${match}`);
      if (v === undefined || v === null) return [];
      return v(value) ? [] : problems(v.errors, 'response').map((p) => `${p.location} ${p.message}`);
    },
  };
}

/** A DomainError for a request that violates the contract. */
export function requestInvalid(code: string, list: readonly ValidationProblem[]): DomainError {
  return new DomainError(code, list.map((p) => `${p.location} ${p.message}`).join('; '), {
    issueType: 'invalid',
    details: { problems: list },
  });
}

export { isJsonMediaType };
