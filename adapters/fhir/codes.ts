/**
 * Terminology used in the FHIR and HL7 v2 results: standard codes where they exist (DICOM DCM, SNOMED CT, LOINC,
 * UCUM, HL7 terminology) and the service's own CodeSystem for concepts without one (lesion-change counts,
 * McDonald lesion locations, the analysis order code). The local CodeSystem is served at
 * GET /fhir/CodeSystem/mslesion and documented in docs/dev-notes/fhir.md.
 */
import type { CodeSystem, Coding, CodeableConcept } from '@medplum/fhirtypes';
import type { LesionLocation } from '../../domain/model/analysis.ts';

export const SYSTEM = {
  DCM: 'http://dicom.nema.org/resources/ontology/DCM',
  SCT: 'http://snomed.info/sct',
  LOINC: 'http://loinc.org',
  UCUM: 'http://unitsofmeasure.org',
  OBSERVATION_CATEGORY: 'http://terminology.hl7.org/CodeSystem/observation-category',
  V2_0074: 'http://terminology.hl7.org/CodeSystem/v2-0074',
  V2_0203: 'http://terminology.hl7.org/CodeSystem/v2-0203',
  PROVENANCE_PARTICIPANT: 'http://terminology.hl7.org/CodeSystem/provenance-participant-type',
  DATA_OPERATION: 'http://terminology.hl7.org/CodeSystem/v3-DataOperation',
  DICOM_UID: 'urn:dicom:uid',
  /** The service's own concepts (see LOCAL_CODE_SYSTEM below). */
  LOCAL: 'https://ms-lesion-service.example.org/fhir/CodeSystem/mslesion',
  /** Identifier system of analysis ids (DiagnosticReport.identifier, ServiceRequest echo). */
  ANALYSIS_ID: 'https://ms-lesion-service.example.org/fhir/sid/analysis-id',
  /** Identifier systems of the algorithm Device. */
  MODEL_ID: 'https://ms-lesion-service.example.org/fhir/sid/model-id',
  MODEL_SHA256: 'https://ms-lesion-service.example.org/fhir/sid/model-sha256',
  /** patientIdSystem of orders whose patient is known only by its FHIR resource id (ServiceRequest.subject). */
  PATIENT_RESOURCE_ID: 'urn:ms-lesion-service:patient-resource-id',
} as const;

/** Extensions defined by the service (on ServiceRequest intake). */
export const EXTENSION = {
  /** On a ServiceRequest.supportingInfo reference: true marks the prior study. */
  PRIOR_STUDY: 'https://ms-lesion-service.example.org/fhir/StructureDefinition/prior-study',
  /** On a ServiceRequest: the model id to use (valueString). */
  MODEL_ID: 'https://ms-lesion-service.example.org/fhir/StructureDefinition/model-id',
} as const;

export function coding(
  system: string,
  code: string,
  display?: string,
): Coding & { system: string; code: string } {
  return display === undefined ? { system, code } : { system, code, display };
}

export function concept(codings: Coding[], text?: string): CodeableConcept {
  return text === undefined ? { coding: codings } : { coding: codings, text };
}

/** Standard concepts. */
export const STD = {
  WMH: coding(SYSTEM.DCM, '110702', 'White Matter T2 Hyperintensity'),
  FINDING: coding(SYSTEM.DCM, '121071', 'Finding'),
  VOLUME: coding(SYSTEM.SCT, '118565006', 'Volume'),
  NUMBER_OF_LESIONS: coding(SYSTEM.SCT, '246206008', 'Number of lesions'),
  MULTIPLE_SCLEROSIS: coding(SYSTEM.SCT, '24700007', 'Multiple sclerosis'),
  FINDING_SITE: coding(SYSTEM.SCT, '363698007', 'Finding site'),
  LONG_AXIS: coding(SYSTEM.SCT, '103339001', 'Long axis'),
  BRAIN: coding(SYSTEM.SCT, '12738006', 'Brain structure'),
  MR_BRAIN: coding(SYSTEM.LOINC, '24590-2', 'MR Brain'),
  LOINC_RADIOLOGY: coding(SYSTEM.LOINC, 'LP29684-5', 'Radiology'),
  V2_RADIOLOGY: coding(SYSTEM.V2_0074, 'RAD', 'Radiology'),
  IMAGING: coding(SYSTEM.OBSERVATION_CATEGORY, 'imaging', 'Imaging'),
  PLACER: coding(SYSTEM.V2_0203, 'PLAC', 'Placer Identifier'),
  ACCESSION: coding(SYSTEM.V2_0203, 'ACSN', 'Accession ID'),
  MODALITY_MR: coding(SYSTEM.DCM, 'MR', 'Magnetic Resonance'),
  AUTHOR: coding(SYSTEM.PROVENANCE_PARTICIPANT, 'author', 'Author'),
  CREATE: coding(SYSTEM.DATA_OPERATION, 'CREATE', 'create'),
} as const;

interface LocalConcept {
  readonly code: string;
  readonly display: string;
  readonly definition: string;
}

const LOCATION_CONCEPTS: Readonly<Record<LesionLocation, LocalConcept>> = {
  periventricular: {
    code: 'location-periventricular',
    display: 'Periventricular',
    definition: 'Lesion touching or within 3 mm of the lateral ventricles (McDonald 2017 location).',
  },
  juxtacortical: {
    code: 'location-juxtacortical',
    display: 'Juxtacortical / cortical',
    definition: 'Lesion touching or within the cortex (McDonald 2017 cortical/juxtacortical location).',
  },
  infratentorial: {
    code: 'location-infratentorial',
    display: 'Infratentorial',
    definition: 'Lesion in the brainstem or cerebellum (McDonald 2017 location).',
  },
  subcortical: {
    code: 'location-subcortical',
    display: 'Subcortical / deep white matter',
    definition: 'Supratentorial white-matter lesion that is neither periventricular nor juxtacortical.',
  },
};

