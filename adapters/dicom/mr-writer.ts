/**
 * Writes MR Image Storage objects for research import (NIfTI → DICOM): one classic instance per slice, one
 * series per input volume, Explicit VR Little Endian.
 *
 * - Geometry exact: the volume is first reordered (no interpolation) to the display orientation DICOM viewers
 *   expect for its dominant plane (axial 'LPS', coronal 'LIP', sagittal 'PIR'), so rows run top to bottom and the
 *   slice normal (row × column) points along k; ImagePositionPatient of slice k = affine · (0, 0, k); cosines
 *   and spacings from the affine's columns (a sheared k column is kept: positions stay exact). Decimal strings
 *   carry ≤ 16 characters (≈ 1e-12 mm).
 * - Values: float → signed 16-bit with one RescaleSlope per series and RescaleIntercept 0: integer data that
 *   fit int16 are stored exactly (slope 1); anything else gets slope = max|v| / 32767 (written as a ≤ 16
 *   character DS, and the rounded slope is the one used), so the error is ≤ slope / 2 and 0 stays 0.
 * - UIDs: from adapters/dicom/uids.ts (root 2.25); Manufacturer 'ms-lesion-service research import';
 *   ImageType DERIVED\SECONDARY; descriptions and ScanningSequence by contrast so the series rules
 *   (config/series-rules.json) recognise FLAIR / T2 / T1 / T1C. Acquisition times (TR/TE/TI) are written only
 *   when given: a NIfTI file does not record them, so by default they are present but empty (type 2).
 */
import { data, type NaturalizedDataset } from 'dcmjs';
import { DomainError } from '../../domain/errors.ts';
import { applyAffine, column, norm, scale, type Vec3 } from '../../domain/model/geometry.ts';
import { reorient, type Volume } from '../../domain/model/volume.ts';
import { SOP_CLASS } from './image.ts';
import { TS } from './part10.ts';
import { uidFromName } from './uids.ts';

export const RESEARCH_MANUFACTURER = 'ms-lesion-service research import';
export const SOFTWARE_VERSION = '0.1.0';
export const IMPLEMENTATION_CLASS_UID = uidFromName('ms-lesion-service', 'implementation-class');
export const IMPLEMENTATION_VERSION_NAME = 'MSLESION_0_1';

export type MrContrast = 'FLAIR' | 'T2' | 'T1' | 'T1C' | 'PD' | 'OTHER';

export interface StudyInfo {
  readonly studyInstanceUid: string;
  readonly patientId: string;
  readonly patientName?: string;
  /** YYYYMMDD */
  readonly patientBirthDate?: string;
  readonly patientSex?: 'M' | 'F' | 'O';
  /** YYYYMMDD */
  readonly studyDate: string;
  /** HHMMSS */
  readonly studyTime?: string;
  readonly studyDescription?: string;
  readonly accessionNumber?: string;
  readonly studyId?: string;
  readonly referringPhysicianName?: string;
}

export interface AcquisitionParameters {
  readonly repetitionTime?: number;
  readonly echoTime?: number;
  readonly inversionTime?: number;
  readonly flipAngle?: number;
  readonly magneticFieldStrength?: number;
}

export interface MrSeriesSpec {
  readonly volume: Volume;
  readonly contrast: MrContrast;
  readonly seriesNumber: number;
  readonly seriesInstanceUid: string;
  readonly frameOfReferenceUid: string;
  /** SOP Instance UID of slice k (1-based instance number k + 1). */
  readonly sopInstanceUid: (k: number) => string;
  readonly seriesDescription?: string;
  readonly acquisition?: AcquisitionParameters;
  /** '2D' | '3D'; default: 3D when every spacing ≤ 1.5 mm, else 2D. */
  readonly mrAcquisitionType?: '2D' | '3D';
  /** Free text for DerivationDescription (e.g. the source file name, never patient data). */
  readonly derivedFrom?: string;
}

/** Formats a number as a DICOM Decimal String of at most 16 characters. */
export function formatDS(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError(`not a finite number: ${x}`);
  if (x === 0 || Object.is(x, -0)) return '0';
  if (Number.isInteger(x) && Math.abs(x) < 1e15) {
    const s = String(x);
    if (s.length <= 16) return s;
  }
  for (let p = 16; p >= 1; p--) {
    let s = x.toPrecision(p);
    if (s.includes('e')) {
      const [m, e] = s.split('e');
      s = `${m.includes('.') ? m.replace(/0+$/, '').replace(/\.$/, '') : m}e${e}`;
    } else if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '');
    if (s.length <= 16) return s;
  }
  throw new RangeError(`cannot format ${x} as DS`);
}

const CONTRAST: Readonly<
  Record<MrContrast, { description: string; scanning: string[]; variant: string[]; options: string[] }>
> = {
  FLAIR: { description: 'FLAIR', scanning: ['SE', 'IR'], variant: ['SK'], options: [] },
  T2: { description: 'T2', scanning: ['SE'], variant: ['SK'], options: [] },
  T1: { description: 'T1', scanning: ['GR'], variant: ['SP'], options: [] },
  T1C: { description: 'T1 post-contrast', scanning: ['GR'], variant: ['SP'], options: [] },
  PD: { description: 'PD', scanning: ['SE'], variant: ['SK'], options: [] },
  OTHER: { description: 'MR', scanning: ['RM'], variant: ['NONE'], options: [] },
};

