/**
 * TokenVerifier for the service's own API: bearer JWTs checked with jose against the configured issuer's JWKS
 * (discovered from <issuer>/.well-known/openid-configuration or oauth-authorization-server, or configured),
 * the expected audience, an algorithm allow-list and a clock skew. The JWKS is cached and refreshed by jose
 * when an unknown kid shows up (key rotation).
 */
import {
  createRemoteJWKSet,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { DomainError } from '../../domain/errors.ts';
import type { TokenVerifier, VerifiedToken } from '../../domain/ports/token-verifier.port.ts';

export interface JwtVerifierOptions {
  readonly issuer: string;
  /** Accepted audience(s) (the service's base URL). */
  readonly audience: string | readonly string[];
  /** JWKS URL; discovered from the issuer's metadata when absent. */
  readonly jwksUri?: string;
  /** Allowed signature algorithms (default RS256, RS384, ES256, ES384, PS256, PS384). */
  readonly algorithms?: readonly string[];
  /** Tolerated clock difference (default 60 s). */
  readonly clockToleranceSeconds?: number;
  readonly fetch?: typeof fetch;
  readonly timeoutMs?: number;
}

const DEFAULT_ALGS = ['RS256', 'RS384', 'ES256', 'ES384', 'PS256', 'PS384'];

function invalid(message: string, cause?: unknown): DomainError {
  return new DomainError('AUTH.INVALID_TOKEN', message, {
    issueType: 'login',
    ...(cause === undefined ? {} : { cause }),
  });
}

function scopesOf(payload: JWTPayload): string[] {
  const s = payload.scope ?? payload.scp;
  if (typeof s === 'string') return s.split(' ').filter((x) => x !== '');
  if (Array.isArray(s)) return s.filter((x): x is string => typeof x === 'string');
  return [];
}

export class JwtVerifier implements TokenVerifier {
  readonly #o: JwtVerifierOptions;
  #jwks: Promise<JWTVerifyGetKey> | undefined;

  constructor(options: JwtVerifierOptions) {
    this.#o = options;
  }

  async #discover(): Promise<string> {
    const base = this.#o.issuer.replace(/\/+$/, '');
    const f = this.#o.fetch ?? fetch;
    for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
      try {
        const r = await f(base + path, { signal: AbortSignal.timeout(this.#o.timeoutMs ?? 10_000) });
        if (!r.ok) continue;
        const body = (await r.json()) as { jwks_uri?: unknown; issuer?: unknown };
        if (typeof body.jwks_uri === 'string') return body.jwks_uri;
      } catch {
        // try the next well-known document
      }
    }
    throw new DomainError('AUTH.UNAVAILABLE', `cannot discover the JWKS of ${this.#o.issuer}`, {
      issueType: 'transient',
    });
  }

  #keys(): Promise<JWTVerifyGetKey> {
    this.#jwks ??= (async () => {
      const uri = this.#o.jwksUri ?? (await this.#discover());
      return createRemoteJWKSet(new URL(uri), { timeoutDuration: this.#o.timeoutMs ?? 10_000 });
    })().catch((e: unknown) => {
      this.#jwks = undefined;
      throw e;
    });
    return this.#jwks;
  }

  async verify(token: string): Promise<VerifiedToken> {
    if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(token))
      throw invalid('the token is not a JWS');
    const keys = await this.#keys();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        issuer: this.#o.issuer,
        audience: typeof this.#o.audience === 'string' ? this.#o.audience : [...this.#o.audience],
        algorithms: [...(this.#o.algorithms ?? DEFAULT_ALGS)],
        clockTolerance: this.#o.clockToleranceSeconds ?? 60,
        requiredClaims: ['exp'],
      }));
    } catch (e) {
      if (e instanceof joseErrors.JWKSTimeout || (e instanceof Error && e.name === 'JWKSTimeout'))
        throw new DomainError('AUTH.UNAVAILABLE', 'the issuer JWKS did not answer in time', {
          issueType: 'transient',
          cause: e,
        });
      if (e instanceof joseErrors.JOSEError) {
        const reason =
          e instanceof joseErrors.JWTExpired
            ? 'the token has expired'
            : e instanceof joseErrors.JWTClaimValidationFailed
              ? `claim ${e.claim} is not acceptable`
              : e instanceof joseErrors.JWKSNoMatchingKey
                ? 'no issuer key matches the token'
                : e instanceof joseErrors.JWSSignatureVerificationFailed
                  ? 'the signature does not verify'
                  : e instanceof joseErrors.JOSEAlgNotAllowed
                    ? 'the signature algorithm is not allowed'
                    : 'the token is not valid';
        throw invalid(reason, e);
      }
      throw new DomainError('AUTH.UNAVAILABLE', `cannot verify the token: ${(e as Error).message}`, {
        issueType: 'transient',
        cause: e,
      });
    }
    const clientId =
      typeof payload.client_id === 'string'
        ? payload.client_id
        : typeof payload.azp === 'string'
          ? payload.azp
          : (payload.sub ?? '');
    if (clientId === '' && payload.sub === undefined) throw invalid('the token names no subject or client');
    return {
      subject: payload.sub ?? clientId,
      clientId,
      issuer: payload.iss ?? this.#o.issuer,
      scopes: scopesOf(payload),
      expiresAt: payload.exp ?? 0,
    };
  }
}
