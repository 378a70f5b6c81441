/**
 * FHIR ServiceRequest intake: an imaging-analysis order → AnalysisOrder (source 'fhir'), and the echo of an
 * accepted order as a ServiceRequest.
 *
 * What is accepted (docs/dev-notes/fhir.md has the full table):
 * - a valid R4 ServiceRequest (validated with @medplum/core), status `active`, intent `order` (or one of its
 *   specialisations: original-order, reflex-order, filler-order, instance-order);
 * - `code` with LOINC 24590-2 (MR Brain) or the local `ms-lesion-analysis` code (configurable);
 * - `subject`: a Patient — a literal reference (`Patient/<id>`, relative or absolute; the id becomes the
 *   patient key with system urn:ms-lesion-service:patient-resource-id) or a logical one by identifier;
 * - the study: `supportingInfo` references to ImagingStudy carrying the Study Instance UID as identifier
 *   (system urn:dicom:uid, value urn:oid:<uid> or the bare UID) — inline, or via a `#contained` ImagingStudy
 *   with that identifier. The prior study is the one whose reference carries the extension
 *   …/StructureDefinition/prior-study = true, else the second ImagingStudy reference;
 * - the placer order number: the identifier typed PLAC (v2-0203), else the first identifier;
 * - options: extension …/StructureDefinition/model-id (valueString); `orderDetail` with the local code
 *   `per-lesion-observations` or `no-pacs-publish`.
 * Anything else: DomainError FHIR.* (issue type invalid / value / not-supported) → OperationOutcome.
 */
import type { Extension, Identifier, Reference, Resource, ServiceRequest } from '@medplum/fhirtypes';
import { DomainError } from '../../domain/errors.ts';
import type { Analysis, AnalysisOptions, AnalysisOrder } from '../../domain/model/analysis.ts';
import { concept, EXTENSION, local, LOCAL, STD, SYSTEM } from './codes.ts';
import { dicomUidValue } from './ids.ts';
import { subjectReference } from './result-bundle.ts';
import { assertValidFhir } from './validation.ts';

export interface ServiceRequestIntakeOptions {
  /** Accepted order codes as 'system|code' (default: LOINC 24590-2 and the local ms-lesion-analysis). */
  readonly acceptedCodes?: readonly string[];
}

export const DEFAULT_ORDER_CODES: readonly string[] = [
  `${SYSTEM.LOINC}|24590-2`,
  `${SYSTEM.LOCAL}|${LOCAL.ANALYSIS_ORDER.code}`,
];

const INTENTS = new Set(['order', 'original-order', 'reflex-order', 'filler-order', 'instance-order']);
const UID = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$/;

