/**
 * The REST API end to end over HTTP, composed with the real embedded adapters (SQLite, in-process queue,
 * filesystem artifacts) and a worker running a small pipeline. Every response is validated against the
 * contract, by the app itself (validateResponses) and again by the test client.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../config.ts';
import { compose, type Composition } from '../compose.ts';
import { createLogger } from '../adapters/logging/logger.ts';
import { DomainError } from '../domain/errors.ts';
import type { AnalysisPipeline } from '../domain/use-cases/run-analysis.ts';
import { sampleResult } from '../test/contracts/analysis-store.contract.ts';
import { errorCode, serve, type TestServer } from '../test/contracts/http-client.ts';
import { REPO_ROOT } from '../test/helpers/fixtures.ts';

const JSON_HEADERS = { 'content-type': 'application/json' };
const STUDY = '1.2.826.0.1.3680043.8.498.10001';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const pipeline: AnalysisPipeline = async (ctx) => {
  await ctx.progress(0.3, 'load');
  if (ctx.analysis.order.patientId === 'NO-FLAIR')
    throw new DomainError('SERIES.NO_FLAIR', 'the study has no usable FLAIR series', {
      issueType: 'business-rule',
    });
  await ctx.recordFindings([
    {
      seriesInstanceUid: '1.2.3.4',
      role: 'FLAIR',
      acquisition: '3D',
      reason: 'rule flair',
      selected: true,
      rank: 1,
    },
  ]);
  await ctx.artifacts.put('report.pdf', new TextEncoder().encode('%PDF-1.4 test report'), 'application/pdf');
  await ctx.artifacts.put('lesion_mask.nii.gz', new Uint8Array([31, 139, 8, 0]), 'application/gzip');
  return { result: sampleResult() };
};

describe('REST API', () => {
  let dir: string;
  let c: Composition;
  let s: TestServer;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mslesion-api-'));
    mkdirSync(join(dir, 'models'));
    const config = loadConfig({
      env: {
        MSLESION_DATA_DIR: dir,
        MSLESION_MODELS_DIR: join(dir, 'models'),
        MSLESION_VALIDATE_RESPONSES: 'true',
        MSLESION_JSON_LIMIT_BYTES: '4096',
        MSLESION_STOW_MAX_BYTES: '65536',
        MSLESION_SWEEP_INTERVAL_MS: '200',
      },
    });
    c = await compose(config, { pipeline, logger: createLogger({ level: 'silent' }) });
    c.startWorker();
    s = await serve(c.app);
  });
  after(async () => {
    await s.close();
    await c.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = (body: unknown) =>
    s.call('createAnalysis', '/analyses', {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify(body),
    });

  async function until(id: string, status: string): Promise<Record<string, unknown>> {
    for (let i = 0; i < 200; i++) {
      const r = await s.call('getAnalysis', `/analyses/${id}`);
      const a = r.json as Record<string, unknown>;
      if (a.status === status) return a;
      await sleep(50);
    }
    assert.fail(`analysis ${id} never reached ${status}`);
  }

  it('has a handler for every operation of the contract', () => {
    assert.deepEqual((c.app as { unhandledOperations?: string[] }).unhandledOperations, []);
  });

  it('answers health with the version, and a request id', async () => {
    const r = await s.call('getHealth', '/healthz', { headers: { 'x-request-id': 'req-123' } });
    assert.equal(r.status, 200);
    assert.equal((r.json as { version: string }).version, '0.1.0');
    assert.equal(r.headers.get('x-request-id'), 'req-123');
  });

  it('accepts an order (202 + Location), runs it, and serves result, artifacts and report', async () => {
    const r = await post({
      studyInstanceUid: STUDY,
      patientId: 'PAT-A',
      patientIdSystem: 'urn:oid:1.2.3.4',
      placerOrderNumber: 'PON-API-1',
      options: { publishToPacs: false },
    });
    assert.equal(r.status, 202);
    const a = r.json as { id: string; status: string; order: { source: string } };
    assert.equal(r.headers.get('location'), `/analyses/${a.id}`);
    assert.equal(a.status, 'queued');
    assert.equal(a.order.source, 'rest');
    const done = (await until(a.id, 'succeeded')) as {
      progress: number;
      result: unknown;
      findings: unknown[];
      artifacts: { name: string; href: string; sha256: string }[];
      links: { report?: string };
      attempts: number;
    };
    assert.equal(done.progress, 100);
    assert.equal(done.attempts, 1);
    assert.deepEqual(done.result, sampleResult());
    assert.equal(done.findings.length, 1);
    assert.deepEqual(
      done.artifacts.map((x) => x.href),
      [`/analyses/${a.id}/artifacts/lesion_mask.nii.gz`, `/analyses/${a.id}/artifacts/report.pdf`],
    );
    assert.equal(done.links.report, `/analyses/${a.id}/report.pdf`);
    const report = await s.call('getReport', `/analyses/${a.id}/report.pdf`);
    assert.equal(report.status, 200);
    assert.equal(report.contentType, 'application/pdf');
    assert.equal(new TextDecoder().decode(report.bytes), '%PDF-1.4 test report');
    const mask = await s.call('getArtifact', `/analyses/${a.id}/artifacts/lesion_mask.nii.gz`);
    assert.equal(mask.status, 200);
    assert.equal(mask.contentType, 'application/gzip');
    assert.equal(mask.headers.get('etag'), `"${done.artifacts[0].sha256}"`);
    assert.deepEqual(mask.bytes, new Uint8Array([31, 139, 8, 0]));
    const list = await s.call('listArtifacts', `/analyses/${a.id}/artifacts`);
    assert.equal((list.json as { items: unknown[] }).items.length, 2);

    // the same order again: 200 with the same analysis; another study under that number: 409
    const again = await post({
      studyInstanceUid: STUDY,
      patientId: 'PAT-A',
      patientIdSystem: 'urn:oid:1.2.3.4',
      placerOrderNumber: 'PON-API-1',
    });
    assert.equal(again.status, 200);
    assert.equal((again.json as { id: string }).id, a.id);
    const conflict = await post({
      studyInstanceUid: '1.2.3.999',
      patientId: 'PAT-A',
      placerOrderNumber: 'PON-API-1',
    });
    assert.equal(conflict.status, 409);
    assert.equal(errorCode(conflict.json), 'ORDER.CONFLICT');
  });

  it('audits every read and write of patient data on the REST API (AuditEvent), failures too', async () => {
    const r = await post({
      studyInstanceUid: STUDY,
      patientId: 'PAT-AUDIT',
      options: { publishToPacs: false },
    });
    const id = (r.json as { id: string }).id;
    await until(id, 'succeeded');
    await s.call('listAnalyses', '/analyses?patient=PAT-AUDIT');
    await s.call('getReport', `/analyses/${id}/report.pdf`);
    const missing = '00000000-0000-4000-8000-000000000000';
    assert.equal((await s.call('getAnalysis', `/analyses/${missing}`)).status, 404);
    const records = await c.ehr.fhirApi.audit.list({ patientId: 'PAT-AUDIT', limit: 100 });
    const seen = records
      .filter((x) => x.source === 'rest')
      .map(
        (x) =>
          `${x.interaction} ${x.action} ${x.outcome} ${x.entities.map((e) => e.reference ?? 'query').join(',')}`,
      );
    for (const line of [
      `create C 0 ServiceRequest/${id}`,
      `read R 0 ServiceRequest/${id}`,
      `search E 0 query,ServiceRequest/${id}`,
    ])
      assert.ok(seen.includes(line), `${line} in ${seen.join(' | ')}`);
    // a read of an unknown analysis names no patient, but is recorded as a refused read of that order
    const all = await c.ehr.fhirApi.audit.list({ limit: 1000 });
    const refused = all.find((x) => x.entities.some((e) => e.reference === `ServiceRequest/${missing}`));
    assert.equal(refused?.outcome, '4');
    assert.equal(refused.outcomeDescription, 'ANALYSIS.NOT_FOUND');
    assert.equal(refused.patient, undefined);
  });

  it('records a coded failure on the analysis', async () => {
    const r = await post({ studyInstanceUid: STUDY, patientId: 'NO-FLAIR' });
    const failed = (await until((r.json as { id: string }).id, 'failed')) as { error: { code: string } };
    assert.equal(failed.error.code, 'SERIES.NO_FLAIR');
  });

  it('lists analyses by patient (value or system|value) and status, paged with links', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++)
      ids.push(
        (
          (await post({ studyInstanceUid: STUDY, patientId: 'PAT-LIST', patientIdSystem: 'sysL' })).json as {
            id: string;
          }
        ).id,
      );
    const p1 = await s.call('listAnalyses', '/analyses?patient=PAT-LIST&limit=2');
    const page1 = p1.json as {
      items: { id: string }[];
      total: number;
      links: { next?: string; prev?: string };
    };
    assert.equal(page1.total, 3);
    assert.deepEqual(
      page1.items.map((x) => x.id),
      [ids[2], ids[1]],
    );
    assert.equal(page1.links.next, '/analyses?patient=PAT-LIST&limit=2&offset=2');
    assert.equal(page1.links.prev, undefined);
    const p2 = await s.call('listAnalyses', page1.links.next);
    assert.deepEqual(
      (p2.json as { items: { id: string }[] }).items.map((x) => x.id),
      [ids[0]],
    );
    const token = await s.call('listAnalyses', '/analyses?patient=sysL%7CPAT-LIST');
    assert.equal((token.json as { total: number }).total, 3);
    const other = await s.call('listAnalyses', '/analyses?patient=other%7CPAT-LIST');
    assert.equal((other.json as { total: number }).total, 0);
    const failed = await s.call('listAnalyses', '/analyses?status=failed');
    assert.ok((failed.json as { items: { status: string }[] }).items.every((x) => x.status === 'failed'));
  });

  it('answers every bad request with a coded OperationOutcome and keeps serving', async () => {
    const cases: [string | undefined, string, RequestInit, number, string][] = [
      [
        'createAnalysis',
        '/analyses',
        { method: 'POST', headers: JSON_HEADERS, body: '{"studyInstanceUid": ' },
        400,
        'REQUEST.INVALID_JSON',
      ],
      [
        'createAnalysis',
        '/analyses',
        { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify({ patientId: 'x' }) },
        400,
        'REQUEST.INVALID',
      ],
      [
        'createAnalysis',
        '/analyses',
        {
          method: 'POST',
          headers: JSON_HEADERS,
          body: JSON.stringify({ studyInstanceUid: 'abc', patientId: 'x', extra: 1 }),
        },
        400,
        'REQUEST.INVALID',
      ],
      [
        'createAnalysis',
        '/analyses',
        { method: 'POST', headers: JSON_HEADERS, body: '[1,2]' },
        400,
        'REQUEST.INVALID',
      ],
      [
        'createAnalysis',
        '/analyses',
        {
          method: 'POST',
          headers: JSON_HEADERS,
          body: JSON.stringify({ studyInstanceUid: STUDY, patientId: 'x', priorStudyInstanceUid: STUDY }),
        },
        400,
        'ORDER.PRIOR_IS_CURRENT',
      ],
      [
        'createAnalysis',
        '/analyses',
        { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hello' },
        415,
        'REQUEST.UNSUPPORTED_MEDIA_TYPE',
      ],
      ['createAnalysis', '/analyses', { method: 'POST' }, 415, 'REQUEST.UNSUPPORTED_MEDIA_TYPE'],
      [
        'createAnalysis',
        '/analyses',
        {
          method: 'POST',
          headers: JSON_HEADERS,
          body: JSON.stringify({ studyInstanceUid: STUDY, patientId: 'x'.repeat(5000) }),
        },
        413,
        'REQUEST.TOO_LARGE',
      ],
      ['getAnalysis', '/analyses/not-a-uuid', {}, 400, 'REQUEST.INVALID_ID'],
      ['getAnalysis', '/analyses/3f2b8c1e-4d5a-4b6c-8d7e-9f0a1b2c3d4e', {}, 404, 'ANALYSIS.NOT_FOUND'],
      [
        'getArtifact',
        '/analyses/3f2b8c1e-4d5a-4b6c-8d7e-9f0a1b2c3d4e/artifacts/report.pdf',
        {},
        404,
        'ANALYSIS.NOT_FOUND',
      ],
      [
        'getArtifact',
        '/analyses/3f2b8c1e-4d5a-4b6c-8d7e-9f0a1b2c3d4e/artifacts/..%2F..%2Fetc%2Fpasswd',
        {},
        400,
        'REQUEST.INVALID_PATH',
      ],
      ['getReport', '/analyses/xyz/report.pdf', {}, 400, 'REQUEST.INVALID_ID'],
      ['listAnalyses', '/analyses?limit=0', {}, 400, 'REQUEST.INVALID_QUERY'],
      ['listAnalyses', '/analyses?status=done', {}, 400, 'REQUEST.INVALID_QUERY'],
      ['listAnalyses', '/analyses?limit=5&limit=6', {}, 400, 'REQUEST.INVALID_QUERY'],
      ['listAnalyses', '/analyses?unknown=1', {}, 400, 'REQUEST.INVALID_QUERY'],
      [undefined, '/nowhere', {}, 404, 'ROUTE.NOT_FOUND'],
      [undefined, '/analyses/3f2b8c1e-4d5a-4b6c-8d7e-9f0a1b2c3d4e/other', {}, 404, 'ROUTE.NOT_FOUND'],
      [undefined, '/analyses', { method: 'DELETE' }, 405, 'REQUEST.METHOD_NOT_ALLOWED'],
      [undefined, '/healthz', { method: 'POST' }, 405, 'REQUEST.METHOD_NOT_ALLOWED'],
      [
        'stowStudies',
        '/dicomweb/studies',
        {
          method: 'POST',
          headers: { 'content-type': 'multipart/related; type="application/dicom"; boundary=x' },
          body: '--x--',
        },
        400,
        'STOW.NO_INSTANCES',
      ],
    ];
    for (const [op, path, init, status, code] of cases) {
      const r = await s.call(op, path, init);
      assert.equal(r.status, status, `${init.method ?? 'GET'} ${path}: ${JSON.stringify(r.json)}`);
      assert.equal(errorCode(r.json), code, `${init.method ?? 'GET'} ${path}`);
      assert.equal(r.contentType?.split(';')[0], 'application/json');
    }
    const bad = await s.call('createAnalysis', '/analyses', {
      method: 'POST',
      headers: JSON_HEADERS,
      body: JSON.stringify({ studyInstanceUid: 'abc', patientId: '' }),
    });
    const issue = (bad.json as { issue: { expression: string[]; code: string }[] }).issue[0];
    assert.deepEqual([...issue.expression].sort(), ['body.patientId', 'body.studyInstanceUid']);
    assert.equal(issue.code, 'invalid');
    const allow = await s.call(undefined, '/analyses', { method: 'PUT' });
    assert.equal(allow.headers.get('allow'), 'GET, POST');
    assert.equal((await s.call('getHealth', '/healthz')).status, 200);
  });

  it('refuses a huge upload with 413 before reading it, and keeps serving', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${s.baseUrl}/dicomweb/studies`, {
        method: 'POST',
        headers: {
          'content-type': 'multipart/related; type="application/dicom"; boundary=b',
          'content-length': String(10 * 1024 ** 3),
        },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on('error', (e) => {
        if ((e as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(e);
      });
      req.write(Buffer.alloc(1024));
    });
    assert.equal(status, 413);
    assert.equal((await s.call('getHealth', '/healthz')).status, 200);
  });

  it('serves the contract as JSON and a Swagger UI page from local assets', async () => {
    const doc = await s.call('getOpenApi', '/openapi.json');
    assert.deepEqual(doc.json, parseYaml(readFileSync(join(REPO_ROOT, 'openapi', 'openapi.yaml'), 'utf8')));
    const page = await fetch(`${s.baseUrl}/docs`);
    const html = await page.text();
    assert.match(html, /swagger-ui-bundle\.js/);
    assert.doesNotMatch(html, /https?:\/\//);
    const bundle = await fetch(`${s.baseUrl}/docs/assets/swagger-ui-bundle.js`);
    assert.equal(bundle.status, 200);
    assert.ok((await bundle.arrayBuffer()).byteLength > 100_000);
    const missing = await s.call(undefined, '/docs/assets/nope.js');
    assert.equal(missing.status, 404);
  });

  it('reports readiness of store, queue, artifacts and models', async () => {
    const r = await s.call('getReadiness', '/readyz');
    const body = r.json as { ready: boolean; checks: { name: string; ok: boolean }[] };
    assert.equal(r.status, 200, JSON.stringify(body));
    assert.deepEqual(
      body.checks.map((x) => [x.name, x.ok]),
      [
        ['store', true],
        ['queue', true],
        ['artifacts', true],
        ['models', true],
      ],
    );
  });

  it('exposes Prometheus metrics for HTTP, analyses by status and step durations', async () => {
    const r = await s.call('getMetrics', '/metrics');
    const text = new TextDecoder().decode(r.bytes);
    assert.match(text, /mslesion_http_requests_total\{method="GET",route="\/healthz",status="200"\} \d+/);
    assert.match(text, /mslesion_analyses\{status="succeeded"\} [1-9]/);
    assert.match(text, /mslesion_pipeline_step_duration_seconds_count\{step="load"\} [1-9]/);
    assert.match(text, /mslesion_analysis_runs_total\{outcome="failed"\} [1-9]/);
    assert.doesNotMatch(text, /PAT-A|PAT-LIST/);
  });
});

describe('REST API with an authenticator and a failing dependency', () => {
  it('asks for credentials on non-public operations only, and answers 503 when not ready', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mslesion-api-auth-'));
    const c = await compose(
      loadConfig({
        env: { MSLESION_DATA_DIR: dir, MSLESION_MODELS_DIR: dir, MSLESION_VALIDATE_RESPONSES: 'true' },
      }),
      {
        pipeline,
        logger: createLogger({ level: 'silent' }),
        authenticator: {
          authenticate(req) {
            if (req.headers.authorization === 'Bearer good')
              return Promise.resolve({ subject: 'client-1', scopes: [] });
            return Promise.reject(
              new DomainError('AUTH.INVALID_TOKEN', 'a valid bearer token is required', {
                issueType: 'login',
              }),
            );
          },
        },
        readinessChecks: [{ name: 'pacs', check: () => Promise.reject(new Error('connection refused')) }],
      },
    );
    const s = await serve(c.app);
    try {
      const denied = await s.call('listAnalyses', '/analyses');
      assert.equal(denied.status, 401);
      assert.equal(errorCode(denied.json), 'AUTH.INVALID_TOKEN');
      assert.equal(denied.headers.get('www-authenticate'), 'Bearer');
      const ok = await s.call('listAnalyses', '/analyses', { headers: { authorization: 'Bearer good' } });
      assert.equal(ok.status, 200);
      assert.equal((await s.call('getHealth', '/healthz')).status, 200);
      const ready = await s.call('getReadiness', '/readyz');
      assert.equal(ready.status, 503);
      const pacs = (ready.json as { checks: { name: string; ok: boolean; error?: string }[] }).checks.find(
        (x) => x.name === 'pacs',
      );
      assert.deepEqual([pacs?.ok, pacs?.error], [false, 'connection refused']);
      const ops = await serve(c.opsApp);
      try {
        assert.equal((await ops.call('getHealth', '/healthz')).status, 200);
        assert.equal((await ops.call(undefined, '/analyses')).status, 404);
      } finally {
        await ops.close();
      }
    } finally {
      await s.close();
      await c.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
