/**
 * A real OAuth 2.0 authorization server for tests: oidc-provider (npm) on loopback, with the
 * client_credentials grant, private_key_jwt client authentication (RS384 / ES384) and JWT access tokens
 * (RS256, audience = the resource server) carrying the SMART scopes granted to the client.
 *
 *   const oauth = await startOAuthServer({ audience: 'http://127.0.0.1:1234/fhir', clients: [...] });
 *   oauth.issuer, oauth.tokenUrl, oauth.jwksUrl; await oauth.stop();
 */
import { createServer, type Server } from 'node:http';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import Provider, { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { freePort } from '../../helpers/orthanc.ts';

export interface TestClient {
  readonly clientId: string;
  readonly alg: 'RS384' | 'ES384';
  readonly publicJwk: JWK;
  /** Space-separated scopes this client may be granted. */
  readonly scope: string;
}

export interface OAuthServer {
  readonly issuer: string;
  readonly tokenUrl: string;
  readonly jwksUrl: string;
  /** Token requests the server answered with an access token. */
  readonly issued: () => number;
  stop(): Promise<void>;
}

/** A fresh key pair for a client: the private JWK (for our SMART client) and the public one (registered). */
export async function clientKeys(
  alg: 'RS384' | 'ES384',
  kid: string,
): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg };
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { privateJwk, publicJwk };
}

/** Keeps the provider's artifacts (client assertion jtis, tokens) in memory, with their expiry. */
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

export async function startOAuthServer(options: {
  readonly audience: string;
  readonly clients: readonly TestClient[];
  readonly accessTokenTtlSeconds?: number;
}): Promise<OAuthServer> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const signing = { ...(await exportJWK(privateKey)), kid: 'as-1', alg: 'RS256', use: 'sig' };
  const byClient = new Map(options.clients.map((c) => [c.clientId, c]));
  let issued = 0;
  const provider = new Provider(issuer, {
    clients: options.clients.map((c) => ({
      client_id: c.clientId,
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: c.alg,
      jwks: { keys: [c.publicJwk] },
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    })),
    adapter: memoryAdapter(),
    ttl: { ClientCredentials: options.accessTokenTtlSeconds ?? 300 },
    jwks: { keys: [signing] },
    clientAuthMethods: ['private_key_jwt'],
    enabledJWA: { clientAuthSigningAlgValues: ['RS384', 'ES384', 'RS256', 'ES256'] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => options.audience,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx, resource, client) => {
          if (resource !== options.audience) throw new errors.InvalidTarget();
          return {
            scope: byClient.get(client.clientId)?.scope ?? '',
            audience: options.audience,
            accessTokenTTL: options.accessTokenTtlSeconds ?? 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
  });
  provider.on('grant.success', () => {
    issued += 1;
  });
  const callback = provider.callback();
  const server: Server = createServer((req, res) => {
    void callback(req, res);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    issuer,
    tokenUrl: `${issuer}/token`,
    jwksUrl: `${issuer}/jwks`,
    issued: () => issued,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}