/** The display orientation for the volume's dominant plane (rows top → bottom, normal along k). */
export function displayOrientation(volume: Volume): 'LPS' | 'LIP' | 'PIR' {
  // k stays the slice axis: pick the convention of the patient axis it is closest to
  const k = column(volume.affine, 2);
  const a = [Math.abs(k[0]), Math.abs(k[1]), Math.abs(k[2])];
  if (a[2] >= a[0] && a[2] >= a[1]) return 'LPS';
  if (a[1] >= a[0]) return 'LIP';
  return 'PIR';
}

interface Quantised {
  readonly stored: Int16Array;
  readonly slope: number;
  readonly slopeText: string;
}

export function quantiseToInt16(values: ArrayLike<number>): Quantised {
  let maxAbs = 0;
  let integral = true;
  for (let x = 0; x < values.length; x++) {
    const v = values[x];
    if (!Number.isFinite(v))
      throw new DomainError('IMPORT.NON_FINITE_VOXELS', 'the volume holds NaN or infinite values', {
        issueType: 'invalid',
      });
    const a = Math.abs(v);
    if (a > maxAbs) maxAbs = a;
    if (integral && v !== Math.round(v)) integral = false;
  }
  const stored = new Int16Array(values.length);
  if (integral && maxAbs <= 32767) {
    for (let x = 0; x < values.length; x++) stored[x] = values[x];
    return { stored, slope: 1, slopeText: '1' };
  }
  if (maxAbs === 0) return { stored, slope: 1, slopeText: '1' };
  let slopeText = formatDS(maxAbs / 32767);
  let slope = Number(slopeText);
  // the rounded slope must still cover max|v|
  while (maxAbs / slope > 32767.5) {
    slopeText = formatDS(slope * (1 + 1e-12) + Number.EPSILON);
    slope = Number(slopeText);
  }
  for (let x = 0; x < values.length; x++) {
    const q = Math.round(values[x] / slope);
    stored[x] = q > 32767 ? 32767 : q < -32768 ? -32768 : q;
  }
  return { stored, slope, slopeText };
}

/** Part-10 bytes of a naturalized data set (Explicit VR Little Endian). */
export function writePart10(dataset: NaturalizedDataset): Uint8Array {
  const sopClass = dataset.SOPClassUID;
  const sopInstance = dataset.SOPInstanceUID;
  if (typeof sopClass !== 'string' || typeof sopInstance !== 'string')
    throw new TypeError('SOPClassUID and SOPInstanceUID are required');
  const meta = data.DicomMetaDictionary.denaturalizeDataset({
    FileMetaInformationVersion: [new Uint8Array([0, 1]).buffer],
    MediaStorageSOPClassUID: sopClass,
    MediaStorageSOPInstanceUID: sopInstance,
    TransferSyntaxUID: TS.ExplicitLittle,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
    _vrMap: { FileMetaInformationVersion: 'OB' },
  });
  const dict = new data.DicomDict(meta);
  dict.dict = data.DicomMetaDictionary.denaturalizeDataset(dataset);
  return new Uint8Array(dict.write());
}

/** Patient, study, equipment and frame-of-reference attributes shared by every object of a study. */
export function studyLevelAttributes(study: StudyInfo): NaturalizedDataset {
  return {
    SpecificCharacterSet: 'ISO_IR 192',
    PatientName: study.patientName === undefined ? '' : [{ Alphabetic: study.patientName }],
    PatientID: study.patientId,
    PatientBirthDate: study.patientBirthDate ?? '',
    PatientSex: study.patientSex ?? '',
    StudyInstanceUID: study.studyInstanceUid,
    StudyDate: study.studyDate,
    StudyTime: study.studyTime ?? '000000',
    StudyDescription: study.studyDescription ?? 'Research import',
    AccessionNumber: study.accessionNumber ?? '',
    StudyID: study.studyId ?? '1',
    ReferringPhysicianName:
      study.referringPhysicianName === undefined ? '' : [{ Alphabetic: study.referringPhysicianName }],
    Manufacturer: RESEARCH_MANUFACTURER,
    SoftwareVersions: SOFTWARE_VERSION,
  };
}

function validate(study: StudyInfo, spec: MrSeriesSpec): void {
  const bad = (m: string): DomainError =>
    new DomainError('IMPORT.INVALID_ARGUMENT', m, { issueType: 'invalid' });
  if (!/^\d{8}$/.test(study.studyDate)) throw bad('the study date must be YYYYMMDD');
  if (study.studyTime !== undefined && !/^\d{6}$/.test(study.studyTime))
    throw bad('the study time must be HHMMSS');
  if (study.patientBirthDate !== undefined && !/^\d{8}$/.test(study.patientBirthDate))
    throw bad('the birth date must be YYYYMMDD');
  if (study.patientId.trim() === '' || study.patientId.length > 64)
    throw bad('the patient id must have 1–64 characters');
  if (!Number.isInteger(spec.seriesNumber) || spec.seriesNumber < 0)
    throw bad('the series number must be an integer ≥ 0');
  if (spec.volume.dims.some((d) => d < 1 || d > 65535)) throw bad('volume dimensions out of range');
}

