/**
 * The KServe v2 / Triton HTTP/REST inference protocol, the subset this service speaks: FP32 tensors as JSON
 * `data` arrays or with the binary tensor data extension (a JSON header of `Inference-Header-Content-Length`
 * bytes followed by the raw little-endian tensors, each input/output carrying `parameters.binary_data_size`).
 * https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/ and Triton's
 * docs/protocol/extension_binary_data.md.
 */

export const HEADER_LENGTH = 'inference-header-content-length';

export interface WireTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface InferRequest {
  readonly id?: string;
  readonly inputs: readonly WireTensor[];
  /** Requested outputs (all when empty) and whether each should come back binary. */
  readonly outputs: readonly { readonly name: string; readonly binary: boolean }[];
  /** Binary outputs when none is listed explicitly. */
  readonly binaryOutput: boolean;
}

export interface InferResponse {
  readonly modelName: string;
  readonly modelVersion?: string;
  readonly id?: string;
  readonly outputs: readonly WireTensor[];
}

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

function param(t: Record<string, unknown>, name: string): unknown {
  const p = t.parameters;
  return isRecord(p) ? p[name] : undefined;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function count(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function checkShape(shape: unknown, what: string): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && (d as number) >= 0))
    throw new ProtocolError(`${what}: shape must be a list of non-negative integers`);
  return shape as number[];
}

function flatten(data: unknown, out: number[]): void {
  if (Array.isArray(data)) for (const d of data) flatten(d, out);
  else if (typeof data === 'number') out.push(data);
  else throw new ProtocolError('tensor data must be numbers');
}

/** Little-endian FP32 bytes → Float32Array (copied: the source may be unaligned). */
export function f32FromBytes(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw new ProtocolError('FP32 binary data length is not a multiple of 4');
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Float32Array(copy.buffer);
}

export function f32Bytes(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Splits a body into its JSON header and the binary tail (the tail is empty for plain JSON). */
function splitBody(body: Uint8Array, headerLength: number | undefined): { json: unknown; tail: Uint8Array } {
  const n = headerLength ?? body.byteLength;
  if (!Number.isInteger(n) || n < 0 || n > body.byteLength)
    throw new ProtocolError(
      `${HEADER_LENGTH} (${headerLength}) does not fit the body (${body.byteLength} bytes)`,
    );
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(body.subarray(0, n)));
  } catch {
    throw new ProtocolError('the JSON header is not valid JSON');
  }
  return { json, tail: body.subarray(n) };
}

/** Reads the tensors of a request/response (`key` = 'inputs' | 'outputs'), binary parts from `tail` in order. */
function readTensors(
  json: Record<string, unknown>,
  key: 'inputs' | 'outputs',
  tail: Uint8Array,
): WireTensor[] {
  const list = json[key];
  if (!Array.isArray(list)) throw new ProtocolError(`'${key}' must be a list`);
  let offset = 0;
  const out: WireTensor[] = [];
  for (const raw of list as unknown[]) {
    if (!isRecord(raw) || typeof raw.name !== 'string')
      throw new ProtocolError(`every ${key} entry needs a name`);
    const name = raw.name;
    const shape = checkShape(raw.shape, name);
    if (raw.datatype !== 'FP32') throw new ProtocolError(`${name}: only FP32 tensors are supported`);
    const n = count(shape);
    const size = param(raw, 'binary_data_size');
    let data: Float32Array;
    if (size !== undefined) {
      if (typeof size !== 'number' || !Number.isInteger(size) || size !== 4 * n)
        throw new ProtocolError(
          `${name}: binary_data_size ${JSON.stringify(size)} does not match shape (${4 * n} bytes)`,
        );
      if (offset + size > tail.byteLength) throw new ProtocolError(`${name}: binary data is truncated`);
      data = f32FromBytes(tail.subarray(offset, offset + size));
      offset += size;
    } else {
      const flat: number[] = [];
      flatten(raw.data, flat);
      if (flat.length !== n)
        throw new ProtocolError(`${name}: ${flat.length} values for shape [${shape.join(', ')}]`);
      data = Float32Array.from(flat);
    }
    out.push({ name, shape, data });
  }
  if (offset !== tail.byteLength) throw new ProtocolError('binary data left over after the last tensor');
  return out;
}

