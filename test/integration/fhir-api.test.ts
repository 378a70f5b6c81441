/**
 * The service's own FHIR API over HTTP, secured with SMART tokens from a real OAuth server (oidc-provider):
 * CapabilityStatement, ServiceRequest intake (idempotent per identifier, coded OperationOutcomes), reads and
 * searches over the results of succeeded analyses, 401/403, AuditEvents, no patient identifiers in logs.
 * Real SQLite store, real use cases, real FHIR mapping; every response is checked against the contract and
 * every resource against the R4 definitions.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle, Observation, Resource, ServiceRequest } from '@medplum/fhirtypes';
import { createApp } from '../../api/app.ts';
import type { ApiUseCases } from '../../api/use-cases.ts';
import { SqliteAuditLog } from '../../adapters/audit/sqlite-audit-log.ts';
import { JwtVerifier } from '../../adapters/auth/jwt-verifier.ts';
import { SmartAuthenticator } from '../../adapters/auth/smart-authenticator.ts';
import { systemClock } from '../../adapters/clock/system-clock.ts';
import { SmartBackendAuth } from '../../adapters/fhir/smart-auth.ts';
import { createFhirResults } from '../../adapters/fhir/fhir-results.ts';
import { fhirErrors } from '../../adapters/fhir/validation.ts';
import { sampleAnalysis } from '../../adapters/fhir/testing/sample-analysis.ts';
import { serviceRequest } from '../../adapters/fhir/testing/sample-service-request.ts';
import { InProcessJobQueue } from '../../adapters/queue/in-process/in-process-queue.ts';
import { SqliteAnalysisStore } from '../../adapters/store/sqlite/sqlite-store.ts';
import type { Logger } from '../../domain/ports/logger.port.ts';
import { getAnalysis, getArtifact, listAnalyses } from '../../domain/use-cases/analyses.ts';
import { checkReadiness } from '../../domain/use-cases/readiness.ts';
import { submitOrder } from '../../domain/use-cases/submit-order.ts';
import { FsArtifactStore } from '../../adapters/artifacts/fs/fs-artifact-store.ts';
import { FolderImageSource } from '../../adapters/dicom/folder-source.ts';
import { dicomSeriesDir } from '../helpers/fixtures.ts';
import { serve, type TestServer } from '../contracts/http-client.ts';
import { clientKeys, startOAuthServer, type OAuthServer } from './support/oauth-server.ts';

const AUD = 'https://mslesion.test/api';
const FULL =
  'system/ServiceRequest.cr system/Observation.rs system/DiagnosticReport.rs system/ImagingStudy.rs system/Provenance.r system/CodeSystem.r';
/** The real GE study of test/fixtures/dicom (read by the FolderImageSource for the ImagingStudy). */
const STUDY = '0.0.0.0.2.8811.20010413115754.12432';

let dir: string;
let oauth: OAuthServer;
let store: SqliteAnalysisStore;
let queue: InProcessJobQueue;
let audit: SqliteAuditLog;
let s: TestServer;
let full: string;
let limited: string;
const logLines: string[] = [];

