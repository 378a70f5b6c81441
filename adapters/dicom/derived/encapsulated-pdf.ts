/**
 * Encapsulated PDF Storage instance of the clinical report (adapters/report/report-pdf.ts): Modality DOC,
 * Document Title, concept LN 18748-4 "Diagnostic imaging report", Burned In Annotation YES (the PDF shows
 * patient identity), Source Instance Sequence naming the source FLAIR instances, SC Equipment (workstation),
 * IHE AI Results Contributing Equipment. UIDs derive from the analysis id.
 *
 * Codes: DICOM.DERIVED_INPUT ('invalid') when the bytes are not a PDF.
 */
import type { NaturalizedDataset } from 'dcmjs';
import { CODES } from './codes.ts';
import {
  checkSourceSlices,
  codeItem,
  commonAttributes,
  contextUids,
  createdAt,
  derivedInputError,
  dicomDateTime,
  SERIES_NUMBER,
  SOP,
  writePart10,
  type DerivedContext,
  type DerivedObject,
} from './common.ts';
import { DERIVED_SERIES_ROLE } from './uids.ts';

export interface EncapsulatedPdfInput extends DerivedContext {
  readonly pdf: Uint8Array;
  readonly documentTitle?: string;
}

export interface EncapsulatedPdfObject extends DerivedObject {
  readonly kind: 'PDF';
}

export function isPdf(bytes: Uint8Array): boolean {
  return bytes.length >= 5 && String.fromCharCode(...bytes.subarray(0, 5)) === '%PDF-';
}

export function buildEncapsulatedPdf(input: EncapsulatedPdfInput): EncapsulatedPdfObject {
  if (!isPdf(input.pdf)) throw derivedInputError('the report is not a PDF document');
  checkSourceSlices(input, input.flairSlices.length);
  const uid = contextUids(input);
  const seriesInstanceUid = uid(DERIVED_SERIES_ROLE.pdf);
  const sopInstanceUid = uid('pdf.instance');
  const when = createdAt(input);
  // OB values have even length: pad with one NUL (Encapsulated Document Length keeps the real size)
  const padded = new Uint8Array(input.pdf.length + (input.pdf.length % 2));
  padded.set(input.pdf);
  const dataset: NaturalizedDataset = {
    ...commonAttributes(input, {
      modality: 'DOC',
      sopClassUid: SOP.EncapsulatedPdf,
      seriesInstanceUid,
      sopInstanceUid,
      seriesNumber: SERIES_NUMBER.pdf,
      instanceNumber: 1,
      seriesDescription: 'AI-generated MS lesion report PDF (research use)',
    }),
    ConversionType: 'WSD',
    AcquisitionDateTime: dicomDateTime(when),
    BurnedInAnnotation: 'YES',
    RecognizableVisualFeatures: 'NO',
    DocumentTitle: input.documentTitle ?? 'MS lesion analysis - AI-generated, not for diagnosis',
    ConceptNameCodeSequence: [codeItem(CODES.diagnosticImagingReport)],
    VerificationFlag: 'UNVERIFIED',
    SourceInstanceSequence: [...new Map(input.flairSlices.map((s) => [s.sopInstanceUid, s])).values()].map(
      (s) => ({
        ReferencedSOPClassUID: s.sopClassUid ?? SOP.MRImage,
        ReferencedSOPInstanceUID: s.sopInstanceUid,
      }),
    ),
    MIMETypeOfEncapsulatedDocument: 'application/pdf',
    EncapsulatedDocument: [padded.buffer],
    EncapsulatedDocumentLength: input.pdf.length,
    _vrMap: { EncapsulatedDocument: 'OB' },
  };
  return {
    kind: 'PDF',
    sopClassUid: SOP.EncapsulatedPdf,
    sopInstanceUid,
    seriesInstanceUid,
    bytes: writePart10(dataset),
  };
}
