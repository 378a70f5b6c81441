/**
 * DICOM Part-10 parsing at the adapter boundary: a structural walk of the bytes (detects truncation and
 * malformed elements that dcmjs would read past silently, finds where the data set really ends so trailing
 * zero padding is ignored), then dcmjs turns the bytes into a "naturalized" (keyword-named) data set.
 *
 * Transfer syntaxes: implicit and explicit VR little endian, deflated explicit VR little endian and explicit
 * VR big endian (retired, still read) carry native pixel data and are decoded here. Any other (JPEG, JPEG-LS,
 * JPEG 2000, RLE, …) parses, but its pixel data cannot be decoded: reading pixels throws
 * DICOM.COMPRESSED_UNSUPPORTED (the DICOMweb source asks the PACS for explicit VR little endian instead).
 *
 * Codes: DICOM.NOT_PART10, DICOM.TRUNCATED, DICOM.INVALID (all issueType 'structure').
 */
import { inflateRawSync } from 'node:zlib';
import { data, log, type NaturalizedDataset } from 'dcmjs';
import { DomainError } from '../../domain/errors.ts';

log.setLevel('error');
log.getLogger('validation.dcmjs').setLevel('silent');

export const TS = {
  ImplicitLittle: '1.2.840.10008.1.2',
  ExplicitLittle: '1.2.840.10008.1.2.1',
  DeflatedExplicitLittle: '1.2.840.10008.1.2.1.99',
  ExplicitBig: '1.2.840.10008.1.2.2',
} as const;

/** Transfer syntaxes whose pixel data this service decodes. */
export const NATIVE_TRANSFER_SYNTAXES: ReadonlySet<string> = new Set(Object.values(TS));

const TS_NAMES: Readonly<Record<string, string>> = {
  '1.2.840.10008.1.2.4.50': 'JPEG Baseline',
  '1.2.840.10008.1.2.4.51': 'JPEG Extended',
  '1.2.840.10008.1.2.4.57': 'JPEG Lossless',
  '1.2.840.10008.1.2.4.70': 'JPEG Lossless SV1',
  '1.2.840.10008.1.2.4.80': 'JPEG-LS Lossless',
  '1.2.840.10008.1.2.4.81': 'JPEG-LS Near-lossless',
  '1.2.840.10008.1.2.4.90': 'JPEG 2000 Lossless',
  '1.2.840.10008.1.2.4.91': 'JPEG 2000',
  '1.2.840.10008.1.2.4.201': 'HTJ2K Lossless',
  '1.2.840.10008.1.2.4.203': 'HTJ2K',
  '1.2.840.10008.1.2.5': 'RLE Lossless',
};

export function transferSyntaxName(uid: string): string {
  switch (uid) {
    case TS.ImplicitLittle:
      return 'Implicit VR Little Endian';
    case TS.ExplicitLittle:
      return 'Explicit VR Little Endian';
    case TS.DeflatedExplicitLittle:
      return 'Deflated Explicit VR Little Endian';
    case TS.ExplicitBig:
      return 'Explicit VR Big Endian';
    default:
      return TS_NAMES[uid] ?? `transfer syntax ${uid}`;
  }
}

export interface ParsedInstance {
  readonly transferSyntaxUid: string;
  /** File meta information (group 0002), naturalized. */
  readonly meta: NaturalizedDataset;
  /** The data set, naturalized. Without pixel data when parsed with `headerOnly`. */
  readonly dataset: NaturalizedDataset;
  /** True when PixelData is encapsulated (compressed). */
  readonly encapsulated: boolean;
  readonly hasPixelData: boolean;
  /** Bytes after the last element that were ignored (zero padding some writers append). */
  readonly trailingPaddingBytes: number;
}

export interface ParseOptions {
  /** Stop dcmjs before PixelData (the structure is still checked to the end). */
  readonly headerOnly?: boolean;
  /**
   * Keep the top-level private elements (odd groups) in the parsed data set. Default false: they are left
   * out before dcmjs sees the bytes (halves parsing time on Philips/Siemens headers); the bytes themselves
   * are never changed, so stored instances keep them.
   */
  readonly keepPrivate?: boolean;
}

function truncated(message: string, offset: number): DomainError {
  return new DomainError('DICOM.TRUNCATED', message, { issueType: 'structure', details: { offset } });
}

function invalid(message: string, details: Record<string, unknown> = {}): DomainError {
  return new DomainError('DICOM.INVALID', message, { issueType: 'structure', details });
}

