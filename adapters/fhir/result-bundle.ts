/**
 * Pure mapping of a succeeded Analysis (and its study's DICOM metadata) to FHIR R4 result resources, following
 * the HL7 dicom-sr IG conventions (Observation.partOf → ImagingStudy, Observation.device → the algorithm
 * Device) and IHE AI Results (Device with name, version, model id and sha256; Provenance):
 *
 *   ImagingStudy (id = Study Instance UID)   Device (the algorithm, id from the model sha256)
 *   Observation total volume / count / volume per location / with a prior: new, enlarging, disappeared, Δ volume
 *   Observation panel + one Observation per lesion (optional, the N largest)
 *   DiagnosticReport (LOINC 24590-2, imagingStudy, result, conclusion, presentedForm = PDF)
 *   Provenance (target: every result; agent: the Device; entity: the ImagingStudy)
 *
 * Every id is deterministic (ids.ts) and the transaction Bundle writes each resource with `PUT Type/id`, an
 * upsert keyed by the id itself: re-delivering the same analysis (after a crash, a timeout, or twice at once)
 * converges to the same single set of resources. A conditional create (If-None-Exist) would be a search
 * followed by a create — two concurrent deliveries can both find nothing and both create — and conditional
 * update by identifier has the same race on servers that do not serialise it; an update to a client-chosen id
 * has no such window (the server's primary key decides). Servers must allow update-as-create (FHIR
 * `CapabilityStatement.rest.resource.updateCreate`).
 */
import { createHash } from 'node:crypto';
import type {
  Attachment,
  Bundle,
  BundleEntry,
  CodeableConcept,
  Device,
  DiagnosticReport,
  ImagingStudy,
  ImagingStudySeries,
  Observation,
  ObservationComponent,
  Patient,
  Provenance,
  Quantity,
  Reference,
  Resource,
  ServiceRequest,
} from '@medplum/fhirtypes';
import { DomainError } from '../../domain/errors.ts';
import {
  LESION_LOCATIONS,
  type Analysis,
  type AnalysisOrder,
  type AnalysisResult,
  type LesionRecord,
} from '../../domain/model/analysis.ts';
import type { StudyDescriptor } from '../../domain/ports/image-source.port.ts';
import { coding, concept, local, LOCAL, locationCoding, locationConcept, STD, SYSTEM } from './codes.ts';
import { deviceId, dicomUidValue, imagingStudyId, resultId } from './ids.ts';

export interface ResultBundleOptions {
  /** The PDF report: DiagnosticReport.presentedForm. */
  readonly pdf?: Uint8Array;
  /** Literal reference of the patient on the target server (e.g. 'Patient/123') when it has been resolved. */
  readonly patientReference?: string;
  /** Absolute base URL of the target server: entries get fullUrl `<base>/<type>/<id>`. */
  readonly serverBase?: string;
  /** UTC offset of the DICOM study date/time (e.g. '+01:00'); without it dates only are written. */
  readonly studyTimezone?: string;
  /** Overrides the order's perLesionObservations option. */
  readonly perLesionObservations?: boolean;
  /** At most this many per-lesion Observations, the largest first (default 30: servers cap transactions). */
  readonly maxLesionObservations?: number;
  /** Include the ImagingStudy (default true; false where the PACS integration already maintains it). */
  readonly includeImagingStudy?: boolean;
}

export interface ResultResources {
  readonly imagingStudy: ImagingStudy;
  readonly device: Device;
  /** Top-level measurement Observations (the lesion panel included, when there is one). */
  readonly observations: readonly Observation[];
  /** Per-lesion Observations (members of the panel). */
  readonly lesionObservations: readonly Observation[];
  readonly report: DiagnosticReport;
  readonly provenance: Provenance;
}

export const RESULT_ID_SYSTEM = 'https://ms-lesion-service.example.org/fhir/sid/result-id';

const round = (v: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
};

function mL(value: number): Quantity {
  return { value: round(value, 3), unit: 'mL', system: SYSTEM.UCUM, code: 'mL' };
}

function lesions(value: number): Quantity {
  return { value, unit: 'lesions', system: SYSTEM.UCUM, code: '{lesions}' };
}

