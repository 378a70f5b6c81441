/**
 * The neurologist's lesion-load trend page as a SMART App Launch v2 app, with its backend (a
 * "backend for frontend": the access token stays on the server):
 *
 *   GET  /smart/launch?iss=…&launch=…   EHR launch (iss must be an allowed EHR); without iss: standalone launch
 *        → discovery, PKCE S256 + state + nonce, 302 to the EHR's authorize endpoint, and a short-lived
 *          HttpOnly cookie that binds the state to this browser
 *   GET  /smart/callback?code=…&state=… the state checked against that cookie and taken (single use), the code
 *        exchanged, a server-side session created → 302 to app/index.html#s=<handle>
 *   GET  /smart/app/{asset}             the page (plain HTML + JS + CSS, strict CSP)
 *   GET  /smart/api/context             the launched patient, the user, the granted scopes
 *   GET  /smart/api/fhir/{type}         the launched patient's Observations / DiagnosticReports (searchset)
 *   GET  /smart/api/fhir/{type}/{id}    one of them, or the algorithm Device they reference
 *   GET  /smart/api/report/{id}         a DiagnosticReport's PDF
 *   POST /smart/logout                  ends the session
 *
 * Sessions: the session id is a 256-bit random secret, only in an HttpOnly, SameSite, HMAC-signed cookie
 * scoped to /smart (`mslesion_s_<handle>`); the page holds only the non-secret handle (from the URL fragment)
 * and sends it as `X-Smart-Session` — so two tabs launched for two patients never see each other's data, and
 * the custom header keeps cross-site pages from using the session (no CORS is offered). The API calls always
 * act for the session's patient: the page cannot ask for anyone else.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DomainError, isDomainError } from '../../domain/errors.ts';
import type { Analysis } from '../../domain/model/analysis.ts';
import type { AuditLog, AuditRecord } from '../../domain/ports/audit-log.port.ts';
import type { FhirJson, FhirResults } from '../../domain/ports/fhir-results.port.ts';
import type { Logger } from '../../domain/ports/logger.port.ts';
import type {
  PatientResultsReader,
  SmartOAuthClient,
  SmartSession,
  SmartSessionStore,
  TrendResourceType,
} from '../../domain/ports/smart-app.port.ts';
import { parseSmartScope } from '../../domain/ports/token-verifier.port.ts';
import { httpStatusOf } from '../errors.ts';
import type { ApiRequest, ApiResponse, RouteTable } from '../http.ts';
import type { ApiUseCases } from '../use-cases.ts';
import { baseUrlOf } from './bulk-export.ts';

export interface SmartAppSettings {
  /** FHIR base URLs (iss) allowed to launch the app (exact match, without a trailing slash). */
  readonly allowedIssuers: readonly string[];
  /** FHIR base URL for a standalone launch. */
  readonly standaloneIssuer?: string;
  /** The service's external base URL (the redirect URL is <base>/smart/callback); else from Host. */
  readonly publicBaseUrl?: string;
  readonly sessionTtlMs: number;
  readonly cookieSameSite: 'lax' | 'strict' | 'none';
  /** HMAC key of the cookies. */
  readonly cookieSecret: string | Uint8Array;
  /** Where the data come from (shown on the page). */
  readonly dataSource: 'service' | 'ehr';
}

export interface SmartAppDeps {
  readonly client: SmartOAuthClient;
  readonly sessions: SmartSessionStore;
  readonly reader: PatientResultsReader;
  readonly settings: SmartAppSettings;
  readonly logger: Logger;
  readonly audit?: AuditLog;
  readonly now?: () => number;
}

const HTML = 'text/html; charset=utf-8';
const HANDLE = /^[0-9a-f]{16}$/;
const SEARCH_PARAMS = ['code', 'date', '_count'];

/** The page's files (api/static/trends), read once. */
const ASSETS: Readonly<Record<string, { readonly type: string; readonly file: string }>> = {
  'index.html': { type: HTML, file: 'index.html' },
  'trends.js': { type: 'text/javascript; charset=utf-8', file: 'trends.js' },
  'trends.css': { type: 'text/css; charset=utf-8', file: 'trends.css' },
};
const assetCache = new Map<string, Uint8Array>();

