/**
 * The SMART app's sessions over plain HTTP (no browser), against the test EHR (oidc-provider): the whole launch
 * followed redirect by redirect with cookie jars, then — access tokens refreshed with the refresh token when
 * they run out (offline_access), a session without a refresh token ending with SMART.SESSION_EXPIRED, a
 * tampered cookie or a foreign handle refused, the state single-use, cookie attributes (HttpOnly, SameSite,
 * Secure behind an https public URL, Path), and the page's Content-Security-Policy. Every response of the
 * JSON operations is checked against the contract by the app (validateResponses).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compose, type Composition } from '../../compose.ts';
import { loadConfig } from '../../config.ts';
import { createLogger } from '../../adapters/logging/logger.ts';
import { freePort } from '../helpers/orthanc.ts';
import { errorCode } from '../contracts/http-client.ts';
import { PASSWORD, SMART_CLIENT_ID, startSmartEhr, USERNAME, type SmartEhr } from './support/smart-ehr.ts';

class Jar {
  readonly #cookies = new Map<string, Map<string, string>>();
  header(url: string): string {
    const m = this.#cookies.get(new URL(url).origin);
    return m === undefined ? '' : [...m].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  take(url: string, res: Response): void {
    const origin = new URL(url).origin;
    const m = this.#cookies.get(origin) ?? new Map<string, string>();
    this.#cookies.set(origin, m);
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      const name = pair.slice(0, i).trim();
      const value = pair.slice(i + 1).trim();
      if (/max-age=0/i.test(c) || value === '') m.delete(name);
      else m.set(name, value);
    }
  }
}

/** GET/POST with the jar, following redirects by hand; returns the last response and its URL. */
async function go(
  jar: Jar,
  url: string,
  init: RequestInit = {},
  stopAt?: (url: string) => boolean,
): Promise<{ res: Response; url: string; body: string; setCookies: string[] }> {
  let current = url;
  let req: RequestInit = init;
  const setCookies: string[] = [];
  for (let i = 0; i < 20; i++) {
    const res = await fetch(current, {
      ...req,
      redirect: 'manual',
      headers: { ...(req.headers as Record<string, string> | undefined), cookie: jar.header(current) },
    });
    jar.take(current, res);
    setCookies.push(...res.headers.getSetCookie());
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location !== null) {
      const nextUrl = new URL(location, current).toString();
      if (stopAt?.(nextUrl) === true) {
        await res.body?.cancel();
        return { res, url: nextUrl, body: '', setCookies };
      }
      await res.body?.cancel();
      current = nextUrl;
      req = {};
      continue;
    }
    return { res, url: current, body: await res.text(), setCookies };
  }
  throw new Error('too many redirects');
}

/** The launch and sign-in as a browser would do them; returns the session handle. */
async function launch(jar: Jar, base: string, ehr: SmartEhr, patient = 'pat-1'): Promise<string> {
  const start = `${base}/smart/launch?iss=${encodeURIComponent(ehr.fhirBaseUrl)}&launch=${ehr.createLaunch(patient)}`;
  let r = await go(jar, start);
  if (r.url.includes('/interaction/')) {
    const action = /action="([^"]+)"/.exec(r.body)?.[1] ?? '';
    r = await go(jar, new URL(action, r.url).toString(), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ login: USERNAME, password: PASSWORD, decision: 'allow' }).toString(),
    });
  }
  assert.ok(r.url.startsWith(`${base}/smart/app/index.html#s=`), `${r.url}: ${r.body.slice(0, 300)}`);
  return new URL(r.url).hash.slice(3);
}

async function startService(
  port: number,
  ehr: SmartEhr,
  env: Record<string, string>,
): Promise<{ c: Composition; server: Server; dir: string; base: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'mslesion-smart-session-'));
  mkdirSync(join(dir, 'models'));
  const base = `http://127.0.0.1:${port}`;
  const c = await compose(
    loadConfig({
      env: {
        MSLESION_DATA_DIR: dir,
        MSLESION_MODELS_DIR: join(dir, 'models'),
        MSLESION_VALIDATE_RESPONSES: 'true',
        MSLESION_PUBLIC_BASE_URL: base,
        MSLESION_SMART_CLIENT_ID: SMART_CLIENT_ID,
        MSLESION_SMART_ISSUERS: ehr.fhirBaseUrl,
        ...env,
      },
    }),
    { logger: createLogger({ level: 'silent' }) },
  );
  const server = createServer(c.app);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { c, server, dir, base };
}

