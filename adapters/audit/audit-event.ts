/**
 * AuditRecord → FHIR R4 AuditEvent (type: rest / HL7 v2 transmission, subtype: the REST interaction, entity
 * per touched resource, the patient as an entity with role 1 "Patient").
 */
import type { AuditEvent, AuditEventEntity } from '@medplum/fhirtypes';
import type { AuditRecord } from '../../domain/ports/audit-log.port.ts';

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const REST = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const INTERACTION = 'http://hl7.org/fhir/restful-interaction';
const ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';

export function toAuditEvent(r: AuditRecord, id?: string): AuditEvent {
  const patientEntity: AuditEventEntity[] =
    r.patient === undefined
      ? []
      : [
          {
            what: {
              type: 'Patient',
              identifier: {
                ...(r.patient.system === undefined ? {} : { system: r.patient.system }),
                value: r.patient.id,
              },
            },
            type: { system: ENTITY_TYPE, code: '1', display: 'Person' },
            role: { system: ROLE, code: '1', display: 'Patient' },
          },
        ];
  return {
    resourceType: 'AuditEvent',
    ...(id === undefined ? {} : { id }),
    type:
      r.source === 'hl7v2'
        ? { system: DCM, code: '110106', display: 'Export' }
        : { system: REST, code: 'rest', display: 'RESTful Operation' },
    subtype: [{ system: INTERACTION, code: r.interaction }],
    action: r.action,
    recorded: r.recorded,
    outcome: r.outcome,
    ...(r.outcomeDescription === undefined ? {} : { outcomeDesc: r.outcomeDescription }),
    agent: [
      {
        type: { coding: [{ system: DCM, code: '110153', display: 'Source Role ID' }] },
        who: { identifier: { value: r.agent.who } },
        requestor: true,
        ...(r.agent.network === undefined ? {} : { network: { address: r.agent.network, type: '2' } }),
      },
    ],
    source: {
      observer: { display: 'ms-lesion-service' },
      type: [
        {
          system: 'http://terminology.hl7.org/CodeSystem/security-source-type',
          code: '4',
          display: 'Application Server',
        },
      ],
    },
    entity: [
      ...patientEntity,
      ...r.entities.map((e): AuditEventEntity => ({
        ...(e.reference === undefined ? {} : { what: { reference: e.reference } }),
        type: { system: ENTITY_TYPE, code: '2', display: 'System Object' },
        ...(e.query === undefined ? {} : { query: Buffer.from(e.query).toString('base64') }),
        ...(r.requestId === undefined ? {} : { description: `request ${r.requestId}` }),
      })),
    ],
  };
}
