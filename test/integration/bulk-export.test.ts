/**
 * FHIR Bulk Data export over HTTP, composed with the real embedded adapters (SQLite store and job table,
 * filesystem files) and secured with backend-services tokens from a real OAuth server (oidc-provider):
 * kick-off → 202 + Content-Location, polling (202 + X-Progress) → manifest, NDJSON files parsed back and every
 * resource validated against R4, `_type` and `_since` filtering (the manifest's transactionTime as the next
 * `_since` yields nothing new), Patient-level export, another client's job invisible, cancel, 429, coded
 * OperationOutcomes for auth failures and bad parameters, and a job left running by a dead process finished
 * by the next one (durable jobs). Every response is checked against the contract.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Resource } from '@medplum/fhirtypes';
import { compose, type Composition } from '../../compose.ts';
import { loadConfig, type Config } from '../../config.ts';
import { SqliteBulkJobStore } from '../../adapters/bulk/sqlite-bulk-jobs.ts';
import { SmartBackendAuth } from '../../adapters/fhir/smart-auth.ts';
import { SYSTEM } from '../../adapters/fhir/codes.ts';
import { sampleAnalysis } from '../../adapters/fhir/testing/sample-analysis.ts';
import { fhirErrors, loadFhirDefinitions } from '../../adapters/fhir/validation.ts';
import { createLogger } from '../../adapters/logging/logger.ts';
import type { AnalysisOrder } from '../../domain/model/analysis.ts';
import type { BulkManifest } from '../../domain/use-cases/bulk-export.ts';
import { errorCode, serve, type TestServer } from '../contracts/http-client.ts';
import { clientKeys, startOAuthServer, type OAuthServer } from './support/oauth-server.ts';

const AUD = 'https://mslesion.test/api';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dir: string;
let oauth: OAuthServer;
let config: Config;
let c: Composition;
let s: TestServer;
const tokens: Record<'registry' | 'obs' | 'orders' | 'other', string> = {
  registry: '',
  obs: '',
  orders: '',
  other: '',
};
/** finishedAt of the three succeeded analyses (oldest first). */
const finished: string[] = [];

async function seed(c: Composition): Promise<void> {
  const base = Date.now() - 3 * 3600_000;
  const orders: Partial<AnalysisOrder>[] = [
    {
      patientId: 'pat-1',
      patientIdSystem: SYSTEM.PATIENT_RESOURCE_ID,
      studyInstanceUid: '1.2.826.0.1.3680043.8.498.20001',
      placerOrderNumber: 'B-1',
      priorStudyInstanceUid: undefined,
    },
    {
      patientId: 'pat-1',
      patientIdSystem: SYSTEM.PATIENT_RESOURCE_ID,
      studyInstanceUid: '1.2.826.0.1.3680043.8.498.20002',
      placerOrderNumber: 'B-2',
      priorStudyInstanceUid: '1.2.826.0.1.3680043.8.498.20001',
    },
    {
      patientId: 'MRN-77',
      patientIdSystem: 'urn:oid:1.2.3.4.5.6.7',
      studyInstanceUid: '1.2.826.0.1.3680043.8.498.20003',
      placerOrderNumber: 'B-3',
    },
  ];
  for (const [i, o] of orders.entries()) {
    const sample = sampleAnalysis({ withPrior: i === 1, order: o });
    const { analysis } = await c.store.create(sample.order, new Date(base + i * 3600_000 - 60_000));
    const at = new Date(base + i * 3600_000);
    finished.push(at.toISOString());
    await c.store.update(
      analysis.id,
      {
        status: 'succeeded',
        progress: 100,
        result: { ...sample.result!, studyDate: `2026010${i + 1}` },
        finishedAt: at.toISOString(),
      },
      at,
    );
  }
  // neither a failed nor a queued analysis is exported
  const failed = await c.store.create(
    sampleAnalysis({ order: { placerOrderNumber: 'B-4', studyInstanceUid: '1.2.3.4' } }).order,
    new Date(),
  );
  await c.store.update(
    failed.analysis.id,
    { status: 'failed', error: { code: 'SERIES.NO_FLAIR', message: 'x' } },
    new Date(),
  );
  await c.store.create(
    sampleAnalysis({ order: { placerOrderNumber: 'B-5', studyInstanceUid: '1.2.3.5' } }).order,
    new Date(),
  );
}

function open(): Promise<Composition> {
  return compose(config, { logger: createLogger({ level: 'silent' }) });
}

