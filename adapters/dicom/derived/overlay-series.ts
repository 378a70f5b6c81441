/**
 * The overlay preview series: RGB Secondary Capture images of FLAIR slices with the lesions outlined in
 * colour (adapters/report/overlay.ts), readable by any PACS viewer. Each image is marked as not for
 * diagnosis: the text "AI-GENERATED / NOT FOR DIAGNOSIS" is burned in (Burned In Annotation YES), the Image
 * Comments and Series Description say so, and Image Type is DERIVED\SECONDARY. Shown in the radiological
 * convention, with Patient Orientation, square Pixel Spacing and a Source Image Sequence pointing at the FLAIR
 * instance each image shows. One instance per slice with lesion voxels by default (or every slice); UIDs
 * derive from the analysis id and the slice.
 *
 * Codes: DICOM.DERIVED_INPUT ('invalid').
 */
import type { NaturalizedDataset } from 'dcmjs';
import { sameGrid, type Mask, type Volume } from '../../../domain/model/volume.ts';
import { autoWindow, nonEmptySlices } from '../../../domain/reporting/slices.ts';
import { renderOverlaySlice } from '../../report/overlay.ts';
import {
  checkSourceSlices,
  commonAttributes,
  contextUids,
  createdAt,
  derivedInputError,
  dicomDate,
  dicomTime,
  ds,
  SERIES_NUMBER,
  SOP,
  sourceImageItem,
  writePart10,
  type DerivedContext,
  type DerivedObject,
} from './common.ts';
import { DERIVED_SERIES_ROLE } from './uids.ts';

export interface OverlaySeriesInput extends DerivedContext {
  readonly flair: Volume;
  readonly mask: Mask;
  readonly changeMask?: Mask;
  /** 'lesional' (default): the slices holding lesion (or change) voxels; 'all': every slice. */
  readonly slices?: 'lesional' | 'all';
  /** Output pixels per voxel (default: ≥ 256 px on the long side, at most 4). */
  readonly scale?: number;
}

export interface OverlayInstance extends DerivedObject {
  readonly kind: 'SC';
  /** FLAIR slice shown. */
  readonly k: number;
}

export const NOT_FOR_DIAGNOSIS = ['AI-GENERATED', 'NOT FOR DIAGNOSIS'] as const;

/** Builds the Secondary Capture instances (ascending slice order; instance number = position in the series). */
export function buildOverlaySeries(input: OverlaySeriesInput): OverlayInstance[] {
  if (!sameGrid(input.flair, input.mask)) throw derivedInputError('the lesion mask is not on the FLAIR grid');
  if (input.changeMask !== undefined && !sameGrid(input.flair, input.changeMask))
    throw derivedInputError('the change mask is not on the FLAIR grid');
  const nz = input.flair.dims[2];
  checkSourceSlices(input, nz);
  const uid = contextUids(input);
  const seriesInstanceUid = uid(DERIVED_SERIES_ROLE.overlay);
  const when = createdAt(input);
  let ks: number[];
  if (input.slices === 'all') ks = Array.from({ length: nz }, (_, k) => k);
  else {
    const set = new Set(nonEmptySlices(input.mask));
    if (input.changeMask !== undefined) for (const k of nonEmptySlices(input.changeMask)) set.add(k);
    ks = [...set].sort((a, b) => a - b);
    if (ks.length === 0) ks = [Math.floor(nz / 2)];
  }
  const window = autoWindow(input.flair);
  const out: OverlayInstance[] = [];
  ks.forEach((k, n) => {
    const lines = [...NOT_FOR_DIAGNOSIS, `SLICE ${k + 1}/${nz}`];
    const r = renderOverlaySlice(input.flair, input.mask, k, {
      window,
      ...(input.scale === undefined ? {} : { scale: input.scale }),
      ...(input.changeMask === undefined ? {} : { changeMask: input.changeMask }),
      banner: lines,
    });
    const src = input.flairSlices[k];
    const sopInstanceUid = uid(`sc.instance.${k + 1}`);
    const pixels = r.image.data;
    const padded = new Uint8Array(pixels.length + (pixels.length % 2));
    padded.set(pixels);
    const dataset: NaturalizedDataset = {
      ...commonAttributes(input, {
        modality: 'OT',
        sopClassUid: SOP.SecondaryCapture,
        seriesInstanceUid,
        sopInstanceUid,
        seriesNumber: SERIES_NUMBER.overlay,
        instanceNumber: n + 1,
        seriesDescription: 'AI-generated lesion overlay - NOT FOR DIAGNOSIS',
      }),
      BodyPartExamined: 'BRAIN',
      ImageType: ['DERIVED', 'SECONDARY'],
      ConversionType: 'WSD',
      DateOfSecondaryCapture: dicomDate(when),
      TimeOfSecondaryCapture: dicomTime(when),
      PatientOrientation: [...r.mapping.patientOrientation],
      DerivationDescription:
        'FLAIR slice with AI lesion segmentation outlines (burned in); not for diagnosis',
      SourceImageSequence: [sourceImageItem(src)],
      ImageComments: 'AI-generated lesion outlines - research use only, NOT FOR DIAGNOSIS',
      BurnedInAnnotation: 'YES',
      RecognizableVisualFeatures: 'NO',
      LossyImageCompression: '00',
      SamplesPerPixel: 3,
      PhotometricInterpretation: 'RGB',
      PlanarConfiguration: 0,
      Rows: r.image.height,
      Columns: r.image.width,
      BitsAllocated: 8,
      BitsStored: 8,
      HighBit: 7,
      PixelRepresentation: 0,
      PixelSpacing: [ds(r.mmPerPixel), ds(r.mmPerPixel)],
      PixelData: [padded.buffer],
      _vrMap: { PixelData: 'OB' },
    };
    out.push({
      kind: 'SC',
      sopClassUid: SOP.SecondaryCapture,
      sopInstanceUid,
      seriesInstanceUid,
      k,
      bytes: writePart10(dataset),
    });
  });
  return out;
}
