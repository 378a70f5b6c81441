/** A valid imaging-analysis ServiceRequest for tests (literal patient, study and marked prior), with overrides. */
import type { ServiceRequest } from '@medplum/fhirtypes';
import { EXTENSION } from '../codes.ts';

const STUDY = '1.2.826.0.1.3680043.8.498.10026';
const PRIOR = '1.2.826.0.1.3680043.8.498.10025';

export function serviceRequest(overrides: Partial<ServiceRequest> = {}): ServiceRequest {
  return {
    resourceType: 'ServiceRequest',
    id: 'sr-42',
    identifier: [
      { system: 'urn:oid:1.2.3.99', value: 'VISIT-9' },
      {
        type: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v2-0203', code: 'PLAC' }] },
        system: 'urn:oid:1.2.3.4',
        value: 'ORD-1001',
      },
    ],
    status: 'active',
    intent: 'order',
    code: { coding: [{ system: 'http://loinc.org', code: '24590-2', display: 'MR Brain' }] },
    subject: { reference: 'Patient/pat-7' },
    supportingInfo: [
      { type: 'ImagingStudy', identifier: { system: 'urn:dicom:uid', value: `urn:oid:${STUDY}` } },
      {
        type: 'ImagingStudy',
        identifier: { system: 'urn:dicom:uid', value: `urn:oid:${PRIOR}` },
        extension: [{ url: EXTENSION.PRIOR_STUDY, valueBoolean: true }],
      },
    ],
    ...overrides,
  };
}
