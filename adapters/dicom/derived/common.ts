/**
 * What every derived object (SEG, SR, Encapsulated PDF, overlay Secondary Capture) shares: the context of
 * the analysis that produced it, value formatting for DICOM VRs, the Patient / General Study / General
 * Series / General Equipment / SOP Common modules copied from the source study, the IHE AI Results
 * Contributing Equipment item, and Part-10 encoding (explicit VR little endian) through dcmjs.
 *
 * Codes: DICOM.DERIVED_INPUT ('invalid') for inconsistent inputs.
 */
import { data, type NaturalizedDataset } from 'dcmjs';
import { DomainError } from '../../../domain/errors.ts';
import type { ModelUsed } from '../../../domain/model/analysis.ts';
import type {
  ImageSlice,
  SeriesDescriptor,
  StudyDescriptor,
} from '../../../domain/ports/image-source.port.ts';
import { CODES, type CodeItem } from './codes.ts';
import { DEFAULT_UID_ROOT, isValidUid, uidFactory } from './uids.ts';

export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
/** Implementation Class UID of this writer (deterministic, under the 2.25 root). */
export const IMPLEMENTATION_CLASS_UID = '2.25.181433946343513785716384217011296733457';
export const IMPLEMENTATION_VERSION = 'MSLESION_010';

export const SOP = {
  Segmentation: '1.2.840.10008.5.1.4.1.1.66.4',
  ComprehensiveSR: '1.2.840.10008.5.1.4.1.1.88.33',
  EncapsulatedPdf: '1.2.840.10008.5.1.4.1.1.104.1',
  SecondaryCapture: '1.2.840.10008.5.1.4.1.1.7',
  MRImage: '1.2.840.10008.5.1.4.1.1.4',
} as const;

/** Series numbers of the derived series (high, so they sort after the acquired series in a viewer). */
export const SERIES_NUMBER = { seg: 9901, sr: 9902, pdf: 9903, overlay: 9904 } as const;

/** The source FLAIR plane a derived frame refers to (an ImageSlice is one). */
export type SourceSliceRef = Pick<ImageSlice, 'sopInstanceUid'> &
  Partial<Pick<ImageSlice, 'sopClassUid' | 'frameNumber' | 'frameOfReferenceUid' | 'sliceThickness'>>;

/** Identity of this service as the equipment that made the objects. */
export interface ServiceEquipment {
  readonly manufacturer: string;
  readonly softwareVersion: string;
  readonly institutionName?: string;
}

export const DEFAULT_EQUIPMENT: ServiceEquipment = {
  manufacturer: 'ms-lesion-service',
  softwareVersion: '0.1.0',
};

/** Everything a derived object needs to know about the analysis and its source images. */
export interface DerivedContext {
  /** The analysis id: every UID is derived from it (see uids.ts). */
  readonly analysisId: string;
  /** Patient and study attributes (copied into every object); `studyId` is the source's Study ID when known. */
  readonly study: Omit<StudyDescriptor, 'series'> & {
    readonly series?: StudyDescriptor['series'];
    readonly studyId?: string;
  };
  readonly flairSeries: Pick<SeriesDescriptor, 'seriesInstanceUid'> &
    Partial<Pick<SeriesDescriptor, 'seriesNumber' | 'modality'>> & { readonly description?: string };
  /** The FLAIR planes in k order of the FLAIR grid (slice k of the volume ↔ flairSlices[k]). */
  readonly flairSlices: readonly SourceSliceRef[];
  /** Frame of Reference UID of the FLAIR (else taken from the slices); required for the SEG. */
  readonly frameOfReferenceUid?: string;
  readonly model: ModelUsed;
  /** When the results were produced (content date/time of every object; keeps re-builds identical). */
  readonly createdAt: string | Date;
  /** UID root (default 2.25, UUID-derived). */
  readonly uidRoot?: string;
  readonly equipment?: ServiceEquipment;
}

export function derivedInputError(message: string, details: Record<string, unknown> = {}): DomainError {
  return new DomainError('DICOM.DERIVED_INPUT', message, { issueType: 'invalid', details });
}

export function contextUids(ctx: DerivedContext): (role: string) => string {
  return uidFactory(ctx.analysisId, ctx.uidRoot ?? DEFAULT_UID_ROOT);
}

