import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Observation, Resource } from '@medplum/fhirtypes';
import { isDomainError } from '../../domain/errors.ts';
import { buildResultBundle, buildResultResources, allResources, dicomDateTime } from './result-bundle.ts';
import { fhirErrors, assertValidFhir } from './validation.ts';
import { localCodeSystem, SYSTEM } from './codes.ts';
import { parseResultId } from './ids.ts';
import {
  sampleAnalysis,
  sampleStudy,
  SAMPLE_ANALYSIS_ID,
  SAMPLE_STUDY_UID,
} from './testing/sample-analysis.ts';

function assertAllValid(resources: readonly Resource[]): void {
  for (const r of resources) assert.deepEqual(fhirErrors(r), [], `${r.resourceType}/${r.id ?? ''}`);
}

function byCode(obs: readonly Observation[], code: string): Observation {
  const o = obs.find((x) => x.code.coding?.some((c) => c.system === SYSTEM.LOCAL && c.code === code));
  assert.ok(o, `observation ${code}`);
  return o;
}

test('the validator is not a no-op: it rejects a broken Observation', () => {
  const bad = { resourceType: 'Observation', code: { text: 'x' }, valueQuantity: { value: 'x' } } as unknown;
  assert.ok(fhirErrors(bad as Resource).length > 0);
  assert.throws(
    () => {
      assertValidFhir(bad as Resource);
    },
    (e) => isDomainError(e) && e.code === 'FHIR.INVALID_RESOURCE',
  );
});

test('every result resource and the transaction bundle validate as R4 (with prior, per lesion, PDF)', () => {
  const analysis = sampleAnalysis({ order: { options: { perLesionObservations: true } } });
  const pdf = new TextEncoder().encode('%PDF-1.4 minimal test report');
  const r = buildResultResources(analysis, sampleStudy(), { pdf, studyTimezone: '+01:00' });
  assertAllValid(allResources(r));
  const bundle = buildResultBundle(analysis, sampleStudy(), { pdf, serverBase: 'https://ehr.example/fhir/' });
  assertAllValid([bundle]);
  assertAllValid([localCodeSystem()]);
  assert.equal(bundle.type, 'transaction');
  for (const e of bundle.entry ?? []) {
    assert.equal(e.request?.method, 'PUT');
    assert.equal(e.request.url, `${e.resource!.resourceType}/${e.resource!.id!}`);
    assert.equal(e.fullUrl, `https://ehr.example/fhir/${e.request.url}`);
  }
  // 2 + 4 location + 4 change observations + panel, 19 lesions, device, study, report, provenance.
  assert.equal(r.observations.length, 11);
  assert.equal(r.lesionObservations.length, 19);
  assert.equal(bundle.entry?.length, 11 + 19 + 4);
  assert.equal(r.report.presentedForm?.[0]?.contentType, 'application/pdf');
  assert.equal(
    Buffer.from(r.report.presentedForm[0].data!, 'base64').toString(),
    '%PDF-1.4 minimal test report',
  );
  assert.equal(r.imagingStudy.started, '2026-03-01T10:15:00+01:00');
});

