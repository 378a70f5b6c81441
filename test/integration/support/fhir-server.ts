/**
 * A real FHIR R4 server for tests: @medplum/fhir-router's FhirRouter over its in-memory MemoryRepository,
 * behind node:http on loopback, protected like an EHR would be — every request needs a bearer JWT from the
 * test OAuth server (signature via its JWKS, issuer, audience) with SMART system scopes for what it does
 * (transaction entries checked one by one) — and strict: every resource written must validate against R4
 * (@medplum/core's validator), else 400 with the OperationOutcome. It serves
 * /.well-known/smart-configuration for discovery.
 *
 * Fault injection, for idempotency tests: `failNext('before-commit' | 'after-commit', n)` — the next n
 * writes answer 503 without touching the data, or are committed and then answered 500 / the socket is cut.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { getStatus } from '@medplum/core';
import { FhirRouter, MemoryRepository, type FhirRequest } from '@medplum/fhir-router';
import type { HttpMethod } from '@medplum/fhir-router';
import type { Bundle, OperationOutcome, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { fhirErrors } from '../../../adapters/fhir/validation.ts';
import { scopesAllow, type Permission } from '../../../domain/ports/token-verifier.port.ts';
import { freePort } from '../../helpers/orthanc.ts';

export type Fault = 'before-commit' | 'after-commit' | 'after-commit-drop';

export interface FhirServer {
  readonly baseUrl: string;
  readonly repo: MemoryRepository;
  /** Write requests (POST/PUT/DELETE) that reached the router, and their outcome statuses. */
  readonly writes: { status: number; fault?: Fault }[];
  readonly rejectedAuth: number[];
  failNext(fault: Fault, count?: number): void;
  /** Optional delay before each write is processed (to widen race windows). */
  setWriteDelay(ms: number): void;
  /** All current resources of a type (searching the repository directly). */
  all<T extends Resource>(resourceType: T['resourceType']): Promise<T[]>;
  stop(): Promise<void>;
}

function outcome(code: OperationOutcomeIssue['code'], text: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, details: { text } }] };
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/fhir+json', ...headers });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const PERMS: Readonly<Record<string, readonly Permission[]>> = {
  GET: ['r'],
  POST: ['c'],
  PUT: ['c', 'u'],
  PATCH: ['u'],
  DELETE: ['d'],
};

/** What a request needs: [resourceType, permissions] per operation (transactions: per entry). */
function requirements(method: string, path: string, body: unknown): [string, readonly Permission[]][] {
  const parts = path.split('?')[0].split('/').filter(Boolean);
  if (method === 'POST' && parts.length === 0) {
    const bundle = body as Bundle;
    return (bundle.entry ?? []).map((e) => {
      const url = e.request?.url ?? '';
      const type = url.split(/[/?]/)[0] || (e.resource?.resourceType ?? '');
      return [type, PERMS[e.request?.method ?? 'GET'] ?? ['c', 'r', 'u', 'd']];
    });
  }
  const type = parts[0] ?? '';
  if (method === 'GET' && parts.length === 1) return [[type, ['s']]];
  return [[type, PERMS[method] ?? ['c', 'r', 'u', 'd']]];
}

function resourcesWritten(method: string, path: string, body: unknown): Resource[] {
  const parts = path.split('?')[0].split('/').filter(Boolean);
  if (method === 'POST' && parts.length === 0) {
    return ((body as Bundle).entry ?? []).flatMap((e) => (e.resource === undefined ? [] : [e.resource]));
  }
  return (method === 'PUT' || method === 'POST') && typeof body === 'object' && body !== null
    ? [body as Resource]
    : [];
}

