/**
 * Builds one Enhanced MR Image Storage object (multi-frame) from a classic MR series: every classic instance
 * becomes a frame; its plane position goes into the per-frame functional groups, orientation, pixel spacing and
 * the pixel value transformation into the shared ones when they are the same for every frame (per-frame
 * otherwise). Stored pixel values are copied unchanged. ImageType is DERIVED\PRIMARY and each frame references
 * its source instance (Derivation Image functional group), so the object is valid without the acquisition
 * functional groups that ORIGINAL images need. Series identity and the attributes series rules read
 * (description, protocol, MRAcquisitionType, echo time …) are carried over.
 *
 * Used to produce enhanced test objects from the real classic fixtures: no real enhanced series is available.
 */
import type { NaturalizedDataset } from 'dcmjs';
import { DomainError } from '../../domain/errors.ts';
import { cross, dot, type Vec3 } from '../../domain/model/geometry.ts';
import { bulk, item, num, nums, seq, str, strs, type Dataset } from './dataset.ts';
import { SOP_CLASS } from './image.ts';
import { formatDS, writePart10 } from './mr-writer.ts';
import { NATIVE_TRANSFER_SYNTAXES, parsePart10, TS } from './part10.ts';
import { uidFromName } from './uids.ts';

export interface EnhancedOptions {
  readonly sopInstanceUid?: string;
  /** Default: the classic series' UID, so the enhanced object stands for the same series. */
  readonly seriesInstanceUid?: string;
  readonly seriesNumber?: number;
  readonly seriesDescription?: string;
  /** Frame order: 'position' (along the slice normal, default) or 'as-given'. */
  readonly frameOrder?: 'position' | 'as-given';
}

function fail(message: string): DomainError {
  return new DomainError('DICOM.ENHANCED_BUILD_FAILED', message, { issueType: 'invalid' });
}

function copyIf(src: Dataset, keys: readonly string[]): NaturalizedDataset {
  const out: NaturalizedDataset = {};
  for (const k of keys) {
    const v = src[k];
    if (v !== undefined && v !== null) out[k] = v;
  }
  return out;
}

const STUDY_KEYS = [
  'SpecificCharacterSet',
  'PatientName',
  'PatientID',
  'PatientBirthDate',
  'PatientSex',
  'StudyInstanceUID',
  'StudyDate',
  'StudyTime',
  'StudyDescription',
  'AccessionNumber',
  'StudyID',
  'ReferringPhysicianName',
] as const;

function ds(v: number): string {
  return formatDS(v);
}