test('codes, units and dicom-sr conventions', () => {
  const analysis = sampleAnalysis();
  const r = buildResultResources(analysis, sampleStudy());
  const total = byCode(r.observations, 'total-t2-lesion-volume');
  assert.ok(total.code.coding?.some((c) => c.system === SYSTEM.SCT && c.code === '118565006'));
  assert.deepEqual(total.component?.[0]?.valueCodeableConcept?.coding?.[0]?.code, '110702');
  assert.equal(total.valueQuantity?.system, 'http://unitsofmeasure.org');
  assert.equal(total.valueQuantity.code, 'mL');
  assert.ok(Math.abs((total.valueQuantity.value ?? 0) - 8.2) < 0.01);
  assert.deepEqual(total.partOf, [{ reference: `ImagingStudy/${SAMPLE_STUDY_UID}` }]);
  assert.equal(total.device?.reference, `Device/${r.device.id!}`);
  assert.deepEqual(total.basedOn, [{ reference: 'ServiceRequest/sr-1' }]);
  assert.deepEqual(total.subject, {
    type: 'Patient',
    identifier: { system: 'urn:oid:1.2.3.4.5.6.7', value: 'MRN-0026' },
  });
  const count = byCode(r.observations, 't2-lesion-count');
  assert.ok(count.code.coding?.some((c) => c.system === SYSTEM.SCT && c.code === '246206008'));
  assert.equal(count.valueQuantity?.value, 19);
  assert.equal(count.valueQuantity.code, '{lesions}');
  const perLoc = r.observations.filter((o) => o.id!.includes('-volume-') && !o.id!.endsWith('change'));
  assert.equal(perLoc.length, 4);
  const sumLoc = perLoc.reduce((a, o) => a + o.valueQuantity!.value!, 0);
  assert.ok(Math.abs(sumLoc - (total.valueQuantity.value ?? 0)) < 0.005);
  assert.equal(byCode(r.observations, 'new-t2-lesion-count').valueQuantity?.value, 2);
  assert.equal(byCode(r.observations, 'enlarging-t2-lesion-count').valueQuantity?.value, 1);
  assert.equal(byCode(r.observations, 'disappeared-t2-lesion-count').valueQuantity?.value, 1);
  const change = byCode(r.observations, 'total-t2-lesion-volume-change');
  assert.ok(Math.abs(change.valueQuantity!.value! - 0.6) < 0.01);
  assert.equal(change.component?.[1]?.valueQuantity?.code, '%');
  assert.equal(change.derivedFrom?.[1]?.identifier?.value, 'urn:oid:1.2.826.0.1.3680043.8.498.10025');
  // Report
  assert.equal(r.report.code.coding?.[0]?.code, '24590-2');
  assert.equal(r.report.code.coding[0].system, 'http://loinc.org');
  assert.deepEqual(r.report.imagingStudy, [{ reference: `ImagingStudy/${SAMPLE_STUDY_UID}` }]);
  assert.equal(r.report.result?.length, r.observations.length);
  assert.match(r.report.conclusion ?? '', /^19 T2\/FLAIR lesions, total volume 8\.20 mL/);
  assert.match(r.report.conclusion ?? '', /2 new, 1 enlarging, 1 disappeared/);
  // Device (IHE AI Results): name, version, model id, sha256.
  assert.equal(r.device.deviceName?.[0]?.name, 'MS lesion 3D U-Net');
  assert.equal(r.device.version?.[0]?.value, '1.0.0');
  assert.ok(
    r.device.identifier?.some((i) => i.system === SYSTEM.MODEL_SHA256 && i.value?.startsWith('9b1d')),
  );
  assert.ok(r.device.identifier?.some((i) => i.system === SYSTEM.MODEL_ID && i.value === 'mslesion-unet3d'));
  // Provenance targets every result and the report.
  assert.equal(r.provenance.target.length, r.observations.length + 1);
  assert.equal(r.provenance.agent[0]?.who?.reference, `Device/${r.device.id!}`);
  // ImagingStudy
  assert.equal(r.imagingStudy.numberOfInstances, 3 * 182);
  assert.equal(r.imagingStudy.series?.length, 3);
  assert.equal(r.imagingStudy.identifier?.[0]?.value, `urn:oid:${SAMPLE_STUDY_UID}`);
  assert.equal(r.imagingStudy.started, '2026-03-01', 'no timezone: date only');
});

