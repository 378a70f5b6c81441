/**
 * Reads a binary DICOM Segmentation back onto a volume grid (normally the source FLAIR's): every frame is
 * placed by its Plane Position (Patient) on the grid's slices, and its orientation, pixel spacing and size must
 * match the grid. Used by the round-trip tests and by anything that re-imports our own SEG objects.
 *
 * Codes: SEG.NOT_SEGMENTATION ('not-supported'), SEG.UNSUPPORTED ('not-supported', e.g. FRACTIONAL),
 * SEG.INVALID ('structure'), SEG.GRID_MISMATCH ('invalid'); parse errors of adapters/dicom/part10.ts.
 */
import { DomainError } from '../../../domain/errors.ts';
import { dot, invert, applyAffine, column, normalize, type Vec3 } from '../../../domain/model/geometry.ts';
import { emptyMask, type Mask, type Volume } from '../../../domain/model/volume.ts';
import { bulk, item, num, nums, seq, str, type Dataset } from '../dataset.ts';
import { parsePart10 } from '../part10.ts';
import { SOP } from './common.ts';
import { stackGeometry } from './segmentation.ts';

export interface DecodedSegment {
  readonly number: number;
  readonly label: string;
  /** 0/1 mask on the target grid. */
  readonly mask: Mask;
  /** Frames of this segment in the object. */
  readonly frames: number;
}

export interface DecodedSegmentation {
  readonly sopInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly studyInstanceUid: string;
  readonly frameOfReferenceUid?: string;
  readonly segments: readonly DecodedSegment[];
  /** Source SOP Instance UIDs referenced per decoded slice k (from the Derivation Image Sequence). */
  readonly sourceByK: ReadonlyMap<number, string>;
}

function invalid(message: string, details: Record<string, unknown> = {}): DomainError {
  return new DomainError('SEG.INVALID', message, { issueType: 'structure', details });
}

function mismatch(message: string, details: Record<string, unknown> = {}): DomainError {
  return new DomainError('SEG.GRID_MISMATCH', message, { issueType: 'invalid', details });
}

function frameItem(ds: Dataset, f: number, key: string): Dataset | undefined {
  const own = seq(ds, 'PerFrameFunctionalGroupsSequence').at(f);
  const it = own === undefined ? undefined : item(own, key);
  if (it !== undefined) return it;
  const shared = item(ds, 'SharedFunctionalGroupsSequence');
  return shared === undefined ? undefined : item(shared, key);
}

function concat(buffers: ArrayBuffer[]): Uint8Array {
  if (buffers.length === 1) return new Uint8Array(buffers[0]);
  const total = buffers.reduce((a, b) => a + b.byteLength, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const b of buffers) {
    out.set(new Uint8Array(b), o);
    o += b.byteLength;
  }
  return out;
}