/** Local concepts (codes without a standard equivalent). */
export const LOCAL = {
  TOTAL_VOLUME: {
    code: 'total-t2-lesion-volume',
    display: 'Total T2/FLAIR lesion volume',
    definition: 'Sum of the volumes of all segmented T2/FLAIR hyperintense white-matter lesions.',
  },
  LESION_COUNT: {
    code: 't2-lesion-count',
    display: 'Number of T2/FLAIR lesions',
    definition: 'Number of connected components (26-connectivity) of the lesion segmentation.',
  },
  LOCATION_VOLUME: {
    code: 't2-lesion-volume-by-location',
    display: 'T2/FLAIR lesion volume in a location',
    definition: 'Total volume of the lesions assigned to one McDonald location (component finding site).',
  },
  NEW_COUNT: {
    code: 'new-t2-lesion-count',
    display: 'Number of new T2 lesions',
    definition: 'Lesions on the current exam with no counterpart on the registered prior exam.',
  },
  ENLARGED_COUNT: {
    code: 'enlarging-t2-lesion-count',
    display: 'Number of enlarging T2 lesions',
    definition: 'Lesions whose volume grew beyond the enlargement threshold since the prior exam.',
  },
  DISAPPEARED_COUNT: {
    code: 'disappeared-t2-lesion-count',
    display: 'Number of disappeared T2 lesions',
    definition: 'Lesions of the prior exam with no counterpart on the current exam.',
  },
  VOLUME_CHANGE: {
    code: 'total-t2-lesion-volume-change',
    display: 'Change in total T2/FLAIR lesion volume',
    definition: 'Current minus prior total lesion volume (mL); component: change in percent of the prior.',
  },
  VOLUME_CHANGE_PERCENT: {
    code: 'total-t2-lesion-volume-change-percent',
    display: 'Change in total T2/FLAIR lesion volume (percent)',
    definition: 'Volume change relative to the prior total volume, in percent; absent when the prior was 0.',
  },
  LESION_PANEL: {
    code: 't2-lesion-panel',
    display: 'Individual T2/FLAIR lesions',
    definition: 'Panel grouping one Observation per segmented lesion (hasMember).',
  },
  LESION: {
    code: 't2-lesion',
    display: 'T2/FLAIR lesion',
    definition: 'One segmented lesion: volume, longest diameter, location and centroid (LPS, mm).',
  },
  CENTROID: {
    code: 'centroid-lps',
    display: 'Lesion centroid (DICOM patient LPS, mm)',
    definition: 'Centroid of the lesion in DICOM patient coordinates, "x\\y\\z" in millimetres.',
  },
  ANALYSIS_ORDER: {
    code: 'ms-lesion-analysis',
    display: 'MS lesion analysis of a brain MRI study',
    definition: 'Order code: segment, measure and follow T2/FLAIR MS lesions of an MR brain study.',
  },
  PER_LESION_OPTION: {
    code: 'per-lesion-observations',
    display: 'Report one Observation per lesion',
    definition: 'Order detail (ServiceRequest.orderDetail): include the per-lesion panel in the results.',
  },
  NO_PACS_PUBLISH_OPTION: {
    code: 'no-pacs-publish',
    display: 'Do not store results in the PACS',
    definition:
      'Order detail (ServiceRequest.orderDetail): skip storing SEG/SR/PDF objects back to the PACS.',
  },
  ALGORITHM: {
    code: 'lesion-segmentation-algorithm',
    display: 'AI lesion segmentation algorithm',
    definition: 'Device type of the software model that produced the results (IHE AI Results).',
  },
  INTENDED_USE: {
    code: 'intended-use',
    display: 'Intended clinical context',
    definition: 'Device property: the condition the algorithm is meant for (SCT 24700007).',
  },
  MODEL_VARIANT: {
    code: 'model-variant',
    display: 'Model variant',
    definition: 'Device property: the input-channel variant of the model that ran (e.g. flair-t2-t1).',
  },
} as const satisfies Readonly<Record<string, LocalConcept>>;

export function local(c: { readonly code: string; readonly display: string }): Coding {
  return coding(SYSTEM.LOCAL, c.code, c.display);
}

export function locationCoding(location: LesionLocation): Coding {
  return local(LOCATION_CONCEPTS[location]);
}

export function locationConcept(location: LesionLocation): LocalConcept {
  return LOCATION_CONCEPTS[location];
}

/** The local CodeSystem as a FHIR resource (served by the read API, listed in the dev notes). */
export function localCodeSystem(): CodeSystem {
  const concepts: LocalConcept[] = [];
  const seen = new Set<string>();
  for (const c of [...Object.values(LOCAL), ...Object.values(LOCATION_CONCEPTS)]) {
    if (seen.has(c.code)) continue;
    seen.add(c.code);
    concepts.push(c);
  }
  return {
    resourceType: 'CodeSystem',
    id: 'mslesion',
    url: SYSTEM.LOCAL,
    version: '1',
    name: 'MsLesionServiceCodes',
    title: 'ms-lesion-service local concepts',
    status: 'active',
    experimental: false,
    publisher: 'ms-lesion-service',
    description:
      'Concepts used by ms-lesion-service results that have no standard code (lesion-change counts, McDonald ' +
      'lesion locations, the analysis order code). Standard codes (DCM 110702, SCT 118565006, SCT 246206008, ' +
      'LOINC 24590-2) are used beside them wherever they exist.',
    caseSensitive: true,
    content: 'complete',
    count: concepts.length,
    concept: concepts.map((c) => ({ code: c.code, display: c.display, definition: c.definition })),
  };
}
