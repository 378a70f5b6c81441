/**
 * A POSTed analysis against a real Orthanc PACS: studies built from the committed open_ms NIfTI case with the
 * research import (cropped to keep the test small), stored in Orthanc over STOW-RS, then ordered through the
 * REST API of the composed service (SQLite, in-process worker, DICOMweb image source, the full analysis
 * pipeline with a small real ONNX network from test/fixtures/models so it runs in seconds). The study with FLAIR
 * and T2 is pulled, classified, built into volumes, segmented with the FLAIR+T2 variant (no T1), measured, and
 * its SEG / SR / PDF / overlay series land back in Orthanc; the one without FLAIR fails with SERIES.NO_FLAIR;
 * an unknown study fails with STUDY.NOT_FOUND; a study pushed to the service itself (STOW-RS) is analysed
 * from its inbox; a stopped PACS makes readiness fail and the job retry with PACS.* codes.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../config.ts';
import { compose, type Composition } from '../../compose.ts';
import { createLogger } from '../../adapters/logging/logger.ts';
import { DicomWebClient } from '../../adapters/dicomweb/client.ts';
import { buildResearchStudy, type ImportedStudy } from '../../adapters/dicom/research-import.ts';
import { readNifti } from '../../adapters/nifti/nifti.ts';
import { crop, type Volume } from '../../domain/model/volume.ts';
import { errorCode, serve, type TestServer } from '../contracts/http-client.ts';
import { FIXTURES, REPO_ROOT, openMs } from '../helpers/fixtures.ts';
import { startOrthanc, type OrthancHandle } from '../helpers/orthanc.ts';
import { cleanup } from '../helpers/cleanup.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A central block of the MNI-grid volume (182×218×182 → 64×64×24): small, deterministic, real anatomy. */
async function croppedCase(name: 'FLAIR' | 'T2' | 'T1'): Promise<Volume> {
  const v = (await readNifti(openMs('cross_sectional', 'patient07', `${name}.nii.gz`))).volume;
  return crop(v, [59, 77, 79], [123, 141, 103]);
}

interface AnalysisBody {
  id: string;
  status: string;
  progress: number;
  attempts: number;
  error?: { code: string; message: string };
  result?: {
    model: { id: string; variant: string; reason: string };
    lesions: { count: number; totalVolumeMl: number };
  };
  artifacts: { name: string }[];
  findings?: { seriesInstanceUid: string; role: string; selected: boolean; reason: string }[];
}

