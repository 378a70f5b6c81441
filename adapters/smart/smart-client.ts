/**
 * SMART App Launch v2 client (authorization code + PKCE) for the trend page:
 *
 * - discovery: `<fhir base>/.well-known/smart-configuration` (cached 5 min per base), checked for an
 *   authorization and token endpoint, S256 among code_challenge_methods_supported (when listed), the launch
 *   capability used (launch-ehr / launch-standalone, when capabilities are listed), and https endpoints (plain
 *   http only on loopback hosts, for tests);
 * - authorize: response_type=code, client_id, redirect_uri, scope (EHR launch: `launch`; standalone:
 *   `launch/patient` in its place), state (256 random bits), aud = the FHIR base, PKCE S256 (384-bit verifier),
 *   nonce when `openid` is asked, and the EHR's `launch` token;
 * - token: the code with its code_verifier (public client: client_id in the body; confidential: HTTP Basic
 *   client_secret_basic), token_type Bearer required, launch context (patient, encounter,
 *   need_patient_banner); an id_token is verified (jose: signature from the issuer's JWKS, issuer, audience =
 *   client id, expiry, nonce) and gives fhirUser and sub;
 * - refresh: grant_type refresh_token, keeping the launch context.
 *
 * Errors: SMART.DISCOVERY_FAILED, SMART.UNSUPPORTED, SMART.INSECURE_ENDPOINT, SMART.TOKEN_REJECTED (4xx, not
 * retryable), SMART.TOKEN_UNAVAILABLE (network, 5xx), SMART.ID_TOKEN_INVALID.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey } from 'jose';
import { DomainError } from '../../domain/errors.ts';
import type {
  PendingLaunch,
  SmartOAuthClient,
  SmartSession,
  SmartTokens,
} from '../../domain/ports/smart-app.port.ts';

export interface SmartAppClientOptions {
  readonly clientId: string;
  /** Confidential client (client_secret_basic); absent: public client (PKCE only). */
  readonly clientSecret?: string;
  /** Scopes of an EHR launch, e.g. 'launch openid fhirUser patient/Observation.rs patient/DiagnosticReport.rs'. */
  readonly scope: string;
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
  readonly now?: () => number;
}

export interface SmartConfiguration {
  readonly issuer?: string;
  readonly jwks_uri?: string;
  readonly authorization_endpoint: string;
  readonly token_endpoint: string;
  readonly capabilities?: readonly string[];
  readonly code_challenge_methods_supported?: readonly string[];
  readonly token_endpoint_auth_methods_supported?: readonly string[];
}

interface TokenResponse {
  readonly access_token?: unknown;
  readonly token_type?: unknown;
  readonly expires_in?: unknown;
  readonly scope?: unknown;
  readonly refresh_token?: unknown;
  readonly id_token?: unknown;
  readonly patient?: unknown;
  readonly encounter?: unknown;
  readonly need_patient_banner?: unknown;
  readonly error?: unknown;
  readonly error_description?: unknown;
}

const b64url = (b: Buffer): string => b.toString('base64url');

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Only https endpoints (http on loopback hosts, for tests and local EHR sandboxes). */
export function checkEndpoint(url: string, what: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new DomainError('SMART.DISCOVERY_FAILED', `${what} is not a URL`, { issueType: 'invalid' });
  }
  if (u.protocol !== 'https:' && !(u.protocol === 'http:' && isLoopback(u.hostname)))
    throw new DomainError('SMART.INSECURE_ENDPOINT', `${what} must be https (${u.origin})`, {
      issueType: 'security',
    });
  return url;
}

/** The scopes of a standalone launch: `launch/patient` where an EHR launch asks `launch`. */
export function standaloneScope(scope: string): string {
  const parts = scope.split(/\s+/).filter((s) => s !== '');
  const out = parts.map((s) => (s === 'launch' ? 'launch/patient' : s));
  if (!out.includes('launch/patient')) out.push('launch/patient');
  return [...new Set(out)].join(' ');
}

