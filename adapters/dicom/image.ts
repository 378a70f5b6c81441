/**
 * From parsed DICOM instances to the domain's image-source types: instance identity, series attributes for
 * classification, study fields, and image planes. Dispatches on the SOP Class: classic MR Image Storage
 * (one plane per instance) or Enhanced MR Image Storage (one plane per frame, geometry and pixel value
 * transformation from the shared / per-frame functional groups). Other single-plane image storage classes
 * (CT, secondary capture with geometry …) are read the classic way so that a wrong-modality study is still
 * described and refused by the rules, not by a parse error.
 *
 * Codes: DICOM.MISSING_ATTRIBUTE ('required'), DICOM.COMPRESSED_UNSUPPORTED and
 * DICOM.PIXEL_FORMAT_UNSUPPORTED ('not-supported'), DICOM.TRUNCATED ('structure'), DICOM.NOT_AN_IMAGE
 * ('not-supported').
 */
import type { Vec3 } from '../../domain/model/geometry.ts';
import { DomainError } from '../../domain/errors.ts';
import type {
  ImageSlice,
  SeriesAttributes,
  SeriesDescriptor,
  SlicePixels,
  StudyDescriptor,
} from '../../domain/ports/image-source.port.ts';
import { bulk, item, num, nums, personName, seq, str, strs, type Dataset } from './dataset.ts';
import { NATIVE_TRANSFER_SYNTAXES, TS, transferSyntaxName, type ParsedInstance } from './part10.ts';

export const SOP_CLASS = {
  MRImage: '1.2.840.10008.5.1.4.1.1.4',
  EnhancedMRImage: '1.2.840.10008.5.1.4.1.1.4.1',
  LegacyConvertedEnhancedMRImage: '1.2.840.10008.5.1.4.1.1.4.4',
  CTImage: '1.2.840.10008.5.1.4.1.1.2',
  Segmentation: '1.2.840.10008.5.1.4.1.1.66.4',
} as const;

const MULTIFRAME_MR = new Set<string>([SOP_CLASS.EnhancedMRImage, SOP_CLASS.LegacyConvertedEnhancedMRImage]);

export function isEnhancedMr(sopClassUid: string | undefined): boolean {
  return sopClassUid !== undefined && MULTIFRAME_MR.has(sopClassUid);
}

export interface InstanceIdentity {
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly sopInstanceUid: string;
  readonly sopClassUid: string;
  readonly modality: string;
  readonly seriesNumber?: number;
  readonly instanceNumber?: number;
  readonly numberOfFrames: number;
  readonly transferSyntaxUid: string;
}

function required(ds: Dataset, key: string, fallback?: string): string {
  const v = str(ds, key) ?? fallback;
  if (v === undefined)
    throw new DomainError('DICOM.MISSING_ATTRIBUTE', `the instance has no ${key}`, {
      issueType: 'required',
      details: { attribute: key },
    });
  return v;
}

export function identityOf(p: ParsedInstance): InstanceIdentity {
  const ds = p.dataset;
  const seriesNumber = num(ds, 'SeriesNumber');
  const instanceNumber = num(ds, 'InstanceNumber');
  return {
    studyInstanceUid: required(ds, 'StudyInstanceUID'),
    seriesInstanceUid: required(ds, 'SeriesInstanceUID'),
    sopInstanceUid: required(ds, 'SOPInstanceUID', str(p.meta, 'MediaStorageSOPInstanceUID')),
    sopClassUid: required(ds, 'SOPClassUID', str(p.meta, 'MediaStorageSOPClassUID')),
    modality: str(ds, 'Modality') ?? 'OT',
    ...(seriesNumber === undefined ? {} : { seriesNumber }),
    ...(instanceNumber === undefined ? {} : { instanceNumber }),
    numberOfFrames: Math.max(1, Math.round(num(ds, 'NumberOfFrames') ?? 1)),
    transferSyntaxUid: p.transferSyntaxUid,
  };
}

/** The functional group item `key` for frame `f` (0-based): per-frame first, then shared. */
function functionalGroup(ds: Dataset, f: number, key: string): Dataset | undefined {
  const perFrame = seq(ds, 'PerFrameFunctionalGroupsSequence').at(f);
  const own = perFrame === undefined ? undefined : item(perFrame, key);
  if (own !== undefined) return own;
  const shared = item(ds, 'SharedFunctionalGroupsSequence');
  return shared === undefined ? undefined : item(shared, key);
}