before(async () => {
  loadFhirDefinitions();
  dir = mkdtempSync(join(tmpdir(), 'mslesion-bulk-'));
  mkdirSync(join(dir, 'models'));
  const keys = await Promise.all(['registry', 'obs', 'orders', 'other'].map((k) => clientKeys('ES384', k)));
  const scopes = ['system/*.rs', 'system/Observation.rs', 'system/ServiceRequest.c', 'system/*.rs'];
  const names = ['registry', 'obs', 'orders', 'other'] as const;
  oauth = await startOAuthServer({
    audience: AUD,
    clients: names.map((n, i) => ({
      clientId: n,
      alg: 'ES384',
      publicJwk: keys[i].publicJwk,
      scope: scopes[i],
    })),
  });
  for (const [i, n] of names.entries())
    tokens[n] = await new SmartBackendAuth({
      clientId: n,
      privateKey: keys[i].privateJwk,
      alg: 'ES384',
      scope: scopes[i],
      tokenUrl: oauth.tokenUrl,
    }).getToken();
  config = loadConfig({
    env: {
      MSLESION_DATA_DIR: dir,
      MSLESION_MODELS_DIR: join(dir, 'models'),
      MSLESION_VALIDATE_RESPONSES: 'true',
      MSLESION_AUTH_ISSUER: oauth.issuer,
      MSLESION_AUTH_AUDIENCE: AUD,
      MSLESION_BULK_MAX_PER_FILE: '7',
      MSLESION_BULK_POLL_MS: '200',
      MSLESION_PUBLIC_BASE_URL: 'https://mslesion.test',
    },
  });
  c = await open();
  await seed(c);
  s = await serve(c.app);
});

after(async () => {
  await s.close().catch(() => undefined); // closed already when a test failed in between
  await c.close();
  await oauth.stop();
  rmSync(dir, { recursive: true, force: true });
});

const auth = (t: string, extra: Record<string, string> = {}) => ({
  headers: {
    authorization: `Bearer ${t}`,
    accept: 'application/fhir+json',
    prefer: 'respond-async',
    ...extra,
  },
});

/** The status path of a Content-Location (the test server is not at the public base URL). */
function localPath(url: string): string {
  assert.ok(url.startsWith('https://mslesion.test/fhir/'), url);
  return url.slice('https://mslesion.test'.length);
}

async function kickOff(path: string, token = tokens.registry): Promise<string> {
  const r = await s.call(
    path.startsWith('/fhir/Patient') ? 'bulkExportPatient' : 'bulkExportSystem',
    path,
    auth(token),
  );
  assert.equal(r.status, 202, JSON.stringify(r.json));
  return localPath(r.headers.get('content-location') ?? '');
}

async function finish(
  statusPath: string,
  token = tokens.registry,
): Promise<{ manifest: BulkManifest; polls: string[] }> {
  const polls: string[] = [];
  for (let i = 0; i < 300; i++) {
    const r = await s.call('bulkExportStatus', statusPath, auth(token));
    if (r.status === 200) return { manifest: r.json as BulkManifest, polls };
    assert.equal(r.status, 202, JSON.stringify(r.json));
    polls.push(r.headers.get('x-progress') ?? '');
    assert.match(r.headers.get('retry-after') ?? '', /^\d+$/);
    await sleep(50);
  }
  assert.fail('the export never completed');
}

async function download(manifest: BulkManifest, token = tokens.registry): Promise<Map<string, Resource[]>> {
  const out = new Map<string, Resource[]>();
  for (const f of manifest.output) {
    const r = await s.call('bulkExportFile', localPath(f.url), auth(token));
    assert.equal(r.status, 200);
    assert.equal(r.contentType?.split(';')[0], 'application/fhir+ndjson');
    const lines = new TextDecoder()
      .decode(r.bytes)
      .split('\n')
      .filter((l) => l !== '');
    assert.equal(lines.length, f.count, f.url);
    assert.ok(f.count <= 7, 'files split at bulk.maxResourcesPerFile');
    const list = out.get(f.type) ?? [];
    for (const line of lines) {
      const resource = JSON.parse(line) as Resource;
      assert.equal(resource.resourceType, f.type);
      assert.deepEqual(fhirErrors(resource), [], `${resource.resourceType}/${resource.id ?? ''}`);
      list.push(resource);
    }
    out.set(f.type, list);
  }
  return out;
}

const counts = (m: Map<string, Resource[]>) => Object.fromEntries([...m].map(([k, v]) => [k, v.length]));

