/**
 * Verifies bearer tokens presented to the service's API (adapter: adapters/auth/jwt-verifier.ts — JWT against
 * the configured issuer's JWKS, audience, expiry with clock skew) and the SMART scope rules the routes use.
 *
 * Scopes follow SMART App Launch v2 (`system/Observation.rs`: context / resource type . permissions from
 * c r u d s) and accept v1 spellings (`system/Observation.read` = rs, `.write` = cud, `.*` = cruds);
 * `*` as resource type matches every type. Only the `system` context (backend services) grants access here.
 */

export interface VerifiedToken {
  /** `sub` claim (for backend services: the client). */
  readonly subject: string;
  /** `client_id` / `azp` / `sub`. */
  readonly clientId: string;
  readonly issuer: string;
  readonly scopes: readonly string[];
  /** Epoch seconds. */
  readonly expiresAt: number;
}

export interface TokenVerifier {
  /**
   * The claims of a valid token. Throws DomainError AUTH.INVALID_TOKEN (issue type `login`: bad signature,
   * issuer, audience, expired, malformed) or AUTH.UNAVAILABLE (`transient`: the JWKS cannot be fetched).
   */
  verify(token: string): Promise<VerifiedToken>;
}

export type Permission = 'c' | 'r' | 'u' | 'd' | 's';

export interface ScopeRequirement {
  readonly resourceType: string;
  /** Every one of these is needed. */
  readonly permissions: readonly Permission[];
}

interface ParsedScope {
  readonly context: string;
  readonly resourceType: string;
  readonly permissions: ReadonlySet<Permission>;
}

const V1: Readonly<Partial<Record<string, readonly Permission[]>>> = {
  read: ['r', 's'],
  write: ['c', 'u', 'd'],
  '*': ['c', 'r', 'u', 'd', 's'],
};

/** Parses one SMART resource scope; undefined for anything else (openid, launch, malformed …). */
export function parseSmartScope(scope: string): ParsedScope | undefined {
  const m = /^(system|user|patient)\/([A-Za-z]+|\*)\.([a-z*]+)(\?.*)?$/.exec(scope);
  if (m === null) return undefined;
  // The optional query group is undefined when absent (RegExpExecArray types it as string).
  const groups: readonly (string | undefined)[] = m;
  const [context, resourceType, perms] = [m[1], m[2], m[3]];
  if (groups[4] !== undefined) return undefined; // granular (query-restricted) scopes are not honoured here
  const v1 = V1[perms];
  if (v1 !== undefined) return { context, resourceType, permissions: new Set(v1) };
  if (!/^c?r?u?d?s?$/.test(perms) || perms.length === 0) return undefined;
  return { context, resourceType, permissions: new Set(perms.split('') as Permission[]) };
}

/** True when the granted scopes together give every required permission on the resource type. */
export function scopesAllow(granted: readonly string[], required: ScopeRequirement): boolean {
  const have = new Set<Permission>();
  for (const s of granted) {
    const p = parseSmartScope(s);
    if (p?.context !== 'system') continue;
    if (p.resourceType !== '*' && p.resourceType !== required.resourceType) continue;
    for (const x of p.permissions) have.add(x);
  }
  return required.permissions.every((x) => have.has(x));
}

/** The SMART v2 scope string for a requirement, e.g. system/Observation.rs (for messages and docs). */
export function scopeString(required: ScopeRequirement): string {
  const order: Permission[] = ['c', 'r', 'u', 'd', 's'];
  return `system/${required.resourceType}.${order.filter((p) => required.permissions.includes(p)).join('')}`;
}
