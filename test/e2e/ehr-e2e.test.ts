/**
 * End to end, EHR side: a FHIR ServiceRequest (POSTed with a SMART token) and an HL7 ORM^O01 (over MLLP) each
 * lead — through the composed service, a real Orthanc holding the study, the worker and the durable outbox —
 * to a valid FHIR transaction on an external, SMART-protected FHIR server (@medplum/fhir-router) and an
 * ORU^R01 on a real MLLP peer (@medplum/hl7). Repeated orders start nothing new; a commit-then-fail fault on
 * the FHIR server and an AR from the peer are retried without creating anything twice.
 *
 * The analysis pipeline here is the real ingestion (DICOMweb pull, series classification, volume assembly)
 * followed by the real lesion table (connected components, volumes, locations on a FLAIR-derived anatomy)
 * of the committed expert lesion mask, resampled onto the FLAIR built from the PACS — the lesion model is
 * not part of this test (the full pipeline, analyze-study.ts, replaces this step when it lands).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hl7Message } from '@medplum/core';
import { Hl7Client, Hl7Server, type Hl7MessageEvent } from '@medplum/hl7';
import type { DiagnosticReport, Observation, Patient, Resource, ServiceRequest } from '@medplum/fhirtypes';
import { loadConfig } from '../../config.ts';
import { compose, type Composition } from '../../compose.ts';
import { createLogger } from '../../adapters/logging/logger.ts';
import { DicomWebClient } from '../../adapters/dicomweb/client.ts';
import { DicomWebImageSource } from '../../adapters/dicomweb/dicomweb-source.ts';
import { buildResearchStudy, type ImportedStudy } from '../../adapters/dicom/research-import.ts';
import { loadSeriesRules } from '../../adapters/dicom/series-rules-file.ts';
import { readNifti } from '../../adapters/nifti/nifti.ts';
import { fhirErrors } from '../../adapters/fhir/validation.ts';
import { SmartBackendAuth } from '../../adapters/fhir/smart-auth.ts';
import { ORM } from '../../adapters/hl7v2/testing/messages.ts';
import { crop, type Mask, type Volume } from '../../domain/model/volume.ts';
import type { Analysis } from '../../domain/model/analysis.ts';
import { anatomyFromFlair } from '../../domain/lesions/anatomy.ts';
import { analyzeLesions } from '../../domain/lesions/lesion-table.ts';
import { gridOf, resampleMask } from '../../domain/preprocess/resample.ts';
import { loadInputsWithProgress } from '../../domain/use-cases/ingest-study.ts';
import type { AnalysisPipeline } from '../../domain/use-cases/run-analysis.ts';
import { serve, type TestServer } from '../contracts/http-client.ts';
import { openMs } from '../helpers/fixtures.ts';
import { freePort, startOrthanc, type OrthancHandle } from '../helpers/orthanc.ts';
import { clientKeys, startOAuthServer, type OAuthServer } from '../integration/support/oauth-server.ts';
import { startFhirServer, type FhirServer } from '../integration/support/fhir-server.ts';

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
  let ehrToken: string;
  let ehrPatient: Patient;
  let hl7Port: number;

  before(async () => {
    pacs = await startOrthanc();
    const [flair, t2] = await Promise.all([cropped('FLAIR'), cropped('T2')]);
    study = buildResearchStudy(
      [
        { contrast: 'FLAIR', volume: flair, source: 'patient07/FLAIR.nii.gz' },
        { contrast: 'T2', volume: t2, source: 'patient07/T2.nii.gz' },
      ],
      { patientId: 'OPENMS-07', studyDate: '20240105' },
    );
    const dicomweb = new DicomWebClient({
      url: pacs.dicomWebUrl,
      auth: { username: pacs.username, password: pacs.password },
    });
    const stored = await dicomweb.stowInstances(study.series.flatMap((x) => x.instances));
    assert.ok(stored.instances.every((i) => i.stored));

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
    mkdirSync(join(dir, 'models'));
    const keyFile = join(dir, 'smart-key.json');
    writeFileSync(keyFile, JSON.stringify(push.privateJwk));
    hl7Port = await freePort();
    const config = loadConfig({
      env: {
        MSLESION_DATA_DIR: dir,
        MSLESION_MODELS_DIR: join(dir, 'models'),
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
    const images = new DicomWebImageSource({
      url: pacs.dicomWebUrl,
      auth: { username: pacs.username, password: pacs.password },
    });
    const rules = await loadSeriesRules();
    const maskNifti = await cropped('lesion_mask');
    const maskSha = createHash('sha256')
      .update(readFileSync(openMs('cross_sectional', 'patient07', 'lesion_mask.nii.gz')))
      .digest('hex');
    const pipeline: AnalysisPipeline = async (ctx) => {
      const inputs = await loadInputsWithProgress(
        { images, rules },
        ctx,
        ctx.analysis.order.studyInstanceUid,
        0,
        0.8,
      );
      const flairVolume = inputs.flair.volume;
      const mask = resampleMask(maskNifti as Mask, gridOf(flairVolume));
      const { summary } = analyzeLesions(mask, flairVolume, anatomyFromFlair(flairVolume));
      await ctx.progress(0.95, 'measured');
      return {
        findings: inputs.findings,
        result: {
          model: {
            id: 'expert-reference',
            name: 'Expert consensus lesion mask (e2e reference)',
            version: '1',
            variant: 'flair',
            channels: ['FLAIR'],
            sha256: maskSha,
            reason: 'end-to-end test of the EHR integration',
          },
          lesions: summary,
          series: {
            flair: {
              seriesInstanceUid: inputs.flair.series.seriesInstanceUid,
              instances: inputs.flair.series.numberOfInstances,
            },
          },
          warnings: [],
        },
      };
    };
    c = await compose(config, { logger: createLogger({ level: 'silent' }), imageSource: images, pipeline });
    c.startWorker();
    await c.ehr.startListener();
    s = await serve(c.app);
  });

  after(async () => {
    await s.close();
    await c.close();
    await peer.stop({ forceDrainTimeoutMs: 100 });
    await fhir.stop();
    await oauth.stop();
    await apiOauth.stop();
    await pacs.stop();
    rmSync(dir, { recursive: true, force: true });
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
    assert.ok((a1.result?.lesions.count ?? 0) > 0, 'the expert mask has lesions in the cropped block');

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

    // Queueing the same results again changes nothing; the service's own FHIR API serves them too.
    const again2 = await c.ehr.afterSucceeded(a1);
    assert.deepEqual(
      again2.map((d) => d.state),
      ['delivered', 'delivered'],
    );
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
});
