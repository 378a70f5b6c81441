import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { isDomainError } from '../../domain/errors.ts';
import { parseSmartScope, scopesAllow, scopeString } from '../../domain/ports/token-verifier.port.ts';
import { JwtVerifier } from './jwt-verifier.ts';
import { SmartAuthenticator } from './smart-authenticator.ts';

let server: Server;
let issuer: string;
let key: CryptoKey;
let otherKey: CryptoKey;
let jwksHits = 0;
const AUD = 'https://mslesion.example/api';

before(async () => {
  const pair = await generateKeyPair('ES384', { extractable: true });
  key = pair.privateKey;
  otherKey = (await generateKeyPair('ES384')).privateKey;
  const pub: JWK = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES384', use: 'sig' };
  server = createServer((req, res) => {
    if (req.url === '/.well-known/openid-configuration') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    } else if (req.url === '/jwks') {
      jwksHits += 1;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [pub] }));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  issuer = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
});

after(() => {
  server.close();
});

async function token(
  claims: Record<string, unknown> = {},
  opts: { exp?: number; aud?: string; iss?: string; signWith?: CryptoKey; kid?: string } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    client_id: 'ehr-client',
    scope: 'system/Observation.rs system/ServiceRequest.c',
    ...claims,
  })
    .setProtectedHeader({ alg: 'ES384', kid: opts.kid ?? 'k1' })
    .setIssuer(opts.iss ?? issuer)
    .setAudience(opts.aud ?? AUD)
    .setSubject('ehr-client')
    .setIssuedAt(now)
    .setExpirationTime(opts.exp ?? now + 300)
    .sign(opts.signWith ?? key);
}

describe('SMART scopes', () => {
  it('parses v2 and v1 scopes and matches permissions', () => {
    assert.deepEqual([...(parseSmartScope('system/Observation.rs')?.permissions ?? [])], ['r', 's']);
    assert.deepEqual([...(parseSmartScope('system/Observation.read')?.permissions ?? [])].sort(), ['r', 's']);
    assert.equal(parseSmartScope('openid'), undefined);
    assert.equal(parseSmartScope('system/Observation.sr'), undefined, 'v2 letters must be in order');
    assert.equal(parseSmartScope('system/Observation.rs?category=x'), undefined);
    const granted = ['system/Observation.rs', 'system/*.c', 'user/DiagnosticReport.rs'];
    assert.equal(scopesAllow(granted, { resourceType: 'Observation', permissions: ['r'] }), true);
    assert.equal(scopesAllow(granted, { resourceType: 'Observation', permissions: ['r', 'c'] }), true);
    assert.equal(scopesAllow(granted, { resourceType: 'Observation', permissions: ['u'] }), false);
    assert.equal(
      scopesAllow(granted, { resourceType: 'DiagnosticReport', permissions: ['r'] }),
      false,
      'user/ is not system/',
    );
    assert.equal(
      scopeString({ resourceType: 'Observation', permissions: ['s', 'r'] }),
      'system/Observation.rs',
    );
  });
});

describe('JwtVerifier (JWKS discovered from the issuer over HTTP)', () => {
  it('accepts a valid token and caches the keys', async () => {
    const v = new JwtVerifier({ issuer, audience: AUD });
    const t = await v.verify(await token());
    assert.equal(t.clientId, 'ehr-client');
    assert.deepEqual(t.scopes, ['system/Observation.rs', 'system/ServiceRequest.c']);
    const before = jwksHits;
    await v.verify(await token());
    assert.equal(jwksHits, before, 'keys cached');
  });

  it('refuses expired, foreign-audience, foreign-issuer, badly signed and malformed tokens', async () => {
    const v = new JwtVerifier({ issuer, audience: AUD, clockToleranceSeconds: 5 });
    const now = Math.floor(Date.now() / 1000);
    const cases: [Promise<string> | string, RegExp][] = [
      [token({}, { exp: now - 60 }), /expired/],
      [token({}, { aud: 'https://other' }), /claim aud/],
      [token({}, { iss: 'https://evil' }), /claim iss/],
      [token({}, { signWith: otherKey }), /signature/],
      [token({}, { kid: 'unknown' }), /no issuer key/],
      ['not-a-jwt', /not a JWS/],
    ];
    for (const [t, re] of cases) {
      await assert.rejects(
        v.verify(await t),
        (e) => isDomainError(e) && e.code === 'AUTH.INVALID_TOKEN' && re.test(e.message),
      );
    }
    // Within the clock skew an "expired" token still passes.
    await v.verify(await token({}, { exp: now - 2 }));
  });

  it('an unreachable issuer is AUTH.UNAVAILABLE (transient)', async () => {
    const v = new JwtVerifier({ issuer: 'http://127.0.0.1:1', audience: AUD, timeoutMs: 500 });
    await assert.rejects(v.verify(await token()), (e) => isDomainError(e) && e.code === 'AUTH.UNAVAILABLE');
  });
});

describe('SmartAuthenticator', () => {
  const req = (authorization: string | undefined, requiredScopes: string[]) => ({
    method: 'GET',
    path: '/fhir/Observation',
    headers: { authorization },
    operationId: 'fhirSearchObservation',
    requiredScopes,
  });

  it('401 without or with a bad token, 403 without the scope, the principal otherwise', async () => {
    const a = new SmartAuthenticator({ verifier: new JwtVerifier({ issuer, audience: AUD }) });
    await assert.rejects(
      a.authenticate(req(undefined, [])),
      (e) => isDomainError(e) && e.code === 'AUTH.MISSING_TOKEN' && e.issueType === 'login',
    );
    await assert.rejects(
      a.authenticate(req('Basic abc', [])),
      (e) => isDomainError(e) && e.code === 'AUTH.MISSING_TOKEN',
    );
    await assert.rejects(
      a.authenticate(req('Bearer x.y.z', [])),
      (e) => isDomainError(e) && e.issueType === 'login',
    );
    const t = await token();
    const p = await a.authenticate(req(`Bearer ${t}`, ['system/Observation.rs']));
    assert.equal(p.subject, 'ehr-client');
    await assert.rejects(
      a.authenticate(req(`Bearer ${t}`, ['system/DiagnosticReport.rs'])),
      (e) => isDomainError(e) && e.code === 'AUTH.INSUFFICIENT_SCOPE' && e.issueType === 'forbidden',
    );
    const fallback = new SmartAuthenticator({
      verifier: new JwtVerifier({ issuer, audience: AUD }),
      fallbackScopes: { fhirSearchObservation: ['system/Observation.u'] },
    });
    await assert.rejects(
      fallback.authenticate(req(`Bearer ${t}`, [])),
      (e) => isDomainError(e) && e.code === 'AUTH.INSUFFICIENT_SCOPE',
    );
  });
});
