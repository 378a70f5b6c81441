/**
 * Result delivery to a real FHIR server (@medplum/fhir-router over HTTP, SMART-protected, validating) with
 * tokens from a real OAuth server (oidc-provider), through the durable SQLite outbox and its dispatcher:
 * SMART Backend Services (RS384 / ES384, discovery, caching), idempotency under parallel re-delivery and
 * under commit-then-fail faults, permanent rejections, and lease takeover after a crashed dispatcher.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Bundle, DiagnosticReport, Observation, Patient, Resource } from '@medplum/fhirtypes';
import { decodeJwt } from 'jose';
import { isDomainError } from '../../domain/errors.ts';
import type { DeliveryStatus } from '../../domain/model/analysis.ts';
import { SILENT_LOGGER } from '../../domain/ports/logger.port.ts';
import { systemClock } from '../../adapters/clock/system-clock.ts';
import { FhirPushClient } from '../../adapters/fhir/fhir-push-client.ts';
import { buildResultBundle } from '../../adapters/fhir/result-bundle.ts';
import { SmartBackendAuth } from '../../adapters/fhir/smart-auth.ts';
import { fhirErrors, loadFhirDefinitions } from '../../adapters/fhir/validation.ts';
import { sampleAnalysis, sampleStudy } from '../../adapters/fhir/testing/sample-analysis.ts';
import { OutboxDispatcher } from '../../adapters/outbox/dispatcher.ts';
import { SqliteOutbox } from '../../adapters/outbox/sqlite/sqlite-outbox.ts';
import { freePort } from '../helpers/orthanc.ts';
import { clientKeys, startOAuthServer, type OAuthServer } from './support/oauth-server.ts';
import { startFhirServer, type FhirServer } from './support/fhir-server.ts';

const WRITE_SCOPES =
  'system/Device.cu system/ImagingStudy.cu system/Observation.cu system/DiagnosticReport.cu system/Provenance.cu system/Patient.rs';

let oauth: OAuthServer;
let fhir: FhirServer;
let es: Awaited<ReturnType<typeof clientKeys>>;
let rs: Awaited<ReturnType<typeof clientKeys>>;
let readonlyKeys: Awaited<ReturnType<typeof clientKeys>>;

before(async () => {
  loadFhirDefinitions();
  es = await clientKeys('ES384', 'es-1');
  rs = await clientKeys('RS384', 'rs-1');
  readonlyKeys = await clientKeys('ES384', 'ro-1');
  const port = await freePort();
  const audience = `http://127.0.0.1:${port}/fhir`;
  oauth = await startOAuthServer({
    audience,
    clients: [
      { clientId: 'mslesion-es', alg: 'ES384', publicJwk: es.publicJwk, scope: WRITE_SCOPES },
      { clientId: 'mslesion-rs', alg: 'RS384', publicJwk: rs.publicJwk, scope: WRITE_SCOPES },
      { clientId: 'reader', alg: 'ES384', publicJwk: readonlyKeys.publicJwk, scope: 'system/Observation.rs' },
    ],
  });
  fhir = await startFhirServer({
    issuer: oauth.issuer,
    jwksUrl: oauth.jwksUrl,
    tokenUrl: oauth.tokenUrl,
    port,
  });
});

after(async () => {
  await fhir.stop();
  await oauth.stop();
});

function esAuth(
  overrides: Partial<ConstructorParameters<typeof SmartBackendAuth>[0]> = {},
): SmartBackendAuth {
  return new SmartBackendAuth({
    clientId: 'mslesion-es',
    privateKey: es.privateJwk,
    alg: 'ES384',
    scope: WRITE_SCOPES,
    fhirBaseUrl: fhir.baseUrl,
    ...overrides,
  });
}

async function counts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of ['Device', 'ImagingStudy', 'Observation', 'DiagnosticReport', 'Provenance'] as const)
    out[t] = (await fhir.all(t)).length;
  return out;
}

function expectedCounts(bundle: Bundle): Record<string, number> {
  const out: Record<string, number> = {
    Device: 0,
    ImagingStudy: 0,
    Observation: 0,
    DiagnosticReport: 0,
    Provenance: 0,
  };
  for (const e of bundle.entry ?? []) out[e.resource!.resourceType] += 1;
  return out;
}

async function clear(): Promise<void> {
  fhir.repo.clear();
  fhir.writes.length = 0;
  await Promise.resolve();
}

describe('SMART Backend Services against oidc-provider', () => {
  it('discovers the token endpoint, signs ES384 and RS384 assertions, caches the token', async () => {
    const auth = esAuth();
    assert.equal(await auth.tokenUrl(), oauth.tokenUrl);
    const [t1, t2, t3] = await Promise.all([auth.getToken(), auth.getToken(), auth.getToken()]);
    assert.equal(t1, t2);
    assert.equal(t2, t3);
    assert.equal(auth.requests, 1, 'concurrent callers share one token request');
    assert.equal(await auth.getToken(), t1, 'cached');
    const claims = decodeJwt(t1);
    assert.equal(claims.aud, fhir.baseUrl);
    assert.equal(claims.client_id, 'mslesion-es');
    assert.deepEqual(String(claims.scope).split(' ').sort(), WRITE_SCOPES.split(' ').sort());
    const rsAuth = new SmartBackendAuth({
      clientId: 'mslesion-rs',
      privateKey: rs.privateJwk,
      alg: 'RS384',
      scope: 'system/Observation.cu',
      tokenUrl: oauth.tokenUrl,
    });
    assert.equal(decodeJwt(await rsAuth.getToken()).scope, 'system/Observation.cu');
  });

  it('renews shortly before expiry', async () => {
    let now = Date.now();
    const auth = esAuth({ now: () => now, refreshSkewSeconds: 30 });
    const t1 = await auth.getToken();
    now += 250_000; // < 300 s − 30 s
    assert.equal(await auth.getToken(), t1);
    now += 30_000; // inside the skew window
    const t2 = await auth.getToken();
    assert.notEqual(t2, t1);
    assert.equal(auth.requests, 2);
  });

  it('a wrong key is refused by the server (SMART.TOKEN_REJECTED)', async () => {
    const auth = esAuth({ privateKey: readonlyKeys.privateJwk });
    await assert.rejects(auth.getToken(), (e) => isDomainError(e) && e.code === 'SMART.TOKEN_REJECTED');
    const unknown = esAuth({ clientId: 'nobody' });
    await assert.rejects(unknown.getToken(), (e) => isDomainError(e) && e.code === 'SMART.TOKEN_REJECTED');
  });
});

describe('FHIR push through the outbox', () => {
  it('delivers a valid transaction bundle; the subject is resolved to the EHR patient', async () => {
    await clear();
    const patient = await fhir.repo.createResource<Patient>({
      resourceType: 'Patient',
      identifier: [{ system: 'urn:oid:1.2.3.4.5.6.7', value: 'MRN-0026' }],
    });
    const analysis = sampleAnalysis({ order: { options: { perLesionObservations: true } } });
    const bundle = buildResultBundle(analysis, sampleStudy(), {
      pdf: new TextEncoder().encode('%PDF-1.4 x'),
    });
    const outbox = new SqliteOutbox({ path: ':memory:' });
    const statuses: DeliveryStatus[] = [];
    const dispatcher = new OutboxDispatcher({
      outbox,
      senders: [new FhirPushClient({ baseUrl: fhir.baseUrl, auth: esAuth() })],
      recorder: { record: (_id, s) => Promise.resolve(void statuses.push(s)) },
      clock: systemClock,
      logger: SILENT_LOGGER,
      owner: 'it',
    });
    await outbox.enqueue(
      {
        analysisId: analysis.id,
        channel: 'fhir',
        contentType: 'application/fhir+json',
        payload: JSON.stringify(bundle),
      },
      new Date(),
    );
    assert.deepEqual(await dispatcher.runOnce(), { delivered: 1, retrying: 0, failed: 0, lost: 0 });
    assert.deepEqual(
      statuses.map((s) => s.state),
      ['delivered'],
    );
    assert.deepEqual(await counts(), expectedCounts(bundle));
    const obs = await fhir.all<Observation>('Observation');
    assert.ok(obs.every((o) => o.subject?.reference === `Patient/${patient.id}`));
    for (const t of ['Device', 'ImagingStudy', 'Observation', 'DiagnosticReport', 'Provenance'] as const)
      for (const r of await fhir.all<Resource>(t)) assert.deepEqual(fhirErrors(r), [], `${t}/${r.id ?? ''}`);
    const report = (await fhir.all<DiagnosticReport>('DiagnosticReport'))[0];
    assert.equal(report.id, `${analysis.id}-report`);
    assert.equal(report.presentedForm?.[0]?.contentType, 'application/pdf');
    await outbox.close();
  });

  it('parallel re-deliveries of the same results create nothing twice', async () => {
    await clear();
    fhir.setWriteDelay(20);
    try {
      const bundle = buildResultBundle(sampleAnalysis(), sampleStudy());
      const client = new FhirPushClient({ baseUrl: fhir.baseUrl, auth: esAuth(), resolvePatient: false });
      const results = await Promise.all(
        Array.from({ length: 8 }, () => client.push(structuredClone(bundle))),
      );
      assert.ok(results.every((r) => r.status === 200));
      assert.deepEqual(await counts(), expectedCounts(bundle));
      // Each resource was written 8 times (8 versions), yet exists once.
      const report = (await fhir.all<DiagnosticReport>('DiagnosticReport'))[0];
      const history = await fhir.repo.readHistory('DiagnosticReport', report.id!);
      assert.equal(history.entry?.length, 8);
    } finally {
      fhir.setWriteDelay(0);
    }
  });

  it('commit-then-fail faults (500 after commit, cut connection, 503 before commit) are retried without duplicates', async () => {
    await clear();
    const bundle = buildResultBundle(sampleAnalysis(), sampleStudy());
    const outbox = new SqliteOutbox({ path: ':memory:' });
    const statuses: string[] = [];
    let now = Date.now();
    const clock = { now: () => new Date(now), sleep: () => Promise.resolve() };
    const dispatcher = new OutboxDispatcher({
      outbox,
      senders: [new FhirPushClient({ baseUrl: fhir.baseUrl, auth: esAuth(), resolvePatient: false })],
      recorder: { record: (_id, s) => Promise.resolve(void statuses.push(s.state)) },
      clock,
      logger: SILENT_LOGGER,
      owner: 'it',
      backoff: { baseMs: 1000, maxMs: 1000, maxAttempts: 6 },
    });
    fhir.failNext('after-commit');
    fhir.failNext('after-commit-drop');
    fhir.failNext('before-commit');
    await outbox.enqueue(
      {
        analysisId: sampleAnalysis().id,
        channel: 'fhir',
        contentType: 'application/fhir+json',
        payload: JSON.stringify(bundle),
      },
      new Date(now),
    );
    for (let i = 0; i < 6 && !statuses.includes('delivered'); i++) {
      await dispatcher.runOnce();
      now += 1000;
    }
    assert.deepEqual(statuses, ['retrying', 'retrying', 'retrying', 'delivered']);
    assert.deepEqual(
      fhir.writes.map((w) => w.fault ?? String(w.status)),
      ['after-commit', 'after-commit-drop', 'before-commit', '200'],
    );
    assert.deepEqual(await counts(), expectedCounts(bundle));
    const msg = await outbox.get(`${sampleAnalysis().id}:fhir`);
    assert.equal(msg?.state, 'delivered');
    assert.equal(msg.attempts, 4);
    await outbox.close();
  });

  it('a dispatcher that crashed mid-delivery is taken over when its lease expires', async () => {
    await clear();
    const bundle = buildResultBundle(sampleAnalysis(), sampleStudy());
    const outbox = new SqliteOutbox({ path: ':memory:' });
    const t0 = Date.now();
    await outbox.enqueue(
      {
        analysisId: sampleAnalysis().id,
        channel: 'fhir',
        contentType: 'application/fhir+json',
        payload: JSON.stringify(bundle),
      },
      new Date(t0),
    );
    // Dispatcher A claims, sends (commits on the server) and dies before recording the outcome.
    const [lease] = await outbox.claimDue({ owner: 'A', leaseMs: 5000, now: new Date(t0), limit: 1 });
    await new FhirPushClient({ baseUrl: fhir.baseUrl, auth: esAuth(), resolvePatient: false }).push(
      JSON.parse(lease.message.payload) as Bundle,
    );
    let now = t0 + 1000;
    const b = new OutboxDispatcher({
      outbox,
      senders: [new FhirPushClient({ baseUrl: fhir.baseUrl, auth: esAuth(), resolvePatient: false })],
      clock: { now: () => new Date(now), sleep: () => Promise.resolve() },
      logger: SILENT_LOGGER,
      owner: 'B',
    });
    assert.equal((await b.runOnce()).delivered, 0, 'A still holds the lease');
    now = t0 + 5000;
    assert.equal((await b.runOnce()).delivered, 1);
    assert.equal(
      await outbox.markDelivered(lease.message.id, lease.token, new Date(now)),
      false,
      'A lost its lease',
    );
    assert.deepEqual(await counts(), expectedCounts(bundle));
    await outbox.close();
  });

  it('rejections are permanent: invalid content (400) and missing scopes (403)', async () => {
    await clear();
    const client = new FhirPushClient({ baseUrl: fhir.baseUrl, auth: esAuth(), resolvePatient: false });
    const bundle = buildResultBundle(sampleAnalysis(), sampleStudy());
    const broken = structuredClone(bundle);
    (broken.entry![3].resource as unknown as Record<string, unknown>).status = 42;
    await assert.rejects(
      client.push(broken),
      (e) => isDomainError(e) && e.code === 'FHIR.DELIVERY_REJECTED' && e.issueType === 'invalid',
    );
    const reader = new FhirPushClient({
      baseUrl: fhir.baseUrl,
      resolvePatient: false,
      auth: new SmartBackendAuth({
        clientId: 'reader',
        privateKey: readonlyKeys.privateJwk,
        alg: 'ES384',
        scope: 'system/Observation.rs',
        tokenUrl: oauth.tokenUrl,
      }),
    });
    await assert.rejects(
      reader.push(bundle),
      (e) => isDomainError(e) && e.code === 'FHIR.DELIVERY_REJECTED' && e.issueType === 'security',
    );
    const anonymous = new FhirPushClient({ baseUrl: fhir.baseUrl, resolvePatient: false });
    await assert.rejects(
      anonymous.push(bundle),
      (e) => isDomainError(e) && e.code === 'FHIR.DELIVERY_REJECTED',
    );
    assert.deepEqual(await counts(), {
      Device: 0,
      ImagingStudy: 0,
      Observation: 0,
      DiagnosticReport: 0,
      Provenance: 0,
    });
  });
});
