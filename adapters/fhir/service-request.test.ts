import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDomainError } from '../../domain/errors.ts';
import { validateOrder } from '../../domain/use-cases/submit-order.ts';
import { EXTENSION, SYSTEM } from './codes.ts';
import { parseServiceRequest, serviceRequestFromAnalysis } from './service-request.ts';
import { fhirErrors } from './validation.ts';
import { sampleAnalysis } from './testing/sample-analysis.ts';
import { serviceRequest } from './testing/sample-service-request.ts';

const STUDY = '1.2.826.0.1.3680043.8.498.10026';
const PRIOR = '1.2.826.0.1.3680043.8.498.10025';

function rejects(body: unknown, code: string): void {
  assert.throws(
    () => parseServiceRequest(body),
    (e) => isDomainError(e) && e.code === code,
    code,
  );
}

test('a ServiceRequest with a literal patient reference, study and prior becomes an AnalysisOrder', () => {
  const order = parseServiceRequest(serviceRequest());
  assert.deepEqual(order, {
    studyInstanceUid: STUDY,
    patientId: 'pat-7',
    patientIdSystem: SYSTEM.PATIENT_RESOURCE_ID,
    priorStudyInstanceUid: PRIOR,
    placerOrderNumber: 'ORD-1001',
    source: 'fhir',
    options: {},
    orderReference: 'ServiceRequest/sr-42',
  });
  assert.deepEqual(validateOrder(order), []);
});

test('logical patient identifier, contained ImagingStudy, positional prior, options', () => {
  const order = parseServiceRequest(
    serviceRequest({
      id: undefined,
      identifier: [{ value: 'ORD-2' }],
      code: {
        coding: [{ system: SYSTEM.LOCAL, code: 'ms-lesion-analysis' }],
      },
      subject: { identifier: { system: 'urn:oid:1.2.3.4.5', value: 'MRN-1' } },
      contained: [
        {
          resourceType: 'ImagingStudy',
          id: 'cur',
          status: 'available',
          subject: { identifier: { value: 'MRN-1' } },
          identifier: [{ system: 'urn:dicom:uid', value: STUDY }],
        },
      ],
      supportingInfo: [
        { reference: '#cur' },
        { type: 'ImagingStudy', identifier: { system: 'urn:dicom:uid', value: `urn:oid:${PRIOR}` } },
      ],
      orderDetail: [{ coding: [{ system: SYSTEM.LOCAL, code: 'per-lesion-observations' }] }],
      extension: [{ url: EXTENSION.MODEL_ID, valueString: 'mslesion-unet3d' }],
    }),
  );
  assert.equal(order.studyInstanceUid, STUDY);
  assert.equal(order.priorStudyInstanceUid, PRIOR);
  assert.equal(order.patientId, 'MRN-1');
  assert.equal(order.patientIdSystem, 'urn:oid:1.2.3.4.5');
  assert.equal(order.placerOrderNumber, 'ORD-2');
  assert.equal(order.orderReference, undefined);
  assert.deepEqual(order.options, { modelId: 'mslesion-unet3d', perLesionObservations: true });
});

test('bad ServiceRequests are refused with coded errors', () => {
  rejects(null, 'FHIR.NOT_A_SERVICE_REQUEST');
  rejects({ resourceType: 'Patient' }, 'FHIR.NOT_A_SERVICE_REQUEST');
  rejects({ ...serviceRequest(), status: 5 }, 'FHIR.INVALID_RESOURCE');
  rejects({ ...serviceRequest(), status: 'bogus' }, 'FHIR.UNSUPPORTED_STATUS');
  rejects({ ...serviceRequest(), subject: undefined }, 'FHIR.INVALID_RESOURCE');
  rejects({ ...serviceRequest(), unknownField: 1 }, 'FHIR.INVALID_RESOURCE');
  rejects(serviceRequest({ status: 'draft' }), 'FHIR.UNSUPPORTED_STATUS');
  rejects(serviceRequest({ intent: 'proposal' }), 'FHIR.UNSUPPORTED_INTENT');
  rejects(
    serviceRequest({ code: { coding: [{ system: 'http://loinc.org', code: '24627-2' }] } }),
    'FHIR.UNSUPPORTED_CODE',
  );
  rejects(serviceRequest({ subject: { reference: 'Group/1' } }), 'FHIR.INVALID_SUBJECT');
  rejects(serviceRequest({ supportingInfo: [] }), 'FHIR.STUDY_MISSING');
  rejects(serviceRequest({ supportingInfo: [{ reference: 'ImagingStudy/abc' }] }), 'FHIR.STUDY_UID_MISSING');
  rejects(
    serviceRequest({
      supportingInfo: [{ type: 'ImagingStudy', identifier: { system: 'urn:dicom:uid', value: '1.02.x' } }],
    }),
    'FHIR.STUDY_UID_INVALID',
  );
  const three = serviceRequest().supportingInfo!;
  rejects(
    serviceRequest({
      supportingInfo: [
        three[0],
        { type: 'ImagingStudy', identifier: { system: 'urn:dicom:uid', value: '1.2.3' } },
        { type: 'ImagingStudy', identifier: { system: 'urn:dicom:uid', value: '1.2.4' } },
      ],
    }),
    'FHIR.TOO_MANY_STUDIES',
  );
  try {
    parseServiceRequest({ ...serviceRequest(), status: 5 });
  } catch (e) {
    assert.ok(isDomainError(e));
    assert.equal(e.issueType, 'invalid');
    assert.ok(Array.isArray(e.details.issues));
  }
});

test('the echo ServiceRequest is valid R4 and parses back to the same order', () => {
  const analysis = sampleAnalysis({ order: { options: { perLesionObservations: true, modelId: 'm1' } } });
  const echo = serviceRequestFromAnalysis(analysis);
  assert.deepEqual(fhirErrors(echo), []);
  assert.equal(echo.id, analysis.id);
  assert.equal(echo.status, 'completed');
  const again = parseServiceRequest({ ...echo, status: 'active' });
  assert.equal(again.studyInstanceUid, analysis.order.studyInstanceUid);
  assert.equal(again.priorStudyInstanceUid, analysis.order.priorStudyInstanceUid);
  assert.equal(again.patientId, analysis.order.patientId);
  assert.equal(again.patientIdSystem, analysis.order.patientIdSystem);
  assert.equal(again.placerOrderNumber, analysis.order.placerOrderNumber);
  assert.deepEqual(again.options, { modelId: 'm1', perLesionObservations: true });
});