/** Writes one classic MR series (one Part-10 instance per slice, in slice order). */
export function writeClassicMrSeries(study: StudyInfo, spec: MrSeriesSpec): Uint8Array[] {
  validate(study, spec);
  const vol = reorient(spec.volume, displayOrientation(spec.volume));
  const [nx, ny, nz] = vol.dims;
  const a = vol.affine;
  const ci = column(a, 0);
  const cj = column(a, 1);
  const colSpacing = norm(ci);
  const rowSpacing = norm(cj);
  const kStep = column(a, 2);
  const row: Vec3 = scale(ci, 1 / colSpacing);
  const col: Vec3 = scale(cj, 1 / rowSpacing);
  const normal: Vec3 = [
    row[1] * col[2] - row[2] * col[1],
    row[2] * col[0] - row[0] * col[2],
    row[0] * col[1] - row[1] * col[0],
  ];
  const sliceSpacing = Math.abs(kStep[0] * normal[0] + kStep[1] * normal[1] + kStep[2] * normal[2]);
  const q = quantiseToInt16(vol.data);
  const c = CONTRAST[spec.contrast];
  const acq = spec.acquisition ?? {};
  const acquisitionType =
    spec.mrAcquisitionType ?? (Math.max(colSpacing, rowSpacing, sliceSpacing) <= 1.5 ? '3D' : '2D');
  const description = spec.seriesDescription ?? `${c.description} research import`;
  const base: NaturalizedDataset = {
    ...studyLevelAttributes(study),
    ImageType: ['DERIVED', 'SECONDARY', 'OTHER'],
    SOPClassUID: SOP_CLASS.MRImage,
    Modality: 'MR',
    SeriesInstanceUID: spec.seriesInstanceUid,
    SeriesNumber: String(spec.seriesNumber),
    SeriesDescription: description.slice(0, 64),
    ProtocolName: c.description,
    SeriesDate: study.studyDate,
    SeriesTime: study.studyTime ?? '000000',
    // content date/time = the study's (the images show that session), so an import is byte-for-byte repeatable
    ContentDate: study.studyDate,
    ContentTime: study.studyTime ?? '000000',
    PatientPosition: 'HFS',
    FrameOfReferenceUID: spec.frameOfReferenceUid,
    PositionReferenceIndicator: '',
    BodyPartExamined: 'BRAIN',
    ScanningSequence: c.scanning,
    SequenceVariant: c.variant,
    ScanOptions: c.options.length === 0 ? '' : c.options,
    MRAcquisitionType: acquisitionType,
    RepetitionTime: acq.repetitionTime === undefined ? '' : formatDS(acq.repetitionTime),
    EchoTime: acq.echoTime === undefined ? '' : formatDS(acq.echoTime),
    EchoTrainLength: '',
    ...(c.scanning.includes('IR')
      ? { InversionTime: acq.inversionTime === undefined ? '' : formatDS(acq.inversionTime) }
      : {}),
    ...(acq.flipAngle === undefined ? {} : { FlipAngle: formatDS(acq.flipAngle) }),
    ...(acq.magneticFieldStrength === undefined
      ? {}
      : { MagneticFieldStrength: formatDS(acq.magneticFieldStrength) }),
    SliceThickness: formatDS(sliceSpacing),
    SpacingBetweenSlices: formatDS(sliceSpacing),
    PixelSpacing: [formatDS(rowSpacing), formatDS(colSpacing)],
    ImageOrientationPatient: [...row, ...col].map(formatDS),
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: ny,
    Columns: nx,
    BitsAllocated: 16,
    BitsStored: 16,
    HighBit: 15,
    PixelRepresentation: 1,
    RescaleIntercept: '0',
    RescaleSlope: q.slopeText,
    LossyImageCompression: '00',
    DerivationDescription: (
      `research import by ms-lesion-service from NIfTI${spec.derivedFrom === undefined ? '' : ` (${spec.derivedFrom})`}; ` +
      `float voxels stored as int16 × RescaleSlope ${q.slopeText}`
    ).slice(0, 1024),
    BurnedInAnnotation: 'NO',
    _vrMap: { PixelData: 'OW' },
  };
  const plane = nx * ny;
  const out: Uint8Array[] = [];
  for (let k = 0; k < nz; k++) {
    const pos = applyAffine(a, [0, 0, k]);
    const pixels = q.stored.slice(k * plane, (k + 1) * plane);
    out.push(
      writePart10({
        ...base,
        SOPInstanceUID: spec.sopInstanceUid(k),
        InstanceNumber: String(k + 1),
        ImagePositionPatient: pos.map(formatDS),
        SliceLocation: formatDS(pos[0] * normal[0] + pos[1] * normal[1] + pos[2] * normal[2]),
        PixelData: [pixels.buffer],
      }),
    );
  }
  return out;
}
