/**
 * Where study images come from (PACS over DICOMweb, a folder of DICOM files, STOW-RS uploads). Adapters
 * parse DICOM and hand the domain plain descriptors and slices; the domain assembles volumes
 * (domain/imaging) and never sees DICOM encodings.
 */
import type { Vec3 } from '../model/geometry.ts';

/** The attributes series classification rules look at (DICOM keyword names, values decoded). */
export interface SeriesAttributes {
  readonly seriesDescription?: string;
  readonly protocolName?: string;
  readonly sequenceName?: string;
  readonly scanningSequence: readonly string[];
  readonly sequenceVariant: readonly string[];
  readonly scanOptions: readonly string[];
  readonly imageType: readonly string[];
  readonly mrAcquisitionType?: string;
  readonly inversionTime?: number;
  readonly repetitionTime?: number;
  readonly echoTime?: number;
  readonly flipAngle?: number;
  readonly sliceThickness?: number;
  readonly contrastBolusAgent?: string;
  readonly magneticFieldStrength?: number;
  readonly manufacturer?: string;
  readonly manufacturerModelName?: string;
  /** Private/vendor contrast hints when present (e.g. Philips/GE pulse sequence names). */
  readonly pulseSequenceName?: string;
}

export interface SeriesDescriptor {
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly modality: string;
  readonly seriesNumber?: number;
  readonly sopClassUid?: string;
  readonly numberOfInstances: number;
  /** Frames in total (enhanced multi-frame objects hold many per instance). */
  readonly numberOfFrames?: number;
  readonly attributes: SeriesAttributes;
}

export interface StudyDescriptor {
  readonly studyInstanceUid: string;
  readonly patientId?: string;
  readonly patientName?: string;
  readonly patientBirthDate?: string;
  readonly patientSex?: string;
  readonly studyDate?: string;
  readonly studyTime?: string;
  readonly studyDescription?: string;
  readonly accessionNumber?: string;
  readonly series: readonly SeriesDescriptor[];
}

export type SlicePixels = Int16Array | Uint16Array | Int32Array | Uint8Array | Float32Array;

/** One 2-D image plane: a classic instance, or one frame of an enhanced multi-frame instance. */
export interface ImageSlice {
  readonly sopInstanceUid: string;
  readonly sopClassUid?: string;
  /** 1-based frame number inside a multi-frame instance. */
  readonly frameNumber?: number;
  readonly instanceNumber?: number;
  /** FrameOfReferenceUID of the plane (derived objects such as DICOM SEG reference it). */
  readonly frameOfReferenceUid?: string;
  readonly imagePositionPatient: Vec3;
  /** Row direction cosines then column direction cosines (DICOM order). */
  readonly imageOrientationPatient: readonly [number, number, number, number, number, number];
  /** [row spacing (between rows, along columns), column spacing] in mm, DICOM order. */
  readonly pixelSpacing: readonly [number, number];
  readonly rows: number;
  readonly columns: number;
  readonly sliceThickness?: number;
  readonly rescaleSlope: number;
  readonly rescaleIntercept: number;
  /** Stored values, row-major (column index fastest), length rows × columns. */
  readonly pixels: SlicePixels;
}

export interface LoadedSeries {
  readonly descriptor: SeriesDescriptor;
  readonly slices: readonly ImageSlice[];
}

export interface LoadProgress {
  (done: number, total: number): void;
}

export interface ImageSource {
  /** The study's descriptor with all its series. Throws DomainError STUDY.NOT_FOUND when absent. */
  findStudy(studyInstanceUid: string): Promise<StudyDescriptor>;
  /** All image planes of a series (pixel data uncompressed). */
  loadSeries(
    studyInstanceUid: string,
    seriesInstanceUid: string,
    progress?: LoadProgress,
  ): Promise<LoadedSeries>;
}