/** Decodes SEG Part-10 bytes onto `grid` (dims and affine of the source volume). */
export function readSegmentation(bytes: Uint8Array, grid: Volume, toleranceMm = 0.01): DecodedSegmentation {
  const parsed = parsePart10(bytes);
  const d = parsed.dataset;
  if (str(d, 'SOPClassUID') !== SOP.Segmentation)
    throw new DomainError('SEG.NOT_SEGMENTATION', 'the object is not a DICOM Segmentation', {
      issueType: 'not-supported',
    });
  const type = str(d, 'SegmentationType');
  if (type !== 'BINARY')
    throw new DomainError('SEG.UNSUPPORTED', `segmentation type ${type ?? '(none)'} is not supported`, {
      issueType: 'not-supported',
    });
  if (parsed.encapsulated)
    throw new DomainError('SEG.UNSUPPORTED', 'compressed segmentation pixel data is not supported', {
      issueType: 'not-supported',
    });
  const rows = num(d, 'Rows');
  const columns = num(d, 'Columns');
  const frames = num(d, 'NumberOfFrames') ?? 1;
  if (rows === undefined || columns === undefined) throw invalid('Rows/Columns missing');
  if (num(d, 'BitsAllocated') !== 1) throw invalid('a BINARY segmentation must have 1 bit allocated');
  const geo = stackGeometry(grid);
  if (rows !== geo.rows || columns !== geo.columns)
    throw mismatch(`frames are ${rows}×${columns}, the grid slices ${geo.rows}×${geo.columns}`);

  const pixels = concat(bulk(d, 'PixelData'));
  const perFrameBits = rows * columns;
  if (pixels.length * 8 < perFrameBits * frames)
    throw invalid('pixel data shorter than the frames declare', { bytes: pixels.length, frames });

  const segments = new Map<number, { label: string; mask: Mask; frames: number }>();
  for (const s of seq(d, 'SegmentSequence')) {
    const n = num(s, 'SegmentNumber');
    if (n === undefined) throw invalid('segment without SegmentNumber');
    segments.set(n, { label: str(s, 'SegmentLabel') ?? `Segment ${n}`, mask: emptyMask(grid), frames: 0 });
  }
  if (segments.size === 0) throw invalid('no SegmentSequence');

  const toVoxel = invert(grid.affine);
  const rowDir: Vec3 = normalize(column(grid.affine, 0));
  const colDir: Vec3 = normalize(column(grid.affine, 1));
  const sourceByK = new Map<number, string>();
  const nPlane = grid.dims[0] * grid.dims[1];
  for (let f = 0; f < frames; f++) {
    const segNo = num(frameItem(d, f, 'SegmentIdentificationSequence') ?? {}, 'ReferencedSegmentNumber');
    const seg = segNo === undefined ? undefined : segments.get(segNo);
    if (seg === undefined) throw invalid(`frame ${f + 1} names no known segment`, { frame: f + 1 });
    const ipp = nums(frameItem(d, f, 'PlanePositionSequence') ?? {}, 'ImagePositionPatient');
    const iop = nums(frameItem(d, f, 'PlaneOrientationSequence') ?? {}, 'ImageOrientationPatient');
    const spacing = nums(frameItem(d, f, 'PixelMeasuresSequence') ?? {}, 'PixelSpacing');
    if (ipp?.length !== 3 || iop?.length !== 6 || spacing?.length !== 2)
      throw invalid(`frame ${f + 1} lacks plane position, orientation or pixel spacing`, { frame: f + 1 });
    const r: Vec3 = [iop[0], iop[1], iop[2]];
    const c: Vec3 = [iop[3], iop[4], iop[5]];
    if (dot(r, rowDir) < 0.9999 || dot(c, colDir) < 0.9999)
      throw mismatch(`frame ${f + 1} is not oriented like the grid`, { frame: f + 1 });
    if (
      Math.abs(spacing[0] - geo.pixelSpacing[0]) > 1e-3 ||
      Math.abs(spacing[1] - geo.pixelSpacing[1]) > 1e-3
    )
      throw mismatch(`frame ${f + 1} pixel spacing differs from the grid`, { frame: f + 1 });
    const v = applyAffine(toVoxel, [ipp[0], ipp[1], ipp[2]]);
    const k = Math.round(v[2]);
    const voxelTol = toleranceMm / Math.min(geo.pixelSpacing[0], geo.pixelSpacing[1], geo.sliceSpacing);
    if (
      Math.abs(v[0]) > voxelTol ||
      Math.abs(v[1]) > voxelTol ||
      Math.abs(v[2] - k) > voxelTol ||
      k < 0 ||
      k >= grid.dims[2]
    )
      throw mismatch(`frame ${f + 1} does not lie on a slice of the grid`, { frame: f + 1 });
    const derivation = frameItem(d, f, 'DerivationImageSequence');
    const source = derivation === undefined ? undefined : item(derivation, 'SourceImageSequence');
    const sourceUid = source === undefined ? undefined : str(source, 'ReferencedSOPInstanceUID');
    if (sourceUid !== undefined) sourceByK.set(k, sourceUid);
    const out = seg.mask.data;
    const base = k * nPlane;
    let bit = f * perFrameBits;
    for (let p = 0; p < perFrameBits; p++, bit++) if ((pixels[bit >> 3] >> (bit & 7)) & 1) out[base + p] = 1;
    seg.frames++;
  }
  const frameOfReferenceUid = str(d, 'FrameOfReferenceUID');
  return {
    sopInstanceUid: str(d, 'SOPInstanceUID') ?? '',
    seriesInstanceUid: str(d, 'SeriesInstanceUID') ?? '',
    studyInstanceUid: str(d, 'StudyInstanceUID') ?? '',
    ...(frameOfReferenceUid === undefined ? {} : { frameOfReferenceUid }),
    segments: [...segments.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([number, s]) => ({ number, label: s.label, mask: s.mask, frames: s.frames })),
    sourceByK,
  };
}
