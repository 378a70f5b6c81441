/**
 * SMART Backend Services client (https://hl7.org/fhir/smart-app-launch/backend-services.html): OAuth 2.0
 * client_credentials with a private_key_jwt client assertion signed RS384 or ES384 (jose). The token endpoint
 * is configured, or discovered from <fhirBaseUrl>/.well-known/smart-configuration. The access token is cached
 * until shortly before it expires (refreshSkewSeconds); concurrent callers share one token request.
 *
 * Errors: SMART.DISCOVERY_FAILED, SMART.UNSUPPORTED (the server cannot do private_key_jwt with our alg),
 * SMART.TOKEN_REJECTED (4xx from the token endpoint: bad client, key, scope — not retryable),
 * SMART.TOKEN_UNAVAILABLE (network, timeout, 5xx: transient).
 */
import { randomUUID } from 'node:crypto';
import { importJWK, importPKCS8, SignJWT, type CryptoKey, type JWK, type KeyObject } from 'jose';
import { DomainError } from '../../domain/errors.ts';

export type SmartAlg = 'RS384' | 'ES384';

/** Supplies bearer tokens to clients of a protected server. */
export interface AccessTokenProvider {
  getToken(): Promise<string>;
  /** Drops a cached token the server refused (401), so the next getToken fetches a new one. */
  invalidate(token: string): void;
}

export interface SmartBackendOptions {
  readonly clientId: string;
  /** The private key: a private JWK (with kid) or a PKCS#8 PEM. */
  readonly privateKey: JWK | string;
  readonly alg: SmartAlg;
  /** Key id (JWK header kid); taken from the JWK when absent. */
  readonly kid?: string;
  /** Space-separated SMART scopes, e.g. 'system/Observation.cu system/DiagnosticReport.cu'. */
  readonly scope: string;
  readonly tokenUrl?: string;
  /** For discovery when tokenUrl is absent. */
  readonly fhirBaseUrl?: string;
  /** Client assertion lifetime (default 300 s, the SMART maximum). */
  readonly assertionLifetimeSeconds?: number;
  /** Renew this long before expiry (default 60 s, never more than half the lifetime). */
  readonly refreshSkewSeconds?: number;
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
  readonly now?: () => number;
}

interface CachedToken {
  readonly value: string;
  /** Epoch ms after which it is renewed. */
  readonly renewAt: number;
}