describe('analysis of a study held by a real Orthanc PACS', () => {
  let pacs: OrthancHandle;
  let dir: string;
  let c: Composition;
  let s: TestServer;
  let withFlair: ImportedStudy;
  let withoutFlair: ImportedStudy;
  let pushed: ImportedStudy;

  before(async () => {
    pacs = await startOrthanc();
    const [flair, t2, t1] = await Promise.all([croppedCase('FLAIR'), croppedCase('T2'), croppedCase('T1')]);
    withFlair = buildResearchStudy(
      [
        { contrast: 'FLAIR', volume: flair, source: 'patient07/FLAIR.nii.gz' },
        { contrast: 'T2', volume: t2, source: 'patient07/T2.nii.gz' },
      ],
      { patientId: 'OPENMS-07', studyDate: '20240105' },
    );
    withoutFlair = buildResearchStudy([{ contrast: 'T1', volume: t1, source: 'patient07/T1.nii.gz' }], {
      patientId: 'OPENMS-07',
      studyDate: '20240106',
    });
    pushed = buildResearchStudy([{ contrast: 'FLAIR', volume: flair, source: 'patient07/FLAIR.nii.gz' }], {
      patientId: 'OPENMS-07',
      studyDate: '20240107',
    });
    const client = new DicomWebClient({
      url: pacs.dicomWebUrl,
      auth: { username: pacs.username, password: pacs.password },
    });
    for (const study of [withFlair, withoutFlair]) {
      const r = await client.stowInstances(study.series.flatMap((x) => x.instances));
      assert.ok(
        r.instances.every((i) => i.stored),
        'stored in Orthanc',
      );
    }
    dir = mkdtempSync(join(tmpdir(), 'mslesion-pacs-'));
    // a small real lesion network (random weights) and the real brain-extraction model (the crop has no background)
    mkdirSync(join(dir, 'models'));
    cpSync(join(FIXTURES, 'models', 'tiny-unet'), join(dir, 'models', 'tiny-unet'), { recursive: true });
    cpSync(join(REPO_ROOT, 'models', 'brain-mindgrab'), join(dir, 'models', 'brain-mindgrab'), {
      recursive: true,
    });
    const config = loadConfig({
      env: {
        MSLESION_DATA_DIR: dir,
        MSLESION_MODELS_DIR: join(dir, 'models'),
        MSLESION_DEFAULT_MODEL: 'tiny-unet',
        MSLESION_ANATOMY: 'flair',
        MSLESION_PACS_URL: pacs.dicomWebUrl,
        MSLESION_PACS_USERNAME: pacs.username,
        MSLESION_PACS_PASSWORD: pacs.password,
        MSLESION_VALIDATE_RESPONSES: 'true',
        MSLESION_RETRY_BASE_MS: '200',
        MSLESION_RETRY_MAX_MS: '400',
        MSLESION_SWEEP_INTERVAL_MS: '200',
      },
    });
    c = await compose(config, { logger: createLogger({ level: 'silent' }) });
    c.startWorker();
    s = await serve(c.app);
  });

  after(async () => {
    await cleanup(
      () => s.close(),
      () => c.close(),
      () => pacs.stop(),
      () => {
        rmSync(dir, { recursive: true, force: true });
      },
    );
  });

  async function order(studyInstanceUid: string): Promise<string> {
    const r = await s.call('createAnalysis', '/analyses', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ studyInstanceUid, patientId: 'OPENMS-07' }),
    });
    assert.equal(r.status, 202);
    return (r.json as { id: string }).id;
  }

  async function finished(id: string): Promise<AnalysisBody> {
    for (let i = 0; i < 1200; i++) {
      const a = (await s.call('getAnalysis', `/analyses/${id}`)).json as AnalysisBody;
      if (a.status === 'succeeded' || a.status === 'failed') return a;
      await sleep(100);
    }
    assert.fail(`analysis ${id} did not finish`);
  }

  it('is ready: store, queue, artifacts, models and the PACS answer', async () => {
    const r = await s.call('getReadiness', '/readyz');
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.ok((r.json as { checks: { name: string }[] }).checks.some((x) => x.name === 'pacs'));
  });

  it('pulls the study, classifies its series and builds the FLAIR and T2 volumes', async () => {
    const a = await finished(await order(withFlair.studyInstanceUid));
    assert.equal(a.status, 'succeeded', JSON.stringify(a.error));
    assert.equal(a.progress, 100);
    const selected = (a.findings ?? []).filter((f) => f.selected);
    const flairUid = withFlair.series.find((x) => x.contrast === 'FLAIR')!.seriesInstanceUid;
    const t2Uid = withFlair.series.find((x) => x.contrast === 'T2')!.seriesInstanceUid;
    assert.deepEqual(
      selected.map((f) => [f.seriesInstanceUid, f.role]).sort(),
      [
        [flairUid, 'FLAIR'],
        [t2Uid, 'T2'],
      ].sort(),
    );
    assert.match(selected.find((f) => f.role === 'FLAIR')!.reason, /64×64×24/);
    // segmented with the variant the study allows, measured, reported
    assert.equal(a.result?.model.id, 'tiny-unet');
    assert.equal(a.result.model.variant, 'flair-t2');
    assert.match(a.result.model.reason, /T1/);
    assert.ok(a.result.lesions.count >= 0 && Number.isFinite(a.result.lesions.totalVolumeMl));
    const names = a.artifacts.map((x) => x.name);
    for (const n of ['lesion_mask.nii.gz', 'lesions.csv', 'report.pdf']) assert.ok(names.includes(n), n);
    const pdf = await s.call('getReport', `/analyses/${a.id}/report.pdf`);
    assert.equal(pdf.status, 200);
    // the derived objects are filed under the analysed study in the PACS
    const series = (await (
      await fetch(`${pacs.dicomWebUrl}/studies/${withFlair.studyInstanceUid}/series`, {
        headers: { authorization: pacs.authorization, accept: 'application/dicom+json' },
      })
    ).json()) as Record<string, { Value?: unknown[] }>[];
    const modalities = series.map((x) => String(x['00080060'].Value?.[0])).sort();
    assert.deepEqual(modalities, ['DOC', 'MR', 'MR', 'OT', 'SEG', 'SR']);
  });

  it('fails a study without FLAIR with SERIES.NO_FLAIR, recording what it found', async () => {
    const a = await finished(await order(withoutFlair.studyInstanceUid));
    assert.equal(a.status, 'failed');
    assert.equal(a.error?.code, 'SERIES.NO_FLAIR');
    assert.equal(a.attempts, 1);
    assert.deepEqual(
      (a.findings ?? []).map((f) => [f.role, f.selected]),
      [['T1', false]],
    );
  });

  it('fails an unknown study with STUDY.NOT_FOUND', async () => {
    const a = await finished(await order('1.2.826.0.1.3680043.8.498.424242'));
    assert.equal(a.status, 'failed');
    assert.equal(a.error?.code, 'STUDY.NOT_FOUND');
  });

  it('analyses a study pushed to the service over STOW-RS, and refuses what is not DICOM', async () => {
    const boundary = 'mslesion-test-boundary';
    const enc = new TextEncoder();
    const parts: Uint8Array[] = [];
    for (const inst of [...pushed.series[0].instances, enc.encode('not a DICOM file at all')])
      parts.push(
        enc.encode(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`),
        inst,
        enc.encode('\r\n'),
      );
    parts.push(enc.encode(`--${boundary}--\r\n`));
    const r = await s.call('stowStudies', '/dicomweb/studies', {
      method: 'POST',
      headers: { 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` },
      body: Buffer.concat(parts),
    });
    assert.equal(r.status, 202, JSON.stringify(r.json));
    const body = r.json as Record<string, { Value: Record<string, { Value: unknown[] }>[] }>;
    assert.equal(body['00081199'].Value.length, pushed.series[0].instances.length);
    assert.equal(body['00081198'].Value.length, 1);
    assert.equal(body['00081198'].Value[0]['00081197'].Value[0], 0xc000);
    const a = await finished(await order(pushed.studyInstanceUid));
    assert.equal(a.status, 'succeeded', JSON.stringify(a.error));
    assert.equal((a.findings ?? []).filter((f) => f.selected && f.role === 'FLAIR').length, 1);
  });

  it('is not ready and retries with a coded error when the PACS is down', async () => {
    await pacs.stop();
    const ready = await s.call('getReadiness', '/readyz');
    assert.equal(ready.status, 503);
    const a = await finished(await order(withFlair.studyInstanceUid));
    assert.equal(a.status, 'failed');
    assert.match(a.error?.code ?? '', /^PACS\./);
    assert.equal(a.attempts, 3, 'retried up to maxAttempts');
    const health = await s.call('getHealth', '/healthz');
    assert.equal(health.status, 200);
    assert.equal(errorCode((await s.call('getAnalysis', '/analyses/not-a-uuid')).json), 'REQUEST.INVALID_ID');
  });
});