/** VRs with a 2-byte reserved field and a 4-byte length in explicit VR encodings. */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const UNDEFINED = 0xffffffff;
/** Private elements the series rules read (GE's pulse sequence name and its creator). */
const KEEP_PRIVATE: ReadonlySet<number> = new Set([0x00190010, 0x0019109c]);
const MAX_DEPTH = 32;

interface WalkState {
  encapsulated: boolean;
  hasPixelData: boolean;
}

class Walker {
  readonly dv: DataView;
  readonly bytes: Uint8Array;
  readonly state: WalkState = { encapsulated: false, hasPixelData: false };
  /** Top-level string values collected during the walk, by tag number (group << 16 | element). */
  readonly collected = new Map<number, string>();
  /** [start, end) of the top-level private elements (odd groups) that parsing may leave out. */
  readonly privateRanges: [number, number][] = [];
  readonly wanted: ReadonlySet<number>;

  constructor(bytes: Uint8Array, wanted: ReadonlySet<number> = new Set()) {
    this.bytes = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.wanted = wanted;
  }

  u16(p: number, le: boolean): number {
    return this.dv.getUint16(p, le);
  }

  u32(p: number, le: boolean): number {
    return this.dv.getUint32(p, le);
  }

  allZero(from: number, to: number): boolean {
    for (let p = from; p < to; p++) if (this.bytes[p] !== 0) return false;
    return true;
  }

  /**
   * Walks elements from `pos` to `end`. At top level returns the end of the last real element (trailing
   * zero padding excluded); inside an undefined-length item returns the offset after the item delimiter.
   */
  elements(pos: number, end: number, explicit: boolean, le: boolean, depth: number, inItem: boolean): number {
    if (depth > MAX_DEPTH) throw invalid('sequences nested too deeply');
    while (pos < end) {
      if (!inItem && depth === 0 && this.bytes[pos] === 0 && this.allZero(pos, end)) return pos;
      const start = pos;
      if (pos + 8 > end) throw truncated('data ends inside an element header', pos);
      const group = this.u16(pos, le);
      const elem = this.u16(pos + 2, le);
      if (group === 0xfffe) {
        if (elem === 0xe00d && inItem) return pos + 8;
        throw invalid(`unexpected delimiter (FFFE,${hex4(elem)})`, { offset: pos });
      }
      let vr: string | undefined;
      let len: number;
      let hdr: number;
      if (explicit) {
        const c0 = this.bytes[pos + 4];
        const c1 = this.bytes[pos + 5];
        if (c0 < 0x41 || c0 > 0x5a || c1 < 0x41 || c1 > 0x5a)
          throw invalid(`bad VR at (${hex4(group)},${hex4(elem)})`, { offset: pos });
        vr = String.fromCharCode(c0, c1);
        if (LONG_VRS.has(vr)) {
          if (pos + 12 > end) throw truncated('data ends inside an element header', pos);
          len = this.u32(pos + 8, le);
          hdr = 12;
        } else {
          len = this.u16(pos + 6, le);
          hdr = 8;
        }
      } else {
        len = this.u32(pos + 4, le);
        hdr = 8;
      }
      const valueStart = pos + hdr;
      if (group === 0x7fe0 && elem === 0x0010) this.state.hasPixelData = true;
      if (len === UNDEFINED) {
        if (group === 0x7fe0 && elem === 0x0010) {
          this.state.encapsulated = true;
          pos = this.fragments(valueStart, end, le);
        } else if (vr === undefined || vr === 'SQ') {
          pos = this.sequence(valueStart, end, explicit, le, depth + 1);
        } else if (vr === 'UN') {
          // An undefined-length UN is a sequence encoded in implicit VR little endian (PS3.5 6.2.2).
          pos = this.sequence(valueStart, end, false, true, depth + 1);
        } else throw invalid(`undefined length on ${vr} element ${tagName(group, elem)}`, { offset: pos });
      } else {
        if (valueStart + len > end)
          throw truncated(
            `element ${tagName(group, elem)} declares ${len} bytes, only ${end - valueStart} remain`,
            pos,
          );
        if (depth === 0 && !inItem && this.wanted.has(((group << 16) | elem) >>> 0))
          this.collected.set(
            ((group << 16) | elem) >>> 0,
            latin1(this.bytes.subarray(valueStart, valueStart + len)),
          );
        pos = valueStart + len;
      }
      if (depth === 0 && !inItem && (group & 1) === 1 && !KEEP_PRIVATE.has(((group << 16) | elem) >>> 0)) {
        const last = this.privateRanges.at(-1);
        if (last !== undefined && last[1] === start) last[1] = pos;
        else this.privateRanges.push([start, pos]);
      }
    }
    if (inItem) throw truncated('data ends inside a sequence item', pos);
    return pos;
  }