describe('FHIR Bulk Data export', () => {
  it('refuses missing or bad tokens, missing scopes and bad parameters with coded OperationOutcomes', async () => {
    const anon = await s.call('bulkExportSystem', '/fhir/$export', { headers: { prefer: 'respond-async' } });
    assert.equal(anon.status, 401);
    assert.equal(errorCode(anon.json), 'AUTH.MISSING_TOKEN');
    assert.equal(anon.headers.get('www-authenticate'), 'Bearer');
    const forged = await s.call('bulkExportSystem', '/fhir/$export', auth('a.b.c'));
    assert.equal(forged.status, 401);
    assert.equal(errorCode(forged.json), 'AUTH.INVALID_TOKEN');
    const orders = await s.call('bulkExportSystem', '/fhir/$export', auth(tokens.orders));
    assert.equal(orders.status, 403);
    assert.equal(errorCode(orders.json), 'AUTH.INSUFFICIENT_SCOPE');
    const obsOnly = await s.call(
      'bulkExportSystem',
      '/fhir/$export?_type=Observation,DiagnosticReport',
      auth(tokens.obs),
    );
    assert.equal(obsOnly.status, 403);
    assert.match(JSON.stringify(obsOnly.json), /system\/DiagnosticReport\.rs/);
    const cases: [string, Record<string, string>, string][] = [
      ['/fhir/$export', { prefer: '' }, 'BULK.PREFER_ASYNC_REQUIRED'],
      ['/fhir/$export?_type=Patient', {}, 'BULK.UNSUPPORTED_TYPE'],
      ['/fhir/$export?_outputFormat=text/csv', {}, 'BULK.UNSUPPORTED_FORMAT'],
      ['/fhir/$export?_since=yesterday', {}, 'BULK.INVALID_SINCE'],
      ['/fhir/$export?_since=2026-01-01', {}, 'BULK.INVALID_SINCE'],
      ['/fhir/$export?_typeFilter=Observation%3Fcode%3Dx', {}, 'BULK.UNSUPPORTED_PARAMETER'],
      ['/fhir/$export?_count=3', {}, 'REQUEST.INVALID_QUERY'],
    ];
    for (const [path, headers, code] of cases) {
      const r = await s.call('bulkExportSystem', path, auth(tokens.registry, headers));
      assert.equal(r.status, 400, path);
      assert.equal(errorCode(r.json), code, path);
    }
    const status = await s.call(
      'bulkExportStatus',
      '/fhir/$export-status/00000000-0000-4000-8000-000000000000',
      auth(tokens.registry),
    );
    assert.equal(status.status, 404);
    assert.equal(errorCode(status.json), 'BULK.JOB_NOT_FOUND');
    const noAuthStatus = await s.call(
      'bulkExportStatus',
      '/fhir/$export-status/00000000-0000-4000-8000-000000000000',
    );
    assert.equal(noAuthStatus.status, 401);
  });

  it('exports every succeeded analysis: manifest, NDJSON per type, every resource valid R4', async () => {
    const t0 = Date.now();
    const statusPath = await kickOff('/fhir/$export');
    const { manifest, polls } = await finish(statusPath);
    const ms = Date.now() - t0;
    assert.ok(
      polls.every((p) => /^(queued|in-progress \d{1,3}%)$/.test(p)),
      polls.join(),
    );
    assert.equal(manifest.request, 'https://mslesion.test/fhir/$export');
    assert.equal(manifest.requiresAccessToken, true);
    assert.deepEqual(manifest.error, []);
    assert.ok(Date.parse(manifest.transactionTime) >= Date.parse(finished[2]));
    const got = await download(manifest);
    // 3 analyses: 6 observations each + 4 change observations for the one with a prior; one model, 3 studies
    assert.deepEqual(counts(got), {
      DiagnosticReport: 3,
      Device: 1,
      ImagingStudy: 3,
      Observation: 22,
      Provenance: 3,
    });
    assert.ok(manifest.output.filter((f) => f.type === 'Observation').length >= 4, 'split into files of 7');
    const obs = got.get('Observation') ?? [];
    assert.ok(obs.every((o) => o.meta?.lastUpdated !== undefined && finished.includes(o.meta.lastUpdated)));
    const subjects = new Set(obs.map((o) => JSON.stringify((o as { subject?: unknown }).subject)));
    assert.equal(subjects.size, 2, 'two patients');
    const r = await s.call('bulkExportStatus', statusPath, auth(tokens.registry));
    assert.match(r.headers.get('expires') ?? '', /GMT$/);
    console.log(`bulk export of 3 analyses (${obs.length + 10} resources): ${ms} ms wall`);
  });

  it('_type and _since filter; the transactionTime as the next _since exports nothing', async () => {
    const since = new Date(Date.parse(finished[0]) + 1000).toISOString();
    const statusPath = await kickOff(
      `/fhir/$export?_type=Observation,DiagnosticReport&_since=${encodeURIComponent(since)}`,
    );
    const { manifest } = await finish(statusPath);
    assert.match(manifest.request, /_since=/);
    const got = await download(manifest);
    assert.deepEqual(counts(got), { DiagnosticReport: 2, Observation: 16 });
    assert.ok(
      (got.get('Observation') ?? []).every((o) => Date.parse(o.meta?.lastUpdated ?? '') > Date.parse(since)),
    );
    const next = await finish(
      await kickOff(`/fhir/$export?_since=${encodeURIComponent(manifest.transactionTime)}`),
    );
    assert.deepEqual(next.manifest.output, []);
    // a token with system/Observation.rs alone exports Observations only, without naming _type
    const obsOnly = await finish(await kickOff('/fhir/$export', tokens.obs), tokens.obs);
    assert.deepEqual([...new Set(obsOnly.manifest.output.map((f) => f.type))], ['Observation']);
  });

  it('Patient-level export; another client sees nothing; cancel deletes; 429 over the per-client limit', async () => {
    const statusPath = await kickOff('/fhir/Patient/$export?_type=ImagingStudy');
    const { manifest } = await finish(statusPath);
    assert.equal(manifest.request, 'https://mslesion.test/fhir/Patient/$export?_type=ImagingStudy');
    assert.deepEqual(counts(await download(manifest)), { ImagingStudy: 3 });
    const foreign = await s.call('bulkExportStatus', statusPath, auth(tokens.other));
    assert.equal(foreign.status, 404);
    const file = localPath(manifest.output[0].url);
    const foreignFile = await s.call('bulkExportFile', file, auth(tokens.other));
    assert.equal(foreignFile.status, 404);
    const badName = await s.call(
      'bulkExportFile',
      file.replace(/[^/]+$/, 'Observation-9-9.ndjson'),
      auth(tokens.registry),
    );
    assert.equal(badName.status, 404);
    assert.equal(errorCode(badName.json), 'BULK.FILE_NOT_FOUND');
    const del = await s.call('bulkExportCancel', statusPath, { ...auth(tokens.registry), method: 'DELETE' });
    assert.equal(del.status, 202);
    const gone = await s.call('bulkExportStatus', statusPath, auth(tokens.registry));
    assert.equal(gone.status, 404);
    const goneFile = await s.call('bulkExportFile', file, auth(tokens.registry));
    assert.equal(goneFile.status, 404);
    // the per-client limit (2 queued or running): stop the runner so that the jobs stay queued
    await c.bulkExport.stopRunner();
    try {
      const statuses: number[] = [];
      let retryAfter: string | null = null;
      for (let i = 0; i < 3; i++) {
        const r = await s.call('bulkExportSystem', '/fhir/$export?_type=Device', auth(tokens.other));
        statuses.push(r.status);
        if (r.status === 429) {
          assert.equal(errorCode(r.json), 'BULK.TOO_MANY_JOBS');
          retryAfter = r.headers.get('retry-after');
        }
      }
      assert.deepEqual(statuses, [202, 202, 429]);
      assert.match(retryAfter ?? '', /^\d+$/);
    } finally {
      await s.close();
      await c.close();
    }
  });

  it('jobs are durable: a job a dead process left running (and its partial file) is finished by the next process', async () => {
    // c is closed: simulate a runner that claimed a job and died mid-export, leaving a partial file behind
    const jobs = new SqliteBulkJobStore({ path: config.store.sqlitePath });
    const job = await jobs.create(
      {
        level: 'system',
        types: ['DiagnosticReport'],
        outputFormat: 'application/fhir+ndjson',
        requestUrl: 'https://mslesion.test/fhir/$export?_type=DiagnosticReport',
        owner: 'registry',
      },
      new Date(),
    );
    // it also held the two jobs still queued from before: all three are claimed and left behind
    const claimed: string[] = [];
    for (
      let claim = await jobs.claim({ owner: 'dead-process', leaseMs: 1, now: new Date() });
      claim !== undefined;
    ) {
      claimed.push(claim.job.id);
      claim = await jobs.claim({ owner: 'dead-process', leaseMs: 1, now: new Date(Date.now() - 10_000) });
    }
    assert.equal(claimed.length, 3);
    assert.ok(claimed.includes(job.id));
    mkdirSync(join(config.bulk.dir, job.id), { recursive: true });
    writeFileSync(join(config.bulk.dir, job.id, 'DiagnosticReport-1-1.ndjson'), '{"resourceType":"Diag');
    await jobs.close();
    await sleep(5);
    c = await open();
    s = await serve(c.app);
    const { manifest } = await finish(`/fhir/$export-status/${job.id}`);
    assert.deepEqual(
      manifest.output.map((f) => f.url.split('/').pop()),
      ['DiagnosticReport-2-1.ndjson'],
      'written by attempt 2',
    );
    assert.deepEqual(counts(await download(manifest)), { DiagnosticReport: 3 });
    const j = await c.bulkExport.deps.jobs.get(job.id);
    assert.equal(j?.attempts, 2);
    // the two queued jobs of the previous process ran too
    const active = await c.bulkExport.deps.jobs.countActive('other');
    for (let i = 0; i < 100 && (await c.bulkExport.deps.jobs.countActive('other')) > 0; i++) await sleep(50);
    assert.ok(active <= 2);
    assert.equal(await c.bulkExport.deps.jobs.countActive('other'), 0);
  });
});
