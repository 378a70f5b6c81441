/**
 * Who is calling: the API asks an Authenticator (OAuth 2.0 / SMART bearer tokens, mTLS, …) before running any
 * operation that is not public in the contract. Implementations throw DomainError AUTH.* — issueType `login`
 * (401: no or bad credentials) or `forbidden` (403: valid but not allowed).
 */
export interface AuthRequest {
  readonly method: string;
  /** Path without the query string. */
  readonly path: string;
  /** Lower-case header names. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  /** The contract's operation id and the scopes its security requirement lists (may be empty). */
  readonly operationId: string;
  readonly requiredScopes: readonly string[];
}

export interface Principal {
  /** Stable subject id (client id or user id; never a patient identifier). */
  readonly subject: string;
  readonly scopes: readonly string[];
}

export interface Authenticator {
  authenticate(request: AuthRequest): Promise<Principal>;
}