function asset(name: string): Uint8Array {
  let b = assetCache.get(name);
  if (b === undefined) {
    const buf = readFileSync(new URL(`../static/trends/${ASSETS[name].file}`, import.meta.url));
    b = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    assetCache.set(name, b);
  }
  return b;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A small self-contained HTML page for errors of the browser-facing launch steps. */
function errorPage(e: unknown): ApiResponse {
  const error = isDomainError(e)
    ? e
    : new DomainError('INTERNAL.ERROR', 'internal error', { issueType: 'exception' });
  const text = error.issueType === 'exception' ? 'An internal error occurred.' : error.message;
  const body = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>MS lesion trends — launch failed</title>
<style>body{font:15px/1.5 system-ui,sans-serif;margin:3rem auto;max-width:40rem;color:#1f2933}
code{background:#eef2f7;padding:.1rem .3rem;border-radius:3px}h1{font-size:1.3rem;color:#9b1c1c}</style></head>
<body><h1>The app could not be launched</h1><p>${escapeHtml(text)}</p><p>Error code: <code>${escapeHtml(error.code)}</code></p>
<p>Launch the app again from the patient's chart in the EHR. If this keeps happening, give the error code to the
system administrator.</p></body></html>`;
  return {
    status: httpStatusOf(error),
    text: body,
    contentType: HTML,
    headers: {
      'cache-control': 'no-store',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    },
  };
}

function cookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    out.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return out;
}

function hasScope(scopes: readonly string[], type: string, permission: 'r' | 's'): boolean {
  return scopes.some((s) => {
    const p = parseSmartScope(s);
    return (
      p !== undefined &&
      (p.context === 'patient' || p.context === 'user') &&
      (p.resourceType === '*' || p.resourceType === type) &&
      p.permissions.has(permission)
    );
  });
}

export function smartAppRoutes(deps: SmartAppDeps | undefined): RouteTable {
  const now = deps?.now ?? Date.now;
  const need = (): SmartAppDeps => {
    if (deps === undefined)
      throw new DomainError('SMART.NOT_CONFIGURED', 'the SMART app is not configured in this deployment', {
        issueType: 'not-supported',
      });
    return deps;
  };
  const sign = (d: SmartAppDeps, value: string): string =>
    createHmac('sha256', d.settings.cookieSecret).update(value).digest('base64url');
  const signedOk = (d: SmartAppDeps, value: string, signature: string): boolean => {
    const a = Buffer.from(sign(d, value));
    const b = Buffer.from(signature);
    return a.length === b.length && timingSafeEqual(a, b);
  };
  const cookie = (
    d: SmartAppDeps,
    req: ApiRequest,
    name: string,
    value: string,
    path: string,
    maxAgeS: number,
  ) => {
    const secure = baseUrlOf(req, d.settings.publicBaseUrl).startsWith('https:');
    const sameSite =
      d.settings.cookieSameSite === 'none'
        ? 'None'
        : d.settings.cookieSameSite === 'strict'
          ? 'Strict'
          : 'Lax';
    return `${name}=${value}; Path=${path}; Max-Age=${Math.max(0, Math.floor(maxAgeS))}; HttpOnly; SameSite=${sameSite}${secure ? '; Secure' : ''}`;
  };
  const launchCookieName = (state: string): string =>
    `mslesion_l_${createHash('sha256').update(state).digest('hex').slice(0, 12)}`;

  const audit = async (
    session: SmartSession,
    req: ApiRequest,
    record: Pick<AuditRecord, 'action' | 'interaction' | 'entities'>,
    error?: unknown,
  ): Promise<void> => {
    const d = need();
    if (d.audit === undefined) return;
    const failed = error !== undefined;
    await d.audit
      .record({
        recorded: new Date(now()).toISOString(),
        ...record,
        outcome: !failed ? '0' : isDomainError(error) && error.issueType !== 'exception' ? '4' : '8',
        ...(failed ? { outcomeDescription: isDomainError(error) ? error.code : 'INTERNAL.ERROR' } : {}),
        agent: { who: session.tokens.fhirUser ?? session.tokens.userId ?? 'smart-user' },
        source: 'rest',
        ...(session.tokens.patient === undefined
          ? {}
          : { patient: { id: session.tokens.patient, system: session.fhirBaseUrl } }),
        ...(req.headers['x-request-id'] === undefined ? {} : { requestId: req.headers['x-request-id'] }),
      })
      .catch(() => undefined);
  };

  /** The request's session (cookie + handle), with a fresh access token. Throws SMART.NO_SESSION / SESSION_EXPIRED. */
  const sessionOf = async (req: ApiRequest, allowQueryHandle = false): Promise<SmartSession> => {
    const d = need();
    const noSession = new DomainError('SMART.NO_SESSION', 'no app session: launch the app from the EHR', {
      issueType: 'login',
    });
    const fromQuery = allowQueryHandle && typeof req.query.s === 'string' ? req.query.s : undefined;
    const handle = req.headers['x-smart-session'] ?? fromQuery;
    if (handle === undefined || !HANDLE.test(handle)) throw noSession;
    const raw = cookies(req.headers.cookie).get(`mslesion_s_${handle}`);
    const dot = raw?.lastIndexOf('.') ?? -1;
    if (raw === undefined || dot <= 0) throw noSession;
    const id = raw.slice(0, dot);
    if (!signedOk(d, id, raw.slice(dot + 1))) throw noSession;
    const session = await d.sessions.get(id);
    if (session?.handle !== handle) throw noSession;
    if (session.tokens.expiresAt - 30_000 > now()) return session;
    if (session.tokens.refreshToken === undefined) {
      await d.sessions.remove(id);
      throw new DomainError('SMART.SESSION_EXPIRED', 'the session has expired: launch the app again', {
        issueType: 'login',
      });
    }
    try {
      const tokens = await d.client.refresh(session);
      const refreshed: SmartSession = { ...session, tokens };
      await d.sessions.save(refreshed);
      return refreshed;
    } catch (e) {
      await d.sessions.remove(id);
      if (isDomainError(e) && e.issueType === 'security')
        throw new DomainError('SMART.SESSION_EXPIRED', 'the EHR ended the session: launch the app again', {
          issueType: 'login',
          cause: e,
        });
      throw e;
    }
  };

  const requireScope = (session: SmartSession, type: string, permission: 'r' | 's'): void => {
    if (type === 'Device') return; // referenced by the patient's results (readers check)
    if (!hasScope(session.tokens.scopes, type, permission))
      throw new DomainError(
        'AUTH.INSUFFICIENT_SCOPE',
        `the EHR did not grant patient/${type}.${permission === 's' ? 'rs' : 'r'} to this app`,
        { issueType: 'forbidden' },
      );
  };

  const noStore = { 'cache-control': 'no-store' };

  return {
    smartLaunch: {
      async handler(req) {
        try {
          const d = need();
          const iss = typeof req.query.iss === 'string' ? req.query.iss.replace(/\/+$/, '') : undefined;
          const launch = typeof req.query.launch === 'string' ? req.query.launch : undefined;
          let fhirBaseUrl: string;
          if (iss !== undefined) {
            if (!d.settings.allowedIssuers.includes(iss) && iss !== d.settings.standaloneIssuer)
              throw new DomainError(
                'SMART.ISSUER_NOT_ALLOWED',
                'this EHR is not registered to launch the app',
                {
                  issueType: 'forbidden',
                },
              );
            fhirBaseUrl = iss;
          } else if (launch !== undefined)
            throw new DomainError('SMART.LAUNCH_WITHOUT_ISS', 'an EHR launch needs iss beside launch', {
              issueType: 'required',
            });
          else if (d.settings.standaloneIssuer !== undefined) fhirBaseUrl = d.settings.standaloneIssuer;
          else
            throw new DomainError('SMART.NO_ISSUER', 'no EHR is configured for a standalone launch', {
              issueType: 'not-supported',
            });
          const redirectUri = `${baseUrlOf(req, d.settings.publicBaseUrl)}/smart/callback`;
          const { authorizeUrl, pending } = await d.client.begin({
            fhirBaseUrl,
            ...(launch === undefined ? {} : { launch }),
            redirectUri,
          });
          await d.sessions.savePending(pending);
          d.logger.info({ kind: pending.kind }, 'SMART launch started');
          return {
            status: 302,
            headers: {
              location: authorizeUrl,
              'set-cookie': cookie(
                d,
                req,
                launchCookieName(pending.state),
                sign(d, pending.state),
                '/smart/callback',
                600,
              ),
              ...noStore,
            },
          };
        } catch (e) {
          return errorPage(e);
        }
      },
    },
    smartCallback: {
      async handler(req) {
        try {
          const d = need();
          const q = req.query;
          if (typeof q.error === 'string')
            throw new DomainError(
              'SMART.AUTHORIZATION_DENIED',
              `the EHR did not authorize the app (${q.error}${typeof q.error_description === 'string' ? `: ${q.error_description}` : ''})`,
              { issueType: 'forbidden' },
            );
          const badState = new DomainError(
            'SMART.BAD_STATE',
            'this sign-in was not started by this browser, or it took too long',
            { issueType: 'invalid' },
          );
          if (typeof q.state !== 'string' || typeof q.code !== 'string') throw badState;
          const bound = cookies(req.headers.cookie).get(launchCookieName(q.state));
          if (bound === undefined || !signedOk(d, q.state, bound)) throw badState;
          const pending = await d.sessions.takePending(q.state);
          if (pending === undefined) throw badState;
          const tokens = await d.client.exchange(pending, q.code);
          if (tokens.patient === undefined)
            throw new DomainError(
              'SMART.NO_PATIENT',
              'the EHR gave no patient context: launch from a patient chart',
              {
                issueType: 'business-rule',
              },
            );
          if (!/^[A-Za-z0-9\-.]{1,64}$/.test(tokens.patient))
            throw new DomainError('SMART.NO_PATIENT', 'the EHR gave a malformed patient id', {
              issueType: 'invalid',
            });
          if (!hasScope(tokens.scopes, 'Observation', 's'))
            throw new DomainError('AUTH.INSUFFICIENT_SCOPE', 'the EHR did not grant patient/Observation.rs', {
              issueType: 'forbidden',
            });
          const t = now();
          const session: SmartSession = {
            id: randomBytes(32).toString('base64url'),
            handle: randomBytes(8).toString('hex'),
            fhirBaseUrl: pending.fhirBaseUrl,
            tokenEndpoint: pending.tokenEndpoint,
            tokens,
            kind: pending.kind,
            createdAt: t,
            expiresAt:
              tokens.refreshToken === undefined
                ? Math.min(t + d.settings.sessionTtlMs, tokens.expiresAt)
                : t + d.settings.sessionTtlMs,
          };
          await d.sessions.save(session);
          await audit(session, req, {
            action: 'E',
            interaction: 'operation',
            entities: [{ query: 'smart-launch' }],
          });
          d.logger.info({ kind: session.kind, scopes: tokens.scopes.length }, 'SMART session started');
          return {
            status: 302,
            headers: {
              location: `app/index.html#s=${session.handle}`,
              'set-cookie': cookie(
                d,
                req,
                `mslesion_s_${session.handle}`,
                `${session.id}.${sign(d, session.id)}`,
                '/smart',
                (session.expiresAt - t) / 1000,
              ),
              ...noStore,
            },
          };
        } catch (e) {
          return errorPage(e);
        }
      },
    },
    smartAppIndex: {
      handler: () => Promise.resolve({ status: 302, headers: { location: 'app/index.html' } }),
    },
    smartAppAsset: {
      handler(req) {
        const a = ASSETS[req.params.asset];
        return Promise.resolve({
          status: 200,
          bytes: asset(req.params.asset),
          contentType: a.type,
          headers: {
            'cache-control': 'no-cache',
            'x-content-type-options': 'nosniff',
            'referrer-policy': 'no-referrer',
            ...(a.type === HTML
              ? {
                  'content-security-policy':
                    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
                    `base-uri 'none'; form-action 'none'; frame-ancestors 'self'${deps === undefined ? '' : frameAncestors(deps.settings)}`,
                }
              : {}),
          },
        });
      },
    },
    smartContext: {
      async handler(req) {
        const d = need();
        const session = await sessionOf(req);
        const name = await d.reader.patientName?.(session).catch(() => undefined);
        return {
          status: 200,
          json: {
            patient: { id: session.tokens.patient, ...(name === undefined ? {} : { name }) },
            ...(session.tokens.fhirUser === undefined ? {} : { fhirUser: session.tokens.fhirUser }),
            fhirBaseUrl: session.fhirBaseUrl,
            dataSource: d.settings.dataSource,
            launch: session.kind,
            scopes: session.tokens.scopes,
            expiresAt: new Date(session.expiresAt).toISOString(),
            needPatientBanner: session.tokens.needPatientBanner ?? true,
          },
          headers: noStore,
        };
      },
    },
    smartSearch: {
      async handler(req) {
        const d = need();
        const session = await sessionOf(req);
        const type = req.params.type as 'Observation' | 'DiagnosticReport';
        const params: Record<string, string> = {};
        for (const k of SEARCH_PARAMS) {
          const v = req.query[k];
          if (typeof v === 'string') params[k] = v;
          else if (typeof v === 'number') params[k] = String(v);
        }
        const entities = [{ query: `${type}?${new URLSearchParams(params).toString()}` }];
        try {
          requireScope(session, type, 's');
          const bundle = await d.reader.search(session, type, params);
          await audit(session, req, { action: 'E', interaction: 'search', entities });
          return { status: 200, json: bundle, contentType: 'application/fhir+json', headers: noStore };
        } catch (e) {
          await audit(session, req, { action: 'E', interaction: 'search', entities }, e);
          throw e;
        }
      },
    },
    smartRead: {
      async handler(req) {
        const d = need();
        const session = await sessionOf(req);
        const type = req.params.type as TrendResourceType;
        const entities = [{ reference: `${type}/${req.params.id}` }];
        try {
          requireScope(session, type, 'r');
          const r = await d.reader.read(session, type, req.params.id);
          await audit(session, req, { action: 'R', interaction: 'read', entities });
          return { status: 200, json: r, contentType: 'application/fhir+json', headers: noStore };
        } catch (e) {
          await audit(session, req, { action: 'R', interaction: 'read', entities }, e);
          throw e;
        }
      },
    },
    smartReport: {
      async handler(req) {
        const d = need();
        const session = await sessionOf(req, true);
        const entities = [{ reference: `DiagnosticReport/${req.params.id}` }];
        try {
          requireScope(session, 'DiagnosticReport', 'r');
          const pdf = await d.reader.reportPdf(session, req.params.id);
          await audit(session, req, { action: 'R', interaction: 'read', entities });
          return {
            status: 200,
            bytes: pdf,
            contentType: 'application/pdf',
            headers: {
              ...noStore,
              'content-disposition': `inline; filename="ms-lesion-report-${req.params.id.slice(0, 8)}.pdf"`,
              'x-content-type-options': 'nosniff',
            },
          };
        } catch (e) {
          await audit(session, req, { action: 'R', interaction: 'read', entities }, e);
          throw e;
        }
      },
    },
    smartLogout: {
      async handler(req) {
        const d = need();
        const session = await sessionOf(req).catch(() => undefined);
        if (session === undefined) return { status: 204 };
        await d.sessions.remove(session.id);
        return {
          status: 204,
          headers: {
            'set-cookie': cookie(d, req, `mslesion_s_${session.handle}`, '', '/smart', 0),
            ...noStore,
          },
        };
      },
    },
  };
}