export async function startFhirServer(options: {
  /** Issuer whose tokens are accepted, and its JWKS. */
  readonly issuer: string;
  readonly jwksUrl: string;
  readonly tokenUrl: string;
  /** Port to listen on (default: a free one). The audience is the base URL. */
  readonly port?: number;
}): Promise<FhirServer> {
  const port = options.port ?? (await freePort());
  const baseUrl = `http://127.0.0.1:${port}/fhir`;
  const repo = new MemoryRepository();
  const router = new FhirRouter();
  const jwks = createRemoteJWKSet(new URL(options.jwksUrl));
  const writes: FhirServer['writes'] = [];
  const rejectedAuth: number[] = [];
  const faults: Fault[] = [];
  let writeDelay = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', baseUrl);
    if (!url.pathname.startsWith('/fhir')) {
      send(res, 404, outcome('not-found', 'not found'));
      return;
    }
    const path = url.pathname.slice('/fhir'.length).replace(/^\/+/, '') + url.search;
    if (path === '.well-known/smart-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          issuer: options.issuer,
          token_endpoint: options.tokenUrl,
          jwks_uri: options.jwksUrl,
          grant_types_supported: ['client_credentials'],
          token_endpoint_auth_methods_supported: ['private_key_jwt'],
          token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
          scopes_supported: ['system/*.cruds'],
          capabilities: ['client-confidential-asymmetric'],
        }),
      );
      return;
    }
    const method = (req.method ?? 'GET').toUpperCase();
    const raw = await readBody(req);
    const auth = req.headers.authorization ?? '';
    const token = /^Bearer (.+)$/i.exec(auth)?.[1];
    let scopes: string[];
    try {
      if (token === undefined) throw new Error('no bearer token');
      const { payload } = await jwtVerify(token, jwks, { issuer: options.issuer, audience: baseUrl });
      scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
    } catch (e) {
      rejectedAuth.push(401);
      send(res, 401, outcome('login', `invalid token: ${(e as Error).message}`), {
        'www-authenticate': 'Bearer error="invalid_token"',
      });
      return;
    }
    let body: unknown = undefined;
    if (raw !== '') {
      try {
        body = JSON.parse(raw);
      } catch {
        send(res, 400, outcome('structure', 'body is not JSON'));
        return;
      }
    }
    for (const [type, perms] of requirements(method, path, body)) {
      if (!scopesAllow(scopes, { resourceType: type, permissions: perms })) {
        rejectedAuth.push(403);
        send(res, 403, outcome('forbidden', `scope for ${type} (${perms.join('')}) not granted`));
        return;
      }
    }
    const isWrite = method !== 'GET';
    if (isWrite) {
      for (const r of resourcesWritten(method, path, body)) {
        const errors = fhirErrors(r);
        if (errors.length > 0) {
          writes.push({ status: 400 });
          send(res, 400, {
            resourceType: 'OperationOutcome',
            issue: errors.map((i) => ({
              severity: 'error',
              code: 'invalid',
              details: { text: i.message },
              ...(i.expression === undefined ? {} : { expression: [i.expression] }),
            })),
          });
          return;
        }
      }
      if (writeDelay > 0) await new Promise((r) => setTimeout(r, writeDelay));
      const fault = faults.shift();
      if (fault === 'before-commit') {
        writes.push({ status: 503, fault });
        send(res, 503, outcome('transient', 'injected fault before commit'));
        return;
      }
      const fhirReq: FhirRequest = {
        method: method as HttpMethod,
        url: path,
        pathname: '',
        body,
        params: {},
        query: {},
        headers: req.headers,
      };
      const [oo, resource] = await router.handleRequest(fhirReq, repo);
      const status = getStatus(oo);
      if (fault === 'after-commit' || fault === 'after-commit-drop') {
        writes.push({ status: 500, fault });
        if (fault === 'after-commit-drop') req.socket.destroy();
        else send(res, 500, outcome('exception', 'injected fault after commit'));
        return;
      }
      writes.push({ status });
      send(res, status, resource ?? oo);
      return;
    }
    const [oo, resource] = await router.handleRequest(
      {
        method: 'GET',
        url: path,
        pathname: '',
        body: undefined,
        params: {},
        query: {},
        headers: req.headers,
      },
      repo,
    );
    send(res, getStatus(oo), resource ?? oo);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      send(res, 500, outcome('exception', e instanceof Error ? e.message : String(e)));
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    baseUrl,
    repo,
    writes,
    rejectedAuth,
    failNext(fault, count = 1) {
      for (let i = 0; i < count; i++) faults.push(fault);
    },
    setWriteDelay(ms) {
      writeDelay = ms;
    },
    async all<T extends Resource>(resourceType: T['resourceType']): Promise<T[]> {
      const bundle = await repo.search<T>({ resourceType, count: 10_000 });
      return (bundle.entry ?? []).map((e) => e.resource as T);
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}