function contrastAgent(ds: Dataset): string | undefined {
  const agent = str(ds, 'ContrastBolusAgent');
  if (agent !== undefined) return agent;
  for (const it of seq(ds, 'ContrastBolusAgentSequence')) {
    const m = str(it, 'CodeMeaning') ?? str(it, 'CodeValue');
    if (m !== undefined) return m;
  }
  return undefined;
}

function definedEntries<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Attributes that series classification rules read, from a classic or enhanced MR instance. */
export function seriesAttributesOf(ds: Dataset): SeriesAttributes {
  const sopClassUid = str(ds, 'SOPClassUID');
  const common = {
    seriesDescription: str(ds, 'SeriesDescription'),
    protocolName: str(ds, 'ProtocolName'),
    imageType: strs(ds, 'ImageType'),
    mrAcquisitionType: str(ds, 'MRAcquisitionType'),
    magneticFieldStrength: num(ds, 'MagneticFieldStrength'),
    manufacturer: str(ds, 'Manufacturer'),
    manufacturerModelName: str(ds, 'ManufacturerModelName'),
    contrastBolusAgent: contrastAgent(ds),
    pulseSequenceName: str(ds, 'PulseSequenceName') ?? str(ds, '0019109C'),
  };
  if (!isEnhancedMr(sopClassUid)) {
    return definedEntries({
      ...common,
      sequenceName: str(ds, 'SequenceName'),
      scanningSequence: strs(ds, 'ScanningSequence'),
      sequenceVariant: strs(ds, 'SequenceVariant'),
      scanOptions: strs(ds, 'ScanOptions'),
      inversionTime: num(ds, 'InversionTime'),
      repetitionTime: num(ds, 'RepetitionTime'),
      echoTime: num(ds, 'EchoTime'),
      flipAngle: num(ds, 'FlipAngle'),
      sliceThickness: num(ds, 'SliceThickness'),
    });
  }
  // Enhanced MR: acquisition parameters live in functional groups (frame 1 stands for the series).
  const timing = functionalGroup(ds, 0, 'MRTimingAndRelatedParametersSequence');
  const echo = functionalGroup(ds, 0, 'MREchoSequence');
  const modifier = functionalGroup(ds, 0, 'MRModifierSequence');
  const measures = functionalGroup(ds, 0, 'PixelMeasuresSequence');
  const echoPulse = str(ds, 'EchoPulseSequence');
  const scanning: string[] = [];
  if (echoPulse === 'SPIN' || echoPulse === 'BOTH') scanning.push('SE');
  if (echoPulse === 'GRADIENT' || echoPulse === 'BOTH') scanning.push('GR');
  const ir =
    (modifier === undefined ? undefined : str(modifier, 'InversionRecovery')) ?? str(ds, 'InversionRecovery');
  if (ir === 'YES') scanning.push('IR');
  const variant: string[] = [];
  if (str(ds, 'MagnetizationTransfer') !== undefined && str(ds, 'MagnetizationTransfer') !== 'NONE')
    variant.push('MTC');
  if (str(ds, 'SteadyStatePulseSequence') !== undefined && str(ds, 'SteadyStatePulseSequence') !== 'NONE')
    variant.push('SS');
  if (str(ds, 'SpectrallySelectedSuppression') !== undefined) variant.push('SP');
  const inversionTimes = modifier === undefined ? undefined : nums(modifier, 'InversionTimes');
  return definedEntries({
    ...common,
    sequenceName: str(ds, 'PulseSequenceName'),
    scanningSequence: scanning,
    sequenceVariant: variant,
    scanOptions: [],
    inversionTime: inversionTimes?.[0] ?? num(ds, 'InversionTime'),
    repetitionTime:
      (timing === undefined ? undefined : num(timing, 'RepetitionTime')) ?? num(ds, 'RepetitionTime'),
    echoTime: (echo === undefined ? undefined : num(echo, 'EffectiveEchoTime')) ?? num(ds, 'EchoTime'),
    flipAngle: (timing === undefined ? undefined : num(timing, 'FlipAngle')) ?? num(ds, 'FlipAngle'),
    sliceThickness:
      (measures === undefined ? undefined : num(measures, 'SliceThickness')) ?? num(ds, 'SliceThickness'),
  });
}