/** The origins of the allowed EHRs (CSP frame-ancestors: the EHR may show the page in a frame). */
function frameAncestors(settings: SmartAppSettings): string {
  const origins = new Set<string>();
  for (const u of [
    ...settings.allowedIssuers,
    ...(settings.standaloneIssuer === undefined ? [] : [settings.standaloneIssuer]),
  ])
    try {
      origins.add(new URL(u).origin);
    } catch {
      // not a URL: config validation reports it
    }
  return [...origins].map((o) => ` ${o}`).join('');
}

/** Where the page's data come from when smart.dataSource = service: the service's own results. */
export interface ServiceReaderDeps {
  readonly useCases: Pick<ApiUseCases, 'listAnalyses' | 'getArtifact'>;
  readonly fhir: FhirResults;
  /** Further identifiers of the launched patient (e.g. read from the EHR's Patient), for identifier-keyed orders. */
  readonly patientIdentifiers?: (
    session: SmartSession,
  ) => Promise<readonly { system?: string; value: string }[]>;
}

const MAX_ANALYSES = 1000;

/**
 * PatientResultsReader over the service's own results (the same mapping the FHIR API serves): every succeeded
 * analysis of the launched patient — orders that referenced the EHR's Patient/<id>, and orders keyed by one of
 * the patient's identifiers when `patientIdentifiers` knows them.
 */