function invalid(code: string, message: string, field: string): DomainError {
  return new DomainError(code, message, { issueType: 'invalid', details: { field } });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function studyUidFromIdentifier(id: Identifier | undefined): string | undefined {
  if (id?.value === undefined) return undefined;
  if (id.system !== undefined && id.system !== SYSTEM.DICOM_UID) return undefined;
  const v = id.value.startsWith('urn:oid:') ? id.value.slice(8) : id.value;
  return UID.test(v) && v.length <= 64 ? v : undefined;
}

interface StudyRef {
  readonly uid: string;
  readonly prior: boolean;
}

function isPriorMarked(ext: readonly Extension[] | undefined): boolean {
  return ext?.some((e) => e.url === EXTENSION.PRIOR_STUDY && e.valueBoolean === true) ?? false;
}

function studyRefs(sr: ServiceRequest): StudyRef[] {
  const contained = new Map<string, Resource>();
  for (const c of sr.contained ?? []) if (c.id !== undefined) contained.set(`#${c.id}`, c);
  const out: StudyRef[] = [];
  (sr.supportingInfo ?? []).forEach((ref: Reference, i) => {
    const field = `ServiceRequest.supportingInfo[${i}]`;
    let uid: string | undefined;
    let isStudy = ref.type === 'ImagingStudy';
    if (ref.reference?.startsWith('#') === true) {
      const res = contained.get(ref.reference);
      if (res?.resourceType !== 'ImagingStudy') return;
      isStudy = true;
      uid = (res.identifier ?? []).map(studyUidFromIdentifier).find((u) => u !== undefined);
    } else if (ref.identifier !== undefined) {
      if (ref.type !== undefined && ref.type !== 'ImagingStudy') return;
      isStudy ||= ref.identifier.system === SYSTEM.DICOM_UID;
      uid = studyUidFromIdentifier(ref.identifier);
    } else if (ref.reference?.startsWith('ImagingStudy/') === true) {
      throw invalid(
        'FHIR.STUDY_UID_MISSING',
        `${field} references an ImagingStudy by id only; give the Study Instance UID as identifier (urn:dicom:uid)`,
        field,
      );
    }
    if (!isStudy) return;
    if (uid === undefined)
      throw invalid(
        'FHIR.STUDY_UID_INVALID',
        `${field}: the ImagingStudy has no valid Study Instance UID identifier (system urn:dicom:uid)`,
        field,
      );
    out.push({ uid, prior: isPriorMarked(ref.extension) });
  });
  return out;
}

function patientOf(sr: ServiceRequest): { patientId: string; patientIdSystem?: string } {
  const s = sr.subject;
  const ref = s.reference;
  if (ref !== undefined) {
    const m = /(?:^|\/)Patient\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(ref);
    if (m === null)
      throw invalid(
        'FHIR.INVALID_SUBJECT',
        'ServiceRequest.subject must reference a Patient',
        'ServiceRequest.subject',
      );
    if (s.identifier?.value !== undefined)
      return {
        patientId: s.identifier.value,
        ...(s.identifier.system === undefined ? {} : { patientIdSystem: s.identifier.system }),
      };
    return { patientId: m[1], patientIdSystem: SYSTEM.PATIENT_RESOURCE_ID };
  }
  if (s.type !== undefined && s.type !== 'Patient')
    throw invalid(
      'FHIR.INVALID_SUBJECT',
      'ServiceRequest.subject must be a Patient',
      'ServiceRequest.subject',
    );
  if (s.identifier?.value === undefined)
    throw invalid(
      'FHIR.INVALID_SUBJECT',
      'ServiceRequest.subject needs a Patient reference or identifier',
      'ServiceRequest.subject',
    );
  return {
    patientId: s.identifier.value,
    ...(s.identifier.system === undefined ? {} : { patientIdSystem: s.identifier.system }),
  };
}

function placerOf(sr: ServiceRequest): string | undefined {
  const ids = sr.identifier ?? [];
  const plac = ids.find((i) => i.type?.coding?.some((c) => c.code === 'PLAC' && c.system === SYSTEM.V2_0203));
  return (plac ?? ids.find((i) => i.value !== undefined))?.value;
}

function optionsOf(sr: ServiceRequest): AnalysisOptions {
  const modelId = sr.extension?.find((e) => e.url === EXTENSION.MODEL_ID)?.valueString;
  const details = new Set(
    (sr.orderDetail ?? []).flatMap((d) =>
      (d.coding ?? []).filter((c) => c.system === SYSTEM.LOCAL).map((c) => c.code ?? ''),
    ),
  );
  return {
    ...(modelId === undefined ? {} : { modelId }),
    ...(details.has(LOCAL.PER_LESION_OPTION.code) ? { perLesionObservations: true } : {}),
    ...(details.has(LOCAL.NO_PACS_PUBLISH_OPTION.code) ? { publishToPacs: false } : {}),
  };
}

/**
 * Parses and checks a ServiceRequest body. Throws DomainError: FHIR.NOT_A_SERVICE_REQUEST, FHIR.INVALID_RESOURCE
 * (R4 validation, details.issues), FHIR.UNSUPPORTED_STATUS, FHIR.UNSUPPORTED_INTENT, FHIR.UNSUPPORTED_CODE,
 * FHIR.INVALID_SUBJECT, FHIR.STUDY_MISSING, FHIR.STUDY_UID_MISSING, FHIR.STUDY_UID_INVALID,
 * FHIR.TOO_MANY_STUDIES. The order's own checks (submitOrder) run after this.
 */
export function parseServiceRequest(body: unknown, options: ServiceRequestIntakeOptions = {}): AnalysisOrder {
  if (!isRecord(body) || body.resourceType !== 'ServiceRequest')
    throw new DomainError('FHIR.NOT_A_SERVICE_REQUEST', 'the body must be a FHIR ServiceRequest resource', {
      issueType: 'invalid',
    });
  const sr = body as unknown as ServiceRequest;
  assertValidFhir(sr, 'ServiceRequest');
  if (sr.status !== 'active')
    throw new DomainError(
      'FHIR.UNSUPPORTED_STATUS',
      `ServiceRequest.status must be active (got ${sr.status})`,
      {
        issueType: 'business-rule',
        details: { field: 'ServiceRequest.status' },
      },
    );
  if (!INTENTS.has(sr.intent))
    throw new DomainError(
      'FHIR.UNSUPPORTED_INTENT',
      `ServiceRequest.intent must be an order (got ${sr.intent})`,
      {
        issueType: 'business-rule',
        details: { field: 'ServiceRequest.intent' },
      },
    );
  const accepted = new Set(options.acceptedCodes ?? DEFAULT_ORDER_CODES);
  const codes = (sr.code?.coding ?? []).map((c) => `${c.system ?? ''}|${c.code ?? ''}`);
  if (!codes.some((c) => accepted.has(c)))
    throw new DomainError(
      'FHIR.UNSUPPORTED_CODE',
      `ServiceRequest.code must be one of ${[...accepted].join(', ')}`,
      { issueType: 'not-supported', details: { field: 'ServiceRequest.code' } },
    );
  const patient = patientOf(sr);
  const studies = studyRefs(sr);
  const priors = studies.filter((s) => s.prior);
  const current = studies.filter((s) => !s.prior);
  if (current.length === 2 && priors.length === 0) priors.push(current.pop()!);
  if (current.length === 0)
    throw invalid(
      'FHIR.STUDY_MISSING',
      'ServiceRequest.supportingInfo must reference the ImagingStudy to analyse (Study Instance UID identifier)',
      'ServiceRequest.supportingInfo',
    );
  if (current.length > 1 || priors.length > 1)
    throw invalid(
      'FHIR.TOO_MANY_STUDIES',
      'ServiceRequest.supportingInfo references more than one current or prior ImagingStudy',
      'ServiceRequest.supportingInfo',
    );
  const placer = placerOf(sr);
  return {
    studyInstanceUid: current[0].uid,
    ...patient,
    ...(priors.length === 1 ? { priorStudyInstanceUid: priors[0].uid } : {}),
    ...(placer === undefined ? {} : { placerOrderNumber: placer }),
    source: 'fhir',
    options: optionsOf(sr),
    ...(sr.id === undefined ? {} : { orderReference: `ServiceRequest/${sr.id}` }),
  };
}

const STATUS: Record<Analysis['status'], ServiceRequest['status']> = {
  queued: 'active',
  running: 'active',
  succeeded: 'completed',
  failed: 'revoked',
};

/**
 * The service's view of an accepted order as a ServiceRequest (id = analysis id): the POST echo and
 * GET /fhir/ServiceRequest/{id}. Status follows the analysis (active → completed / revoked).
 */
export function serviceRequestFromAnalysis(analysis: Analysis): ServiceRequest {
  const o = analysis.order;
  const study = (uid: string, prior: boolean): Reference => ({
    type: 'ImagingStudy',
    identifier: { system: SYSTEM.DICOM_UID, value: dicomUidValue(uid) },
    ...(prior ? { extension: [{ url: EXTENSION.PRIOR_STUDY, valueBoolean: true }] } : {}),
  });
  const details = [
    ...(o.options.perLesionObservations === true ? [LOCAL.PER_LESION_OPTION.code] : []),
    ...(o.options.publishToPacs === false ? [LOCAL.NO_PACS_PUBLISH_OPTION.code] : []),
  ];
  return {
    resourceType: 'ServiceRequest',
    id: analysis.id,
    meta: { lastUpdated: analysis.updatedAt },
    ...(o.options.modelId === undefined
      ? {}
      : { extension: [{ url: EXTENSION.MODEL_ID, valueString: o.options.modelId }] }),
    identifier: [
      { system: SYSTEM.ANALYSIS_ID, value: analysis.id },
      ...(o.placerOrderNumber === undefined
        ? []
        : [{ type: concept([STD.PLACER]), value: o.placerOrderNumber }]),
    ],
    status: STATUS[analysis.status],
    intent: 'order',
    code: concept([local(LOCAL.ANALYSIS_ORDER), STD.MR_BRAIN], LOCAL.ANALYSIS_ORDER.display),
    ...(details.length === 0
      ? {}
      : { orderDetail: details.map((d) => concept([{ system: SYSTEM.LOCAL, code: d }])) }),
    subject: subjectReference(o),
    authoredOn: analysis.createdAt,
    supportingInfo: [
      study(o.studyInstanceUid, false),
      ...(o.priorStudyInstanceUid === undefined ? [] : [study(o.priorStudyInstanceUid, true)]),
    ],
  };
}