/** DICOM DA (+ TM) → FHIR dateTime; with a time only when the UTC offset is known (FHIR requires one). */
export function dicomDateTime(date?: string, time?: string, timezone?: string): string | undefined {
  if (date === undefined) return undefined;
  const d =
    /^(\d{4})(\d{2})(\d{2})$/.exec(date.trim()) ?? /^(\d{4})[.-](\d{2})[.-](\d{2})$/.exec(date.trim());
  if (d === null) return undefined;
  const day = `${d[1]}-${d[2]}-${d[3]}`;
  if (time === undefined || timezone === undefined || !/^[+-]\d{2}:\d{2}$|^Z$/.test(timezone)) return day;
  const m = /^(\d{2}):?(\d{2})?:?(\d{2})?(\.\d{1,6})?$/.exec(time.trim());
  if (m === null) return day;
  // Optional groups are undefined when absent (RegExpExecArray types them as string).
  const t: readonly (string | undefined)[] = m;
  const frac = t[4] === undefined ? '' : t[4].slice(0, 4);
  return `${day}T${t[1] ?? '00'}:${t[2] ?? '00'}:${t[3] ?? '00'}${frac}${timezone}`;
}

/** The subject of every result: a literal reference when known, else a logical one by identifier. */
export function subjectReference(order: AnalysisOrder, patientReference?: string): Reference<Patient> {
  if (patientReference !== undefined) return { reference: patientReference };
  if (order.patientIdSystem === SYSTEM.PATIENT_RESOURCE_ID)
    return { reference: `Patient/${order.patientId}` };
  return {
    type: 'Patient',
    identifier:
      order.patientIdSystem === undefined
        ? { value: order.patientId }
        : { system: order.patientIdSystem, value: order.patientId },
  };
}

/** A logical reference to a prior study (not part of the bundle: its own analysis delivered it). */
function priorStudyRef(uid: string): Reference<ImagingStudy> {
  return { type: 'ImagingStudy', identifier: { system: SYSTEM.DICOM_UID, value: dicomUidValue(uid) } };
}

function requireResult(analysis: Analysis): AnalysisResult {
  if (analysis.status !== 'succeeded' || analysis.result === undefined)
    throw new DomainError('FHIR.NO_RESULT', 'only a succeeded analysis with a result maps to FHIR results', {
      issueType: 'business-rule',
      details: { analysisId: analysis.id, status: analysis.status },
    });
  return analysis.result;
}

function basedOn(order: AnalysisOrder): Reference<ServiceRequest>[] | undefined {
  const ref = order.orderReference;
  return ref !== undefined && /^ServiceRequest\/[A-Za-z0-9\-.]{1,64}$/.test(ref)
    ? [{ reference: ref }]
    : undefined;
}

function buildImagingStudy(
  analysis: Analysis,
  study: StudyDescriptor,
  subject: Reference<Patient>,
  timezone?: string,
): ImagingStudy {
  const series: ImagingStudySeries[] = study.series.map((s) => ({
    uid: s.seriesInstanceUid,
    ...(s.seriesNumber === undefined ? {} : { number: s.seriesNumber }),
    modality: coding(SYSTEM.DCM, s.modality || 'MR'),
    ...(s.attributes.seriesDescription === undefined ? {} : { description: s.attributes.seriesDescription }),
    numberOfInstances: s.numberOfInstances,
  }));
  const modalities = [...new Set(study.series.map((s) => s.modality || 'MR'))].map((m) =>
    m === 'MR' ? STD.MODALITY_MR : coding(SYSTEM.DCM, m),
  );
  const started = dicomDateTime(study.studyDate, study.studyTime, timezone);
  const based = basedOn(analysis.order);
  return {
    resourceType: 'ImagingStudy',
    id: imagingStudyId(study.studyInstanceUid),
    identifier: [
      { system: SYSTEM.DICOM_UID, value: dicomUidValue(study.studyInstanceUid) },
      ...(study.accessionNumber === undefined || study.accessionNumber === ''
        ? []
        : [{ type: concept([STD.ACCESSION]), value: study.accessionNumber }]),
    ],
    status: 'available',
    ...(modalities.length > 0 ? { modality: modalities } : {}),
    subject,
    ...(started === undefined ? {} : { started }),
    ...(based === undefined ? {} : { basedOn: based }),
    numberOfSeries: series.length,
    numberOfInstances: study.series.reduce((n, s) => n + s.numberOfInstances, 0),
    ...(study.studyDescription === undefined ? {} : { description: study.studyDescription }),
    ...(series.length > 0 ? { series } : {}),
  };
}