  sequence(pos: number, end: number, explicit: boolean, le: boolean, depth: number): number {
    for (;;) {
      if (pos + 8 > end) throw truncated('data ends inside a sequence', pos);
      const group = this.u16(pos, le);
      const elem = this.u16(pos + 2, le);
      const len = this.u32(pos + 4, le);
      if (group !== 0xfffe) throw invalid('sequence item tag expected', { offset: pos });
      if (elem === 0xe0dd) return pos + 8;
      if (elem !== 0xe000) throw invalid(`unexpected (FFFE,${hex4(elem)}) in a sequence`, { offset: pos });
      if (len === UNDEFINED) pos = this.elements(pos + 8, end, explicit, le, depth, true);
      else {
        if (pos + 8 + len > end) throw truncated('sequence item runs past the end of the data', pos);
        pos += 8 + len;
      }
    }
  }

  fragments(pos: number, end: number, le: boolean): number {
    for (;;) {
      if (pos + 8 > end) throw truncated('data ends inside encapsulated pixel data', pos);
      const group = this.u16(pos, le);
      const elem = this.u16(pos + 2, le);
      const len = this.u32(pos + 4, le);
      if (group !== 0xfffe) throw invalid('pixel data fragment tag expected', { offset: pos });
      if (elem === 0xe0dd) return pos + 8;
      if (elem !== 0xe000 || len === UNDEFINED) throw invalid('bad pixel data fragment', { offset: pos });
      if (pos + 8 + len > end) throw truncated('pixel data fragment runs past the end of the data', pos);
      pos += 8 + len;
    }
  }
}

function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

function tagName(group: number, elem: number): string {
  return `(${hex4(group)},${hex4(elem)})`;
}

const LATIN1 = new TextDecoder('latin1');

function latin1(b: Uint8Array): string {
  return LATIN1.decode(b)
    .replace(/[\0 ]+$/, '')
    .trim();
}

interface MetaScan {
  readonly transferSyntaxUid: string;
  readonly datasetStart: number;
}

function scanMeta(w: Walker): MetaScan {
  const { bytes } = w;
  let pos = 132;
  let ts: string | undefined;
  while (pos + 8 <= bytes.length && w.u16(pos, true) === 0x0002) {
    const elem = w.u16(pos + 2, true);
    const c0 = bytes[pos + 4];
    const c1 = bytes[pos + 5];
    if (c0 < 0x41 || c0 > 0x5a || c1 < 0x41 || c1 > 0x5a)
      throw invalid('file meta information is not explicit VR', { offset: pos });
    const vr = String.fromCharCode(c0, c1);
    let len: number;
    let hdr: number;
    if (LONG_VRS.has(vr)) {
      if (pos + 12 > bytes.length) throw truncated('data ends inside the file meta information', pos);
      len = w.u32(pos + 8, true);
      hdr = 12;
    } else {
      len = w.u16(pos + 6, true);
      hdr = 8;
    }
    if (len === UNDEFINED || pos + hdr + len > bytes.length)
      throw truncated('data ends inside the file meta information', pos);
    if (elem === 0x0010) ts = latin1(bytes.subarray(pos + hdr, pos + hdr + len));
    pos += hdr + len;
  }
  if (ts === undefined || ts === '')
    throw invalid('file meta information has no TransferSyntaxUID (0002,0010)');
  return { transferSyntaxUid: ts, datasetStart: pos };
}

/** True when the bytes start like a Part-10 file (128-byte preamble then "DICM"). */
export function isPart10(bytes: Uint8Array): boolean {
  return (
    bytes.length >= 132 &&
    bytes[128] === 0x44 &&
    bytes[129] === 0x49 &&
    bytes[130] === 0x43 &&
    bytes[131] === 0x4d
  );
}

/** Top-level attributes the structural scan reads without dcmjs (enough to index a folder quickly). */
export const SCAN_TAGS = {
  SOPClassUID: 0x00080016,
  SOPInstanceUID: 0x00080018,
  Modality: 0x00080060,
  StudyInstanceUID: 0x0020000d,
  SeriesInstanceUID: 0x0020000e,
  SeriesNumber: 0x00200011,
  InstanceNumber: 0x00200013,
  NumberOfFrames: 0x00280008,
} as const;
export type ScanKeyword = keyof typeof SCAN_TAGS;
const SCAN_SET: ReadonlySet<number> = new Set(Object.values(SCAN_TAGS));

