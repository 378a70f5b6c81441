/**
 * InferenceEngine over the KServe v2 / Triton HTTP/REST protocol: an API node sends its patches to a GPU
 * inference server (NVIDIA Triton, KServe, or this service's own `startInferenceServer`). Binary tensor data by
 * default (JSON with `binary: false`), per-request timeouts, retries with backoff on 503 / connection failures,
 * health and model-metadata checks on open (input/output names, channel count, and the sha256 when the server
 * reports one). Codes: INFERENCE.REMOTE_UNAVAILABLE, INFERENCE.REMOTE_TIMEOUT, INFERENCE.REMOTE_FAILED,
 * INFERENCE.REMOTE_BAD_REQUEST, INFERENCE.REMOTE_PROTOCOL, MODEL.NOT_FOUND, MODEL.INPUT_MISMATCH,
 * MODEL.CHECKSUM_MISMATCH.
 */
import { DomainError, type IssueType } from '../../../domain/errors.ts';
import type {
  InferenceEngine,
  InferenceSession,
  ModelArtifactRef,
  Tensor,
} from '../../../domain/ports/inference.port.ts';
import {
  decodeResponse,
  encodeRequest,
  HEADER_LENGTH,
  ProtocolError,
  wireModelName,
} from './kserve-protocol.ts';

export interface KServeClientOptions {
  /** Base URL of the server, e.g. http://gpu-node:8000. */
  readonly url: string;
  /** Binary tensor data extension (default true). */
  readonly binary?: boolean;
  /** Per-request timeout (default 120 s). */
  readonly timeoutMs?: number;
  /** Retries after 503 or a failed connection (default 4). */
  readonly retries?: number;
  /** First backoff (doubles each retry; a longer Retry-After under 30 s is honoured). Default 250 ms. */
  readonly retryDelayMs?: number;
  /** Name of a model key on the server (default: the key URL-encoded; Triton: e.g. tritonSafeName). */
  readonly modelName?: (key: string) => string;
  /** Extra headers (e.g. Authorization). */
  readonly headers?: Readonly<Record<string, string>>;
}

interface HttpResult {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Uint8Array;
}

function remoteError(
  code: string,
  message: string,
  issueType: IssueType,
  details: Record<string, unknown>,
  cause?: unknown,
): DomainError {
  return new DomainError(code, message, { issueType, details, ...(cause === undefined ? {} : { cause }) });
}

