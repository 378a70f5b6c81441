/**
 * A SMART on FHIR "EHR" for tests of the trend page: a real OpenID Connect / OAuth 2.0 authorization server
 * (oidc-provider) doing what a SMART App Launch v2 EHR does — authorization code with PKCE (S256 required,
 * public and confidential clients), a login form (user dr-house / password from `PASSWORD`), automatic consent,
 * EHR launch contexts (`launch` → patient) and standalone launches (a patient picker on the login form), the
 * `patient` / `need_patient_banner` token-response parameters, `fhirUser` in the id_token, JWT access tokens
 * for the FHIR server, refresh tokens with offline_access — plus that FHIR server: its
 * `/.well-known/smart-configuration`, and a FHIR API (@medplum/fhir-router over an in-memory repository)
 * that accepts only those tokens and only for the token's patient (patient/ scopes).
 *
 *   const ehr = await startSmartEhr({ redirectUris: ['http://127.0.0.1:8080/smart/callback'] });
 *   const launch = ehr.createLaunch('pat-1');   // what the EHR puts in the launch URL
 *   ehr.fhirBaseUrl, ehr.issuer, ehr.repo; await ehr.stop();
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { FhirRouter, MemoryRepository, type FhirRequest } from '@medplum/fhir-router';
import { getStatus } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import Provider, { type Adapter, type AdapterPayload } from 'oidc-provider';
import { freePort } from '../../helpers/orthanc.ts';

export const SMART_CLIENT_ID = 'mslesion-trends';
export const SMART_CONFIDENTIAL_ID = 'mslesion-trends-confidential';
export const SMART_CLIENT_SECRET = 'a-long-client-secret-for-tests-only-0123456789';
export const USERNAME = 'dr-house';
export const PASSWORD = 'correct horse battery staple';
const RESOURCE_SCOPES =
  'patient/Observation.rs patient/DiagnosticReport.rs patient/Patient.r patient/Device.r patient/Binary.r';

export interface SmartEhr {
  readonly issuer: string;
  /** The FHIR base URL (the launch's iss). */
  readonly fhirBaseUrl: string;
  readonly repo: MemoryRepository;
  /** Registers an EHR launch context for a patient; returns the opaque launch value. */
  createLaunch(patientId: string): string;
  /** Token responses issued, with the patient given. */
  readonly issued: { patient?: string; scope?: string }[];
  /** Denies the next authorization (the user clicks "deny"). */
  denyNext(): void;
  stop(): Promise<void>;
}