/** Part-10 bytes of one Enhanced MR Image built from the classic instances. */
export function classicToEnhancedMr(
  instances: readonly Uint8Array[],
  options: EnhancedOptions = {},
): Uint8Array {
  if (instances.length < 2) throw fail('an enhanced object needs at least two classic instances');
  const parsed = instances.map((b) => {
    const p = parsePart10(b);
    if (!NATIVE_TRANSFER_SYNTAXES.has(p.transferSyntaxUid) || p.transferSyntaxUid === TS.ExplicitBig)
      throw fail('source instances must be little endian, uncompressed');
    return p.dataset;
  });
  const first = parsed[0];
  const series = str(first, 'SeriesInstanceUID');
  if (series === undefined) throw fail('source has no SeriesInstanceUID');
  for (const d of parsed) {
    if (str(d, 'SOPClassUID') !== SOP_CLASS.MRImage) throw fail('every source must be a classic MR image');
    if (str(d, 'SeriesInstanceUID') !== series) throw fail('the sources belong to different series');
    for (const k of ['Rows', 'Columns', 'BitsAllocated', 'BitsStored', 'PixelRepresentation'])
      if (num(d, k) !== num(first, k)) throw fail(`sources differ in ${k}`);
  }
  const rows = num(first, 'Rows') ?? 0;
  const columns = num(first, 'Columns') ?? 0;
  const bitsAllocated = num(first, 'BitsAllocated') ?? 16;
  const frameBytes = rows * columns * (bitsAllocated / 8);
  const iop0 = nums(first, 'ImageOrientationPatient');
  if (iop0?.length !== 6) throw fail('source has no ImageOrientationPatient');
  const normal: Vec3 = cross([iop0[0], iop0[1], iop0[2]], [iop0[3], iop0[4], iop0[5]]);
  const frames = [...parsed];
  if (options.frameOrder !== 'as-given') {
    const pos = (d: Dataset): number => {
      const p = nums(d, 'ImagePositionPatient');
      return p === undefined ? 0 : dot([p[0], p[1], p[2]], normal);
    };
    frames.sort((a, b) => pos(a) - pos(b));
  }
  const same = (k: string): boolean => frames.every((d) => JSON.stringify(d[k]) === JSON.stringify(first[k]));
  const sharedOrientation = same('ImageOrientationPatient');
  const sharedSpacing = same('PixelSpacing') && same('SliceThickness') && same('SpacingBetweenSlices');
  const sharedRescale = same('RescaleSlope') && same('RescaleIntercept');

  const orientationItem = (d: Dataset): NaturalizedDataset => ({
    ImageOrientationPatient: (nums(d, 'ImageOrientationPatient') ?? []).map(ds),
  });
  const measuresItem = (d: Dataset): NaturalizedDataset => ({
    PixelSpacing: (nums(d, 'PixelSpacing') ?? [1, 1]).map(ds),
    SliceThickness: ds(num(d, 'SliceThickness') ?? 1),
    ...(num(d, 'SpacingBetweenSlices') === undefined
      ? {}
      : { SpacingBetweenSlices: ds(num(d, 'SpacingBetweenSlices') ?? 0) }),
  });
  const rescaleItem = (d: Dataset): NaturalizedDataset => ({
    RescaleIntercept: ds(num(d, 'RescaleIntercept') ?? 0),
    RescaleSlope: ds(num(d, 'RescaleSlope') ?? 1),
    RescaleType: 'US',
  });
  const frameType = ['DERIVED', 'PRIMARY', 'VOLUME', 'NONE'];
  const description = options.seriesDescription ?? str(first, 'SeriesDescription') ?? 'enhanced MR';
  const echoTime = num(first, 'EchoTime');
  const shared: NaturalizedDataset = {
    MRImageFrameTypeSequence: [
      {
        FrameType: frameType,
        PixelPresentation: 'MONOCHROME',
        VolumetricProperties: 'VOLUME',
        VolumeBasedCalculationTechnique: 'NONE',
        ComplexImageComponent: 'MAGNITUDE',
        AcquisitionContrast: 'UNKNOWN',
      },
    ],
    FrameAnatomySequence: [
      {
        AnatomicRegionSequence: [
          { CodeValue: '12738006', CodingSchemeDesignator: 'SCT', CodeMeaning: 'Brain' },
        ],
        FrameLaterality: 'U',
      },
    ],
    ...(echoTime === undefined ? {} : { MREchoSequence: [{ EffectiveEchoTime: echoTime }] }),
    ...(sharedOrientation ? { PlaneOrientationSequence: [orientationItem(first)] } : {}),
    ...(sharedSpacing ? { PixelMeasuresSequence: [measuresItem(first)] } : {}),
    ...(sharedRescale ? { PixelValueTransformationSequence: [rescaleItem(first)] } : {}),
  };
  const perFrame: NaturalizedDataset[] = frames.map((d, f) => ({
    FrameContentSequence: [
      {
        FrameAcquisitionNumber: f + 1,
        StackID: '1',
        InStackPositionNumber: f + 1,
        DimensionIndexValues: [1, f + 1],
      },
    ],
    PlanePositionSequence: [{ ImagePositionPatient: (nums(d, 'ImagePositionPatient') ?? [0, 0, 0]).map(ds) }],
    DerivationImageSequence: [
      {
        DerivationCodeSequence: [
          {
            CodeValue: '113091',
            CodingSchemeDesignator: 'DCM',
            CodeMeaning: 'Spatially-related frames extracted from the volume',
          },
        ],
        SourceImageSequence: [
          {
            ReferencedSOPClassUID: SOP_CLASS.MRImage,
            ReferencedSOPInstanceUID: str(d, 'SOPInstanceUID') ?? '',
            PurposeOfReferenceCodeSequence: [
              {
                CodeValue: '121322',
                CodingSchemeDesignator: 'DCM',
                CodeMeaning: 'Source image for image processing operation',
              },
            ],
          },
        ],
      },
    ],
    ...(sharedOrientation ? {} : { PlaneOrientationSequence: [orientationItem(d)] }),
    ...(sharedSpacing ? {} : { PixelMeasuresSequence: [measuresItem(d)] }),
    ...(sharedRescale ? {} : { PixelValueTransformationSequence: [rescaleItem(d)] }),
  }));
  const pixels = new Uint8Array(frameBytes * frames.length);
  frames.forEach((d, f) => {
    const parts = bulk(d, 'PixelData');
    const src = parts.length === 1 ? new Uint8Array(parts[0]) : undefined;
    if (src === undefined || src.byteLength < frameBytes)
      throw fail('a source instance has no complete pixel data');
    pixels.set(src.subarray(0, frameBytes), f * frameBytes);
  });
  const dimensionOrganizationUid = uidFromName('enhanced-dimension-organization', series);
  const sopInstanceUid = options.sopInstanceUid ?? uidFromName('enhanced-mr', series);
  // the classic series' content date/time (else its study's), so the same input gives the same bytes
  const contentDate = str(first, 'ContentDate') ?? str(first, 'StudyDate') ?? '19700101';
  const contentTime = str(first, 'ContentTime') ?? str(first, 'StudyTime') ?? '000000';
  const imageType = ['DERIVED', 'PRIMARY', 'VOLUME', 'NONE'];
  const dataset: NaturalizedDataset = {
    ...copyIf(first, STUDY_KEYS),
    SOPClassUID: SOP_CLASS.EnhancedMRImage,
    SOPInstanceUID: sopInstanceUid,
    Modality: 'MR',
    SeriesInstanceUID: options.seriesInstanceUid ?? series,
    SeriesNumber: String(options.seriesNumber ?? num(first, 'SeriesNumber') ?? 1),
    SeriesDescription: description.slice(0, 64),
    ...copyIf(first, ['ProtocolName', 'SeriesDate', 'SeriesTime', 'BodyPartExamined', 'PatientPosition']),
    FrameOfReferenceUID: str(first, 'FrameOfReferenceUID') ?? uidFromName('frame-of-reference', series),
    PositionReferenceIndicator: str(first, 'PositionReferenceIndicator') ?? '',
    Manufacturer: str(first, 'Manufacturer') ?? 'unknown',
    ManufacturerModelName: str(first, 'ManufacturerModelName') ?? 'unknown',
    DeviceSerialNumber: str(first, 'DeviceSerialNumber') ?? 'unknown',
    SoftwareVersions:
      strs(first, 'SoftwareVersions').length > 0 ? strs(first, 'SoftwareVersions') : 'unknown',
    ImageType: imageType,
    // MRAcquisitionType / PulseSequenceName belong to the MR Pulse Sequence module, which DERIVED images omit
    PixelPresentation: 'MONOCHROME',
    VolumetricProperties: 'VOLUME',
    VolumeBasedCalculationTechnique: 'NONE',
    ComplexImageComponent: 'MAGNITUDE',
    AcquisitionContrast: 'UNKNOWN',
    ContentQualification: 'RESEARCH',
    ApplicableSafetyStandardAgency: 'IEC',
    SourceImageEvidenceSequence: [
      {
        StudyInstanceUID: str(first, 'StudyInstanceUID') ?? '',
        ReferencedSeriesSequence: [
          {
            SeriesInstanceUID: series,
            ReferencedSOPSequence: frames.map((d) => ({
              ReferencedSOPClassUID: SOP_CLASS.MRImage,
              ReferencedSOPInstanceUID: str(d, 'SOPInstanceUID') ?? '',
            })),
          },
        ],
      },
    ],
    BurnedInAnnotation: 'NO',
    LossyImageCompression: '00',
    PresentationLUTShape: 'IDENTITY',
    InstanceNumber: '1',
    ContentDate: contentDate,
    ContentTime: contentTime,
    NumberOfFrames: String(frames.length),
    AcquisitionContextSequence: [],
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: dimensionOrganizationUid }],
    DimensionOrganizationType: '3D',
    DimensionIndexSequence: [
      {
        DimensionOrganizationUID: dimensionOrganizationUid,
        DimensionIndexPointer: '00209056',
        FunctionalGroupPointer: '00209111',
        DimensionDescriptionLabel: 'Stack ID',
      },
      {
        DimensionOrganizationUID: dimensionOrganizationUid,
        DimensionIndexPointer: '00209057',
        FunctionalGroupPointer: '00209111',
        DimensionDescriptionLabel: 'In-Stack Position Number',
      },
    ],
    SharedFunctionalGroupsSequence: [shared],
    PerFrameFunctionalGroupsSequence: perFrame,
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: rows,
    Columns: columns,
    BitsAllocated: bitsAllocated,
    BitsStored: num(first, 'BitsStored') ?? bitsAllocated,
    HighBit: num(first, 'HighBit') ?? bitsAllocated - 1,
    PixelRepresentation: num(first, 'PixelRepresentation') ?? 0,
    PixelData: [pixels.buffer],
    _vrMap: { PixelData: 'OW' },
  };
  // keep the sources' contrast agent (type 1C in the enhanced contrast module is out of scope: note it)
  const agent = str(first, 'ContrastBolusAgent');
  if (agent !== undefined) dataset.ImageComments = `contrast agent: ${agent}`.slice(0, 10240);
  return writePart10(dataset);
}

/** The classic instances' SOP Instance UIDs as frames reference them (for tests). */
export function sourceReferences(enhanced: Uint8Array): string[] {
  const d = parsePart10(enhanced, { headerOnly: true }).dataset;
  return seq(d, 'PerFrameFunctionalGroupsSequence').map((f) => {
    const der = item(f, 'DerivationImageSequence');
    const src = der === undefined ? undefined : item(der, 'SourceImageSequence');
    return src === undefined ? '' : (str(src, 'ReferencedSOPInstanceUID') ?? '');
  });
}