/** Study-level fields (patient identity stays in the descriptor; never log it). */
export function studyFieldsOf(ds: Dataset): Omit<StudyDescriptor, 'series'> {
  return definedEntries({
    studyInstanceUid: required(ds, 'StudyInstanceUID'),
    patientId: str(ds, 'PatientID'),
    patientName: personName(ds, 'PatientName'),
    patientBirthDate: str(ds, 'PatientBirthDate'),
    patientSex: str(ds, 'PatientSex'),
    studyDate: str(ds, 'StudyDate'),
    studyTime: str(ds, 'StudyTime'),
    studyDescription: str(ds, 'StudyDescription'),
    accessionNumber: str(ds, 'AccessionNumber'),
  });
}

/**
 * A study descriptor from its study-level fields (absent: only the UID) and its series, the series in viewer
 * order (by series number, then UID) — the same for every image source.
 */
export function studyDescriptorOf(
  studyInstanceUid: string,
  studyFields: Omit<StudyDescriptor, 'series'> | undefined,
  series: readonly SeriesDescriptor[],
): StudyDescriptor {
  const ordered = [...series].sort(
    (a, b) =>
      (a.seriesNumber ?? 0) - (b.seriesNumber ?? 0) || a.seriesInstanceUid.localeCompare(b.seriesInstanceUid),
  );
  return { ...(studyFields ?? { studyInstanceUid }), studyInstanceUid, series: ordered };
}

function vec3(v: number[] | undefined): Vec3 | undefined {
  return v !== undefined && v.length >= 3 ? [v[0], v[1], v[2]] : undefined;
}

function orientation6(v: number[] | undefined): ImageSlice['imageOrientationPatient'] | undefined {
  return v !== undefined && v.length >= 6 ? [v[0], v[1], v[2], v[3], v[4], v[5]] : undefined;
}

function missing(what: string, sop: string, frame?: number): DomainError {
  return new DomainError(
    'DICOM.MISSING_ATTRIBUTE',
    `instance ${sop}${frame === undefined ? '' : ` frame ${frame}`} has no ${what}`,
    { issueType: 'required', details: { attribute: what, sopInstanceUid: sop } },
  );
}

interface PixelFormat {
  readonly rows: number;
  readonly columns: number;
  readonly bitsAllocated: number;
  readonly bitsStored: number;
  readonly signed: boolean;
}

function pixelFormat(ds: Dataset, sop: string): PixelFormat {
  const rows = num(ds, 'Rows');
  const columns = num(ds, 'Columns');
  if (rows === undefined || columns === undefined || rows < 1 || columns < 1)
    throw missing('Rows/Columns', sop);
  const spp = num(ds, 'SamplesPerPixel') ?? 1;
  const photometric = str(ds, 'PhotometricInterpretation') ?? 'MONOCHROME2';
  if (spp !== 1 || (photometric !== 'MONOCHROME2' && photometric !== 'MONOCHROME1'))
    throw new DomainError(
      'DICOM.PIXEL_FORMAT_UNSUPPORTED',
      `only greyscale images are supported (SamplesPerPixel ${spp}, ${photometric})`,
      { issueType: 'not-supported', details: { sopInstanceUid: sop } },
    );
  const bitsAllocated = num(ds, 'BitsAllocated') ?? 16;
  if (bitsAllocated !== 8 && bitsAllocated !== 16 && bitsAllocated !== 32)
    throw new DomainError(
      'DICOM.PIXEL_FORMAT_UNSUPPORTED',
      `BitsAllocated ${bitsAllocated} is not supported`,
      {
        issueType: 'not-supported',
        details: { sopInstanceUid: sop },
      },
    );
  const bitsStored = Math.min(bitsAllocated, num(ds, 'BitsStored') ?? bitsAllocated);
  return { rows, columns, bitsAllocated, bitsStored, signed: num(ds, 'PixelRepresentation') === 1 };
}

