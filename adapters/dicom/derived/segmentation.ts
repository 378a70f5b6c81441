/**
 * DICOM Segmentation (binary) of the lesion mask on the FLAIR grid, written frame by frame against the
 * source FLAIR instances:
 * - segment 1 "MS lesions": category SCT 49755003 Morphologically Altered Structure, type DCM 110702 White
 *   Matter T2 Hyperintensity, anatomic region SCT 12738006 Brain, algorithm type AUTOMATIC with the Algorithm
 *   Identification Macro (family DCM 123110 Artificial Intelligence, name, version, parameters);
 * - segment 2 "New or enlarging lesions" (same type, modifier 99MSLS NEWENLARGING) when a change mask is given;
 * - one frame per segment and FLAIR slice that holds any voxel of the segment (empty frames are omitted, as
 *   highdicom and dcmqi do; a segment without any voxel keeps one empty frame so it is still present);
 * - per frame: Plane Position, Segment Identification, Frame Content (dimension index: segment, position) and a
 *   Derivation Image Sequence naming the FLAIR instance (and frame) it was computed from; shared: Pixel
 *   Measures and Plane Orientation of the FLAIR grid; the Frame of Reference of the FLAIR;
 * - Common Instance Reference to the whole FLAIR series; IHE AI Results Contributing Equipment; Series
 *   Description starting "AI-generated".
 *
 * Codes: DICOM.DERIVED_INPUT ('invalid') when the masks are not on the FLAIR grid, the source instances do
 * not match its slices, or the FLAIR has no Frame of Reference UID.
 */
import { data, type NaturalizedDataset } from 'dcmjs';
import { applyAffine, column, normalize, spacingOf, type Vec3 } from '../../../domain/model/geometry.ts';
import { sameGrid, type Mask, type Volume } from '../../../domain/model/volume.ts';
import { CHANGE_RGB, LESION_RGB, type Rgb } from '../../report/palette.ts';
import { CODES, privateSchemeIdentification } from './codes.ts';
import { DERIVED_SERIES_ROLE, isValidUid } from './uids.ts';
import {
  algorithmIdentification,
  checkSourceSlices,
  codeItem,
  commonAttributes,
  contextUids,
  derivedInputError,
  ds,
  fit,
  referencedSeriesItem,
  SERIES_NUMBER,
  SOP,
  sourceImageItem,
  writePart10,
  type DerivedContext,
  type DerivedObject,
} from './common.ts';

export interface SegmentationInput extends DerivedContext {
  /** The FLAIR volume (its grid: dims and affine; voxel values are not used). */
  readonly flair: Volume;
  /** Lesion mask on the FLAIR grid (non-zero = lesion). */
  readonly mask: Mask;
  /** New/enlarging lesions since the prior exam, on the FLAIR grid (adds segment 2). */
  readonly changeMask?: Mask;
}

export interface SegmentationObject extends DerivedObject {
  readonly kind: 'SEG';
  readonly frames: number;
  readonly segments: number;
}

export const SEGMENT = { lesions: 1, change: 2 } as const;

/** Geometry of the frames of an axis-aligned stack on a volume grid (DICOM conventions). */
export interface StackGeometry {
  readonly rows: number;
  readonly columns: number;
  readonly imageOrientationPatient: readonly [number, number, number, number, number, number];
  /** [between rows, between columns] (mm). */
  readonly pixelSpacing: readonly [number, number];
  readonly sliceSpacing: number;
  position(k: number): Vec3;
}

export function stackGeometry(grid: Volume): StackGeometry {
  const row = normalize(column(grid.affine, 0));
  const col = normalize(column(grid.affine, 1));
  const sp = spacingOf(grid.affine);
  return {
    rows: grid.dims[1],
    columns: grid.dims[0],
    imageOrientationPatient: [row[0], row[1], row[2], col[0], col[1], col[2]],
    pixelSpacing: [sp[1], sp[0]],
    sliceSpacing: sp[2],
    position: (k) => applyAffine(grid.affine, [0, 0, k]),
  };
}

function labValue(rgb: Rgb): number[] {
  return data.Colors.rgb82DICOMLAB([...rgb]).map((v) => Math.max(0, Math.min(65535, Math.round(v))));
}

