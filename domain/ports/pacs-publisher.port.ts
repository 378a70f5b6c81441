/**
 * Storing an analysis' results back into the PACS as DICOM objects, filed under the analysed study: the lesion
 * segmentation (DICOM SEG, with a second "new or enlarging" segment when there is a prior), the measurement
 * report (TID 1500 structured report), the PDF report (Encapsulated PDF) and an overlay preview series (FLAIR
 * slices with the lesions outlined, marked not for diagnosis). Object UIDs derive from the analysis id, so
 * publishing the same analysis twice stores the same instances again instead of new series.
 *
 * Errors: the adapter's PACS errors (PACS.UNREACHABLE / PACS.TIMEOUT / PACS.SERVER_ERROR are 'transient' or
 * 'timeout' and may be retried; PACS.STORE_FAILED 'processing' when the PACS refused instances), and
 * DICOM.DERIVED_INPUT ('invalid') for inputs that do not fit together (a mask off the FLAIR grid, slice
 * references that do not match its slices).
 */
import type { AnalysisResult } from '../model/analysis.ts';
import type { Mask, Volume } from '../model/volume.ts';
import type { SeriesDescriptor, StudyDescriptor } from './image-source.port.ts';

export type DerivedObjectKind = 'SEG' | 'SR' | 'PDF' | 'SC';

/** The source plane of FLAIR slice k (what the derived objects reference). */
export interface SourcePlaneRef {
  readonly sopInstanceUid: string;
  readonly sopClassUid?: string;
  /** 1-based frame of a multi-frame instance. */
  readonly frameNumber?: number;
}

export interface PublishRequest {
  readonly analysisId: string;
  readonly study: StudyDescriptor;
  /** The FLAIR as loaded (domain/use-cases/load-study.ts LoadedVolume fits): slices[k] is the plane of k. */
  readonly flair: {
    readonly volume: Volume;
    readonly series: SeriesDescriptor;
    readonly slices: readonly SourcePlaneRef[];
    readonly frameOfReferenceUid?: string;
  };
  /** Lesion mask on the FLAIR grid (non-zero = lesion). */
  readonly mask: Mask;
  /** New/enlarging lesions since the prior, on the FLAIR grid. */
  readonly changeMask?: Mask;
  readonly result: AnalysisResult;
  /** The rendered PDF report (stored as Encapsulated PDF when given). */
  readonly reportPdf?: Uint8Array;
  /** When the results were produced (ISO 8601); content dates of every object. */
  readonly createdAt: string;
  /** Which objects to store (default: all that the inputs allow). */
  readonly kinds?: readonly DerivedObjectKind[];
}

export interface PublishedSeries {
  readonly kind: DerivedObjectKind;
  readonly seriesInstanceUid: string;
  readonly sopInstanceUids: readonly string[];
}

export interface PublishReceipt {
  readonly studyInstanceUid: string;
  readonly series: readonly PublishedSeries[];
  readonly instances: number;
  readonly bytes: number;
}

export interface PacsPublisher {
  publish(request: PublishRequest): Promise<PublishReceipt>;
}
