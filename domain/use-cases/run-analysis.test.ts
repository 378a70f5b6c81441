/** The job runner against the real SQLite store (in memory) and filesystem artifact store. */
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteAnalysisStore } from '../../adapters/store/sqlite/sqlite-store.ts';
import { FsArtifactStore } from '../../adapters/artifacts/fs/fs-artifact-store.ts';
import { systemClock } from '../../adapters/clock/system-clock.ts';
import { order, sampleResult } from '../../test/contracts/analysis-store.contract.ts';
import { DomainError } from '../errors.ts';
import { SILENT_LOGGER } from '../ports/logger.port.ts';
import type { JobMetrics } from '../ports/job-metrics.port.ts';
import { runAnalysis, type AnalysisPipeline, type RunAnalysisDeps } from './run-analysis.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('runAnalysis', () => {
  let dir: string;
  let store: SqliteAnalysisStore;
  let artifacts: FsArtifactStore;
  let steps: [string, number][];
  let runs: string[];
  const metrics: JobMetrics = {
    stepFinished: (step, s) => steps.push([step, s]),
    runFinished: (outcome) => runs.push(outcome),
  };
  const deps = (pipeline: AnalysisPipeline, extra: Partial<RunAnalysisDeps> = {}): RunAnalysisDeps => ({
    store,
    artifacts,
    clock: systemClock,
    logger: SILENT_LOGGER,
    metrics,
    pipeline,
    workerId: 'test-worker',
    leaseMs: 30_000,
    maxAttempts: 3,
    retryBaseMs: 1000,
    retryMaxMs: 60_000,
    ...extra,
  });
  const newAnalysis = async () => (await store.create(order(), new Date())).analysis;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mslesion-run-'));
    store = new SqliteAnalysisStore({ path: ':memory:' });
    artifacts = new FsArtifactStore(join(dir, 'artifacts'));
    steps = [];
    runs = [];
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs the pipeline, reporting progress and steps, and records result, findings and artifacts', async () => {
    const a = await newAnalysis();
    const seen: { status: string; progress: number; step?: string }[] = [];
    const outcome = await runAnalysis(
      deps(async (ctx) => {
        assert.equal(ctx.analysis.id, a.id);
        assert.equal(ctx.analysis.status, 'running');
        await ctx.progress(0.1, 'load');
        const mid = await store.get(a.id);
        seen.push({ status: mid!.status, progress: mid!.progress, step: mid!.step });
        await ctx.progress(0.5, 'segment');
        const ref = await ctx.artifacts.put(
          'report.pdf',
          new Uint8Array([37, 80, 68, 70]),
          'application/pdf',
        );
        const findings = [
          {
            seriesInstanceUid: '1.2.3',
            role: 'FLAIR' as const,
            acquisition: '3D' as const,
            reason: 'r',
            selected: true,
          },
        ];
        return { result: sampleResult(), findings, artifacts: [ref] };
      }),
      a.id,
    );
    assert.equal(outcome.outcome, 'succeeded');
    assert.deepEqual(seen, [{ status: 'running', progress: 10, step: 'load' }]);
    const done = await store.get(a.id);
    assert.ok(done);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.progress, 100);
    assert.equal(done.step, undefined);
    assert.equal(done.attempts, 1);
    assert.ok(done.startedAt !== undefined && done.finishedAt !== undefined);
    assert.deepEqual(done.result, sampleResult());
    assert.equal(done.findings?.length, 1);
    assert.deepEqual(
      done.artifacts.map((x) => x.name),
      ['report.pdf'],
    );
    assert.deepEqual((await artifacts.get(a.id, 'report.pdf'))?.data, new Uint8Array([37, 80, 68, 70]));
    assert.deepEqual(
      steps.map((s) => s[0]),
      ['start', 'load', 'segment'],
    );
    assert.deepEqual(runs, ['succeeded']);
    // finished: a second delivery is skipped
    assert.deepEqual(
      await runAnalysis(
        deps(() => Promise.reject(new Error('must not run'))),
        a.id,
      ),
      {
        outcome: 'skipped',
      },
    );
  });

  it('records a DomainError code and its findings, keeps findings recorded before the failure, wraps other errors', async () => {
    const a = await newAnalysis();
    const out = await runAnalysis(
      deps(async (ctx) => {
        await ctx.recordFindings([
          { seriesInstanceUid: '1.2.9', role: 'T1', acquisition: '3D', reason: 'T1 rule', selected: false },
        ]);
        throw new DomainError('SERIES.NO_FLAIR', 'the study has no usable FLAIR series', {
          issueType: 'business-rule',
        });
      }),
      a.id,
    );
    assert.equal(out.outcome, 'failed');
    const failed = await store.get(a.id);
    assert.deepEqual(failed?.error, {
      code: 'SERIES.NO_FLAIR',
      message: 'the study has no usable FLAIR series',
    });
    assert.equal(failed.status, 'failed');
    assert.equal(failed.findings?.[0].role, 'T1');
    const c = await newAnalysis();
    const finding = {
      seriesInstanceUid: '1.2.7',
      role: 'OTHER' as const,
      acquisition: '2D' as const,
      reason: 'no rule',
      selected: false,
    };
    const noFlair = new DomainError('SERIES.NO_FLAIR', 'none', {
      issueType: 'business-rule',
      details: { findings: [finding] },
    });
    await runAnalysis(
      deps(() => Promise.reject(noFlair)),
      c.id,
    );
    assert.deepEqual((await store.get(c.id))?.findings, [finding]);
    const b = await newAnalysis();
    await runAnalysis(
      deps(() => Promise.reject(new TypeError('x is undefined'))),
      b.id,
    );
    assert.deepEqual((await store.get(b.id))?.error, { code: 'INTERNAL.ERROR', message: 'x is undefined' });
  });

  it('retries transient failures with a growing delay, then fails with the last code', async () => {
    const a = await newAnalysis();
    const pacsDown: AnalysisPipeline = () =>
      Promise.reject(new DomainError('PACS.UNREACHABLE', 'connection refused', { issueType: 'transient' }));
    const r1 = await runAnalysis(deps(pacsDown), a.id);
    assert.deepEqual([r1.outcome, 'retryInMs' in r1 ? r1.retryInMs : 0], ['retry', 1000]);
    const q = await store.get(a.id);
    assert.equal(q?.status, 'queued');
    assert.equal(q.error?.code, 'PACS.UNREACHABLE');
    const r2 = await runAnalysis(deps(pacsDown), a.id);
    assert.equal(r2.outcome === 'retry' ? r2.retryInMs : 0, 2000);
    const r3 = await runAnalysis(deps(pacsDown), a.id);
    assert.equal(r3.outcome, 'failed');
    const f = await store.get(a.id);
    assert.equal(f?.status, 'failed');
    assert.equal(f.attempts, 3);
    assert.equal(f.error?.code, 'PACS.UNREACHABLE');
  });

  it('gives up with JOB.TOO_MANY_ATTEMPTS when runs keep dying', async () => {
    const a = await newAnalysis();
    for (let i = 0; i < 3; i++) {
      // a worker claims and dies: its lease is already expired for the next one
      await store.claim(a.id, { owner: 'dead', leaseMs: -1, now: new Date() });
    }
    const out = await runAnalysis(
      deps(() => Promise.reject(new Error('must not run'))),
      a.id,
    );
    assert.equal(out.outcome, 'failed');
    const f = await store.get(a.id);
    assert.equal(f?.error?.code, 'JOB.TOO_MANY_ATTEMPTS');
    assert.equal(f.attempts, 4);
  });

  it('keeps its lease alive while running, so nobody else can claim it', async () => {
    const a = await newAnalysis();
    let stolen: unknown = 'not tried';
    const out = await runAnalysis(
      deps(
        async () => {
          await sleep(700);
          stolen = await store.claim(a.id, { owner: 'other', leaseMs: 1000, now: new Date() });
          return {};
        },
        { leaseMs: 300 },
      ),
      a.id,
    );
    assert.equal(stolen, undefined);
    assert.equal(out.outcome, 'succeeded');
  });

  it('stops writing when its lease was taken over, leaving the new owner alone', async () => {
    const a = await newAnalysis();
    let firstWrite: unknown;
    const out = await runAnalysis(
      deps(async (ctx) => {
        // another node's sweeper saw the lease as expired and another worker claimed it
        const later = new Date(Date.now() + 120_000);
        await store.requeueStale({ now: later, queuedBefore: new Date(0), limit: 10 });
        const other = await store.claim(a.id, { owner: 'other', leaseMs: 60_000, now: later });
        assert.ok(other);
        firstWrite = await ctx.progress(0.5, 'segment').catch((e: unknown) => e);
        await ctx.progress(0.6, 'segment');
        return { result: sampleResult() };
      }),
      a.id,
    );
    assert.equal(out.outcome, 'lost');
    const now = await store.get(a.id);
    assert.equal(now?.status, 'running');
    assert.equal(now.attempts, 2);
    assert.equal(now.result, undefined);
    assert.ok(firstWrite instanceof DomainError && firstWrite.code === 'JOB.LEASE_LOST');
    assert.deepEqual(runs, ['lost']);
  });

  it('requeues the analysis when the worker stops mid-run', async () => {
    const a = await newAnalysis();
    const stop = new AbortController();
    const out = await runAnalysis(
      deps(async (ctx) => {
        await ctx.progress(0.2, 'load');
        stop.abort();
        await ctx.progress(0.3, 'load'); // throws: the run must stop
        return {};
      }),
      a.id,
      stop.signal,
    );
    assert.equal(out.outcome, 'interrupted');
    const q = await store.get(a.id);
    assert.equal(q?.status, 'queued');
    assert.equal(q.error?.code, 'JOB.INTERRUPTED');
    assert.ok((await store.claim(a.id, { owner: 'next', leaseMs: 1000, now: new Date() })) !== undefined);
  });
});