function buildDevice(result: AnalysisResult): Device {
  const m = result.model;
  return {
    resourceType: 'Device',
    id: deviceId(m),
    identifier: [
      { system: SYSTEM.MODEL_ID, value: m.id },
      { system: SYSTEM.MODEL_SHA256, value: m.sha256 },
    ],
    status: 'active',
    manufacturer: 'ms-lesion-service',
    deviceName: [
      { name: m.name, type: 'model-name' },
      { name: m.id, type: 'other' },
    ],
    modelNumber: m.id,
    type: concept([local(LOCAL.ALGORITHM)]),
    version: [{ value: m.version }, { type: { text: 'sha256' }, value: m.sha256 }],
    property: [
      { type: concept([local(LOCAL.INTENDED_USE)]), valueCode: [concept([STD.MULTIPLE_SCLEROSIS])] },
      {
        type: concept([local(LOCAL.MODEL_VARIANT)]),
        valueCode: [{ text: `${m.variant} (${m.channels.join('+')})` }],
      },
    ],
  };
}

const FINDING_COMPONENT: ObservationComponent = {
  code: concept([STD.FINDING]),
  valueCodeableConcept: concept([STD.WMH]),
};

interface ObservationBase {
  readonly analysis: Analysis;
  readonly subject: Reference<Patient>;
  readonly studyRef: Reference<ImagingStudy>;
  readonly deviceRef: Reference<Device>;
  readonly effective?: string;
  readonly issued?: string;
}

function observation(
  base: ObservationBase,
  role: string,
  code: CodeableConcept,
  fields: Partial<Observation>,
): Observation {
  const id = resultId(base.analysis.id, role);
  const based = basedOn(base.analysis.order);
  return {
    resourceType: 'Observation',
    id,
    identifier: [{ system: RESULT_ID_SYSTEM, value: id }],
    ...(based === undefined ? {} : { basedOn: based }),
    partOf: [base.studyRef],
    status: 'final',
    category: [concept([STD.IMAGING])],
    code,
    subject: base.subject,
    ...(base.effective === undefined ? {} : { effectiveDateTime: base.effective }),
    ...(base.issued === undefined ? {} : { issued: base.issued }),
    bodySite: concept([STD.BRAIN]),
    device: base.deviceRef,
    ...fields,
  };
}

function lesionObservation(base: ObservationBase, lesion: LesionRecord): Observation {
  const c = lesion.centroid;
  return observation(
    base,
    `lesion-${lesion.id}`,
    concept([local(LOCAL.LESION), STD.WMH], `T2/FLAIR lesion ${lesion.id}`),
    {
      valueQuantity: mL(lesion.volumeMl),
      component: [
        {
          code: concept([STD.LONG_AXIS]),
          valueQuantity: {
            value: round(lesion.longestDiameterMm, 1),
            unit: 'mm',
            system: SYSTEM.UCUM,
            code: 'mm',
          },
        },
        {
          code: concept([STD.FINDING_SITE]),
          valueCodeableConcept: concept([locationCoding(lesion.location)]),
        },
        {
          code: concept([local(LOCAL.CENTROID)]),
          valueString: `${round(c[0], 1)}\\${round(c[1], 1)}\\${round(c[2], 1)}`,
        },
      ],
    },
  );
}

const fmt = (v: number, digits = 2): string => v.toFixed(digits);

/** The report conclusion (plain text, also the HL7 NTE). */
export function conclusionText(result: AnalysisResult): string {
  const l = result.lesions;
  const parts = LESION_LOCATIONS.filter((loc) => l.countByLocation[loc] > 0).map(
    (loc) =>
      `${locationConcept(loc).display.toLowerCase()} ${l.countByLocation[loc]} (${fmt(l.volumeByLocationMl[loc])} mL)`,
  );
  let text =
    `${l.count} T2/FLAIR lesion${l.count === 1 ? '' : 's'}, total volume ${fmt(l.totalVolumeMl)} mL` +
    (parts.length > 0 ? `: ${parts.join(', ')}.` : '.');
  const ch = result.change;
  if (ch !== undefined) {
    const pct =
      ch.totalVolumeChangePercent === null
        ? ''
        : ` (${ch.totalVolumeChangePercent >= 0 ? '+' : ''}${fmt(ch.totalVolumeChangePercent, 1)} %)`;
    text +=
      ` Compared with the prior exam${ch.priorStudyDate === undefined ? '' : ` of ${ch.priorStudyDate}`}: ` +
      `${ch.newCount} new, ${ch.enlargedCount} enlarging, ${ch.disappearedCount} disappeared; ` +
      `total volume change ${ch.totalVolumeChangeMl >= 0 ? '+' : ''}${fmt(ch.totalVolumeChangeMl)} mL${pct}.`;
  }
  text += ` Automated measurement by ${result.model.name} ${result.model.version}; for review by a radiologist.`;
  return text;
}