export function serviceResultsReader(deps: ServiceReaderDeps): PatientResultsReader {
  const analysesOf = async (session: SmartSession): Promise<Analysis[]> => {
    const patient = session.tokens.patient;
    if (patient === undefined)
      throw new DomainError('SMART.NO_PATIENT', 'the launch gave no patient context', {
        issueType: 'business-rule',
      });
    const keys = [deps.fhir.patientOf({ reference: `Patient/${patient}` })];
    for (const i of (await deps.patientIdentifiers?.(session).catch(() => [])) ?? [])
      keys.push({ patientId: i.value, ...(i.system === undefined ? {} : { patientIdSystem: i.system }) });
    const out = new Map<string, Analysis>();
    for (const key of keys)
      for (let offset = 0; offset < MAX_ANALYSES; offset += 100) {
        const page = await deps.useCases.listAnalyses({ ...key, status: 'succeeded', limit: 100, offset });
        for (const a of page.items) out.set(a.id, a);
        if (offset + page.items.length >= page.total || page.items.length === 0) break;
      }
    return [...out.values()];
  };
  const resourcesOf = async (
    session: SmartSession,
  ): Promise<{ analysis: Analysis; resource: FhirJson }[]> => {
    const out: { analysis: Analysis; resource: FhirJson }[] = [];
    for (const analysis of await analysesOf(session))
      for (const resource of await deps.fhir.resultResources(analysis)) out.push({ analysis, resource });
    return out;
  };
  const notFound = (what: string) =>
    new DomainError('SMART.NOT_FOUND', `${what} is not among this patient's results`, {
      issueType: 'not-found',
    });
  return {
    async search(session, type, params) {
      const all = await resourcesOf(session);
      const matched = deps.fhir.matches(
        all.map((x) => x.resource),
        type,
        Object.fromEntries(Object.entries(params).filter(([k]) => k !== '_count')),
      );
      const seen = new Set<string>();
      const entry = [];
      for (const r of matched) {
        const key = `${r.resourceType}/${r.id ?? ''}`;
        if (seen.has(key)) continue;
        seen.add(key);
        entry.push({ fullUrl: key, resource: r, search: { mode: 'match' } });
      }
      const count = '_count' in params ? Number(params._count) : 1000;
      return { resourceType: 'Bundle', type: 'searchset', total: entry.length, entry: entry.slice(0, count) };
    },
    async read(session, type, id) {
      const hit = (await resourcesOf(session)).find(
        (x) => x.resource.resourceType === type && x.resource.id === id,
      );
      if (hit === undefined) throw notFound(`${type}/${id}`);
      return hit.resource;
    },
    async reportPdf(session, reportId) {
      const hit = (await resourcesOf(session)).find(
        (x) => x.resource.resourceType === 'DiagnosticReport' && x.resource.id === reportId,
      );
      if (hit === undefined) throw notFound(`DiagnosticReport/${reportId}`);
      try {
        return (await deps.useCases.getArtifact(hit.analysis.id, 'report.pdf')).data;
      } catch (e) {
        if (isDomainError(e) && e.issueType === 'not-found')
          throw notFound(`the PDF of DiagnosticReport/${reportId}`);
        throw e;
      }
    },
  };
}