/** Decodes one frame of native pixel data into a typed array (host order, stored values). */
function decodeFrame(
  buf: ArrayBuffer,
  byteOffset: number,
  fmt: PixelFormat,
  bigEndian: boolean,
): SlicePixels {
  const n = fmt.rows * fmt.columns;
  const dv = new DataView(buf, byteOffset, n * (fmt.bitsAllocated / 8));
  const le = !bigEndian;
  const shift = fmt.bitsAllocated - fmt.bitsStored;
  if (fmt.bitsAllocated === 8) {
    if (!fmt.signed) return new Uint8Array(buf.slice(byteOffset, byteOffset + n));
    const out = new Int16Array(n);
    for (let x = 0; x < n; x++) out[x] = (dv.getInt8(x) << (24 + shift)) >> (24 + shift);
    return out;
  }
  if (fmt.bitsAllocated === 16) {
    if (shift === 0 && le) {
      // the common case: copy the frame and view it (host order is little endian on every supported platform)
      const copy = buf.slice(byteOffset, byteOffset + 2 * n);
      return fmt.signed ? new Int16Array(copy) : new Uint16Array(copy);
    }
    if (fmt.signed) {
      const out = new Int16Array(n);
      for (let x = 0; x < n; x++) out[x] = (dv.getUint16(2 * x, le) << (16 + shift)) >> (16 + shift);
      return out;
    }
    const out = new Uint16Array(n);
    const mask = shift === 0 ? 0xffff : (1 << fmt.bitsStored) - 1;
    for (let x = 0; x < n; x++) out[x] = dv.getUint16(2 * x, le) & mask;
    return out;
  }
  if (fmt.signed) {
    const out = new Int32Array(n);
    for (let x = 0; x < n; x++)
      out[x] = shift === 0 ? dv.getInt32(4 * x, le) : (dv.getInt32(4 * x, le) << shift) >> shift;
    return out;
  }
  // Unsigned 32-bit: Float32Array keeps values exactly up to 2^24 (more than MR scanners store).
  const out = new Float32Array(n);
  for (let x = 0; x < n; x++)
    out[x] = shift === 0 ? dv.getUint32(4 * x, le) : (dv.getUint32(4 * x, le) << shift) >>> shift;
  return out;
}

function pixelBuffer(p: ParsedInstance, sop: string, fmt: PixelFormat, frames: number): ArrayBuffer {
  if (p.encapsulated || !NATIVE_TRANSFER_SYNTAXES.has(p.transferSyntaxUid))
    throw new DomainError(
      'DICOM.COMPRESSED_UNSUPPORTED',
      `pixel data in ${transferSyntaxName(p.transferSyntaxUid)} cannot be decoded here; ` +
        'store or request the images in Explicit VR Little Endian (1.2.840.10008.1.2.1)',
      {
        issueType: 'not-supported',
        details: { transferSyntaxUid: p.transferSyntaxUid, sopInstanceUid: sop },
      },
    );
  const parts = bulk(p.dataset, 'PixelData');
  if (parts.length === 0) {
    if (!p.hasPixelData)
      throw new DomainError('DICOM.NOT_AN_IMAGE', `instance ${sop} has no pixel data`, {
        issueType: 'not-supported',
        details: { sopInstanceUid: sop },
      });
    throw new DomainError('DICOM.INVALID', `instance ${sop}: pixel data could not be read`, {
      issueType: 'structure',
    });
  }
  let buf = parts[0];
  if (parts.length > 1) {
    const total = parts.reduce((s, b) => s + b.byteLength, 0);
    const joined = new Uint8Array(total);
    let o = 0;
    for (const b of parts) {
      joined.set(new Uint8Array(b), o);
      o += b.byteLength;
    }
    buf = joined.buffer;
  }
  const need = fmt.rows * fmt.columns * (fmt.bitsAllocated / 8) * frames;
  if (buf.byteLength < need)
    throw new DomainError(
      'DICOM.TRUNCATED',
      `instance ${sop}: pixel data holds ${buf.byteLength} bytes, ${frames} frame(s) of ` +
        `${fmt.rows}×${fmt.columns}×${fmt.bitsAllocated} bits need ${need}`,
      { issueType: 'structure', details: { sopInstanceUid: sop } },
    );
  return buf;
}