describe('SMART app sessions', () => {
  let ehr: SmartEhr;
  const services: { c: Composition; server: Server; dir: string; base: string }[] = [];
  let ports: number[];

  before(async () => {
    ports = [await freePort(), await freePort(), await freePort()];
    ehr = await startSmartEhr({
      redirectUris: ports.map((p) => `http://127.0.0.1:${p}/smart/callback`),
      accessTokenTtlSeconds: 20, // under the 30 s margin: every API call needs a fresh token
    });
  });

  after(async () => {
    for (const s of services) {
      s.server.closeAllConnections();
      await new Promise<void>((r) =>
        s.server.close(() => {
          r();
        }),
      );
      await s.c.close();
      rmSync(s.dir, { recursive: true, force: true });
    }
    await ehr.stop();
  });

  const context = (base: string, jar: Jar, handle: string) =>
    fetch(`${base}/smart/api/context`, {
      headers: { cookie: jar.header(base), 'x-smart-session': handle },
    });

  it('refreshes the access token with the refresh token (offline_access); the state is single-use', async () => {
    const s = await startService(ports[0], ehr, {
      MSLESION_SMART_SCOPE:
        'launch openid fhirUser offline_access patient/Observation.rs patient/DiagnosticReport.rs',
    });
    services.push(s);
    const jar = new Jar();
    const handle = await launch(jar, s.base, ehr);
    const before = ehr.issued.length;
    for (let i = 0; i < 2; i++) {
      const r = await context(s.base, jar, handle);
      assert.equal(r.status, 200);
      const body = (await r.json()) as { patient: { id: string }; fhirUser?: string; scopes: string[] };
      assert.equal(body.patient.id, 'pat-1');
      assert.equal(body.fhirUser, `Practitioner/${USERNAME}`, 'from the verified id_token');
    }
    assert.equal(ehr.issued.length - before, 2, 'one refresh per call (20 s tokens)');
    assert.equal(ehr.issued.at(-1)?.patient, 'pat-1', 'the refreshed token keeps the launch context');
    // replaying the callback (same code and state) is refused: the state was taken
    const jar2 = new Jar();
    const start = await go(
      jar2,
      `${s.base}/smart/launch?iss=${encodeURIComponent(ehr.fhirBaseUrl)}&launch=${ehr.createLaunch('pat-1')}`,
      {},
      (u) => u.startsWith(`${s.base}/smart/callback`),
    );
    let callback = start.url;
    if (!callback.startsWith(`${s.base}/smart/callback`)) {
      const action = /action="([^"]+)"/.exec(start.body)?.[1] ?? '';
      const signed = await go(
        jar2,
        new URL(action, start.url).toString(),
        {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ login: USERNAME, password: PASSWORD, decision: 'allow' }).toString(),
        },
        (u) => u.startsWith(`${s.base}/smart/callback`),
      );
      callback = signed.url;
    }
    const first = await go(jar2, callback, {}, (u) => u.includes('/smart/app/'));
    assert.equal(first.res.status, 302);
    const again = await go(jar2, callback);
    assert.equal(again.res.status, 400);
    assert.match(again.body, /SMART\.BAD_STATE/);
  });

  it('without a refresh token the session ends with the token; tampered cookies and foreign handles are refused', async () => {
    const s = await startService(ports[1], ehr, {});
    services.push(s);
    const jar = new Jar();
    const handle = await launch(jar, s.base, ehr);
    const expired = await context(s.base, jar, handle);
    assert.equal(expired.status, 401);
    assert.equal(errorCode(await expired.json()), 'SMART.SESSION_EXPIRED');
    const again = await context(s.base, jar, handle);
    assert.equal(errorCode(await again.json()), 'SMART.NO_SESSION', 'the expired session is gone');
    const cookie = jar.header(s.base);
    const tampered = await fetch(`${s.base}/smart/api/context`, {
      headers: { cookie: cookie.replace(/\.([A-Za-z0-9_-]+)$/, '.AAAA$1'), 'x-smart-session': handle },
    });
    assert.equal(tampered.status, 401);
    assert.equal(errorCode(await tampered.json()), 'SMART.NO_SESSION');
    const foreign = await fetch(`${s.base}/smart/api/context`, {
      headers: { cookie, 'x-smart-session': 'ffffffffffffffff' },
    });
    assert.equal(foreign.status, 401);
    const noHeader = await fetch(`${s.base}/smart/api/fhir/Observation`, { headers: { cookie } });
    assert.equal(noHeader.status, 401, 'the custom header is required (no cross-site use of the cookie)');
  });

  it('cookies: HttpOnly, SameSite, Secure behind an https public URL, scoped paths; the page has a strict CSP', async () => {
    const s = await startService(ports[2], ehr, {
      MSLESION_PUBLIC_BASE_URL: 'https://mslesion.hospital.example',
      MSLESION_SMART_COOKIE_SAMESITE: 'none',
      MSLESION_SMART_COOKIE_SECRET: 'x'.repeat(40),
    });
    services.push(s);
    const base = `http://127.0.0.1:${ports[2]}`;
    const r = await fetch(`${base}/smart/launch?iss=${encodeURIComponent(ehr.fhirBaseUrl)}&launch=abc`, {
      redirect: 'manual',
    });
    assert.equal(r.status, 302);
    const cookie = r.headers.get('set-cookie') ?? '';
    assert.match(
      cookie,
      /^mslesion_l_[0-9a-f]{12}=[A-Za-z0-9_-]+; Path=\/smart\/callback; Max-Age=600; HttpOnly; SameSite=None; Secure$/,
    );
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const authorize = new URL(r.headers.get('location') ?? '');
    assert.equal(
      authorize.searchParams.get('redirect_uri'),
      'https://mslesion.hospital.example/smart/callback',
    );
    assert.equal(authorize.searchParams.get('launch'), 'abc');
    assert.equal(authorize.searchParams.get('client_id'), SMART_CLIENT_ID);
    assert.match(authorize.searchParams.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
    assert.ok((authorize.searchParams.get('state') ?? '').length >= 43);
    const page = await fetch(`${base}/smart/app/index.html`);
    assert.equal(page.status, 200);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'; script-src 'self'; style-src 'self'/);
    assert.match(csp, new RegExp(`frame-ancestors 'self' ${new URL(ehr.fhirBaseUrl).origin}`));
    assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
    const html = await page.text();
    assert.doesNotMatch(
      html,
      /<script>|https?:\/\/(?!www\.w3\.org)/,
      'no inline script, no external resource',
    );
    const js = await fetch(`${base}/smart/app/trends.js`);
    assert.equal(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
    const bad = await fetch(`${base}/smart/app/other.js`);
    assert.equal(bad.status, 400);
    const index = await fetch(`${base}/smart/app`, { redirect: 'manual' });
    assert.equal(index.headers.get('location'), 'app/index.html');
  });
});
