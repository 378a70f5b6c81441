/**
 * A KServe v2 / Triton-compatible HTTP inference server backed by a local InferenceEngine (onnxruntime-node),
 * so GPU machines can serve many API nodes (`mslesion serve --role inference` calls startInferenceServer).
 *
 *   GET  /v2                                   server metadata (extensions: binary_tensor_data)
 *   GET  /v2/health/live | /v2/health/ready
 *   GET  /v2/models/{name}[/versions/{v}]      model metadata (+ sha256 of the ONNX file)
 *   GET  /v2/models/{name}[/versions/{v}]/ready
 *   POST /v2/models/{name}[/versions/{v}]/infer  FP32, JSON or binary tensor data
 *
 * {name} is the model key '<modelId>/<variantId>' URL-encoded ('tiny-unet%2Fflair'), or '<modelId>__<variantId>'.
 * Errors are {"error": message, "code": DomainError code}. More than `maxInFlight` concurrent inferences get 503
 * with Retry-After (clients retry).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { asDomainError, DomainError } from '../../../domain/errors.ts';
import type { ModelManifest } from '../../../domain/model/manifest.ts';
import type { InferenceEngine } from '../../../domain/ports/inference.port.ts';
import { findVariant, parseModelKey, type ModelRegistry } from '../../../domain/ports/model-registry.port.ts';
import { decodeRequest, encodeResponse, HEADER_LENGTH, ProtocolError } from './kserve-protocol.ts';

export interface InferenceServerLogger {
  info(o: object, msg?: string): void;
  error(o: object, msg?: string): void;
}

export interface InferenceServerOptions {
  readonly host: string;
  /** 0 = any free port. */
  readonly port: number;
  readonly models: ModelRegistry;
  readonly engine: InferenceEngine;
  readonly logger?: InferenceServerLogger;
  /** Concurrent inferences before answering 503 (default 4). */
  readonly maxInFlight?: number;
  /** Largest request body (default 1 GiB). */
  readonly maxBodyBytes?: number;
}

export interface InferenceServer {
  readonly url: string;
  close(): Promise<void>;
}

const STATUS: Partial<Record<string, number>> = {
  'not-found': 404,
  invalid: 400,
  structure: 400,
  required: 400,
  value: 400,
  'not-supported': 400,
  'too-long': 413,
  transient: 503,
  timeout: 504,
  security: 409,
  conflict: 409,
};

function send(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  const json = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
    ...headers,
  });
  res.end(json);
}

function sendError(res: ServerResponse, e: unknown, extra: Record<string, string> = {}): void {
  const err =
    e instanceof ProtocolError
      ? new DomainError('INFERENCE.REMOTE_BAD_REQUEST', e.message, { issueType: 'invalid' })
      : asDomainError(e);
  send(res, STATUS[err.issueType] ?? 500, { error: err.message, code: err.code }, extra);
}

async function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    size += b.byteLength;
    if (size > limit)
      throw new DomainError('INFERENCE.REQUEST_TOO_LARGE', `request body exceeds ${limit} bytes`, {
        issueType: 'too-long',
      });
    chunks.push(b);
  }
  const out = new Uint8Array(size);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}

interface Resolved {
  readonly key: string;
  readonly manifest: ModelManifest;
  readonly variantId: string;
  readonly channels: number;
}

function resolveModel(models: ModelRegistry, rawName: string): Resolved {
  let name: string;
  try {
    name = decodeURIComponent(rawName);
  } catch {
    throw new DomainError('MODEL.NOT_FOUND', `bad model name ${rawName}`, { issueType: 'not-found' });
  }
  const parsed = parseModelKey(name) ?? parseModelKey(name.replace('__', '/'));
  if (parsed === null)
    throw new DomainError('MODEL.NOT_FOUND', `no model ${name}`, { issueType: 'not-found' });
  const manifest = models.get(parsed.modelId);
  const v = findVariant(manifest, parsed.variantId);
  if (v === undefined)
    throw new DomainError(
      'MODEL.VARIANT_NOT_FOUND',
      `model ${parsed.modelId} has no variant ${parsed.variantId}`,
      {
        issueType: 'not-found',
      },
    );
  return {
    key: `${parsed.modelId}/${parsed.variantId}`,
    manifest,
    variantId: v.id,
    channels: v.channels.length,
  };
}

