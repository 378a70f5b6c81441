/**
 * createApp(useCases, options): the express 5 application. Every route comes from the contract
 * (openapi/openapi.yaml) and is bound by operationId to a handler from a RouteTable; per operation the app
 * authenticates (unless the operation is public), checks the media type, parses the body within its limit,
 * validates parameters and body with the operation's compiled validators, and runs the handler. Everything
 * that goes wrong — unknown route or method, bad JSON, schema violations, oversized bodies, a DomainError from
 * a use case — is answered with a coded OperationOutcome, and the app keeps serving.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { randomUUID } from 'node:crypto';
import { Counter, Histogram, Registry } from 'prom-client';
import { asDomainError, DomainError } from '../domain/errors.ts';
import type { Authenticator, Principal } from '../domain/ports/authenticator.port.ts';
import type { Logger } from '../domain/ports/logger.port.ts';
import { loadContract, isJsonMediaType, requestInvalid, type Contract, type Operation } from './contract.ts';
import { parseJsonBody, readBody } from './body.ts';
import { DOCS_HTML, DOCS_INIT_JS, swaggerUiDir } from './docs.ts';
import { fromHttpError, httpStatusOf, toOperationOutcome } from './errors.ts';
import type { ApiRequest, ApiResponse, RouteTable } from './http.ts';
import { analysisRoutes } from './routes/analyses.ts';
import { dicomwebRoutes } from './routes/dicomweb.ts';
import { fhirRoutes, type FhirRouteDeps } from './routes/fhir.ts';
import { systemRoutes } from './routes/system.ts';
import type { ApiUseCases } from './use-cases.ts';

export interface AppOptions {
  readonly logger: Logger;
  readonly version: string;
  /** Prometheus registry the HTTP metrics are registered on and /metrics exposes (a private one if absent). */
  readonly registry?: Registry;
  /** Checks credentials for every operation that is not public in the contract (none: open API). */
  readonly authenticator?: Authenticator;
  /** JSON body limit (default 1 MiB). */
  readonly jsonLimitBytes?: number;
  /** STOW-RS body limit (default 512 MiB). */
  readonly stowMaxBytes?: number;
  /** Validate every response against the contract; a violation becomes a 500 RESPONSE.INVALID (tests). */
  readonly validateResponses?: boolean;
  /** Serve only the system operations (health, readiness, metrics, contract): the worker role's listener. */
  readonly opsOnly?: boolean;
  /** The FHIR API's mapping, audit log and study check (absent: FHIR operations answer FHIR.NOT_CONFIGURED). */
  readonly fhir?: Omit<FhirRouteDeps, 'useCases'>;
  /** Further routes by operationId (FHIR, HL7 …), merged with the built-in ones. */
  readonly routes?: readonly RouteTable[];
  readonly contract?: Contract;
}

const MiB = 1024 * 1024;

function headerRecord(req: Request): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(req.headers))
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

function expressPath(template: string): string {
  return template.replace(/\{([A-Za-z0-9_]+)\}/g, ':$1');
}

/** A regex matching the paths of an OpenAPI path template ({param} = one segment). */
function templateRegex(template: string): RegExp {
  const parts = template.split(/\{[A-Za-z0-9_]+\}/).map((p) => p.replace(/[.*+?^$()|[\]\\{}]/g, '\\$&'));
  return new RegExp(`^${parts.join('[^/]+')}/?$`);
}

function isPublic(op: Operation): boolean {
  return op.security.length === 0 || op.security.some((s) => Object.keys(s).length === 0);
}

