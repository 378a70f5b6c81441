/**
 * Rendering the clinical PDF report of an analysis (patient/study header, model, lesion load and locations,
 * delineation examples on the FLAIR, and with a prior the longitudinal comparison and trend plot). The bytes
 * are stored as the report.pdf artifact, served at GET /analyses/{id}/report.pdf, embedded in the FHIR
 * DiagnosticReport.presentedForm and wrapped as a DICOM Encapsulated PDF (PacsPublisher).
 *
 * Errors: REPORT.GRID_MISMATCH ('invalid') when a mask is not on the FLAIR grid.
 */
import type { AnalysisResult } from '../model/analysis.ts';
import type { Mask, Volume } from '../model/volume.ts';
import type { StudyDescriptor } from './image-source.port.ts';

/** One exam's lesion load, for the trend plot. */
export interface ExamLoad {
  /** ISO date (YYYY-MM-DD) or DICOM DA (YYYYMMDD). */
  readonly date: string;
  readonly totalVolumeMl: number;
  readonly count?: number;
}

export interface ReportRequest {
  readonly analysisId: string;
  readonly study: Omit<StudyDescriptor, 'series'>;
  readonly result: AnalysisResult;
  /** The FLAIR the lesions were segmented on, and the masks on its grid. */
  readonly flair: Volume;
  readonly mask: Mask;
  /** Lesion label map (ids of result.lesions); improves the choice of examples. Default: the mask. */
  readonly labels?: Volume;
  /** New/enlarging lesions since the prior (outlined in a second colour). */
  readonly changeMask?: Mask;
  /** When the results were produced (the report's date; keeps re-renders byte-identical). */
  readonly createdAt: string | Date;
  /** The patient's exams for the trend plot, any order (default: the prior and this one). */
  readonly history?: readonly ExamLoad[];
  /** Marks every page "SAMPLE" (docs, demos). */
  readonly sample?: boolean;
  readonly institutionName?: string;
}

export interface ReportRenderer {
  /** PDF bytes. */
  renderPdf(request: ReportRequest): Promise<Uint8Array>;
}