interface SegmentSpec {
  readonly number: number;
  readonly mask: Mask;
  readonly item: NaturalizedDataset;
}

function sliceHasVoxels(mask: Mask, k: number): boolean {
  const n = mask.dims[0] * mask.dims[1];
  const plane = mask.data.subarray(k * n, (k + 1) * n);
  for (let p = 0; p < plane.length; p++) if (plane[p] !== 0) return true;
  return false;
}

function segmentItem(
  input: SegmentationInput,
  number: number,
  label: string,
  description: string,
  rgb: Rgb,
  trackingUid: string,
  modifier: boolean,
): NaturalizedDataset {
  return {
    SegmentNumber: number,
    SegmentLabel: label,
    SegmentDescription: fit(description, 64),
    SegmentAlgorithmType: 'AUTOMATIC',
    SegmentAlgorithmName: fit(`${input.model.name} ${input.model.version}`, 64),
    SegmentationAlgorithmIdentificationSequence: [algorithmIdentification(input.model)],
    SegmentedPropertyCategoryCodeSequence: [codeItem(CODES.morphologicallyAltered)],
    SegmentedPropertyTypeCodeSequence: [
      {
        ...codeItem(CODES.wmT2Hyperintensity),
        ...(modifier ? { SegmentedPropertyTypeModifierCodeSequence: [codeItem(CODES.newOrEnlarging)] } : {}),
      },
    ],
    AnatomicRegionSequence: [codeItem(CODES.brain)],
    RecommendedDisplayCIELabValue: labValue(rgb),
    TrackingID: label,
    TrackingUID: trackingUid,
  };
}