/** All image planes of a parsed instance (needs the pixel data: parse without `headerOnly`). */
export function imageSlicesOf(p: ParsedInstance): ImageSlice[] {
  const id = identityOf(p);
  const ds = p.dataset;
  const sop = id.sopInstanceUid;
  const fmt = pixelFormat(ds, sop);
  const frameOfReferenceUid = str(ds, 'FrameOfReferenceUID');
  const bigEndian = p.transferSyntaxUid === TS.ExplicitBig;
  const frameBytes = fmt.rows * fmt.columns * (fmt.bitsAllocated / 8);
  if (!isEnhancedMr(id.sopClassUid)) {
    const buf = pixelBuffer(p, sop, fmt, 1);
    const ipp = vec3(nums(ds, 'ImagePositionPatient'));
    const iop = orientation6(nums(ds, 'ImageOrientationPatient'));
    const ps = nums(ds, 'PixelSpacing');
    if (ipp === undefined) throw missing('ImagePositionPatient', sop);
    if (iop === undefined) throw missing('ImageOrientationPatient', sop);
    if (ps === undefined || ps.length < 2) throw missing('PixelSpacing', sop);
    const thickness = num(ds, 'SliceThickness');
    return [
      {
        sopInstanceUid: sop,
        sopClassUid: id.sopClassUid,
        ...(id.instanceNumber === undefined ? {} : { instanceNumber: id.instanceNumber }),
        ...(frameOfReferenceUid === undefined ? {} : { frameOfReferenceUid }),
        imagePositionPatient: ipp,
        imageOrientationPatient: iop,
        pixelSpacing: [ps[0], ps[1]],
        rows: fmt.rows,
        columns: fmt.columns,
        ...(thickness === undefined ? {} : { sliceThickness: thickness }),
        rescaleSlope: num(ds, 'RescaleSlope') ?? 1,
        rescaleIntercept: num(ds, 'RescaleIntercept') ?? 0,
        pixels: decodeFrame(buf, 0, fmt, bigEndian),
      },
    ];
  }
  const frames = id.numberOfFrames;
  const buf = pixelBuffer(p, sop, fmt, frames);
  const out: ImageSlice[] = [];
  for (let f = 0; f < frames; f++) {
    const position = functionalGroup(ds, f, 'PlanePositionSequence');
    const orient = functionalGroup(ds, f, 'PlaneOrientationSequence');
    const measures = functionalGroup(ds, f, 'PixelMeasuresSequence');
    const transform = functionalGroup(ds, f, 'PixelValueTransformationSequence');
    const ipp = vec3(position === undefined ? undefined : nums(position, 'ImagePositionPatient'));
    const iop = orientation6(orient === undefined ? undefined : nums(orient, 'ImageOrientationPatient'));
    const ps = measures === undefined ? undefined : nums(measures, 'PixelSpacing');
    if (ipp === undefined) throw missing('PlanePositionSequence/ImagePositionPatient', sop, f + 1);
    if (iop === undefined) throw missing('PlaneOrientationSequence/ImageOrientationPatient', sop, f + 1);
    if (ps === undefined || ps.length < 2) throw missing('PixelMeasuresSequence/PixelSpacing', sop, f + 1);
    const thickness = measures === undefined ? undefined : num(measures, 'SliceThickness');
    out.push({
      sopInstanceUid: sop,
      sopClassUid: id.sopClassUid,
      frameNumber: f + 1,
      ...(id.instanceNumber === undefined ? {} : { instanceNumber: id.instanceNumber }),
      ...(frameOfReferenceUid === undefined ? {} : { frameOfReferenceUid }),
      imagePositionPatient: ipp,
      imageOrientationPatient: iop,
      pixelSpacing: [ps[0], ps[1]],
      rows: fmt.rows,
      columns: fmt.columns,
      ...(thickness === undefined ? {} : { sliceThickness: thickness }),
      rescaleSlope: (transform === undefined ? undefined : num(transform, 'RescaleSlope')) ?? 1,
      rescaleIntercept: (transform === undefined ? undefined : num(transform, 'RescaleIntercept')) ?? 0,
      pixels: decodeFrame(buf, f * frameBytes, fmt, bigEndian),
    });
  }
  return out;
}