const logger: Logger = {
  debug: (c, m) => logLines.push(JSON.stringify({ ...c, m })),
  info: (c, m) => logLines.push(JSON.stringify({ ...c, m })),
  warn: (c, m) => logLines.push(JSON.stringify({ ...c, m })),
  error: (c, m) => logLines.push(JSON.stringify({ ...c, m })),
};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mslesion-fhir-api-'));
  const k1 = await clientKeys('ES384', 'ehr');
  const k2 = await clientKeys('RS384', 'lim');
  oauth = await startOAuthServer({
    audience: AUD,
    clients: [
      { clientId: 'ehr', alg: 'ES384', publicJwk: k1.publicJwk, scope: FULL },
      { clientId: 'limited', alg: 'RS384', publicJwk: k2.publicJwk, scope: 'system/Observation.r' },
    ],
  });
  full = await new SmartBackendAuth({
    clientId: 'ehr',
    privateKey: k1.privateJwk,
    alg: 'ES384',
    scope: FULL,
    tokenUrl: oauth.tokenUrl,
  }).getToken();
  limited = await new SmartBackendAuth({
    clientId: 'limited',
    privateKey: k2.privateJwk,
    alg: 'RS384',
    scope: 'system/Observation.r',
    tokenUrl: oauth.tokenUrl,
  }).getToken();
  const dbPath = join(dir, 'service.db');
  store = new SqliteAnalysisStore({ path: dbPath });
  audit = new SqliteAuditLog({ path: dbPath });
  queue = new InProcessJobQueue();
  const artifacts = new FsArtifactStore(join(dir, 'artifacts'));
  const useCases: ApiUseCases = {
    submitOrder: (o) => submitOrder({ store, queue, clock: systemClock, logger }, o),
    getAnalysis: (id) => getAnalysis({ store }, id),
    listAnalyses: (q) => listAnalyses({ store }, q),
    getArtifact: (id, name) => getArtifact({ store, artifacts }, id, name),
    readiness: () => checkReadiness({ clock: systemClock, checks: [] }, 1000),
  };
  const app = createApp(useCases, {
    logger,
    version: 'test',
    validateResponses: true,
    authenticator: new SmartAuthenticator({
      verifier: new JwtVerifier({ issuer: oauth.issuer, audience: AUD }),
    }),
    fhir: {
      fhir: createFhirResults({
        version: 'test',
        imageSource: new FolderImageSource(dicomSeriesDir('ge_fse_pd_axial')),
      }),
      audit,
    },
  });
  s = await serve(app);
});

after(async () => {
  await s.close();
  await queue.close();
  await store.close();
  await audit.close();
  await oauth.stop();
  rmSync(dir, { recursive: true, force: true });
});

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const post = (body: unknown, token = full) =>
  s.call('fhirCreateServiceRequest', '/fhir/ServiceRequest', {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json', ...bearer(token) },
    body: JSON.stringify(body),
  });

function code(json: unknown): string | undefined {
  return (json as { issue?: { details?: { coding?: { code?: string }[] } }[] }).issue?.[0]?.details
    ?.coding?.[0]?.code;
}

/** Moves an accepted analysis to succeeded with the sample result (what the worker would do). */
async function succeed(id: string): Promise<void> {
  const t = new Date();
  await store.update(
    id,
    { status: 'succeeded', progress: 100, result: sampleAnalysis().result!, finishedAt: t.toISOString() },
    t,
  );
}