function pdfAttachment(pdf: Uint8Array, created?: string): Attachment {
  return {
    contentType: 'application/pdf',
    data: Buffer.from(pdf).toString('base64'),
    size: pdf.byteLength,
    // R4 Attachment.hash is the base64 SHA-1 of the data.
    hash: createHash('sha1').update(pdf).digest('base64'),
    title: 'MS lesion report',
    ...(created === undefined ? {} : { creation: created }),
  };
}

/** The result resources of a succeeded analysis. Throws FHIR.NO_RESULT for any other analysis. */
export function buildResultResources(
  analysis: Analysis,
  study: StudyDescriptor,
  options: ResultBundleOptions = {},
): ResultResources {
  const result = requireResult(analysis);
  if (study.studyInstanceUid !== analysis.order.studyInstanceUid)
    throw new DomainError('FHIR.STUDY_MISMATCH', 'the study descriptor is not the analysed study', {
      issueType: 'invalid',
      details: { analysisId: analysis.id },
    });
  const subject = subjectReference(analysis.order, options.patientReference);
  const imagingStudy = buildImagingStudy(analysis, study, subject, options.studyTimezone);
  const device = buildDevice(result);
  const studyRef: Reference<ImagingStudy> = { reference: `ImagingStudy/${imagingStudy.id!}` };
  const deviceRef: Reference<Device> = { reference: `Device/${device.id!}`, display: result.model.name };
  const effective = dicomDateTime(study.studyDate, study.studyTime, options.studyTimezone);
  const issued = analysis.finishedAt ?? analysis.updatedAt;
  const base: ObservationBase = { analysis, subject, studyRef, deviceRef, effective, issued };
  const l = result.lesions;

  const observations: Observation[] = [
    observation(
      base,
      'total-volume',
      concept([local(LOCAL.TOTAL_VOLUME), STD.VOLUME], LOCAL.TOTAL_VOLUME.display),
      { valueQuantity: mL(l.totalVolumeMl), component: [FINDING_COMPONENT] },
    ),
    observation(
      base,
      'lesion-count',
      concept([local(LOCAL.LESION_COUNT), STD.NUMBER_OF_LESIONS], LOCAL.LESION_COUNT.display),
      { valueQuantity: lesions(l.count), component: [FINDING_COMPONENT] },
    ),
    ...LESION_LOCATIONS.map((loc) =>
      observation(
        base,
        `volume-${loc}`,
        concept(
          [local(LOCAL.LOCATION_VOLUME), STD.VOLUME],
          `${LOCAL.LOCATION_VOLUME.display}: ${locationConcept(loc).display}`,
        ),
        {
          valueQuantity: mL(l.volumeByLocationMl[loc]),
          component: [
            FINDING_COMPONENT,
            { code: concept([STD.FINDING_SITE]), valueCodeableConcept: concept([locationCoding(loc)]) },
            { code: concept([STD.NUMBER_OF_LESIONS]), valueQuantity: lesions(l.countByLocation[loc]) },
          ],
        },
      ),
    ),
  ];

  const ch = result.change;
  if (ch !== undefined) {
    const priorUid = ch.priorStudyInstanceUid ?? analysis.order.priorStudyInstanceUid;
    const derivedFrom: Reference<ImagingStudy>[] = [
      studyRef,
      ...(priorUid === undefined ? [] : [priorStudyRef(priorUid)]),
    ];
    const reg = ch.registration;
    const note = [
      {
        text:
          `Prior exam registered by ${reg.method}: ${reg.metric} = ${reg.value.toPrecision(4)}` +
          (reg.ncc === undefined ? '' : `, FLAIR NCC = ${reg.ncc.toFixed(3)}`) +
          '.',
      },
    ];
    const countObs = (role: string, c: { code: string; display: string }, value: number): Observation =>
      observation(base, role, concept([local(c)], c.display), {
        valueQuantity: lesions(value),
        derivedFrom,
        component: [FINDING_COMPONENT],
        note,
      });
    observations.push(
      countObs('new-lesions', LOCAL.NEW_COUNT, ch.newCount),
      countObs('enlarging-lesions', LOCAL.ENLARGED_COUNT, ch.enlargedCount),
      countObs('disappeared-lesions', LOCAL.DISAPPEARED_COUNT, ch.disappearedCount),
      observation(
        base,
        'volume-change',
        concept([local(LOCAL.VOLUME_CHANGE), STD.VOLUME], LOCAL.VOLUME_CHANGE.display),
        {
          valueQuantity: mL(ch.totalVolumeChangeMl),
          derivedFrom,
          component: [
            FINDING_COMPONENT,
            ch.totalVolumeChangePercent === null
              ? {
                  code: concept([local(LOCAL.VOLUME_CHANGE_PERCENT)]),
                  dataAbsentReason: concept([
                    coding('http://terminology.hl7.org/CodeSystem/data-absent-reason', 'not-applicable'),
                  ]),
                }
              : {
                  code: concept([local(LOCAL.VOLUME_CHANGE_PERCENT)]),
                  valueQuantity: {
                    value: round(ch.totalVolumeChangePercent, 1),
                    unit: '%',
                    system: SYSTEM.UCUM,
                    code: '%',
                  },
                },
          ],
          note,
        },
      ),
    );
  }

  const perLesion = options.perLesionObservations ?? analysis.order.options.perLesionObservations ?? false;
  const lesionObservations: Observation[] = [];
  if (perLesion && l.lesions.length > 0) {
    const max = Math.max(0, Math.floor(options.maxLesionObservations ?? 30));
    const largest = [...l.lesions].sort((a, b) => b.volumeMl - a.volumeMl || a.id - b.id).slice(0, max);
    for (const lesion of largest) lesionObservations.push(lesionObservation(base, lesion));
    observations.push(
      observation(base, 'lesion-panel', concept([local(LOCAL.LESION_PANEL)], LOCAL.LESION_PANEL.display), {
        hasMember: lesionObservations.map((o) => ({ reference: `Observation/${o.id!}` })),
        ...(largest.length < l.lesions.length
          ? { note: [{ text: `The ${largest.length} largest of ${l.lesions.length} lesions.` }] }
          : {}),
      }),
    );
  }

  const based = basedOn(analysis.order);
  const report: DiagnosticReport = {
    resourceType: 'DiagnosticReport',
    id: resultId(analysis.id, 'report'),
    identifier: [{ system: SYSTEM.ANALYSIS_ID, value: analysis.id }],
    ...(based === undefined ? {} : { basedOn: based }),
    status: 'final',
    category: [concept([STD.V2_RADIOLOGY]), concept([STD.LOINC_RADIOLOGY])],
    code: concept([STD.MR_BRAIN], 'MR Brain: MS lesion quantification'),
    subject,
    ...(effective === undefined ? {} : { effectiveDateTime: effective }),
    issued,
    imagingStudy: [studyRef],
    result: observations.map((o) => ({ reference: `Observation/${o.id!}` })),
    conclusion: conclusionText(result),
    ...(options.pdf === undefined ? {} : { presentedForm: [pdfAttachment(options.pdf, issued)] }),
  };

  const targets = [...observations, ...lesionObservations, report].map((r) => ({
    reference: `${r.resourceType}/${r.id!}`,
  }));
  const provenance: Provenance = {
    resourceType: 'Provenance',
    id: resultId(analysis.id, 'provenance'),
    target: targets,
    recorded: issued,
    activity: concept([STD.CREATE]),
    agent: [{ type: concept([STD.AUTHOR]), who: deviceRef }],
    entity: [
      { role: 'source', what: studyRef },
      ...(ch?.priorStudyInstanceUid === undefined
        ? []
        : [
            {
              role: 'source' as const,
              what: priorStudyRef(ch.priorStudyInstanceUid),
            },
          ]),
    ],
  };

  return { imagingStudy, device, observations, lesionObservations, report, provenance };
}

/** Every resource of a ResultResources, in delivery order. */
export function allResources(r: ResultResources): Resource[] {
  return [r.device, r.imagingStudy, ...r.lesionObservations, ...r.observations, r.report, r.provenance];
}

/**
 * The transaction Bundle delivering an analysis' results: one `PUT <type>/<id>` per resource (idempotent
 * upserts, see the module comment). The content depends only on the analysis, the study and the options,
 * so a re-delivery sends identical resources.
 */
export function buildResultBundle(
  analysis: Analysis,
  study: StudyDescriptor,
  options: ResultBundleOptions = {},
): Bundle {
  const r = buildResultResources(analysis, study, options);
  const resources = allResources(r).filter(
    (res) => options.includeImagingStudy !== false || res.resourceType !== 'ImagingStudy',
  );
  const base = options.serverBase?.replace(/\/+$/, '');
  const entry: BundleEntry[] = resources.map((resource) => {
    const url = `${resource.resourceType}/${resource.id!}`;
    return {
      ...(base === undefined ? {} : { fullUrl: `${base}/${url}` }),
      resource,
      request: { method: 'PUT', url },
    };
  });
  return { resourceType: 'Bundle', type: 'transaction', entry };
}