function serverMessage(body: Uint8Array): { error?: string; code?: string } {
  try {
    const j = JSON.parse(new TextDecoder().decode(body)) as unknown;
    if (typeof j === 'object' && j !== null) {
      const o = j as Record<string, unknown>;
      return {
        ...(typeof o.error === 'string' ? { error: o.error } : {}),
        ...(typeof o.code === 'string' ? { code: o.code } : {}),
      };
    }
  } catch {
    // not JSON: the status line says enough
  }
  return {};
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

class RemoteSession implements InferenceSession {
  readonly key: string;
  readonly backend: string;
  readonly #client: KServeInferenceClient;
  readonly #ref: ModelArtifactRef;
  readonly #path: string;

  constructor(client: KServeInferenceClient, ref: ModelArtifactRef, path: string) {
    this.#client = client;
    this.#ref = ref;
    this.#path = path;
    this.key = ref.key;
    this.backend = `kserve-v2 ${client.url}`;
  }

  async run(input: Tensor): Promise<Tensor> {
    const binary = this.#client.binary;
    const { body, headerLength } = encodeRequest(
      [{ name: this.#ref.inputName, shape: input.dims, data: input.data }],
      [this.#ref.outputName],
      binary,
    );
    const headers: Record<string, string> = {
      'content-type': headerLength === undefined ? 'application/json' : 'application/octet-stream',
    };
    if (headerLength !== undefined) headers[HEADER_LENGTH] = String(headerLength);
    const res = await this.#client.request('POST', `${this.#path}/infer`, body, headers);
    if (res.status !== 200) throw this.#client.statusError(res, this.key);
    const hl = res.headers.get(HEADER_LENGTH);
    let decoded;
    try {
      decoded = decodeResponse(res.body, hl === null ? undefined : Number(hl));
    } catch (e) {
      throw remoteError(
        'INFERENCE.REMOTE_PROTOCOL',
        `${this.key}: malformed inference response (${e instanceof Error ? e.message : String(e)})`,
        'processing',
        { key: this.key },
        e,
      );
    }
    const out = decoded.outputs.find((o) => o.name === this.#ref.outputName);
    if (out === undefined)
      throw remoteError(
        'INFERENCE.REMOTE_PROTOCOL',
        `${this.key}: the response lacks output ${this.#ref.outputName}`,
        'processing',
        {
          key: this.key,
        },
      );
    return { data: out.data, dims: out.shape };
  }

  async close(): Promise<void> {
    // stateless over HTTP; keep-alive connections belong to the process-wide fetch agent
  }
}

export class KServeInferenceClient implements InferenceEngine {
  readonly url: string;
  readonly binary: boolean;
  readonly #opts: KServeClientOptions;
  readonly #sessions = new Map<string, Promise<RemoteSession>>();

  constructor(opts: KServeClientOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.binary = opts.binary ?? true;
    this.#opts = opts;
  }

  open(model: ModelArtifactRef): Promise<InferenceSession> {
    let s = this.#sessions.get(model.key);
    if (s === undefined) {
      s = this.#open(model);
      this.#sessions.set(model.key, s);
      s.catch(() => this.#sessions.delete(model.key));
    }
    return s;
  }

  async close(): Promise<void> {
    this.#sessions.clear();
    await Promise.resolve();
  }

  /** GET /v2/health/ready. */
  async ready(): Promise<boolean> {
    const res = await this.request('GET', '/v2/health/ready');
    return res.status === 200;
  }

  async #open(model: ModelArtifactRef): Promise<RemoteSession> {
    const name = (this.#opts.modelName ?? wireModelName)(model.key);
    const path = `/v2/models/${name}`;
    const health = await this.request('GET', '/v2/health/ready');
    if (health.status !== 200)
      throw remoteError(
        'INFERENCE.REMOTE_UNAVAILABLE',
        `inference server ${this.url} is not ready (${health.status})`,
        'transient',
        {
          url: this.url,
          status: health.status,
        },
      );
    const res = await this.request('GET', path);
    if (res.status !== 200) throw this.statusError(res, model.key);
    let meta: unknown;
    try {
      meta = JSON.parse(new TextDecoder().decode(res.body));
    } catch (e) {
      throw remoteError(
        'INFERENCE.REMOTE_PROTOCOL',
        `${model.key}: model metadata is not JSON`,
        'processing',
        { key: model.key },
        e,
      );
    }
    const m = meta as {
      inputs?: { name?: unknown; shape?: unknown }[];
      outputs?: { name?: unknown }[];
      sha256?: unknown;
    };
    const inputs = Array.isArray(m.inputs) ? m.inputs : [];
    const outputs = Array.isArray(m.outputs) ? m.outputs : [];
    const input = inputs.find((i) => i.name === model.inputName);
    if (input === undefined || !outputs.some((o) => o.name === model.outputName))
      throw remoteError(
        'MODEL.INPUT_MISMATCH',
        `${model.key}: the server's model takes ${inputs.map((i) => String(i.name)).join(', ')} → ${outputs.map((o) => String(o.name)).join(', ')}, the manifest names ${model.inputName} → ${model.outputName}`,
        'invalid',
        { key: model.key },
      );
    const channels = model.inputShape?.[1];
    const shape = Array.isArray(input.shape) ? (input.shape as unknown[]) : [];
    if (channels !== undefined && typeof shape[1] === 'number' && shape[1] > 0 && shape[1] !== channels)
      throw remoteError(
        'MODEL.INPUT_MISMATCH',
        `${model.key}: the server's model takes ${shape[1]} channels, not ${channels}`,
        'invalid',
        {
          key: model.key,
        },
      );
    if (typeof m.sha256 === 'string' && m.sha256 !== model.sha256)
      throw remoteError(
        'MODEL.CHECKSUM_MISMATCH',
        `${model.key}: the inference server runs a different model file (sha256 ${m.sha256}, expected ${model.sha256})`,
        'security',
        { key: model.key, expected: model.sha256, actual: m.sha256 },
      );
    return new RemoteSession(this, model, path);
  }

  /** Maps a non-200 answer to a coded error (the server's own code when it sent one). */
  statusError(res: HttpResult, key: string): DomainError {
    const { error, code } = serverMessage(res.body);
    const message = `${key}: inference server answered ${res.status}${error === undefined ? '' : ` (${error})`}`;
    const details = {
      key,
      status: res.status,
      url: this.url,
      ...(code === undefined ? {} : { remoteCode: code }),
    };
    if (res.status === 404)
      return remoteError(
        code?.startsWith('MODEL.') === true ? code : 'MODEL.NOT_FOUND',
        message,
        'not-found',
        details,
      );
    if (res.status === 400) {
      const c = code === 'MODEL.INPUT_MISMATCH' ? code : 'INFERENCE.REMOTE_BAD_REQUEST';
      return remoteError(c, message, 'invalid', details);
    }
    if (res.status === 503) return remoteError('INFERENCE.REMOTE_UNAVAILABLE', message, 'transient', details);
    return remoteError('INFERENCE.REMOTE_FAILED', message, 'processing', details);
  }

  /** One HTTP exchange with timeout; retries 503 and connection failures with exponential backoff. */
  async request(
    method: string,
    path: string,
    body?: Uint8Array,
    headers: Record<string, string> = {},
  ): Promise<HttpResult> {
    const retries = this.#opts.retries ?? 4;
    const timeoutMs = this.#opts.timeoutMs ?? 120_000;
    let delay = this.#opts.retryDelayMs ?? 250;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(`${this.url}${path}`, {
          method,
          headers: { ...this.#opts.headers, ...headers },
          ...(body === undefined ? {} : { body }),
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (e) {
        const timedOut = e instanceof DOMException && e.name === 'TimeoutError';
        if (timedOut)
          throw remoteError(
            'INFERENCE.REMOTE_TIMEOUT',
            `${method} ${path}: no answer from ${this.url} within ${timeoutMs} ms`,
            'timeout',
            {
              url: this.url,
              path,
              timeoutMs,
            },
            e,
          );
        if (attempt < retries) {
          await sleep(delay);
          delay *= 2;
          continue;
        }
        throw remoteError(
          'INFERENCE.REMOTE_UNAVAILABLE',
          `${method} ${path}: cannot reach ${this.url} (${e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e)})`,
          'transient',
          {
            url: this.url,
            path,
            attempts: attempt + 1,
          },
          e,
        );
      }
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(await res.arrayBuffer());
      } catch (e) {
        const timedOut = e instanceof DOMException && e.name === 'TimeoutError';
        throw remoteError(
          timedOut ? 'INFERENCE.REMOTE_TIMEOUT' : 'INFERENCE.REMOTE_PROTOCOL',
          `${method} ${path}: the response body broke off`,
          timedOut ? 'timeout' : 'processing',
          { url: this.url, path },
          e,
        );
      }
      if (res.status === 503 && attempt < retries) {
        const ra = Number(res.headers.get('retry-after'));
        await sleep(Number.isFinite(ra) && ra >= 0 && ra < 30 ? Math.max(ra * 1000, delay) : delay);
        delay *= 2;
        continue;
      }
      return { status: res.status, headers: res.headers, body: bytes };
    }
  }
}

export { ProtocolError };