export function createdAt(ctx: DerivedContext): Date {
  const d = typeof ctx.createdAt === 'string' ? new Date(ctx.createdAt) : ctx.createdAt;
  if (Number.isNaN(d.getTime())) throw derivedInputError('createdAt is not a valid date');
  return d;
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

/** DA (UTC). */
export function dicomDate(d: Date): string {
  return `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}`;
}

/** TM (UTC), to the millisecond. */
export function dicomTime(d: Date): string {
  return `${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}`;
}

/** DT (UTC, with offset). */
export function dicomDateTime(d: Date): string {
  return `${dicomDate(d)}${dicomTime(d)}+0000`;
}

/** A DS value (at most 16 characters, no exponent unless unavoidable). */
export function ds(x: number): string {
  if (!Number.isFinite(x)) throw derivedInputError(`not a finite number: ${x}`);
  if (Object.is(x, -0) || x === 0) return '0';
  for (let p = 14; p >= 1; p--) {
    const s = String(Number(x.toPrecision(p)));
    if (s.length <= 16) return s;
  }
  return x.toExponential(6);
}

/** Trims and truncates a string value to a VR's maximum length (characters); undefined stays undefined. */
export function fit(value: string | undefined, max: number): string | undefined {
  if (value === undefined) return undefined;
  const t = value.replace(/[\\\r\n\t]/g, ' ').trim();
  return t.length <= max ? t : t.slice(0, max);
}

/** Replaces characters outside printable ASCII (for CS, SH-coded values). */
export function ascii(value: string): string {
  return value.replace(/[^\x20-\x7e]/g, '?');
}

/** A coded entry (Code Sequence item). */
export function codeItem(c: CodeItem): NaturalizedDataset {
  return { CodeValue: c.value, CodingSchemeDesignator: c.scheme, CodeMeaning: c.meaning };
}

function hasNonAscii(...values: (string | undefined)[]): boolean {
  return values.some((v) => v !== undefined && /[^\x20-\x7e]/.test(v));
}

export interface SeriesIdentity {
  readonly modality: string;
  readonly sopClassUid: string;
  readonly seriesInstanceUid: string;
  readonly sopInstanceUid: string;
  readonly seriesNumber: number;
  readonly instanceNumber: number;
  readonly seriesDescription: string;
}

/**
 * Patient, General Study, General Series, General Equipment and SOP Common attributes for a new instance
 * in the source study (patient/study identity copied so that the PACS files it under the same study).
 */
export function commonAttributes(ctx: DerivedContext, id: SeriesIdentity): NaturalizedDataset {
  const { study } = ctx;
  if (!isValidUid(study.studyInstanceUid))
    throw derivedInputError('the study has no valid Study Instance UID', { uid: study.studyInstanceUid });
  const when = createdAt(ctx);
  const eq = ctx.equipment ?? DEFAULT_EQUIPMENT;
  const utf8 = hasNonAscii(study.patientName, study.patientId, study.studyDescription, eq.institutionName);
  const out: NaturalizedDataset = {
    ...(utf8 ? { SpecificCharacterSet: 'ISO_IR 192' } : {}),
    SOPClassUID: id.sopClassUid,
    SOPInstanceUID: id.sopInstanceUid,
    InstanceCreationDate: dicomDate(when),
    InstanceCreationTime: dicomTime(when),
    InstanceCreatorUID: IMPLEMENTATION_CLASS_UID,
    TimezoneOffsetFromUTC: '+0000',
    StudyDate: study.studyDate ?? '',
    StudyTime: study.studyTime ?? '',
    SeriesDate: dicomDate(when),
    SeriesTime: dicomTime(when),
    ContentDate: dicomDate(when),
    ContentTime: dicomTime(when),
    AccessionNumber: fit(study.accessionNumber, 16) ?? '',
    Modality: id.modality,
    Manufacturer: fit(eq.manufacturer, 64),
    ...(eq.institutionName === undefined ? {} : { InstitutionName: fit(eq.institutionName, 64) }),
    ReferringPhysicianName: '',
    ...(study.studyDescription === undefined ? {} : { StudyDescription: fit(study.studyDescription, 64) }),
    SeriesDescription: fit(id.seriesDescription, 64),
    ManufacturerModelName: fit(ctx.model.name, 64),
    PatientName: study.patientName ?? '',
    PatientID: fit(study.patientId, 64) ?? '',
    PatientBirthDate: study.patientBirthDate ?? '',
    PatientSex: study.patientSex !== undefined && /^[MFO]$/.test(study.patientSex) ? study.patientSex : '',
    DeviceSerialNumber: fit(deviceSerial(ctx.model), 64),
    SoftwareVersions: [
      fit(`${eq.manufacturer} ${eq.softwareVersion}`, 64),
      fit(`${ctx.model.id} ${ctx.model.version}`, 64),
    ],
    StudyInstanceUID: study.studyInstanceUid,
    SeriesInstanceUID: id.seriesInstanceUid,
    StudyID: fit(study.studyId, 16) ?? '',
    SeriesNumber: id.seriesNumber,
    InstanceNumber: id.instanceNumber,
    ContributingEquipmentSequence: [contributingEquipment(ctx, when)],
  };
  return out;
}

/** A stable device serial for the model file (its sha256 prefix), as IHE AIR asks for a device identity. */
export function deviceSerial(model: ModelUsed): string {
  const sha = model.sha256.toLowerCase();
  return /^[0-9a-f]{16,}$/.test(sha) ? `sha256:${sha.slice(0, 16)}` : `${model.id}-${model.version}`;
}

/** A Source Image Sequence item: the FLAIR plane a derived image or frame was made from (source for processing). */
export function sourceImageItem(src: SourceSliceRef): NaturalizedDataset {
  return {
    ReferencedSOPClassUID: src.sopClassUid ?? SOP.MRImage,
    ReferencedSOPInstanceUID: src.sopInstanceUid,
    ...(src.frameNumber === undefined ? {} : { ReferencedFrameNumber: src.frameNumber }),
    PurposeOfReferenceCodeSequence: [codeItem(CODES.sourceForProcessing)],
  };
}

/** IHE AI Results: the algorithm as "Processing Equipment" that created this instance. */
export function contributingEquipment(ctx: DerivedContext, when: Date): NaturalizedDataset {
  const eq = ctx.equipment ?? DEFAULT_EQUIPMENT;
  return {
    PurposeOfReferenceCodeSequence: [codeItem(CODES.processingEquipment)],
    Manufacturer: fit(eq.manufacturer, 64),
    ...(eq.institutionName === undefined ? {} : { InstitutionName: fit(eq.institutionName, 64) }),
    ManufacturerModelName: fit(ctx.model.name, 64),
    DeviceSerialNumber: fit(deviceSerial(ctx.model), 64),
    SoftwareVersions: [fit(ctx.model.version, 64)],
    ContributionDateTime: dicomDateTime(when),
    ContributionDescription: fit(
      `AI segmentation of MS lesions by ${ctx.model.name} ${ctx.model.version} (variant ${ctx.model.variant}); ` +
        `research use, not for diagnosis`,
      1024,
    ),
  };
}

/** Algorithm Identification Macro (family Artificial Intelligence, DCM 123110). */
export function algorithmIdentification(model: ModelUsed): NaturalizedDataset {
  return {
    AlgorithmFamilyCodeSequence: [codeItem(CODES.artificialIntelligence)],
    AlgorithmName: fit(model.name, 64),
    AlgorithmVersion: fit(model.version, 64),
    AlgorithmParameters: fit(
      `model=${model.id}; variant=${model.variant}; channels=${model.channels.join('+')}`,
      10240,
    ),
    AlgorithmSource: 'ms-lesion-service',
  };
}

/** Encodes a naturalized data set as Part-10 bytes (explicit VR little endian). */
export function writePart10(dataset: NaturalizedDataset): Uint8Array {
  const sopClassUid = dataset.SOPClassUID;
  const sopInstanceUid = dataset.SOPInstanceUID;
  if (typeof sopClassUid !== 'string' || typeof sopInstanceUid !== 'string')
    throw derivedInputError('data set without SOP Class/Instance UID');
  const meta: NaturalizedDataset = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: sopClassUid,
    MediaStorageSOPInstanceUID: sopInstanceUid,
    TransferSyntaxUID: EXPLICIT_VR_LITTLE_ENDIAN,
    ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
    ImplementationVersionName: IMPLEMENTATION_VERSION,
    _vrMap: { FileMetaInformationVersion: 'OB' },
  };
  const dict = new data.DicomDict(data.DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = data.DicomMetaDictionary.denaturalizeDataset(dataset);
  return new Uint8Array(dict.write());
}

/** One Part-10 object made by a builder, with the identity a publisher reports. */
export interface DerivedObject {
  readonly kind: 'SEG' | 'SR' | 'PDF' | 'SC';
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly bytes: Uint8Array;
}

/** The source FLAIR instances as a Referenced Series Sequence item (Common Instance Reference module). */
export function referencedSeriesItem(ctx: DerivedContext): NaturalizedDataset {
  const seen = new Set<string>();
  const instances: NaturalizedDataset[] = [];
  for (const s of ctx.flairSlices) {
    if (seen.has(s.sopInstanceUid)) continue;
    seen.add(s.sopInstanceUid);
    instances.push({
      ReferencedSOPClassUID: s.sopClassUid ?? SOP.MRImage,
      ReferencedSOPInstanceUID: s.sopInstanceUid,
    });
  }
  return { SeriesInstanceUID: ctx.flairSeries.seriesInstanceUid, ReferencedInstanceSequence: instances };
}

export function checkSourceSlices(ctx: DerivedContext, slices: number): void {
  if (ctx.flairSlices.length !== slices)
    throw derivedInputError(
      `${ctx.flairSlices.length} source FLAIR instances for ${slices} slices of the grid`,
      {
        instances: ctx.flairSlices.length,
        slices,
      },
    );
  for (const s of ctx.flairSlices)
    if (!isValidUid(s.sopInstanceUid))
      throw derivedInputError('a source FLAIR instance has an invalid SOP Instance UID');
  if (!isValidUid(ctx.flairSeries.seriesInstanceUid))
    throw derivedInputError('the FLAIR series has an invalid UID');
}