export async function startInferenceServer(opts: InferenceServerOptions): Promise<InferenceServer> {
  const maxInFlight = opts.maxInFlight ?? 4;
  const maxBody = opts.maxBodyBytes ?? 1 << 30;
  let inFlight = 0;
  let closing = false;

  const metadata = (r: Resolved): object => {
    const a = opts.models.artifact(r.manifest.id, r.variantId);
    const k = r.manifest.output.labels.length;
    return {
      name: r.key,
      versions: [r.manifest.version],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: a.inputName, datatype: 'FP32', shape: [-1, r.channels, -1, -1, -1] }],
      outputs: [{ name: a.outputName, datatype: 'FP32', shape: [-1, k, -1, -1, -1] }],
      sha256: a.sha256,
    };
  };

  const infer = async (req: IncomingMessage, res: ServerResponse, r: Resolved): Promise<void> => {
    const artifact = opts.models.artifact(r.manifest.id, r.variantId);
    const hl = req.headers[HEADER_LENGTH];
    const headerLength = hl === undefined ? undefined : Number(Array.isArray(hl) ? hl[0] : hl);
    const body = await readBody(req, maxBody);
    const request = decodeRequest(body, headerLength);
    const input =
      request.inputs.find((t) => t.name === artifact.inputName) ??
      (request.inputs.length === 1 ? request.inputs[0] : undefined);
    if (input === undefined || request.inputs.length !== 1)
      throw new DomainError(
        'INFERENCE.REMOTE_BAD_REQUEST',
        `model ${r.key} takes one input named ${artifact.inputName}`,
        {
          issueType: 'invalid',
        },
      );
    if (input.shape.length !== 5 || input.shape[1] !== r.channels)
      throw new DomainError(
        'MODEL.INPUT_MISMATCH',
        `model ${r.key} takes [N, ${r.channels}, D, H, W], got [${input.shape.join(', ')}]`,
        { issueType: 'invalid' },
      );
    for (const o of request.outputs)
      if (o.name !== artifact.outputName)
        throw new DomainError('INFERENCE.REMOTE_BAD_REQUEST', `model ${r.key} has no output ${o.name}`, {
          issueType: 'invalid',
        });
    const session = await opts.engine.open(artifact);
    const t0 = performance.now();
    const out = await session.run({ data: input.data, dims: input.shape });
    const binary = request.outputs.length > 0 ? request.outputs.some((o) => o.binary) : request.binaryOutput;
    const encoded = encodeResponse(
      {
        modelName: r.key,
        modelVersion: r.manifest.version,
        ...(request.id === undefined ? {} : { id: request.id }),
        outputs: [{ name: artifact.outputName, shape: out.dims, data: out.data }],
      },
      () => binary,
    );
    const headers: Record<string, string | number> = {
      'content-type': encoded.headerLength === undefined ? 'application/json' : 'application/octet-stream',
      'content-length': encoded.body.byteLength,
    };
    if (encoded.headerLength !== undefined) headers[HEADER_LENGTH] = encoded.headerLength;
    res.writeHead(200, headers);
    res.end(encoded.body);
    opts.logger?.info(
      { model: r.key, dims: input.shape, ms: Math.round(performance.now() - t0), backend: session.backend },
      'infer',
    );
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter((p) => p !== '');
    const method = req.method ?? 'GET';
    if (parts[0] !== 'v2') {
      send(res, 404, { error: `no route ${url.pathname}`, code: 'HTTP.NOT_FOUND' });
      return;
    }
    if (parts.length === 1 && method === 'GET') {
      send(res, 200, {
        name: 'ms-lesion-service-inference',
        version: '1',
        extensions: ['binary_tensor_data'],
      });
      return;
    }
    if (parts[1] === 'health' && parts.length === 3 && method === 'GET') {
      if (parts[2] === 'live') send(res, 200, { live: true });
      else if (parts[2] === 'ready') send(res, closing ? 503 : 200, { ready: !closing });
      else send(res, 404, { error: 'no such health endpoint', code: 'HTTP.NOT_FOUND' });
      return;
    }
    if (parts[1] === 'models' && parts.length >= 3) {
      // /v2/models/{name}[/versions/{v}][/ready|/infer]
      let rest = parts.slice(3);
      if (rest[0] === 'versions') rest = rest.slice(2);
      const r = resolveModel(opts.models, parts[2]);
      if (rest.length === 0 && method === 'GET') {
        send(res, 200, metadata(r));
        return;
      }
      if (rest.length === 1 && rest[0] === 'ready' && method === 'GET') {
        await opts.engine.open(opts.models.artifact(r.manifest.id, r.variantId));
        send(res, 200, { name: r.key, ready: true });
        return;
      }
      if (rest.length === 1 && rest[0] === 'infer' && method === 'POST') {
        if (inFlight >= maxInFlight || closing) {
          req.resume();
          opts.logger?.info({ model: r.key, inFlight }, 'busy: 503');
          send(
            res,
            503,
            { error: 'inference server busy', code: 'INFERENCE.REMOTE_BUSY' },
            { 'retry-after': '1' },
          );
          return;
        }
        inFlight++;
        try {
          await infer(req, res, r);
        } finally {
          inFlight--;
        }
        return;
      }
    }
    send(res, 404, { error: `no route ${method} ${url.pathname}`, code: 'HTTP.NOT_FOUND' });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err = asDomainError(e);
      if ((STATUS[err.issueType] ?? 500) >= 500)
        opts.logger?.error({ code: err.code, err: err.message }, 'inference request failed');
      if (!res.headersSent) sendError(res, e);
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${host}:${addr.port}`;
  opts.logger?.info({ url }, 'KServe v2 inference server listening');
  return {
    url,
    close: () =>
      new Promise<void>((resolveClose, reject) => {
        closing = true;
        // in-flight inferences finish (their responses say connection: close); idle keep-alive sockets go now
        const drain = setInterval(() => {
          server.closeIdleConnections();
          if (inFlight === 0) server.closeAllConnections();
        }, 50);
        server.close((err) => {
          clearInterval(drain);
          if (err) reject(err);
          else resolveClose();
        });
        server.closeIdleConnections();
      }),
  };
}