function memoryAdapter(): (name: string) => Adapter {
  const stores = new Map<string, Map<string, { payload: AdapterPayload; expiresAt: number }>>();
  return (name) => {
    const store = stores.get(name) ?? new Map<string, { payload: AdapterPayload; expiresAt: number }>();
    stores.set(name, store);
    const live = (id: string): AdapterPayload | undefined => {
      const e = store.get(id);
      if (e === undefined) return undefined;
      if (Date.now() > e.expiresAt) {
        store.delete(id);
        return undefined;
      }
      return e.payload;
    };
    return {
      upsert: (id, payload, expiresIn) => {
        store.set(id, { payload, expiresAt: Date.now() + (expiresIn ?? 3600) * 1000 });
        return Promise.resolve();
      },
      find: (id) => Promise.resolve(live(id)),
      findByUserCode: (code) =>
        Promise.resolve([...store.keys()].map(live).find((p) => p?.userCode === code)),
      findByUid: (uid) => Promise.resolve([...store.keys()].map(live).find((p) => p?.uid === uid)),
      consume: (id) => {
        const p = live(id);
        if (p !== undefined) p.consumed = Math.floor(Date.now() / 1000);
        return Promise.resolve();
      },
      destroy: (id) => {
        store.delete(id);
        return Promise.resolve();
      },
      revokeByGrantId: (grantId) => {
        for (const [id, e] of store) if (e.payload.grantId === grantId) store.delete(id);
        return Promise.resolve();
      },
    };
  };
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function html(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(body);
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function pickerPage(uid: string, patients: readonly string[]): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test EHR — choose a patient</title></head>
<body><h1>Choose a patient</h1><form method="post" action="/interaction/${esc(uid)}/patient">
<label>Patient <select name="patient">${patients.map((p) => `<option value="${esc(p)}">${esc(p)}</option>`).join('')}</select></label>
<button type="submit" name="decision" value="allow">Open</button>
</form></body></html>`;
}

function loginPage(uid: string, picker: readonly string[], error?: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test EHR sign-in</title></head>
<body><h1>Test EHR — sign in</h1>${error === undefined ? '' : `<p role="alert">${esc(error)}</p>`}
<form method="post" action="/interaction/${esc(uid)}/login">
<label>User <input name="login" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
${picker.length === 0 ? '' : `<label>Patient <select name="patient">${picker.map((p) => `<option value="${esc(p)}">${esc(p)}</option>`).join('')}</select></label>`}
<button type="submit" name="decision" value="allow">Sign in</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form></body></html>`;
}

interface OidcContext {
  readonly path: string;
  readonly method: string;
  query: Record<string, unknown>;
  body: unknown;
  readonly oidc?: {
    readonly entities?: {
      readonly AuthorizationCode?: { readonly grantId?: string };
      readonly RefreshToken?: { readonly grantId?: string };
    };
  };
}

export async function startSmartEhr(options: {
  readonly redirectUris: readonly string[];
  /** Patients offered by the standalone launch's picker. */
  readonly patients?: readonly string[];
  readonly accessTokenTtlSeconds?: number;
}): Promise<SmartEhr> {
  const asPort = await freePort();
  const fhirPort = await freePort();
  const issuer = `http://127.0.0.1:${asPort}`;
  const fhirBaseUrl = `http://127.0.0.1:${fhirPort}/fhir`;
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signing = { ...(await exportJWK(privateKey)), kid: 'ehr-1', alg: 'RS256', use: 'sig' };
  const launches = new Map<string, string>();
  /** Patient of each grant (from the launch context or the standalone picker). */
  const patientByGrant = new Map<string, string>();
  /** Standalone picks by the authorization request's state. */
  const picked = new Map<string, string>();
  const issued: { patient?: string; scope?: string }[] = [];
  /** Patient of each access token issued (the token response's patient). */
  const tokenPatients = new Map<string, string>();
  let deny = false;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: SMART_CLIENT_ID,
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [...options.redirectUris],
      },
      {
        client_id: SMART_CONFIDENTIAL_ID,
        client_secret: SMART_CLIENT_SECRET,
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [...options.redirectUris],
      },
    ],
    adapter: memoryAdapter(),
    jwks: { keys: [signing] },
    cookies: { keys: [randomBytes(16).toString('hex')] },
    scopes: ['openid', 'offline_access', 'fhirUser', 'launch', 'launch/patient'],
    claims: { openid: ['sub'], fhirUser: ['fhirUser'] },
    conformIdTokenClaims: false,
    extraParams: ['launch', 'aud'],
    // every authorization asks for consent again, so that each launch binds its own patient to its grant
    loadExistingGrant: (ctx) => {
      const grantId = (ctx.oidc.result as { consent?: { grantId?: string } } | undefined)?.consent?.grantId;
      return grantId === undefined ? undefined : ctx.oidc.provider.Grant.find(grantId);
    },
    renderError: (ctx, out) => {
      ctx.type = 'html';
      ctx.body = `<!doctype html><title>Test EHR error</title><pre>${esc(JSON.stringify(out))}</pre>`;
    },
    pkce: { required: () => true },
    ttl: {
      AccessToken: options.accessTokenTtlSeconds ?? 300,
      AuthorizationCode: 60,
      IdToken: 300,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 3600,
    },
    findAccount: (_ctx, id) =>
      Promise.resolve({
        accountId: id,
        claims: () => Promise.resolve({ sub: id, fhirUser: `Practitioner/${id}` }),
      }),
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => fhirBaseUrl,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource) => {
          if (resource !== fhirBaseUrl) throw new Error(`unknown resource ${resource}`);
          return {
            scope: RESOURCE_SCOPES,
            audience: fhirBaseUrl,
            accessTokenTTL: options.accessTokenTtlSeconds ?? 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
  });
  // SMART launch context in the token response (and in the JWT, for the FHIR server).
  provider.use(async (ctx: OidcContext, next: () => Promise<void>) => {
    // offline access is consented explicitly (OpenID Connect asks prompt=consent for it): this EHR always asks
    const scope = ctx.query.scope;
    if (ctx.path === '/auth' && typeof scope === 'string' && scope.split(' ').includes('offline_access'))
      ctx.query = { ...ctx.query, prompt: 'consent' };
    await next();
    if (ctx.path !== '/token' || typeof ctx.body !== 'object' || ctx.body === null) return;
    const body = ctx.body as Record<string, unknown>;
    if (typeof body.access_token !== 'string') return;
    const grantId =
      ctx.oidc?.entities?.AuthorizationCode?.grantId ?? ctx.oidc?.entities?.RefreshToken?.grantId;
    const patient = grantId === undefined ? undefined : patientByGrant.get(grantId);
    if (patient !== undefined) {
      body.patient = patient;
      body.need_patient_banner = false;
      tokenPatients.set(body.access_token, patient);
    }
    issued.push({
      ...(patient === undefined ? {} : { patient }),
      ...(typeof body.scope === 'string' ? { scope: body.scope } : {}),
    });
  });
  provider.on('server_error', () => undefined);
  const callback = provider.callback();

  const consent = async (
    req: IncomingMessage,
    res: ServerResponse,
    details: Awaited<ReturnType<typeof provider.interactionDetails>>,
    patient: string | undefined,
  ): Promise<void> => {
    // granted automatically (the EHR admin approved the app), bound to the launch's patient
    const params = details.params as Record<string, unknown>;
    const grant = new provider.Grant({
      accountId: details.session?.accountId ?? USERNAME,
      clientId: String(params.client_id),
    });
    const missing = details.prompt.details as {
      missingOIDCScope?: string[];
      missingOIDCClaims?: string[];
      missingResourceScopes?: Record<string, string[]>;
    };
    if (missing.missingOIDCScope !== undefined) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims !== undefined) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {}))
      grant.addResourceScope(indicator, scopes.join(' '));
    const grantId = await grant.save();
    if (patient !== undefined) patientByGrant.set(grantId, patient);
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  };

  const interaction = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const details = await provider.interactionDetails(req, res);
    const params = details.params as Record<string, unknown>;
    const launch = typeof params.launch === 'string' ? params.launch : undefined;
    const state = typeof params.state === 'string' ? params.state : '';
    const scope = typeof params.scope === 'string' ? params.scope : '';
    const standalone = launch === undefined && scope.split(' ').includes('launch/patient');
    const patients = standalone ? (options.patients ?? []) : [];
    const denied = async (): Promise<void> => {
      deny = false;
      await provider.interactionFinished(req, res, {
        error: 'access_denied',
        error_description: 'the user denied the request',
      });
    };
    if (req.method === 'POST') {
      const form = await readForm(req);
      if (form.get('decision') === 'deny' || deny) {
        await denied();
        return;
      }
      const p = form.get('patient');
      if (standalone && p !== null) picked.set(state, p);
      if (req.url?.endsWith('/patient') === true) {
        await consent(req, res, details, picked.get(state));
        return;
      }
      if (form.get('login') !== USERNAME || form.get('password') !== PASSWORD) {
        html(res, 200, loginPage(details.uid, patients, 'Wrong user or password.'));
        return;
      }
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: USERNAME } },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    if (launch !== undefined && !launches.has(launch)) {
      html(res, 400, '<!doctype html><title>Unknown launch</title><p>Unknown launch context.</p>');
      return;
    }
    if (details.prompt.name === 'login') {
      html(res, 200, loginPage(details.uid, patients));
      return;
    }
    if (deny) {
      await denied();
      return;
    }
    if (standalone && !picked.has(state)) {
      html(res, 200, pickerPage(details.uid, patients));
      return;
    }
    await consent(req, res, details, launch === undefined ? picked.get(state) : launches.get(launch));
  };

  const asServer: Server = createServer((req, res) => {
    if (req.url?.startsWith('/interaction/') === true)
      interaction(req, res).catch((e: unknown) => {
        html(res, 500, `<!doctype html><p>${esc(e instanceof Error ? e.message : String(e))}</p>`);
      });
    else void callback(req, res);
  });

  // The FHIR server: SMART discovery, and a patient-scoped FHIR API over an in-memory repository.
  const repo = new MemoryRepository();
  const router = new FhirRouter();
  const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
  const smartConfiguration = {
    issuer,
    jwks_uri: `${issuer}/jwks`,
    authorization_endpoint: `${issuer}/auth`,
    token_endpoint: `${issuer}/token`,
    token_endpoint_auth_methods_supported: ['none', 'client_secret_basic'],
    grant_types_supported: ['authorization_code', 'refresh_token'],
    scopes_supported: [
      'openid',
      'fhirUser',
      'launch',
      'launch/patient',
      'offline_access',
      ...RESOURCE_SCOPES.split(' '),
    ],
    response_types_supported: ['code'],
    code_challenge_methods_supported: ['S256'],
    capabilities: [
      'launch-ehr',
      'launch-standalone',
      'client-public',
      'client-confidential-symmetric',
      'context-ehr-patient',
      'context-standalone-patient',
      'sso-openid-connect',
      'permission-patient',
      'permission-v2',
      'permission-offline',
    ],
  };
  const fhirServer: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', fhirBaseUrl);
      const send = (status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/fhir+json' });
        res.end(JSON.stringify(body));
      };
      if (url.pathname === '/fhir/.well-known/smart-configuration') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(smartConfiguration));
        return;
      }
      const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      let patient: string;
      let scopes: string[];
      try {
        if (m === null) throw new Error('no token');
        const { payload } = await jwtVerify(m[1], jwks, { issuer, audience: fhirBaseUrl });
        scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : [];
        // the patient of a token: the launch context it was issued with
        patient = tokenPatients.get(m[1]) ?? '';
      } catch {
        send(401, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'login' }] });
        return;
      }
      const parts = url.pathname
        .replace(/^\/fhir\/?/, '')
        .split('/')
        .filter(Boolean);
      const type = parts[0] ?? '';
      const permission = parts.length === 1 ? 's' : 'r';
      const allowed = scopes.some((s) => {
        const sm = /^patient\/(\w+|\*)\.([a-z]+)$/.exec(s);
        return sm !== null && (sm[1] === type || sm[1] === '*') && sm[2].includes(permission);
      });
      if (!allowed || req.method !== 'GET' || patient === '') {
        send(403, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'forbidden' }] });
        return;
      }
      const query: Record<string, string | string[]> = {};
      for (const [k, v] of url.searchParams) query[k] = k in query ? [...[query[k]].flat(), v] : v;
      if (parts.length === 1 && type !== 'Patient') {
        if (query.patient !== patient && query.patient !== `Patient/${patient}`) {
          send(403, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'forbidden' }] });
          return;
        }
      }
      if (type === 'Patient' && parts[1] !== patient) {
        send(403, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'forbidden' }] });
        return;
      }
      const request: FhirRequest = {
        method: 'GET',
        url: url.pathname.replace(/^\/fhir/, '') + url.search,
        pathname: '',
        params: {},
        query: {},
        body: undefined,
        headers: {},
      };
      const [outcome, resource] = await router.handleRequest(request, repo);
      send(getStatus(outcome), resource ?? outcome);
    })().catch((e: unknown) => {
      res.writeHead(500);
      res.end(String(e));
    });
  });

  await new Promise<void>((r) => asServer.listen(asPort, '127.0.0.1', r));
  await new Promise<void>((r) => fhirServer.listen(fhirPort, '127.0.0.1', r));
  const close = (s: Server) =>
    new Promise<void>((r) => {
      s.closeAllConnections();
      s.close(() => {
        r();
      });
    });
  return {
    issuer,
    fhirBaseUrl,
    repo,
    createLaunch(patientId) {
      const launch = randomBytes(12).toString('base64url');
      launches.set(launch, patientId);
      return launch;
    },
    issued,
    denyNext() {
      deny = true;
    },
    async stop() {
      await Promise.all([close(asServer), close(fhirServer)]);
    },
  };
}

/** Stores resources (with their ids) in the test EHR, as the service's FHIR delivery would have. */
export async function putResources(ehr: SmartEhr, resources: readonly Resource[]): Promise<void> {
  for (const r of resources) await ehr.repo.createResource(r, undefined, true);
}