export function createApp(
  useCases: ApiUseCases,
  options: AppOptions,
): express.Express & { readonly unhandledOperations: readonly string[] } {
  const contract = options.contract ?? loadContract();
  const log = options.logger;
  const registry = options.registry ?? new Registry();
  const jsonLimit = options.jsonLimitBytes ?? MiB;
  const startedAt = Date.now();
  // Several apps (the API and the ops listener) may share one registry: register the HTTP metrics once.
  const requests =
    (registry.getSingleMetric('mslesion_http_requests_total') as
      Counter<'method' | 'route' | 'status'> | undefined) ??
    new Counter({
      name: 'mslesion_http_requests_total',
      help: 'HTTP requests by method, route template and status',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
    });
  const durations =
    (registry.getSingleMetric('mslesion_http_request_duration_seconds') as
      Histogram<'method' | 'route'> | undefined) ??
    new Histogram({
      name: 'mslesion_http_request_duration_seconds',
      help: 'HTTP request durations by method and route template',
      labelNames: ['method', 'route'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });

  const tables: RouteTable[] = [
    systemRoutes(useCases, {
      version: options.version,
      startedAt,
      document: contract.document,
      metrics: async () => ({ contentType: registry.contentType, text: await registry.metrics() }),
    }),
  ];
  if (options.opsOnly !== true)
    tables.push(
      analysisRoutes(useCases, {
        ...(options.fhir?.audit === undefined ? {} : { audit: options.fhir.audit }),
        ...(options.fhir?.now === undefined ? {} : { now: options.fhir.now }),
      }),
      dicomwebRoutes(useCases, options.stowMaxBytes ?? 512 * MiB),
      fhirRoutes({ useCases, ...options.fhir }),
      ...(options.routes ?? []),
    );
  const routes = new Map<string, RouteTable[string]>();
  for (const t of tables)
    for (const [id, r] of Object.entries(t)) {
      if (routes.has(id)) throw new Error(`two handlers for operation ${id}`);
      contract.operation(id); // a handler must be in the contract
      routes.set(id, r);
    }
  // An operation of the contract without a handler answers 501 REQUEST.NOT_IMPLEMENTED (and is listed in
  // unhandledOperations(); the API tests require that list to be empty for the composed app).
  const unhandled = contract.operations.filter((op) => !routes.has(op.operationId)).map((o) => o.operationId);
  if (options.opsOnly !== true && unhandled.length > 0)
    log.warn({ operations: unhandled }, 'contract operations without a handler answer 501');
  if (options.opsOnly !== true)
    for (const id of unhandled)
      routes.set(id, {
        handler: () =>
          Promise.reject(
            new DomainError('REQUEST.NOT_IMPLEMENTED', `operation ${id} is not implemented by this build`, {
              issueType: 'not-supported',
            }),
          ),
      });
  const served = contract.operations.filter((op) => routes.has(op.operationId));

  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.set('etag', false);

  // Request id, timing, metrics and one log line per request (route template only: never the query string,
  // which can carry patient identifiers).
  app.use((req: Request, res: Response, next: NextFunction) => {
    const t0 = process.hrtime.bigint();
    const incoming = req.headers['x-request-id'];
    const requestId =
      typeof incoming === 'string' && /^[\w.-]{1,64}$/.test(incoming) ? incoming : randomUUID();
    res.locals.requestId = requestId;
    res.setHeader('x-request-id', requestId);
    res.on('finish', () => {
      const route = typeof res.locals.route === 'string' ? res.locals.route : 'unmatched';
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      requests.inc({ method: req.method, route, status: String(res.statusCode) });
      durations.observe({ method: req.method, route }, seconds);
      const ctx = {
        requestId,
        method: req.method,
        route,
        status: res.statusCode,
        ms: Math.round(seconds * 1000),
      };
      if (res.statusCode >= 500) log.error(ctx, 'request failed');
      else log.info(ctx, 'request');
    });
    next();
  });

  const send = (res: Response, op: Operation | undefined, r: ApiResponse): void => {
    let response = r;
    if (options.validateResponses === true && op !== undefined) {
      const mediaType =
        r.json !== undefined
          ? (r.contentType ?? 'application/json')
          : r.bytes !== undefined || r.text !== undefined
            ? r.contentType
            : undefined;
      const problems = contract.validateResponse(op.operationId, r.status, mediaType, r.json);
      if (problems.length > 0) {
        log.error(
          { operationId: op.operationId, status: r.status, problems },
          'response violates the contract',
        );
        const e = new DomainError(
          'RESPONSE.INVALID',
          `response violates the contract: ${problems.join('; ')}`,
          {
            issueType: 'invalid',
          },
        );
        response = { status: 500, json: toOperationOutcome(e) };
      }
    }
    res.status(response.status);
    for (const [k, v] of Object.entries(response.headers ?? {})) res.setHeader(k, v);
    if (response.json !== undefined) {
      res.type(response.contentType ?? 'application/json');
      res.send(JSON.stringify(response.json));
    } else if (response.bytes !== undefined) {
      res.type(response.contentType ?? 'application/octet-stream');
      res.send(Buffer.from(response.bytes.buffer, response.bytes.byteOffset, response.bytes.byteLength));
    } else if (response.text !== undefined) {
      res.type(response.contentType ?? 'text/plain');
      res.send(response.text);
    } else res.end();
  };

  const sendError = (res: Response, op: Operation | undefined, e: unknown, limit?: number): void => {
    const error = fromHttpError(e, limit === undefined ? {} : { bodyLimitBytes: limit });
    const status = httpStatusOf(error);
    if (error.issueType === 'exception')
      log.error(
        {
          requestId: res.locals.requestId,
          code: error.code,
          err: e instanceof Error ? (e.stack ?? e.message) : String(e),
        },
        'unexpected error',
      );
    const headers: Record<string, string> = {};
    if (Array.isArray(error.details.allow)) headers.allow = (error.details.allow as string[]).join(', ');
    if (status === 401) headers['www-authenticate'] = 'Bearer';
    // An unread (oversized) body is not drained: the connection closes after the answer.
    if (error.details.closeConnection === true) headers.connection = 'close';
    if (res.headersSent) {
      res.end();
      return;
    }
    send(res, op, { status, json: toOperationOutcome(error), headers });
  };

  // The docs page and its assets (not API operations).
  app.get('/docs', (_req, res) => {
    res.type('html').send(DOCS_HTML);
  });
  app.get('/docs/init.js', (_req, res) => {
    res.type('application/javascript').send(DOCS_INIT_JS);
  });
  app.use('/docs/assets', express.static(swaggerUiDir(), { index: false, fallthrough: false }));

  for (const op of served) {
    const route = routes.get(op.operationId)!;
    const limit = op.requestMediaTypes.some(isJsonMediaType) ? jsonLimit : (route.maxBodyBytes ?? jsonLimit);
    const path = expressPath(op.path);
    app[op.method](path, (req: Request, res: Response) => {
      res.locals.route = op.path;
      res.locals.operation = op;
      void (async () => {
        let principal: Principal | undefined;
        if (options.authenticator !== undefined && !isPublic(op)) {
          principal = await options.authenticator.authenticate({
            method: req.method,
            path: req.path,
            headers: headerRecord(req),
            operationId: op.operationId,
            requiredScopes: Object.values(op.security[0] ?? {}).flat(),
          });
        }
        // media type and body
        const contentType = req.headers['content-type'];
        const mediaType =
          contentType === undefined ? undefined : contentType.split(';')[0].trim().toLowerCase();
        const hasBody =
          Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined;
        let body: unknown;
        if (op.requestMediaTypes.length > 0 && (hasBody || op.requestBodyRequired)) {
          if (mediaType === undefined || !op.requestMediaTypes.includes(mediaType))
            throw new DomainError(
              'REQUEST.UNSUPPORTED_MEDIA_TYPE',
              `the body must be ${op.requestMediaTypes.join(' or ')}`,
              { issueType: 'not-supported' },
            );
          const bytes = await readBody(req, limit);
          if (isJsonMediaType(mediaType)) {
            if (bytes.length === 0) {
              if (op.requestBodyRequired)
                throw new DomainError('REQUEST.MISSING_BODY', 'a request body is required', {
                  issueType: 'required',
                });
            } else body = parseJsonBody(bytes, contentType);
            const problems = contract.validateBody(op.operationId, mediaType, body);
            if (problems.length > 0) throw requestInvalid('REQUEST.INVALID', problems);
          } else body = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        } else if (
          hasBody &&
          op.requestMediaTypes.length === 0 &&
          req.method !== 'GET' &&
          req.method !== 'HEAD'
        ) {
          throw new DomainError('REQUEST.UNEXPECTED_BODY', 'this operation takes no request body', {
            issueType: 'not-supported',
          });
        }
        const params: Record<string, unknown> = { ...req.params };
        const pathProblems = contract.validateParameters(op.operationId, 'path', params);
        if (pathProblems.length > 0)
          throw requestInvalid(
            pathProblems.some((p) => p.location === 'path.id')
              ? 'REQUEST.INVALID_ID'
              : 'REQUEST.INVALID_PATH',
            pathProblems,
          );
        const query: Record<string, unknown> = { ...(req.query as Record<string, unknown>) };
        const queryProblems = contract.validateParameters(op.operationId, 'query', query);
        if (queryProblems.length > 0) throw requestInvalid('REQUEST.INVALID_QUERY', queryProblems);
        const abort = new AbortController();
        res.on('close', () => {
          if (!res.writableFinished) abort.abort();
        });
        const apiRequest: ApiRequest = {
          operationId: op.operationId,
          params: params as Record<string, string>,
          query,
          headers: headerRecord(req),
          body,
          ...(mediaType === undefined ? {} : { mediaType }),
          ...(principal === undefined ? {} : { principal }),
          signal: abort.signal,
        };
        const response = await route.handler(apiRequest);
        send(res, op, response);
      })().catch((e: unknown) => {
        sendError(res, op, e, limit);
      });
    });
  }

  // Unknown route, or a known path with another method.
  const templates = served.map((op) => ({ op, re: templateRegex(op.path) }));
  app.use((req: Request, res: Response) => {
    const methods = [
      ...new Set(templates.filter((t) => t.re.test(req.path)).map((t) => t.op.method.toUpperCase())),
    ];
    if (methods.length > 0) {
      res.locals.route = templates.find((t) => t.re.test(req.path))?.op.path;
      sendError(
        res,
        undefined,
        new DomainError(
          'REQUEST.METHOD_NOT_ALLOWED',
          `${req.method} is not allowed here (${methods.join(', ')})`,
          {
            issueType: 'not-supported',
            details: { allow: methods },
          },
        ),
      );
      return;
    }
    sendError(
      res,
      undefined,
      new DomainError('ROUTE.NOT_FOUND', `no route ${req.method} ${req.path}`, { issueType: 'not-found' }),
    );
  });

  // Errors raised by express itself (e.g. a malformed URL encoding, static files).
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const status = typeof err === 'object' && err !== null && 'status' in err ? Number(err.status) : 500;
    const e =
      status === 404
        ? new DomainError('ROUTE.NOT_FOUND', `no route ${req.method} ${req.path}`, { issueType: 'not-found' })
        : status === 400
          ? new DomainError('REQUEST.MALFORMED', 'the request is malformed', { issueType: 'structure' })
          : asDomainError(err);
    sendError(res, res.locals.operation as Operation | undefined, e);
  });

  return Object.assign(app, { unhandledOperations: unhandled });
}