/** Encodes a JSON header + binary parts (or plain JSON when nothing is binary). */
function assemble(header: object, parts: readonly Uint8Array[]): { body: Uint8Array; headerLength?: number } {
  const json = new TextEncoder().encode(JSON.stringify(header));
  if (parts.length === 0) return { body: json };
  const total = json.byteLength + parts.reduce((a, p) => a + p.byteLength, 0);
  const body = new Uint8Array(total);
  body.set(json, 0);
  let o = json.byteLength;
  for (const p of parts) {
    body.set(p, o);
    o += p.byteLength;
  }
  return { body, headerLength: json.byteLength };
}

function tensorJson(t: WireTensor, binary: boolean): object {
  return binary
    ? { name: t.name, shape: t.shape, datatype: 'FP32', parameters: { binary_data_size: t.data.byteLength } }
    : { name: t.name, shape: t.shape, datatype: 'FP32', data: Array.from(t.data) };
}

export function encodeRequest(
  inputs: readonly WireTensor[],
  outputs: readonly string[],
  binary: boolean,
  id?: string,
): { body: Uint8Array; headerLength?: number } {
  const header = {
    ...(id === undefined ? {} : { id }),
    inputs: inputs.map((t) => tensorJson(t, binary)),
    outputs: outputs.map((name) => ({ name, parameters: { binary_data: binary } })),
  };
  return assemble(header, binary ? inputs.map((t) => f32Bytes(t.data)) : []);
}

export function decodeRequest(body: Uint8Array, headerLength: number | undefined): InferRequest {
  const { json, tail } = splitBody(body, headerLength);
  if (!isRecord(json)) throw new ProtocolError('the request must be a JSON object');
  const inputs = readTensors(json, 'inputs', tail);
  const params = isRecord(json.parameters) ? json.parameters : {};
  const outputs: { name: string; binary: boolean }[] = [];
  if (json.outputs !== undefined) {
    if (!Array.isArray(json.outputs)) throw new ProtocolError("'outputs' must be a list");
    for (const o of json.outputs as unknown[]) {
      if (!isRecord(o) || typeof o.name !== 'string')
        throw new ProtocolError('every requested output needs a name');
      outputs.push({ name: o.name, binary: param(o, 'binary_data') === true });
    }
  }
  return {
    ...(typeof json.id === 'string' ? { id: json.id } : {}),
    inputs,
    outputs,
    binaryOutput: params.binary_data_output === true,
  };
}

export function encodeResponse(
  res: InferResponse,
  binaryFor: (name: string) => boolean,
): { body: Uint8Array; headerLength?: number } {
  const header = {
    model_name: res.modelName,
    ...(res.modelVersion === undefined ? {} : { model_version: res.modelVersion }),
    ...(res.id === undefined ? {} : { id: res.id }),
    outputs: res.outputs.map((t) => tensorJson(t, binaryFor(t.name))),
  };
  return assemble(
    header,
    res.outputs.filter((t) => binaryFor(t.name)).map((t) => f32Bytes(t.data)),
  );
}

export function decodeResponse(body: Uint8Array, headerLength: number | undefined): InferResponse {
  const { json, tail } = splitBody(body, headerLength);
  if (!isRecord(json)) throw new ProtocolError('the response must be a JSON object');
  if (typeof json.model_name !== 'string') throw new ProtocolError('the response lacks model_name');
  return {
    modelName: json.model_name,
    ...(typeof json.model_version === 'string' ? { modelVersion: json.model_version } : {}),
    ...(typeof json.id === 'string' ? { id: json.id } : {}),
    outputs: readTensors(json, 'outputs', tail),
  };
}

/** Model names on the wire: the key URL-encoded; '<modelId>__<variantId>' is accepted too (Triton-safe). */
export function wireModelName(key: string): string {
  return encodeURIComponent(key);
}

export function tritonSafeName(key: string): string {
  return key.replace('/', '__');
}