describe('FHIR API', () => {
  it('serves the CapabilityStatement without a token', async () => {
    const r = await s.call('fhirMetadata', '/fhir/metadata');
    assert.equal(r.status, 200);
    assert.equal(r.contentType?.split(';')[0], 'application/fhir+json');
    assert.deepEqual(fhirErrors(r.json as Resource), []);
    assert.equal((r.json as { fhirVersion: string }).fhirVersion, '4.0.1');
  });

  it('401 without a token, 403 without the scope', async () => {
    const anon = await s.call('fhirCreateServiceRequest', '/fhir/ServiceRequest', {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json' },
      body: JSON.stringify(serviceRequest()),
    });
    assert.equal(anon.status, 401);
    assert.equal(code(anon.json), 'AUTH.MISSING_TOKEN');
    const bad = await post(serviceRequest(), 'x.y.z');
    assert.equal(bad.status, 401);
    const forbidden = await post(serviceRequest(), limited);
    assert.equal(forbidden.status, 403);
    assert.equal(code(forbidden.json), 'AUTH.INSUFFICIENT_SCOPE');
    const search = await s.call('fhirSearchObservation', '/fhir/Observation?subject=Patient/pat-7', {
      headers: bearer(limited),
    });
    assert.equal(search.status, 403, 'read (r) is not search (s)');
  });

  it('accepts a ServiceRequest once (201), a repeat returns the same order (200), bad ones are coded', async () => {
    const first = await post(serviceRequest());
    assert.equal(first.status, 201);
    const echo = first.json as ServiceRequest;
    assert.deepEqual(fhirErrors(echo as Resource), []);
    assert.equal(first.headers.get('location'), `/fhir/ServiceRequest/${echo.id!}`);
    assert.equal(echo.status, 'active');
    const again = await post(serviceRequest());
    assert.equal(again.status, 200);
    assert.equal((again.json as ServiceRequest).id, echo.id);
    assert.equal((await store.list({ limit: 10, offset: 0 })).total, 1);
    const conflict = await post(
      serviceRequest({
        supportingInfo: [
          { type: 'ImagingStudy', identifier: { system: 'urn:dicom:uid', value: '1.2.3.4.5' } },
        ],
      }),
    );
    assert.equal(conflict.status, 409);
    assert.equal(code(conflict.json), 'ORDER.CONFLICT');
    const invalid = await post({ ...serviceRequest(), status: 7 });
    assert.equal(invalid.status, 400);
    assert.equal(code(invalid.json), 'FHIR.INVALID_RESOURCE');
    const wrong = await post(
      serviceRequest({ code: { coding: [{ system: 'http://loinc.org', code: '1-8' }] } }),
    );
    assert.equal(code(wrong.json), 'FHIR.UNSUPPORTED_CODE');
    const notSr = await post({ resourceType: 'Patient' });
    assert.equal(notSr.status, 400);
    assert.equal(code(notSr.json), 'FHIR.NOT_A_SERVICE_REQUEST');
    const read = await s.call('fhirReadServiceRequest', `/fhir/ServiceRequest/${echo.id!}`, {
      headers: bearer(full),
    });
    assert.equal(read.status, 200);
    assert.deepEqual((read.json as ServiceRequest).identifier, echo.identifier);
  });

  it('reads and searches the results of a succeeded analysis', async () => {
    const r = await post(
      serviceRequest({
        identifier: [{ value: 'ORD-SEARCH' }],
        subject: { reference: 'Patient/pat-9' },
        supportingInfo: [{ type: 'ImagingStudy', identifier: { system: 'urn:dicom:uid', value: STUDY } }],
      }),
    );
    const id = (r.json as ServiceRequest).id!;
    const before = await s.call('fhirSearchObservation', '/fhir/Observation?subject=Patient/pat-9', {
      headers: bearer(full),
    });
    assert.equal((before.json as Bundle).total, 0, 'nothing before the analysis succeeded');
    await succeed(id);
    const all = await s.call('fhirSearchObservation', '/fhir/Observation?subject=Patient/pat-9', {
      headers: bearer(full),
    });
    assert.equal(all.status, 200);
    const bundle = all.json as Bundle<Observation>;
    assert.equal(bundle.type, 'searchset');
    assert.equal(bundle.total, 10, JSON.stringify(all.json).slice(0, 300));
    for (const e of bundle.entry ?? []) assert.deepEqual(fhirErrors(e.resource!), []);
    const total = await s.call(
      'fhirSearchObservation',
      `/fhir/Observation?subject=Patient/pat-9&code=${encodeURIComponent('http://snomed.info/sct|246206008')}`,
      { headers: bearer(full) },
    );
    const counts = (total.json as Bundle<Observation>).entry ?? [];
    assert.equal(counts.length, 1);
    assert.equal(counts[0].resource?.valueQuantity?.value, 19);
    const dated = await s.call(
      'fhirSearchObservation',
      '/fhir/Observation?subject=Patient/pat-9&date=ge2001-01-01&date=lt2002-01-01',
      {
        headers: bearer(full),
      },
    );
    assert.equal((dated.json as Bundle).total, 10);
    const none = await s.call(
      'fhirSearchObservation',
      '/fhir/Observation?subject=Patient/pat-9&date=lt2000-01-01',
      {
        headers: bearer(full),
      },
    );
    assert.equal((none.json as Bundle).total, 0);
    const reports = await s.call('fhirSearchDiagnosticReport', '/fhir/DiagnosticReport?patient=pat-9', {
      headers: bearer(full),
    });
    assert.equal((reports.json as Bundle).total, 1);
    const studies = await s.call('fhirSearchImagingStudy', '/fhir/ImagingStudy?subject=Patient/pat-9', {
      headers: bearer(full),
    });
    assert.equal((studies.json as Bundle).total, 1);
    // reads
    const obsId = bundle.entry![0].resource!.id!;
    const one = await s.call('fhirReadObservation', `/fhir/Observation/${obsId}`, { headers: bearer(full) });
    assert.equal(one.status, 200);
    assert.equal((one.json as Observation).id, obsId);
    const report = await s.call('fhirReadDiagnosticReport', `/fhir/DiagnosticReport/${id}-report`, {
      headers: bearer(full),
    });
    assert.equal(report.status, 200);
    const prov = await s.call('fhirReadProvenance', `/fhir/Provenance/${id}-provenance`, {
      headers: bearer(full),
    });
    assert.equal(prov.status, 200);
    const study = await s.call('fhirReadImagingStudy', `/fhir/ImagingStudy/${STUDY}`, {
      headers: bearer(full),
    });
    assert.equal(study.status, 200);
    assert.deepEqual(fhirErrors(study.json as Resource), []);
    assert.equal((study.json as { started?: string }).started, '2001-03-16');
    const cs = await s.call('fhirReadCodeSystem', '/fhir/CodeSystem/mslesion', { headers: bearer(full) });
    assert.deepEqual(fhirErrors(cs.json as Resource), []);
    for (const path of [
      `/fhir/Observation/${id}-nope`,
      '/fhir/Observation/00000000-0000-4000-8000-000000000000-total-volume',
      '/fhir/Observation/garbage',
    ]) {
      const r404 = await s.call('fhirReadObservation', path, { headers: bearer(full) });
      assert.equal(r404.status, 404, path);
      assert.equal(code(r404.json), 'FHIR.NOT_FOUND');
    }
    const noSubject = await s.call('fhirSearchObservation', '/fhir/Observation?code=x', {
      headers: bearer(full),
    });
    assert.equal(noSubject.status, 400);
    assert.equal(code(noSubject.json), 'FHIR.SEARCH_NEEDS_SUBJECT');
    const unknownParam = await s.call(
      'fhirSearchObservation',
      '/fhir/Observation?subject=Patient/pat-9&foo=1',
      {
        headers: bearer(full),
      },
    );
    assert.equal(unknownParam.status, 400);
  });

  it('searches by patient identifier for identifier-based orders', async () => {
    const r = await post(
      serviceRequest({
        identifier: [{ value: 'ORD-IDENT' }],
        subject: { identifier: { system: 'urn:oid:1.2.3.4.5', value: 'MRN-77' } },
        supportingInfo: [
          {
            type: 'ImagingStudy',
            identifier: { system: 'urn:dicom:uid', value: '1.2.826.0.1.3680043.8.498.10077' },
          },
        ],
      }),
    );
    await succeed((r.json as ServiceRequest).id!);
    const q = encodeURIComponent('urn:oid:1.2.3.4.5|MRN-77');
    const found = await s.call('fhirSearchObservation', `/fhir/Observation?subject:identifier=${q}`, {
      headers: bearer(full),
    });
    const b = found.json as Bundle<Observation>;
    assert.equal(b.total, 10);
    assert.deepEqual(b.entry?.[0]?.resource?.subject, {
      type: 'Patient',
      identifier: { system: 'urn:oid:1.2.3.4.5', value: 'MRN-77' },
    });
  });

  it('audits every access to patient data and logs no patient identifiers', async () => {
    const records = await audit.list({ limit: 1000 });
    assert.ok(records.length >= 12, `audit records: ${records.length}`);
    assert.ok(records.some((r) => r.interaction === 'create' && r.outcome === '0' && r.agent.who === 'ehr'));
    assert.ok(records.some((r) => r.interaction === 'search' && r.patient?.id === 'pat-9'));
    assert.ok(records.some((r) => r.outcome === '4' && r.outcomeDescription === 'ORDER.CONFLICT'));
    for (const e of await audit.auditEvents(1000)) assert.deepEqual(fhirErrors(e as Resource), []);
    const text = logLines.join('\n');
    assert.ok(logLines.length > 10);
    for (const secret of ['pat-7', 'pat-9', 'MRN-77', '1.2.3.4.5|', 'Doe'])
      assert.ok(!text.includes(secret), `log mentions ${secret}`);
  });
});
