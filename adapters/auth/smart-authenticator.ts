/**
 * The API's Authenticator for SMART bearer tokens: `Authorization: Bearer <jwt>`, verified by a TokenVerifier,
 * then the operation's required scopes (from the OpenAPI security requirement, e.g. `system/Observation.rs`)
 * checked with the SMART rules of domain/ports/token-verifier.port.ts. Errors (→ OperationOutcome):
 * AUTH.MISSING_TOKEN / AUTH.INVALID_TOKEN (401, `login`), AUTH.INSUFFICIENT_SCOPE (403, `forbidden`),
 * AUTH.UNAVAILABLE (503: the issuer's keys cannot be fetched).
 */
import { DomainError } from '../../domain/errors.ts';
import type { Authenticator, AuthRequest, Principal } from '../../domain/ports/authenticator.port.ts';
import {
  parseSmartScope,
  scopesAllow,
  type Permission,
  type TokenVerifier,
} from '../../domain/ports/token-verifier.port.ts';

export interface SmartAuthenticatorOptions {
  readonly verifier: TokenVerifier;
  /** Scopes required by operations whose contract lists none (by operationId). */
  readonly fallbackScopes?: Readonly<Record<string, readonly string[]>>;
}

export class SmartAuthenticator implements Authenticator {
  readonly #o: SmartAuthenticatorOptions;

  constructor(options: SmartAuthenticatorOptions) {
    this.#o = options;
  }

  async authenticate(request: AuthRequest): Promise<Principal> {
    const header = request.headers.authorization ?? '';
    const m = /^Bearer\s+([^\s]+)\s*$/i.exec(header);
    if (m === null)
      throw new DomainError(
        'AUTH.MISSING_TOKEN',
        header === '' ? 'a bearer token is required' : 'the Authorization header is not a bearer token',
        { issueType: 'login' },
      );
    const token = await this.#o.verifier.verify(m[1]);
    const required =
      request.requiredScopes.length > 0
        ? request.requiredScopes
        : (this.#o.fallbackScopes?.[request.operationId] ?? []);
    const missing = required.filter((scope) => {
      const p = parseSmartScope(scope);
      if (p === undefined) return !token.scopes.includes(scope); // a non-SMART scope: literal match
      return !scopesAllow(token.scopes, {
        resourceType: p.resourceType,
        permissions: [...p.permissions] as Permission[],
      });
    });
    if (missing.length > 0)
      throw new DomainError(
        'AUTH.INSUFFICIENT_SCOPE',
        `this operation needs the scope ${missing.join(' ')}`,
        {
          issueType: 'forbidden',
          details: { required: missing },
        },
      );
    return { subject: token.clientId || token.subject, scopes: token.scopes };
  }
}