export class SmartAppClient implements SmartOAuthClient {
  readonly #o: SmartAppClientOptions;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  readonly #configs = new Map<string, { at: number; value: Promise<SmartConfiguration> }>();
  readonly #jwks = new Map<string, JWTVerifyGetKey>();

  constructor(options: SmartAppClientOptions) {
    this.#o = options;
    this.#fetch = options.fetch ?? fetch;
    this.#now = options.now ?? Date.now;
  }

  async #request(url: string, init: RequestInit, code: string): Promise<Response> {
    try {
      return await this.#fetch(url, { ...init, signal: AbortSignal.timeout(this.#o.timeoutMs ?? 15_000) });
    } catch (e) {
      throw new DomainError(code, `cannot reach ${new URL(url).origin}: ${(e as Error).message}`, {
        issueType: 'transient',
        cause: e,
      });
    }
  }

  /** The SMART configuration of a FHIR server (cached for 5 minutes). */
  configuration(fhirBaseUrl: string): Promise<SmartConfiguration> {
    const base = fhirBaseUrl.replace(/\/+$/, '');
    const hit = this.#configs.get(base);
    if (hit !== undefined && this.#now() - hit.at < 300_000) return hit.value;
    const value = this.#discover(base).catch((e: unknown) => {
      this.#configs.delete(base);
      throw e;
    });
    this.#configs.set(base, { at: this.#now(), value });
    return value;
  }

  async #discover(base: string): Promise<SmartConfiguration> {
    const url = `${base}/.well-known/smart-configuration`;
    const res = await this.#request(
      url,
      { headers: { accept: 'application/json' } },
      'SMART.DISCOVERY_FAILED',
    );
    if (!res.ok)
      throw new DomainError('SMART.DISCOVERY_FAILED', `${url} answered ${res.status}`, {
        issueType: res.status >= 500 ? 'transient' : 'not-found',
      });
    const body: unknown = await res.json().catch(() => undefined);
    if (
      !isRecord(body) ||
      typeof body.authorization_endpoint !== 'string' ||
      typeof body.token_endpoint !== 'string'
    )
      throw new DomainError(
        'SMART.DISCOVERY_FAILED',
        `${url} lacks authorization_endpoint or token_endpoint`,
        {
          issueType: 'invalid',
        },
      );
    const list = (v: unknown): string[] | undefined =>
      Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : undefined;
    const cfg: SmartConfiguration = {
      authorization_endpoint: checkEndpoint(body.authorization_endpoint, 'authorization_endpoint'),
      token_endpoint: checkEndpoint(body.token_endpoint, 'token_endpoint'),
      ...(typeof body.issuer === 'string' ? { issuer: body.issuer } : {}),
      ...(typeof body.jwks_uri === 'string' ? { jwks_uri: checkEndpoint(body.jwks_uri, 'jwks_uri') } : {}),
      ...(list(body.capabilities) === undefined ? {} : { capabilities: list(body.capabilities) }),
      ...(list(body.code_challenge_methods_supported) === undefined
        ? {}
        : { code_challenge_methods_supported: list(body.code_challenge_methods_supported) }),
      ...(list(body.token_endpoint_auth_methods_supported) === undefined
        ? {}
        : { token_endpoint_auth_methods_supported: list(body.token_endpoint_auth_methods_supported) }),
    };
    const methods = cfg.code_challenge_methods_supported;
    if (methods !== undefined && !methods.includes('S256'))
      throw new DomainError('SMART.UNSUPPORTED', 'the authorization server does not offer PKCE S256', {
        issueType: 'not-supported',
      });
    return cfg;
  }

  async begin(request: {
    fhirBaseUrl: string;
    launch?: string;
    redirectUri: string;
  }): Promise<{ authorizeUrl: string; pending: PendingLaunch }> {
    const fhirBaseUrl = request.fhirBaseUrl.replace(/\/+$/, '');
    const cfg = await this.configuration(fhirBaseUrl);
    const kind = request.launch === undefined ? 'standalone' : 'ehr';
    const capability = kind === 'ehr' ? 'launch-ehr' : 'launch-standalone';
    if (cfg.capabilities !== undefined && !cfg.capabilities.includes(capability))
      throw new DomainError('SMART.UNSUPPORTED', `the EHR does not offer ${capability}`, {
        issueType: 'not-supported',
      });
    const state = b64url(randomBytes(32));
    const codeVerifier = b64url(randomBytes(48));
    const nonce = b64url(randomBytes(16));
    const challenge = b64url(createHash('sha256').update(codeVerifier).digest());
    const scope = kind === 'ehr' ? this.#o.scope : standaloneScope(this.#o.scope);
    const url = new URL(cfg.authorization_endpoint);
    const params: [string, string][] = [
      ['response_type', 'code'],
      ['client_id', this.#o.clientId],
      ['redirect_uri', request.redirectUri],
      ['scope', scope],
      ['state', state],
      ['aud', fhirBaseUrl],
      ['code_challenge', challenge],
      ['code_challenge_method', 'S256'],
      ...(scope.split(' ').includes('openid') ? [['nonce', nonce] as [string, string]] : []),
      ...(request.launch === undefined ? [] : [['launch', request.launch] as [string, string]]),
    ];
    for (const [k, v] of params) url.searchParams.set(k, v);
    return {
      authorizeUrl: url.toString(),
      pending: {
        state,
        codeVerifier,
        nonce,
        fhirBaseUrl,
        tokenEndpoint: cfg.token_endpoint,
        redirectUri: request.redirectUri,
        scope,
        kind,
        createdAt: this.#now(),
      },
    };
  }

  async #token(tokenEndpoint: string, form: Record<string, string>): Promise<TokenResponse> {
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    const body = new URLSearchParams(form);
    if (this.#o.clientSecret === undefined) body.set('client_id', this.#o.clientId);
    else
      headers.authorization = `Basic ${Buffer.from(
        `${encodeURIComponent(this.#o.clientId)}:${encodeURIComponent(this.#o.clientSecret)}`,
      ).toString('base64')}`;
    const res = await this.#request(
      tokenEndpoint,
      { method: 'POST', headers, body },
      'SMART.TOKEN_UNAVAILABLE',
    );
    const json = (await res.json().catch(() => ({}))) as TokenResponse;
    if (!res.ok) {
      const err = typeof json.error === 'string' ? json.error : `HTTP ${res.status}`;
      const desc = typeof json.error_description === 'string' ? `: ${json.error_description}` : '';
      const transient = res.status >= 500 || res.status === 429;
      throw new DomainError(
        transient ? 'SMART.TOKEN_UNAVAILABLE' : 'SMART.TOKEN_REJECTED',
        `the token request was refused (${err}${desc})`,
        { issueType: transient ? 'transient' : 'security' },
      );
    }
    if (typeof json.access_token !== 'string' || json.access_token === '')
      throw new DomainError('SMART.TOKEN_REJECTED', 'the token response has no access_token', {
        issueType: 'security',
      });
    if (typeof json.token_type !== 'string' || json.token_type.toLowerCase() !== 'bearer')
      throw new DomainError('SMART.UNSUPPORTED', 'the token is not a bearer token', {
        issueType: 'not-supported',
      });
    return json;
  }

  async #verifyIdToken(
    fhirBaseUrl: string,
    idToken: string,
    nonce: string | undefined,
  ): Promise<{ fhirUser?: string; sub?: string }> {
    const cfg = await this.configuration(fhirBaseUrl);
    let jwksUri = cfg.jwks_uri;
    if (jwksUri === undefined && cfg.issuer !== undefined) {
      const res = await this.#request(
        `${cfg.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`,
        { headers: { accept: 'application/json' } },
        'SMART.DISCOVERY_FAILED',
      );
      const meta: unknown = res.ok ? await res.json().catch(() => undefined) : undefined;
      if (isRecord(meta) && typeof meta.jwks_uri === 'string')
        jwksUri = checkEndpoint(meta.jwks_uri, 'jwks_uri');
    }
    if (jwksUri === undefined)
      throw new DomainError(
        'SMART.ID_TOKEN_INVALID',
        'the EHR publishes no keys to verify the id_token with',
        {
          issueType: 'security',
        },
      );
    let keys = this.#jwks.get(jwksUri);
    if (keys === undefined) {
      keys = createRemoteJWKSet(new URL(jwksUri), { timeoutDuration: this.#o.timeoutMs ?? 15_000 });
      this.#jwks.set(jwksUri, keys);
    }
    try {
      const { payload } = await jwtVerify(idToken, keys, {
        audience: this.#o.clientId,
        ...(cfg.issuer === undefined ? {} : { issuer: cfg.issuer }),
        clockTolerance: 60,
        requiredClaims: ['exp', 'iat', 'sub'],
      });
      if (nonce !== undefined && payload.nonce !== undefined && payload.nonce !== nonce)
        throw new Error('the nonce does not match');
      const fhirUser = typeof payload.fhirUser === 'string' ? payload.fhirUser : undefined;
      return {
        ...(fhirUser === undefined ? {} : { fhirUser }),
        ...(payload.sub === undefined ? {} : { sub: payload.sub }),
      };
    } catch (e) {
      throw new DomainError(
        'SMART.ID_TOKEN_INVALID',
        `the id_token does not verify: ${(e as Error).message}`,
        {
          issueType: 'security',
          cause: e,
        },
      );
    }
  }

  async #tokens(
    fhirBaseUrl: string,
    json: TokenResponse,
    requestedScope: string,
    nonce: string | undefined,
    previous?: SmartTokens,
  ): Promise<SmartTokens> {
    const idClaims =
      typeof json.id_token === 'string' ? await this.#verifyIdToken(fhirBaseUrl, json.id_token, nonce) : {};
    const expiresIn = typeof json.expires_in === 'number' && json.expires_in > 0 ? json.expires_in : 300;
    const scope = typeof json.scope === 'string' ? json.scope : requestedScope;
    const patient = typeof json.patient === 'string' ? json.patient : previous?.patient;
    const encounter = typeof json.encounter === 'string' ? json.encounter : previous?.encounter;
    const refresh = typeof json.refresh_token === 'string' ? json.refresh_token : previous?.refreshToken;
    const fhirUser = idClaims.fhirUser ?? previous?.fhirUser;
    const userId = idClaims.sub ?? previous?.userId;
    return {
      accessToken: json.access_token as string,
      expiresAt: this.#now() + expiresIn * 1000,
      scopes: scope.split(/\s+/).filter((s) => s !== ''),
      ...(refresh === undefined ? {} : { refreshToken: refresh }),
      ...(patient === undefined ? {} : { patient }),
      ...(encounter === undefined ? {} : { encounter }),
      ...(fhirUser === undefined ? {} : { fhirUser }),
      ...(userId === undefined ? {} : { userId }),
      ...(typeof json.need_patient_banner === 'boolean'
        ? { needPatientBanner: json.need_patient_banner }
        : {}),
    };
  }

  async exchange(pending: PendingLaunch, code: string): Promise<SmartTokens> {
    const json = await this.#token(pending.tokenEndpoint, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: pending.redirectUri,
      code_verifier: pending.codeVerifier,
    });
    return this.#tokens(pending.fhirBaseUrl, json, pending.scope, pending.nonce);
  }

  async refresh(session: SmartSession): Promise<SmartTokens> {
    const refreshToken = session.tokens.refreshToken;
    if (refreshToken === undefined)
      throw new DomainError('SMART.SESSION_EXPIRED', 'the session has expired: launch the app again', {
        issueType: 'login',
      });
    const json = await this.#token(session.tokenEndpoint, {
      grant_type: 'refresh_token',
      refresh_token: refreshToken,
    });
    return this.#tokens(
      session.fhirBaseUrl,
      json,
      session.tokens.scopes.join(' '),
      undefined,
      session.tokens,
    );
  }
}
