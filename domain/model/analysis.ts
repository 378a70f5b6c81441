/**
 * An analysis: one order (from REST, FHIR, HL7 v2 or the CLI) for one study, its progress, and its
 * results. Stored by the AnalysisStore port; heavy outputs (masks, PDFs, DICOM objects) live in the
 * ArtifactStore and are referenced by name.
 */
import type { Vec3 } from './geometry.ts';

export type AnalysisStatus = 'queued' | 'running' | 'succeeded' | 'failed';
export type OrderSource = 'rest' | 'fhir' | 'hl7v2' | 'cli';

export interface AnalysisOptions {
  /** Model id from the registry; the default model when absent. */
  readonly modelId?: string;
  /** Store SEG/SR/overlay/PDF back to the PACS (default true when a PACS is configured). */
  readonly publishToPacs?: boolean;
  /** One Observation per lesion in the FHIR results (default false). */
  readonly perLesionObservations?: boolean;
}

export interface AnalysisOrder {
  readonly studyInstanceUid: string;
  /** The patient identifier as the ordering system knows it (value; system optional). */
  readonly patientId: string;
  readonly patientIdSystem?: string;
  readonly priorStudyInstanceUid?: string;
  /** Placer order number / ServiceRequest identifier: a repeated order with the same one starts nothing new. */
  readonly placerOrderNumber?: string;
  readonly source: OrderSource;
  readonly options: AnalysisOptions;
  /** Reference back to the order in its own system (e.g. ServiceRequest/123, HL7 control id). */
  readonly orderReference?: string;
}

export interface AnalysisError {
  readonly code: string;
  readonly message: string;
}

export type SeriesRole = 'FLAIR' | 'T2' | 'T1' | 'T1C' | 'OTHER';

export interface SeriesFinding {
  readonly seriesInstanceUid: string;
  readonly seriesNumber?: number;
  readonly description?: string;
  readonly role: SeriesRole;
  readonly acquisition: '2D' | '3D' | 'unknown';
  /** Why the rules classified it so (rule id and the attributes that matched). */
  readonly reason: string;
  readonly selected: boolean;
  readonly rank?: number;
}

export type LesionLocation = 'periventricular' | 'juxtacortical' | 'infratentorial' | 'subcortical';
export const LESION_LOCATIONS: readonly LesionLocation[] = [
  'periventricular',
  'juxtacortical',
  'infratentorial',
  'subcortical',
];

export interface LesionRecord {
  /** 1-based label in the lesion label map, ordered by decreasing volume. */
  readonly id: number;
  readonly voxelCount: number;
  readonly volumeMl: number;
  /** Centroid in patient coordinates (LPS, mm). */
  readonly centroid: Vec3;
  /** Voxel bounding box [min, max) on the FLAIR grid. */
  readonly bboxMin: Vec3;
  readonly bboxMax: Vec3;
  readonly longestDiameterMm: number;
  readonly meanFlair: number;
  readonly location: LesionLocation;
}

export interface LesionSummary {
  readonly count: number;
  readonly totalVolumeMl: number;
  readonly volumeByLocationMl: Readonly<Record<LesionLocation, number>>;
  readonly countByLocation: Readonly<Record<LesionLocation, number>>;
  readonly lesions: readonly LesionRecord[];
}

export type ChangeClass = 'new' | 'disappeared' | 'enlarged' | 'shrunk' | 'stable' | 'merged' | 'split';

export interface LesionChange {
  readonly class: ChangeClass;
  /** Lesion ids on the current exam (empty for disappeared). */
  readonly currentIds: readonly number[];
  /** Lesion ids on the prior exam (empty for new). */
  readonly priorIds: readonly number[];
  readonly currentVolumeMl: number;
  readonly priorVolumeMl: number;
}

export interface RegistrationQuality {
  readonly method: string;
  /** Final similarity value (metric named in `metric`). */
  readonly metric: string;
  readonly value: number;
  /** Normalised cross-correlation of the two FLAIRs inside the brain after registration (0..1). */
  readonly ncc?: number;
}

export interface ChangeSummary {
  readonly priorStudyInstanceUid?: string;
  readonly priorStudyDate?: string;
  readonly newCount: number;
  readonly enlargedCount: number;
  readonly disappearedCount: number;
  readonly shrunkCount: number;
  readonly stableCount: number;
  readonly mergedCount: number;
  readonly splitCount: number;
  readonly priorTotalVolumeMl: number;
  readonly totalVolumeChangeMl: number;
  /** null when the prior total volume was 0. */
  readonly totalVolumeChangePercent: number | null;
  readonly registration: RegistrationQuality;
  readonly changes: readonly LesionChange[];
}

export interface ModelUsed {
  readonly id: string;
  readonly name: string;
  readonly version: string;
  /** Variant id, e.g. 'flair-t2-t1', 'flair-t2', 'flair'. */
  readonly variant: string;
  readonly channels: readonly string[];
  readonly sha256: string;
  /** Why this variant (e.g. 'T1 missing: FLAIR+T2 variant'). */
  readonly reason: string;
}

export interface SeriesRef {
  readonly seriesInstanceUid: string;
  readonly description?: string;
  readonly instances: number;
}

export interface AnalysisResult {
  readonly model: ModelUsed;
  readonly lesions: LesionSummary;
  readonly change?: ChangeSummary;
  readonly series: { readonly flair: SeriesRef; readonly t2?: SeriesRef; readonly t1?: SeriesRef };
  /** The analysed study's date (DICOM DA, YYYYMMDD), for trends. */
  readonly studyDate?: string;
  /** Where the anatomy for lesion location came from ('parcellation18' | 'flair-heuristic'). */
  readonly anatomySource?: string;
  /** Where inference ran, e.g. 'onnxruntime-node/cpu'. */
  readonly backend?: string;
  readonly warnings: readonly string[];
}

export interface ArtifactRef {
  /** File name inside the analysis' artifact folder, e.g. 'lesion_mask.nii.gz', 'report.pdf'. */
  readonly name: string;
  readonly contentType: string;
  readonly bytes: number;
  readonly sha256: string;
}

export type DeliveryChannel = 'pacs' | 'fhir' | 'hl7v2';
export type DeliveryState = 'pending' | 'delivered' | 'retrying' | 'failed';

export interface DeliveryStatus {
  readonly channel: DeliveryChannel;
  readonly state: DeliveryState;
  readonly attempts: number;
  readonly lastAttemptAt?: string;
  readonly lastError?: string;
}

export interface Analysis {
  /** UUID v4. */
  readonly id: string;
  readonly order: AnalysisOrder;
  readonly status: AnalysisStatus;
  /** 0–100. */
  readonly progress: number;
  readonly step?: string;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly startedAt?: string;
  readonly finishedAt?: string;
  readonly attempts: number;
  readonly error?: AnalysisError;
  readonly findings?: readonly SeriesFinding[];
  readonly result?: AnalysisResult;
  readonly artifacts: readonly ArtifactRef[];
  readonly delivery: readonly DeliveryStatus[];
}