/** Builds the SEG instance (Part-10 bytes and its identity). Deterministic for the same input. */
export function buildSegmentation(input: SegmentationInput): SegmentationObject {
  const grid = input.flair;
  if (!sameGrid(grid, input.mask)) throw derivedInputError('the lesion mask is not on the FLAIR grid');
  if (input.changeMask !== undefined && !sameGrid(grid, input.changeMask))
    throw derivedInputError('the change mask is not on the FLAIR grid');
  checkSourceSlices(input, grid.dims[2]);
  const uid = contextUids(input);
  const geo = stackGeometry(grid);
  const nz = grid.dims[2];

  const segments: SegmentSpec[] = [
    {
      number: SEGMENT.lesions,
      mask: input.mask,
      item: segmentItem(
        input,
        SEGMENT.lesions,
        'MS lesions',
        'T2/FLAIR hyperintense white-matter lesions (AI-generated)',
        LESION_RGB,
        uid('seg.tracking.lesions'),
        false,
      ),
    },
  ];
  if (input.changeMask !== undefined)
    segments.push({
      number: SEGMENT.change,
      mask: input.changeMask,
      item: segmentItem(
        input,
        SEGMENT.change,
        'New or enlarging lesions',
        'Lesions new or enlarged since the prior exam (AI-generated)',
        CHANGE_RGB,
        uid('seg.tracking.change'),
        true,
      ),
    });

  // frames: per segment, the slices with voxels (k ascending); an empty segment keeps its middle slice
  const frames: { segment: SegmentSpec; k: number }[] = [];
  for (const s of segments) {
    let ks: number[] = [];
    for (let k = 0; k < nz; k++) if (sliceHasVoxels(s.mask, k)) ks.push(k);
    if (ks.length === 0) ks = [Math.floor(nz / 2)];
    for (const k of ks) frames.push({ segment: s, k });
  }
  const pixelData = packFrames(frames, grid);

  const frameOfReferenceUid =
    input.frameOfReferenceUid ??
    input.flairSlices.find((s) => s.frameOfReferenceUid !== undefined)?.frameOfReferenceUid;
  if (frameOfReferenceUid === undefined || !isValidUid(frameOfReferenceUid))
    throw derivedInputError('the FLAIR has no (valid) Frame of Reference UID: a SEG must share it');
  const dimensionOrganizationUid = uid('seg.dimension-organization');
  const perFrame: NaturalizedDataset[] = frames.map((f) => {
    const src = input.flairSlices[f.k];
    const ipp = geo.position(f.k);
    return {
      DerivationImageSequence: [
        {
          DerivationCodeSequence: [codeItem(CODES.segmentation)],
          SourceImageSequence: [{ ...sourceImageItem(src), SpatialLocationsPreserved: 'YES' }],
        },
      ],
      FrameContentSequence: [{ DimensionIndexValues: [f.segment.number, f.k + 1] }],
      PlanePositionSequence: [{ ImagePositionPatient: ipp.map(ds) }],
      SegmentIdentificationSequence: [{ ReferencedSegmentNumber: f.segment.number }],
    };
  });

  const seriesInstanceUid = uid(DERIVED_SERIES_ROLE.seg);
  const sopInstanceUid = uid('seg.instance');
  const sliceThickness = input.flairSlices[0].sliceThickness ?? geo.sliceSpacing;
  const dataset: NaturalizedDataset = {
    ...commonAttributes(input, {
      modality: 'SEG',
      sopClassUid: SOP.Segmentation,
      seriesInstanceUid,
      sopInstanceUid,
      seriesNumber: SERIES_NUMBER.seg,
      instanceNumber: 1,
      seriesDescription: 'AI-generated MS lesion segmentation (research use)',
    }),
    ImageType: ['DERIVED', 'PRIMARY'],
    FrameOfReferenceUID: frameOfReferenceUid,
    PositionReferenceIndicator: '',
    ContentLabel: 'MS_LESIONS',
    ContentDescription: 'AI-generated MS lesion segmentation - not for diagnosis',
    ContentCreatorName: '',
    SamplesPerPixel: 1,
    PhotometricInterpretation: 'MONOCHROME2',
    Rows: geo.rows,
    Columns: geo.columns,
    BitsAllocated: 1,
    BitsStored: 1,
    HighBit: 0,
    PixelRepresentation: 0,
    LossyImageCompression: '00',
    SegmentationType: 'BINARY',
    SegmentsOverlap: segments.length > 1 ? 'YES' : 'NO',
    SegmentSequence: segments.map((s) => s.item),
    NumberOfFrames: frames.length,
    DimensionOrganizationType: '3D',
    DimensionOrganizationSequence: [{ DimensionOrganizationUID: dimensionOrganizationUid }],
    DimensionIndexSequence: [
      {
        DimensionOrganizationUID: dimensionOrganizationUid,
        DimensionIndexPointer: 0x0062000b,
        FunctionalGroupPointer: 0x0062000a,
        DimensionDescriptionLabel: 'Segment Number',
      },
      {
        DimensionOrganizationUID: dimensionOrganizationUid,
        DimensionIndexPointer: 0x00200032,
        FunctionalGroupPointer: 0x00209113,
        DimensionDescriptionLabel: 'Image Position Patient',
      },
    ],
    SharedFunctionalGroupsSequence: [
      {
        PixelMeasuresSequence: [
          {
            PixelSpacing: geo.pixelSpacing.map(ds),
            SliceThickness: ds(sliceThickness),
            SpacingBetweenSlices: ds(geo.sliceSpacing),
          },
        ],
        PlaneOrientationSequence: [{ ImageOrientationPatient: geo.imageOrientationPatient.map(ds) }],
      },
    ],
    PerFrameFunctionalGroupsSequence: perFrame,
    ReferencedSeriesSequence: [referencedSeriesItem(input)],
    CodingSchemeIdentificationSequence: [privateSchemeIdentification()],
    PixelData: [pixelData.buffer],
    _vrMap: { PixelData: 'OB' },
  };
  return {
    kind: 'SEG',
    sopClassUid: SOP.Segmentation,
    sopInstanceUid,
    seriesInstanceUid,
    bytes: writePart10(dataset),
    frames: frames.length,
    segments: segments.length,
  };
}

/** Packs the frames into 1-bit pixel data (frames contiguous, least significant bit first, even length). */
function packFrames(frames: readonly { segment: SegmentSpec; k: number }[], grid: Volume): Uint8Array {
  const n = grid.dims[0] * grid.dims[1];
  const totalBytes = Math.ceil((n * frames.length) / 8);
  const bytes = new Uint8Array(totalBytes + (totalBytes % 2));
  let bit = 0;
  for (const f of frames) {
    const plane = f.segment.mask.data.subarray(f.k * n, (f.k + 1) * n);
    for (let p = 0; p < n; p++, bit++) if (plane[p] !== 0) bytes[bit >> 3] |= 1 << (bit & 7);
  }
  return bytes;
}
