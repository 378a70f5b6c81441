/**
 * Coded concepts used in the derived DICOM objects. Standard codes (DICOM DCM, SNOMED CT as "SCT", LOINC as
 * "LN", UCUM) wherever one exists; the rest from the service's private coding scheme "99MSLS" (PS3.3
 * 8.2: private scheme designators start with "99"), which every object that uses it identifies in its
 * Coding Scheme Identification Sequence. The 99MSLS concepts mirror the FHIR CodeSystem
 * https://ms-lesion-service.example.org/fhir/CodeSystem/mslesion (adapters/fhir/codes.ts), with short codes
 * because DICOM Code Value is SH (≤ 16 characters).
 */
import type { NaturalizedDataset } from 'dcmjs';
import type { LesionLocation } from '../../../domain/model/analysis.ts';

export interface CodeItem {
  readonly value: string;
  readonly scheme: string;
  readonly meaning: string;
}

function c(value: string, scheme: string, meaning: string): CodeItem {
  return { value, scheme, meaning };
}

export const PRIVATE_SCHEME = '99MSLS';

export const CODES = {
  // Segmentation
  morphologicallyAltered: c('49755003', 'SCT', 'Morphologically Altered Structure'),
  wmT2Hyperintensity: c('110702', 'DCM', 'White Matter T2 Hyperintensity'),
  newOrEnlarging: c('NEWENLARGING', PRIVATE_SCHEME, 'New or enlarging since prior exam'),
  brain: c('12738006', 'SCT', 'Brain'),
  artificialIntelligence: c('123110', 'DCM', 'Artificial Intelligence'),
  processingEquipment: c('109102', 'DCM', 'Processing Equipment'),
  segmentation: c('113076', 'DCM', 'Segmentation'),
  sourceForProcessing: c('121322', 'DCM', 'Source image for image processing operation'),
  // SR TID 1500
  imagingMeasurementReport: c('126000', 'DCM', 'Imaging Measurement Report'),
  languageOfContent: c('121049', 'DCM', 'Language of Content Item and Descendants'),
  englishUs: c('en-US', 'RFC5646', 'English (United States)'),
  observerType: c('121005', 'DCM', 'Observer Type'),
  device: c('121007', 'DCM', 'Device'),
  deviceObserverUid: c('121012', 'DCM', 'Device Observer UID'),
  deviceObserverName: c('121013', 'DCM', 'Device Observer Name'),
  deviceObserverManufacturer: c('121014', 'DCM', 'Device Observer Manufacturer'),
  deviceObserverModelName: c('121015', 'DCM', 'Device Observer Model Name'),
  deviceObserverSerialNumber: c('121016', 'DCM', 'Device Observer Serial Number'),
  procedureReported: c('121058', 'DCM', 'Procedure reported'),
  mrBrain: c('24590-2', 'LN', 'MR Brain'),
  imageLibrary: c('111028', 'DCM', 'Image Library'),
  imageLibraryGroup: c('126200', 'DCM', 'Image Library Group'),
  imagingMeasurements: c('126010', 'DCM', 'Imaging Measurements'),
  measurementGroup: c('125007', 'DCM', 'Measurement Group'),
  trackingIdentifier: c('112039', 'DCM', 'Tracking Identifier'),
  trackingUid: c('112040', 'DCM', 'Tracking Unique Identifier'),
  referencedSegment: c('121191', 'DCM', 'Referenced Segment'),
  sourceSeriesForSegmentation: c('121232', 'DCM', 'Source series for segmentation'),
  finding: c('121071', 'DCM', 'Finding'),
  findingSite: c('363698007', 'SCT', 'Finding Site'),
  algorithmName: c('111001', 'DCM', 'Algorithm Name'),
  algorithmVersion: c('111003', 'DCM', 'Algorithm Version'),
  algorithmParameters: c('111002', 'DCM', 'Algorithm Parameters'),
  volume: c('118565006', 'SCT', 'Volume'),
  comparisonStudy: c('PRIORSTUDY', PRIVATE_SCHEME, 'Prior study compared'),
  // 99MSLS measurements
  lesionCount: c('LESIONCOUNT', PRIVATE_SCHEME, 'Number of T2/FLAIR lesions'),
  newCount: c('NEWCOUNT', PRIVATE_SCHEME, 'Number of new T2 lesions'),
  enlargedCount: c('ENLARGEDCOUNT', PRIVATE_SCHEME, 'Number of enlarging T2 lesions'),
  disappearedCount: c('DISAPPEAREDCOUNT', PRIVATE_SCHEME, 'Number of disappeared T2 lesions'),
  priorVolume: c('PRIORVOLUME', PRIVATE_SCHEME, 'Total T2 lesion volume on prior exam'),
  volumeChange: c('VOLUMECHANGE', PRIVATE_SCHEME, 'Change in total T2 lesion volume'),
  volumeChangePct: c('VOLUMECHANGEPCT', PRIVATE_SCHEME, 'Change in total T2 lesion volume (percent)'),
  changeSincePrior: c('CHANGEPRIOR', PRIVATE_SCHEME, 'Lesion change since prior exam'),
  // Encapsulated PDF / Secondary Capture
  diagnosticImagingReport: c('18748-4', 'LN', 'Diagnostic imaging report'),
  // units (UCUM)
  milliliter: c('ml', 'UCUM', 'milliliter'),
  lesions: c('{lesions}', 'UCUM', 'lesions'),
  percent: c('%', 'UCUM', 'percent'),
} as const;

const LOCATION: Readonly<Record<LesionLocation, CodeItem>> = {
  periventricular: c('PERIVENTRICULAR', PRIVATE_SCHEME, 'Periventricular'),
  juxtacortical: c('JUXTACORTICAL', PRIVATE_SCHEME, 'Juxtacortical / cortical'),
  infratentorial: c('INFRATENTORIAL', PRIVATE_SCHEME, 'Infratentorial'),
  subcortical: c('SUBCORTICAL', PRIVATE_SCHEME, 'Subcortical / deep white matter'),
};

export function locationCode(location: LesionLocation): CodeItem {
  return LOCATION[location];
}

/** Coding Scheme Identification Sequence item for the private scheme. */
export function privateSchemeIdentification(): NaturalizedDataset {
  return {
    CodingSchemeDesignator: PRIVATE_SCHEME,
    CodingSchemeName: 'ms-lesion-service local concepts',
    CodingSchemeVersion: '1',
    CodingSchemeResponsibleOrganization:
      'ms-lesion-service (https://ms-lesion-service.example.org/fhir/CodeSystem/mslesion)',
  };
}
