/**
 * End to end, EHR side: a FHIR ServiceRequest (POSTed with a SMART token) and an HL7 ORM^O01 (over MLLP) each
 * lead — through the composed service, a real Orthanc holding the study, the worker and the durable outbox —
 * to a valid FHIR transaction on an external, SMART-protected FHIR server (@medplum/fhir-router) and an
 * ORU^R01 on a real MLLP peer (@medplum/hl7). Repeated orders start nothing new; a commit-then-fail fault on
 * the FHIR server and an AR from the peer are retried without creating anything twice.
 *
 * The analysis is the REAL composed pipeline (compose.ts defaults, no override): DICOMweb pull, series
 * classification, volume assembly, brain extraction with the real brain-mindgrab model (the crop has no
 * background), lesion segmentation with the small real ONNX test network test/fixtures/models/tiny-unet
 * (random weights: the numbers are meaningless, the structure is not), lesion table, artifacts, report PDF and
 * the PACS publish of SEG / SR / PDF / overlay back into Orthanc. A study without FLAIR fails with
 * SERIES.NO_FLAIR and an unknown study is refused with STUDY.NOT_FOUND while the service keeps serving.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hl7Message } from '@medplum/core';
import { Hl7Client, Hl7Server, type Hl7MessageEvent } from '@medplum/hl7';
import type {
  DiagnosticReport,
  ImagingStudy,
  Observation,
  Patient,
  Resource,
  ServiceRequest,
} from '@medplum/fhirtypes';
import { loadConfig } from '../../config.ts';
import { compose, type Composition } from '../../compose.ts';
import { createLogger } from '../../adapters/logging/logger.ts';
import { DicomWebClient } from '../../adapters/dicomweb/client.ts';
import { buildResearchStudy, type ImportedStudy } from '../../adapters/dicom/research-import.ts';
import { readNifti } from '../../adapters/nifti/nifti.ts';
import { fhirErrors } from '../../adapters/fhir/validation.ts';
import { SmartBackendAuth } from '../../adapters/fhir/smart-auth.ts';
import { ORM } from '../../adapters/hl7v2/testing/messages.ts';
import { crop, type Volume } from '../../domain/model/volume.ts';
import type { Analysis } from '../../domain/model/analysis.ts';
import { errorCode, serve, type TestServer } from '../contracts/http-client.ts';
import { FIXTURES, REPO_ROOT, openMs } from '../helpers/fixtures.ts';
import { freePort, startOrthanc, type OrthancHandle } from '../helpers/orthanc.ts';
import { clientKeys, startOAuthServer, type OAuthServer } from '../integration/support/oauth-server.ts';
import { startFhirServer, type FhirServer } from '../integration/support/fhir-server.ts';
import { cleanup } from '../helpers/cleanup.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const AUD = 'https://mslesion.e2e/api';
const PUSH_SCOPES =
  'system/Device.cu system/ImagingStudy.cu system/Observation.cu system/DiagnosticReport.cu system/Provenance.cu system/Patient.rs';
const CROP: [[number, number, number], [number, number, number]] = [
  [59, 77, 79],
  [123, 141, 103],
];

async function cropped(name: string): Promise<Volume> {
  const v = (await readNifti(openMs('cross_sectional', 'patient07', `${name}.nii.gz`))).volume;
  return crop(v, CROP[0], CROP[1]);
}

describe('EHR end to end: orders in, results out', () => {
  let pacs: OrthancHandle;
  let oauth: OAuthServer;
  let apiOauth: OAuthServer;
  let fhir: FhirServer;
  let peer: Hl7Server;
  const orus: string[] = [];
  const peerScript: ('AA' | 'AR')[] = ['AR'];
  let dir: string;
  let c: Composition;
  let s: TestServer;
  let study: ImportedStudy;
  let noFlair: ImportedStudy;
  let ehrToken: string;
  let ehrPatient: Patient;
  let hl7Port: number;

  before(async () => {
    pacs = await startOrthanc();
    const [flair, t2, t1] = await Promise.all([cropped('FLAIR'), cropped('T2'), cropped('T1')]);
    study = buildResearchStudy(
      [
        { contrast: 'FLAIR', volume: flair, source: 'patient07/FLAIR.nii.gz' },
        { contrast: 'T2', volume: t2, source: 'patient07/T2.nii.gz' },
      ],
      { patientId: 'OPENMS-07', studyDate: '20240105' },
    );
    noFlair = buildResearchStudy([{ contrast: 'T1', volume: t1, source: 'patient07/T1.nii.gz' }], {
      patientId: 'OPENMS-07',
      studyDate: '20240106',
    });
    const dicomweb = new DicomWebClient({
      url: pacs.dicomWebUrl,
      auth: { username: pacs.username, password: pacs.password },
    });
    for (const st of [study, noFlair]) {
      const stored = await dicomweb.stowInstances(st.series.flatMap((x) => x.instances));
      assert.ok(stored.instances.every((i) => i.stored));
    }

    // The EHR: OAuth server, SMART-protected FHIR server holding the patient, MLLP peer for results.
    const fhirPort = await freePort();
    const fhirBase = `http://127.0.0.1:${fhirPort}/fhir`;
    const push = await clientKeys('ES384', 'mslesion-push');
    const caller = await clientKeys('RS384', 'ehr-caller');
    oauth = await startOAuthServer({
      audience: fhirBase,
      clients: [{ clientId: 'mslesion', alg: 'ES384', publicJwk: push.publicJwk, scope: PUSH_SCOPES }],
    });
    // A second authorization server audience for calls into the service's own API.
    apiOauth = await startOAuthServer({
      audience: AUD,
      clients: [
        {
          clientId: 'ehr',
          alg: 'RS384',
          publicJwk: caller.publicJwk,
          scope: 'system/ServiceRequest.cr system/Observation.rs',
        },
      ],
    });
    ehrToken = await new SmartBackendAuth({
      clientId: 'ehr',
      privateKey: caller.privateJwk,
      alg: 'RS384',
      scope: 'system/ServiceRequest.cr system/Observation.rs',
      tokenUrl: apiOauth.tokenUrl,
    }).getToken();
    fhir = await startFhirServer({
      issuer: oauth.issuer,
      jwksUrl: oauth.jwksUrl,
      tokenUrl: oauth.tokenUrl,
      port: fhirPort,
    });
    ehrPatient = await fhir.repo.createResource<Patient>({
      resourceType: 'Patient',
      identifier: [{ system: 'urn:oid:1.2.3.4.5', value: 'MRN0026' }],
    });
    const peerPort = await freePort();
    peer = new Hl7Server((connection) => {
      connection.addEventListener('message', ({ message }: Hl7MessageEvent) => {
        orus.push(message.toString());
        connection.send(message.buildAck({ ackCode: peerScript.shift() ?? 'AA' }));
      });
    });
    await peer.start(peerPort);

    // The service, configured as a deployment would be.
    dir = mkdtempSync(join(tmpdir(), 'mslesion-e2e-'));
    // the small real lesion network (random weights) and the real brain-extraction model
    mkdirSync(join(dir, 'models'));
    cpSync(join(FIXTURES, 'models', 'tiny-unet'), join(dir, 'models', 'tiny-unet'), { recursive: true });
    cpSync(join(REPO_ROOT, 'models', 'brain-mindgrab'), join(dir, 'models', 'brain-mindgrab'), {
      recursive: true,
    });
    const keyFile = join(dir, 'smart-key.json');
    writeFileSync(keyFile, JSON.stringify(push.privateJwk));
    hl7Port = await freePort();
    const config = loadConfig({
      env: {
        MSLESION_DATA_DIR: dir,
        MSLESION_MODELS_DIR: join(dir, 'models'),
        MSLESION_DEFAULT_MODEL: 'tiny-unet',
        MSLESION_ANATOMY: 'flair',
        MSLESION_TTA_MIRROR: 'false',
        MSLESION_PACS_URL: pacs.dicomWebUrl,
        MSLESION_PACS_USERNAME: pacs.username,
        MSLESION_PACS_PASSWORD: pacs.password,
        MSLESION_VALIDATE_RESPONSES: 'true',
        MSLESION_SWEEP_INTERVAL_MS: '200',
        MSLESION_AUTH_ISSUER: apiOauth.issuer,
        MSLESION_AUTH_AUDIENCE: AUD,
        MSLESION_FHIR_SERVER_URL: fhirBase,
        MSLESION_FHIR_CLIENT_ID: 'mslesion',
        MSLESION_FHIR_PRIVATE_KEY_FILE: keyFile,
        MSLESION_FHIR_KEY_ALG: 'ES384',
        MSLESION_HL7_PORT: String(hl7Port),
        MSLESION_ORU_HOST: '127.0.0.1',
        MSLESION_ORU_PORT: String(peerPort),
        MSLESION_ORU_RECEIVING_APP: 'EHR',
        MSLESION_CHECK_STUDY_ON_ORDER: 'true',
        MSLESION_OUTBOX_POLL_MS: '100',
      },
    });
    // the composed service exactly as deployed: default pipeline, image source, publisher — no override
    c = await compose(config, { logger: createLogger({ level: 'silent' }) });
    c.startWorker();
    await c.ehr.startListener();
    s = await serve(c.app);
  });

  after(async () => {
    await cleanup(
      () => s.close(),
      () => c.close(),
      () => peer.stop({ forceDrainTimeoutMs: 100 }),
      () => fhir.stop(),
      () => oauth.stop(),
      () => apiOauth.stop(),
      () => pacs.stop(),
      () => {
        rmSync(dir, { recursive: true, force: true });
      },
    );
  });

  async function delivered(id: string): Promise<Analysis> {
    for (let i = 0; i < 600; i++) {
      const a = await c.store.get(id);
      if (a?.status === 'failed') assert.fail(`analysis failed: ${JSON.stringify(a.error)}`);
      const states = new Map(a?.delivery.map((d) => [d.channel, d.state]));
      if (
        a?.status === 'succeeded' &&
        states.get('fhir') === 'delivered' &&
        states.get('hl7v2') === 'delivered'
      )
        return a;
      await sleep(100);
    }
    assert.fail(`analysis ${id} was not delivered: ${JSON.stringify((await c.store.get(id))?.delivery)}`);
  }

  it('a FHIR ServiceRequest and an HL7 order each reach the FHIR server and the MLLP peer, once', async () => {
    fhir.failNext('after-commit'); // the first push is committed, then answered 500: it must be retried harmlessly
    const sr: ServiceRequest = {
      resourceType: 'ServiceRequest',
      identifier: [{ system: 'urn:oid:1.2.3.99', value: 'E2E-FHIR-1' }],
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: 'http://loinc.org', code: '24590-2' }] },
      subject: { reference: `Patient/${ehrPatient.id!}` },
      supportingInfo: [
        {
          type: 'ImagingStudy',
          identifier: { system: 'urn:dicom:uid', value: `urn:oid:${study.studyInstanceUid}` },
        },
      ],
    };
    const post = () =>
      s.call('fhirCreateServiceRequest', '/fhir/ServiceRequest', {
        method: 'POST',
        headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${ehrToken}` },
        body: JSON.stringify(sr),
      });
    const first = await post();
    assert.equal(first.status, 201, JSON.stringify(first.json));
    const again = await post();
    assert.equal(again.status, 200);
    const fhirAnalysisId = (first.json as ServiceRequest).id!;
    assert.equal((again.json as ServiceRequest).id, fhirAnalysisId);

    const hl7 = new Hl7Client({ host: '127.0.0.1', port: hl7Port });
    const orm = (control: string) =>
      Hl7Message.parse(
        ORM({
          control,
          placer: 'E2E-HL7-1',
          study: study.studyInstanceUid,
          prior: null,
          pid3: 'MRN0026^^^HOSP&1.2.3.4.5&ISO^MR',
        }),
      );
    try {
      const ack1 = await hl7.sendAndWait(orm('E2E-1'), { timeoutMs: 10_000 });
      assert.equal(ack1.getSegment('MSA')?.getField(1).toString(), 'AA');
      const ack2 = await hl7.sendAndWait(orm('E2E-2'), { timeoutMs: 10_000 });
      assert.equal(ack2.getSegment('MSA')?.getField(1).toString(), 'AA');
      const unknown = await hl7.sendAndWait(
        Hl7Message.parse(ORM({ control: 'E2E-3', placer: 'E2E-HL7-2', study: '1.2.3.4.5.6.7', prior: null })),
        { timeoutMs: 10_000 },
      );
      assert.equal(unknown.getSegment('MSA')?.getField(1).toString(), 'AE');
      assert.equal(unknown.getSegment('ERR')?.getField(5).getComponent(1), 'STUDY.NOT_FOUND');
    } finally {
      await hl7.close();
    }
    const page = await c.store.list({ limit: 10, offset: 0 });
    assert.equal(page.total, 2, 'two orders, repeated ones started nothing new');
    const hl7Analysis = page.items.find((a) => a.order.source === 'hl7v2')!;

    const [a1, a2] = await Promise.all([delivered(fhirAnalysisId), delivered(hl7Analysis.id)]);
    // the real pipeline ran: the test network (random weights, deterministic) marks lesions on this block
    for (const a of [a1, a2]) {
      assert.equal(a.result?.model.id, 'tiny-unet');
      assert.equal(a.result.model.variant, 'flair-t2', 'FLAIR + T2 in the study, no T1');
      assert.equal(a.result.anatomySource, 'flair-heuristic');
      assert.ok(a.result.lesions.count > 0, 'lesions found on the cropped block');
      const csv = await c.artifacts.get(a.id, 'lesions.csv');
      assert.equal(new TextDecoder().decode(csv!.data).trim().split('\n').length - 1, a.result.lesions.count);
      for (const n of ['lesion_mask.nii.gz', 'lesion_labels.nii.gz', 'brain_mask.nii.gz', 'report.pdf'])
        assert.ok(
          a.artifacts.some((x) => x.name === n),
          n,
        );
    }
    assert.deepEqual(a2.result?.lesions, a1.result?.lesions, 'the same study gives the same lesions');

    // The PACS: each analysis filed its SEG, SR, PDF and overlay series under the study, once.
    const qido = async (path: string) =>
      (await (
        await fetch(`${pacs.dicomWebUrl}${path}`, {
          headers: { authorization: pacs.authorization, accept: 'application/dicom+json' },
        })
      ).json()) as Record<string, { Value?: unknown[] } | undefined>[];
    const seriesInPacs = await qido(`/studies/${study.studyInstanceUid}/series`);
    assert.deepEqual(seriesInPacs.map((x) => String(x['00080060']?.Value?.[0])).sort(), [
      'DOC',
      'DOC',
      'MR',
      'MR',
      'OT',
      'OT',
      'SEG',
      'SEG',
      'SR',
      'SR',
    ]);
    const flairUid = study.series.find((x) => x.contrast === 'FLAIR')!.seriesInstanceUid;
    for (const seg of seriesInPacs.filter((x) => x['00080060']?.Value?.[0] === 'SEG')) {
      const segUid = String(seg['0020000E']?.Value?.[0]);
      const [meta] = await qido(`/studies/${study.studyInstanceUid}/series/${segUid}/metadata`);
      const refSeries = meta['00081115']?.Value?.[0] as Record<string, { Value?: unknown[] }> | undefined;
      assert.equal(refSeries?.['0020000E'].Value?.[0], flairUid, 'the SEG references the analysed FLAIR');
    }

    // The FHIR server: one shared ImagingStudy and Device, per analysis a report and its observations.
    const reports = await fhir.all<DiagnosticReport>('DiagnosticReport');
    assert.deepEqual(reports.map((r) => r.id).sort(), [`${a1.id}-report`, `${a2.id}-report`].sort());
    assert.equal((await fhir.all('ImagingStudy')).length, 1);
    assert.equal((await fhir.all('Device')).length, 1);
    const observations = await fhir.all<Observation>('Observation');
    assert.equal(observations.length, 2 * 6, 'totals and four locations per analysis (no prior)');
    for (const t of ['ImagingStudy', 'Device', 'Observation', 'DiagnosticReport', 'Provenance'] as const)
      for (const r of await fhir.all<Resource>(t)) assert.deepEqual(fhirErrors(r), [], `${t}/${r.id ?? ''}`);
    // Both orders' results point at the EHR's patient: the literal reference, and the identifier resolved.
    assert.ok(observations.every((o) => o.subject?.reference === `Patient/${ehrPatient.id!}`));
    const count = observations.find((o) => o.id === `${a1.id}-lesion-count`);
    assert.equal(count?.valueQuantity?.value, a1.result?.lesions.count);
    assert.ok(
      fhir.writes.some((w) => w.fault === 'after-commit'),
      'the fault was hit and retried',
    );

    // The MLLP peer: one ORU per analysis (the AR'd first one re-sent identically).
    const byControl = new Map<string, string[]>();
    for (const text of orus) {
      const ctrl = Hl7Message.parse(text).getSegment('MSH')!.getField(10).toString();
      byControl.set(ctrl, [...(byControl.get(ctrl) ?? []), text]);
    }
    assert.equal(byControl.size, 2);
    assert.equal(orus.length, 3);
    for (const copies of byControl.values()) assert.ok(copies.every((t) => t === copies[0]));
    const oru = Hl7Message.parse(orus[orus.length - 1]);
    assert.equal(oru.getSegment('MSH')?.getField(9).toString(), 'ORU^R01^ORU_R01');
    assert.ok(oru.getAllSegments('OBX').length >= 10);

    // Queueing the same results again changes nothing: the bundle's ImagingStudy describes the analysed study
    // (the SEG/SR/PDF/overlay series this service filed into it are left out), so the payloads are the ones
    // already delivered — the state stays delivered and nothing is sent again.
    const writesBefore = fhir.writes.length;
    for (const a of [a1, a2]) {
      const again = await c.ehr.afterSucceeded(a);
      assert.deepEqual(
        again.map((d) => d.state),
        ['delivered', 'delivered'],
        'identical content is not queued again',
      );
    }
    await sleep(500); // five dispatcher polls
    assert.equal(fhir.writes.length, writesBefore, 'nothing re-pushed to the FHIR server');
    assert.equal(orus.length, 3, 'no ORU sent again');
    const [imagingStudy] = await fhir.all<ImagingStudy>('ImagingStudy');
    assert.deepEqual(
      imagingStudy.series?.map((x) => x.modality.code),
      ['MR', 'MR'],
      'the ImagingStudy lists the analysed series only',
    );
    assert.equal(imagingStudy.numberOfSeries, 2);
    assert.equal((await fhir.all('DiagnosticReport')).length, 2);
    assert.equal((await fhir.all('ImagingStudy')).length, 1);
    assert.equal((await fhir.all('Device')).length, 1);
    assert.equal((await fhir.all('Observation')).length, 2 * 6);
    // the service's own FHIR API serves the results too
    const search = await s.call(
      'fhirSearchObservation',
      `/fhir/Observation?subject=Patient/${ehrPatient.id!}`,
      {
        headers: { authorization: `Bearer ${ehrToken}` },
      },
    );
    assert.equal(search.status, 200);
    assert.equal((search.json as { total: number }).total, 6);
  });
  it('fails a study without FLAIR with SERIES.NO_FLAIR and refuses an unknown study with STUDY.NOT_FOUND, and keeps serving', async () => {
    const reportsBefore = (await fhir.all('DiagnosticReport')).length;
    const orusBefore = orus.length;
    const order = (placer: string, studyUid: string): ServiceRequest => ({
      resourceType: 'ServiceRequest',
      identifier: [{ system: 'urn:oid:1.2.3.99', value: placer }],
      status: 'active',
      intent: 'order',
      code: { coding: [{ system: 'http://loinc.org', code: '24590-2' }] },
      subject: { reference: `Patient/${ehrPatient.id!}` },
      supportingInfo: [
        { type: 'ImagingStudy', identifier: { system: 'urn:dicom:uid', value: `urn:oid:${studyUid}` } },
      ],
    });
    const post = (sr: ServiceRequest) =>
      s.call('fhirCreateServiceRequest', '/fhir/ServiceRequest', {
        method: 'POST',
        headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${ehrToken}` },
        body: JSON.stringify(sr),
      });

    // unknown to the PACS: refused at the door with a coded OperationOutcome, nothing queued
    const unknown = await post(order('E2E-FHIR-404', '1.2.826.0.1.3680043.8.498.424242'));
    assert.equal(unknown.status, 404, JSON.stringify(unknown.json));
    assert.equal((unknown.json as Resource).resourceType, 'OperationOutcome');
    assert.equal(errorCode(unknown.json), 'STUDY.NOT_FOUND');

    // in the PACS but without FLAIR: accepted, then the analysis fails with the loader's code and what it found
    const created = await post(order('E2E-FHIR-T1', noFlair.studyInstanceUid));
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const id = (created.json as ServiceRequest).id!;
    let failed: Analysis | undefined;
    for (let i = 0; i < 600 && failed === undefined; i++) {
      const a = await c.store.get(id);
      if (a?.status === 'failed') failed = a;
      else if (a?.status === 'succeeded') assert.fail('a study without FLAIR was analysed');
      else await sleep(100);
    }
    assert.ok(failed, 'the analysis failed');
    assert.equal(failed.error?.code, 'SERIES.NO_FLAIR');
    assert.equal(failed.attempts, 1, 'a coded input error is not retried');
    assert.deepEqual(
      (failed.findings ?? []).map((f) => [f.role, f.selected]),
      [['T1', false]],
    );
    const sr = await s.call('fhirReadServiceRequest', `/fhir/ServiceRequest/${id}`, {
      headers: { authorization: `Bearer ${ehrToken}` },
    });
    assert.equal(sr.status, 200);
    assert.equal((sr.json as ServiceRequest).id, id);

    // nothing was sent to the EHR for them, and the service still serves
    await sleep(500);
    assert.equal((await fhir.all('DiagnosticReport')).length, reportsBefore);
    assert.equal(orus.length, orusBefore);
    const page = await c.store.list({ limit: 10, offset: 0 });
    assert.equal(page.total, 3, 'the refused order started nothing');
    assert.equal((await s.call('getHealth', '/healthz')).status, 200);
    const ready = await s.call('getReadiness', '/readyz');
    assert.equal(ready.status, 200, JSON.stringify(ready.json));
  });
});