interface TokenResponse {
  access_token?: unknown;
  token_type?: unknown;
  expires_in?: unknown;
  scope?: unknown;
  error?: unknown;
  error_description?: unknown;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class SmartBackendAuth implements AccessTokenProvider {
  readonly #o: SmartBackendOptions;
  readonly #fetch: typeof fetch;
  readonly #now: () => number;
  #key: Promise<CryptoKey | KeyObject | Uint8Array> | undefined;
  #tokenUrl: Promise<string> | undefined;
  #cached: CachedToken | undefined;
  #inflight: Promise<CachedToken> | undefined;
  /** Token requests made (for tests and metrics). */
  requests = 0;
  /** The scope the server granted with the last token. */
  grantedScope: string | undefined;

  constructor(options: SmartBackendOptions) {
    if (options.tokenUrl === undefined && options.fhirBaseUrl === undefined)
      throw new DomainError('SMART.CONFIG', 'SMART auth needs tokenUrl or fhirBaseUrl (discovery)', {
        issueType: 'invalid',
      });
    this.#o = options;
    this.#fetch = options.fetch ?? fetch;
    this.#now = options.now ?? Date.now;
  }

  #signingKey(): Promise<CryptoKey | KeyObject | Uint8Array> {
    this.#key ??= (async () => {
      const k = this.#o.privateKey;
      try {
        return typeof k === 'string' ? await importPKCS8(k, this.#o.alg) : await importJWK(k, this.#o.alg);
      } catch (e) {
        throw new DomainError('SMART.BAD_KEY', `the SMART private key cannot be used for ${this.#o.alg}`, {
          issueType: 'invalid',
          cause: e,
        });
      }
    })();
    return this.#key;
  }

  async #request(url: string, init: RequestInit): Promise<Response> {
    try {
      return await this.#fetch(url, { ...init, signal: AbortSignal.timeout(this.#o.timeoutMs ?? 15_000) });
    } catch (e) {
      throw new DomainError('SMART.TOKEN_UNAVAILABLE', `cannot reach ${url}: ${(e as Error).message}`, {
        issueType: 'transient',
        cause: e,
      });
    }
  }

  /** The token endpoint (configured, or discovered once). */
  tokenUrl(): Promise<string> {
    if (this.#o.tokenUrl !== undefined) return Promise.resolve(this.#o.tokenUrl);
    this.#tokenUrl ??= this.#discover().catch((e: unknown) => {
      this.#tokenUrl = undefined; // retry discovery next time
      throw e;
    });
    return this.#tokenUrl;
  }

  async #discover(): Promise<string> {
    const base = this.#o.fhirBaseUrl!.replace(/\/+$/, '');
    const url = `${base}/.well-known/smart-configuration`;
    const res = await this.#request(url, { headers: { accept: 'application/json' } });
    if (!res.ok)
      throw new DomainError('SMART.DISCOVERY_FAILED', `${url} answered ${res.status}`, {
        issueType: res.status >= 500 ? 'transient' : 'not-found',
      });
    const body: unknown = await res.json().catch(() => undefined);
    if (!isRecord(body) || typeof body.token_endpoint !== 'string')
      throw new DomainError('SMART.DISCOVERY_FAILED', `${url} has no token_endpoint`, {
        issueType: 'invalid',
      });
    const methods = body.token_endpoint_auth_methods_supported;
    if (Array.isArray(methods) && !methods.includes('private_key_jwt'))
      throw new DomainError('SMART.UNSUPPORTED', 'the server does not support private_key_jwt client auth', {
        issueType: 'not-supported',
      });
    const algs = body.token_endpoint_auth_signing_alg_values_supported;
    if (Array.isArray(algs) && !algs.includes(this.#o.alg))
      throw new DomainError(
        'SMART.UNSUPPORTED',
        `the server does not accept ${this.#o.alg} client assertions`,
        {
          issueType: 'not-supported',
        },
      );
    return body.token_endpoint;
  }

  /** A signed client assertion for the token endpoint (jti unique, exp ≤ 5 min). */
  async clientAssertion(tokenUrl: string): Promise<string> {
    const key = await this.#signingKey();
    const kid = this.#o.kid ?? (typeof this.#o.privateKey === 'string' ? undefined : this.#o.privateKey.kid);
    const now = Math.floor(this.#now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: this.#o.alg, typ: 'JWT', ...(kid === undefined ? {} : { kid }) })
      .setIssuer(this.#o.clientId)
      .setSubject(this.#o.clientId)
      .setAudience(tokenUrl)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(now + Math.min(300, this.#o.assertionLifetimeSeconds ?? 300))
      .sign(key);
  }

  async #fetchToken(): Promise<CachedToken> {
    const tokenUrl = await this.tokenUrl();
    const assertion = await this.clientAssertion(tokenUrl);
    this.requests += 1;
    const res = await this.#request(tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        scope: this.#o.scope,
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      }),
    });
    const body = (await res.json().catch(() => ({}))) as TokenResponse;
    if (!res.ok) {
      const err = typeof body.error === 'string' ? body.error : `HTTP ${res.status}`;
      const desc = typeof body.error_description === 'string' ? `: ${body.error_description}` : '';
      throw new DomainError(
        res.status >= 500 || res.status === 429 ? 'SMART.TOKEN_UNAVAILABLE' : 'SMART.TOKEN_REJECTED',
        `token request refused (${err}${desc})`,
        { issueType: res.status >= 500 || res.status === 429 ? 'transient' : 'security' },
      );
    }
    if (typeof body.access_token !== 'string' || body.access_token === '')
      throw new DomainError('SMART.TOKEN_REJECTED', 'token response without access_token', {
        issueType: 'security',
      });
    if (typeof body.token_type === 'string' && body.token_type.toLowerCase() !== 'bearer')
      throw new DomainError('SMART.UNSUPPORTED', `token type ${body.token_type} is not bearer`, {
        issueType: 'not-supported',
      });
    const lifetimeS = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 300;
    const skewS = Math.min(this.#o.refreshSkewSeconds ?? 60, lifetimeS / 2);
    this.grantedScope = typeof body.scope === 'string' ? body.scope : undefined;
    return { value: body.access_token, renewAt: this.#now() + (lifetimeS - skewS) * 1000 };
  }

  async getToken(): Promise<string> {
    const c = this.#cached;
    if (c !== undefined && this.#now() < c.renewAt) return c.value;
    this.#inflight ??= this.#fetchToken().finally(() => {
      this.#inflight = undefined;
    });
    const fresh = await this.#inflight;
    this.#cached = fresh;
    return fresh.value;
  }

  invalidate(token: string): void {
    if (this.#cached?.value === token) this.#cached = undefined;
  }
}