export interface Part10Scan {
  readonly transferSyntaxUid: string;
  readonly encapsulated: boolean;
  readonly hasPixelData: boolean;
  /** Length of the real data (trailing zero padding excluded). */
  readonly end: number;
  readonly trailingPaddingBytes: number;
  readonly values: Readonly<Partial<Record<ScanKeyword, string>>>;
  /** Byte ranges of top-level private elements (not for deflated data, whose bytes are compressed). */
  readonly privateRanges: readonly (readonly [number, number])[];
}

/**
 * Checks the structure of Part-10 bytes to the end and reads the identity attributes (SCAN_TAGS).
 * Throws DomainError DICOM.NOT_PART10 / DICOM.TRUNCATED / DICOM.INVALID.
 */
export function scanPart10(bytes: Uint8Array): Part10Scan {
  if (!isPart10(bytes))
    throw new DomainError('DICOM.NOT_PART10', 'not a DICOM Part-10 file (no "DICM" after the preamble)', {
      issueType: 'structure',
    });
  const w = new Walker(bytes);
  const { transferSyntaxUid, datasetStart } = scanMeta(w);
  let end: number;
  let walked: Walker;
  if (transferSyntaxUid === TS.DeflatedExplicitLittle) {
    let inflated: Uint8Array;
    try {
      inflated = inflateRawSync(bytes.subarray(datasetStart));
    } catch (e) {
      throw new DomainError('DICOM.TRUNCATED', 'the deflated data set is truncated or corrupt', {
        issueType: 'structure',
        cause: e,
      });
    }
    walked = new Walker(inflated, SCAN_SET);
    walked.elements(0, inflated.length, true, true, 0, false);
    end = bytes.length;
  } else {
    const explicit = transferSyntaxUid !== TS.ImplicitLittle;
    const le = transferSyntaxUid !== TS.ExplicitBig;
    walked = new Walker(bytes, SCAN_SET);
    end = walked.elements(datasetStart, bytes.length, explicit, le, 0, false);
  }
  const values: Partial<Record<ScanKeyword, string>> = {};
  for (const [k, tag] of Object.entries(SCAN_TAGS) as [ScanKeyword, number][]) {
    const v = walked.collected.get(tag);
    if (v !== undefined && v !== '') values[k] = v;
  }
  return {
    transferSyntaxUid,
    encapsulated: walked.state.encapsulated,
    hasPixelData: walked.state.hasPixelData,
    end,
    trailingPaddingBytes: bytes.length - end,
    values,
    privateRanges: transferSyntaxUid === TS.DeflatedExplicitLittle ? [] : walked.privateRanges,
  };
}

/** Parses one Part-10 instance. Throws DomainError DICOM.NOT_PART10 / DICOM.TRUNCATED / DICOM.INVALID. */
export function parsePart10(bytes: Uint8Array, options: ParseOptions = {}): ParsedInstance {
  const scan = scanPart10(bytes);
  let buffer: ArrayBuffer;
  if (options.keepPrivate === true || scan.privateRanges.length === 0)
    buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + scan.end) as ArrayBuffer;
  else {
    const drop = scan.privateRanges.reduce((n, [a, b]) => n + b - a, 0);
    const out = new Uint8Array(scan.end - drop);
    let o = 0;
    let from = 0;
    for (const [a, b] of scan.privateRanges) {
      out.set(bytes.subarray(from, a), o);
      o += a - from;
      from = b;
    }
    out.set(bytes.subarray(from, scan.end), o);
    buffer = out.buffer;
  }
  let meta: NaturalizedDataset;
  let dataset: NaturalizedDataset;
  try {
    const dict = data.DicomMessage.readFile(
      buffer,
      options.headerOnly === true ? { untilTag: '7FE00010' } : {},
    );
    meta = data.DicomMetaDictionary.naturalizeDataset(dict.meta);
    dataset = data.DicomMetaDictionary.naturalizeDataset(dict.dict);
  } catch (e) {
    throw invalid(`DICOM data set could not be parsed: ${e instanceof Error ? e.message : String(e)}`);
  }
  return {
    transferSyntaxUid: scan.transferSyntaxUid,
    meta,
    dataset,
    encapsulated: scan.encapsulated,
    hasPixelData: scan.hasPixelData,
    trailingPaddingBytes: scan.trailingPaddingBytes,
  };
}
