/**
 * The bulk export use case on the real job store (SQLite in memory), real files (a temp dir) and the real FHIR
 * mapping: kick-off parsing (Prefer, _type, scopes v1/v2, formats, _since), invalid resources diverted to
 * OperationOutcome error files, a cancel in the middle of a run, and the sweep of expired jobs.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBulkFileStore } from '../../adapters/bulk/fs-bulk-files.ts';
import { SqliteBulkJobStore } from '../../adapters/bulk/sqlite-bulk-jobs.ts';
import { createFhirResults } from '../../adapters/fhir/fhir-results.ts';
import { sampleAnalysis } from '../../adapters/fhir/testing/sample-analysis.ts';
import type { Analysis } from '../model/analysis.ts';
import { isDomainError } from '../errors.ts';
import { SILENT_LOGGER } from '../ports/logger.port.ts';
import type { Clock } from '../ports/clock.port.ts';
import {
  DEFAULT_BULK_EXPORT_SETTINGS,
  parseKickOff,
  runNextExport,
  startExport,
  sweepExports,
  type BulkExportDeps,
  type KickOffInput,
} from './bulk-export.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

let lastDir = '';
let now = new Date('2026-03-10T12:00:00.000Z');
const clock: Clock = { now: () => now, sleep: () => Promise.resolve() };

function analyses(n: number): Analysis[] {
  return Array.from({ length: n }, (_, i) => {
    const a = sampleAnalysis({
      id: `3f0c7a52-9d1e-4b7a-8c2f-5e6d7a8b9c${String(i).padStart(2, '0')}`,
      order: { studyInstanceUid: `1.2.826.0.1.3680043.8.498.3000${i}` },
    });
    return { ...a, finishedAt: new Date(Date.UTC(2026, 2, 1 + i)).toISOString() };
  });
}

function deps(list: Analysis[], overrides: Partial<BulkExportDeps> = {}): BulkExportDeps {
  const dir = mkdtempSync(join(tmpdir(), 'mslesion-bulk-unit-'));
  dirs.push(dir);
  lastDir = dir;
  const fhir = createFhirResults();
  return {
    jobs: new SqliteBulkJobStore({ path: ':memory:' }),
    files: new FsBulkFileStore(dir),
    clock,
    logger: SILENT_LOGGER,
    listSucceeded: (offset, limit) =>
      Promise.resolve({ items: list.slice(offset, offset + limit), total: list.length }),
    resources: (a) => fhir.resultResources(a),
    settings: { ...DEFAULT_BULK_EXPORT_SETTINGS, maxResourcesPerFile: 5 },
    ...overrides,
  };
}

const input = (over: Partial<KickOffInput> = {}): KickOffInput => ({
  level: 'system',
  query: {},
  prefer: 'respond-async',
  owner: 'reg',
  requestUrl: 'https://x/fhir/$export',
  ...over,
});

const code = (c: string) => (e: unknown) => isDomainError(e) && e.code === c;

describe('parseKickOff', () => {
  it('reads Prefer among other preferences, _type lists, formats, _since; checks scopes per type', () => {
    const r = parseKickOff(
      input({
        prefer: 'handling=lenient, respond-async',
        query: {
          _type: ['Observation,Device', 'Observation'],
          _outputFormat: 'ndjson',
          _since: '2026-03-01T10:00:00+01:00',
        },
        scopes: ['system/Observation.read', 'system/Device.rs'],
      }),
    );
    assert.deepEqual(r.types, ['Observation', 'Device']);
    assert.equal(r.since, '2026-03-01T09:00:00.000Z');
    assert.equal(r.outputFormat, 'application/fhir+ndjson');
    assert.deepEqual(parseKickOff(input({ scopes: ['system/*.read'] })).types.length, 5);
    assert.deepEqual(parseKickOff(input()).types.length, 5, 'open deployment: everything');
    assert.throws(() => parseKickOff(input({ prefer: undefined })), code('BULK.PREFER_ASYNC_REQUIRED'));
    assert.throws(() => parseKickOff(input({ accept: 'text/html' })), code('BULK.UNSUPPORTED_ACCEPT'));
    assert.throws(
      () => parseKickOff(input({ scopes: ['system/Observation.r'] })),
      code('AUTH.INSUFFICIENT_SCOPE'),
      'read without search is not enough',
    );
    assert.throws(
      () => parseKickOff(input({ scopes: ['patient/*.rs', 'user/*.rs'] })),
      code('AUTH.INSUFFICIENT_SCOPE'),
      'only system scopes export',
    );
    assert.throws(
      () => parseKickOff(input({ query: { _since: ['2026-03-01T00:00:00Z', '2026-03-02T00:00:00Z'] } })),
      code('BULK.INVALID_SINCE'),
    );
    assert.throws(
      () => parseKickOff(input({ query: { _elements: 'id' } })),
      code('BULK.UNSUPPORTED_PARAMETER'),
    );
  });
});

describe('runExportJob', () => {
  it('writes valid resources, diverts invalid ones to OperationOutcome files, splits files', async () => {
    const d = deps(analyses(3), {
      validate: (r) => (r.resourceType === 'Provenance' ? ['Provenance.agent: made-up problem'] : []),
    });
    const job = await startExport(
      d,
      parseKickOff(input({ query: { _type: 'Provenance,DiagnosticReport' } })),
    );
    now = new Date('2026-03-10T12:00:01.000Z');
    assert.equal(await runNextExport(d, 'r1'), true);
    const done = await d.jobs.get(job.id);
    assert.equal(done?.state, 'completed');
    assert.equal(done.transactionTime, '2026-03-10T12:00:01.000Z');
    assert.deepEqual(
      done.output.map((f) => [f.name, f.count]),
      [['DiagnosticReport-1-1.ndjson', 3]],
    );
    assert.deepEqual(
      done.errors.map((f) => [f.name, f.count]),
      [['OperationOutcome-1-1.ndjson', 3]],
    );
    const lines = new TextDecoder()
      .decode(await d.files.read(job.id, 'OperationOutcome-1-1.ndjson'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { resourceType: string; issue: { details: { text: string } }[] });
    assert.ok(lines.every((l) => l.resourceType === 'OperationOutcome'));
    assert.match(lines[0].issue[0].details.text, /^Provenance\/.+ is not valid FHIR R4: Provenance.agent/);
    assert.equal(await runNextExport(d, 'r1'), false, 'nothing left');
    // expired after the retention period, then swept with its files
    now = new Date(now.getTime() + DEFAULT_BULK_EXPORT_SETTINGS.retentionMs + 1);
    assert.equal(await sweepExports(d), 1);
    assert.equal(await d.jobs.get(job.id), undefined);
    assert.equal(await d.files.read(job.id, 'DiagnosticReport-1-1.ndjson'), undefined);
  });

  it('a cancel during the run stops it at the next heartbeat and leaves no files', async () => {
    const list = analyses(25);
    let jobId = '';
    let seen = 0;
    const fhir = createFhirResults();
    const d: BulkExportDeps = deps(list, {
      async resources(a) {
        seen += 1;
        if (seen === 5) await d.jobs.cancel(jobId, clock.now());
        return fhir.resultResources(a);
      },
    });
    jobId = (await startExport(d, parseKickOff(input()))).id;
    assert.equal(await runNextExport(d, 'r1'), true);
    assert.ok(seen <= 11, `stopped at the first heartbeat after the cancel (${seen} analyses read)`);
    assert.equal((await d.jobs.get(jobId))?.state, 'cancelled');
    assert.equal(existsSync(join(lastDir, jobId)), false);
  });
});