test('ids are deterministic and derived from the analysis id and role', () => {
  const a = buildResultBundle(sampleAnalysis(), sampleStudy());
  const b = buildResultBundle(sampleAnalysis(), sampleStudy());
  assert.deepEqual(a, b);
  const ids = (a.entry ?? []).map((e) => e.resource!.id!);
  assert.equal(new Set(ids).size, ids.length);
  for (const e of a.entry ?? []) {
    const t = e.resource!.resourceType;
    if (t === 'Observation' || t === 'DiagnosticReport' || t === 'Provenance')
      assert.equal(parseResultId(e.resource.id!)?.analysisId, SAMPLE_ANALYSIS_ID);
  }
  const other = buildResultBundle(
    sampleAnalysis({ id: '00000000-0000-4000-8000-000000000001' }),
    sampleStudy(),
  );
  const otherIds = (other.entry ?? []).map((e) => e.resource!.id!);
  // Only the shared ImagingStudy and Device keep their ids across analyses.
  assert.deepEqual(
    otherIds.filter((id) => ids.includes(id)).sort(),
    [SAMPLE_STUDY_UID, buildResultResources(sampleAnalysis(), sampleStudy()).device.id!].sort(),
  );
});

test('no prior: no change observations; many lesions: the panel holds the largest N', () => {
  const analysis = sampleAnalysis({
    withPrior: false,
    lesions: 45,
    order: {
      options: { perLesionObservations: true },
      patientIdSystem: SYSTEM.PATIENT_RESOURCE_ID,
      patientId: 'p1',
    },
  });
  const r = buildResultResources(analysis, sampleStudy(), { maxLesionObservations: 30 });
  assertAllValid(allResources(r));
  assert.equal(r.lesionObservations.length, 30);
  assert.equal(r.observations.length, 2 + 4 + 1);
  assert.ok(!r.observations.some((o) => o.id!.endsWith('new-lesions')));
  const panel = r.observations.find((o) => o.id!.endsWith('lesion-panel'));
  assert.equal(panel?.hasMember?.length, 30);
  assert.match(panel.note?.[0]?.text ?? '', /30 largest of 45/);
  assert.deepEqual(r.report.subject, { reference: 'Patient/p1' });
  const vols = r.lesionObservations.map((o) => o.valueQuantity!.value!);
  assert.deepEqual(
    vols,
    [...vols].sort((x, y) => y - x),
  );
});

test('zero lesions and a null percent change still validate', () => {
  const base = sampleAnalysis({ lesions: 0 });
  const analysis = {
    ...base,
    result: {
      ...base.result!,
      change: {
        ...base.result!.change!,
        priorTotalVolumeMl: 0,
        totalVolumeChangeMl: 0,
        totalVolumeChangePercent: null,
      },
    },
  };
  const r = buildResultResources(analysis, sampleStudy(), { perLesionObservations: true });
  assertAllValid(allResources(r));
  assert.equal(r.lesionObservations.length, 0);
  const change = byCode(r.observations, 'total-t2-lesion-volume-change');
  assert.ok(change.component?.[1]?.dataAbsentReason);
  assert.match(r.report.conclusion ?? '', /^0 T2\/FLAIR lesions, total volume 0\.00 mL\./);
});

test('an unfinished analysis or a foreign study is refused with a code', () => {
  const running = { ...sampleAnalysis(), status: 'running' as const };
  assert.throws(
    () => buildResultBundle(running, sampleStudy()),
    (e) => isDomainError(e) && e.code === 'FHIR.NO_RESULT',
  );
  const study = { ...sampleStudy(), studyInstanceUid: '1.2.3' };
  assert.throws(
    () => buildResultBundle(sampleAnalysis(), study),
    (e) => isDomainError(e) && e.code === 'FHIR.STUDY_MISMATCH',
  );
});

test('dicomDateTime', () => {
  assert.equal(dicomDateTime('20240131'), '2024-01-31');
  assert.equal(dicomDateTime('20240131', '093000.123456', 'Z'), '2024-01-31T09:30:00.123Z');
  assert.equal(dicomDateTime('20240131', '0930', '-05:00'), '2024-01-31T09:30:00-05:00');
  assert.equal(dicomDateTime('2024-01-31', '09:30:15', '+02:00'), '2024-01-31T09:30:15+02:00');
  assert.equal(dicomDateTime('garbage'), undefined);
  assert.equal(dicomDateTime(undefined), undefined);
});
