/**
 * Test data for the FHIR / HL7 mapping tests: a succeeded analysis shaped like the real pipeline's output for
 * open_ms cross_sectional patient26 (19 lesions, 8.2 mL) with a prior, and the study descriptor of its
 * DICOM study. Deterministic (no clocks, no randomness).
 */
import {
  LESION_LOCATIONS,
  type Analysis,
  type AnalysisOrder,
  type LesionLocation,
  type LesionRecord,
} from '../../../domain/model/analysis.ts';
import type { StudyDescriptor } from '../../../domain/ports/image-source.port.ts';

export const SAMPLE_ANALYSIS_ID = '3f0c7a52-9d1e-4b7a-8c2f-5e6d7a8b9c01';
export const SAMPLE_STUDY_UID = '1.2.826.0.1.3680043.8.498.10026';
export const SAMPLE_PRIOR_UID = '1.2.826.0.1.3680043.8.498.10025';

function lesionsFor(count: number, totalMl: number): LesionRecord[] {
  const out: LesionRecord[] = [];
  // Volumes decreasing geometrically and summing to totalMl; locations cycle deterministically.
  const weights = Array.from({ length: count }, (_, i) => 0.8 ** i);
  const sum = weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < count; i++) {
    const volumeMl = Math.round(((totalMl * weights[i]) / sum) * 1000) / 1000;
    const location: LesionLocation = LESION_LOCATIONS[(i * 7) % LESION_LOCATIONS.length];
    out.push({
      id: i + 1,
      voxelCount: Math.round(volumeMl * 1000),
      volumeMl,
      centroid: [10 + i, -20 + 2 * i, 30 - i],
      bboxMin: [80 + i, 90, 70],
      bboxMax: [90 + i, 100, 76],
      longestDiameterMm: 3 + Math.cbrt(volumeMl * 1000),
      meanFlair: 1.4,
      location,
    });
  }
  return out;
}

export function sampleOrder(overrides: Partial<AnalysisOrder> = {}): AnalysisOrder {
  return {
    studyInstanceUid: SAMPLE_STUDY_UID,
    patientId: 'MRN-0026',
    patientIdSystem: 'urn:oid:1.2.3.4.5.6.7',
    priorStudyInstanceUid: SAMPLE_PRIOR_UID,
    placerOrderNumber: 'PLC-2026-0001',
    source: 'fhir',
    options: {},
    orderReference: 'ServiceRequest/sr-1',
    ...overrides,
  };
}

export function sampleAnalysis(
  options: { withPrior?: boolean; lesions?: number; order?: Partial<AnalysisOrder>; id?: string } = {},
): Analysis {
  const count = options.lesions ?? 19;
  const list = lesionsFor(count, count === 0 ? 0 : 8.2);
  const volumeByLocationMl = Object.fromEntries(LESION_LOCATIONS.map((l) => [l, 0])) as Record<
    LesionLocation,
    number
  >;
  const countByLocation = Object.fromEntries(LESION_LOCATIONS.map((l) => [l, 0])) as Record<
    LesionLocation,
    number
  >;
  for (const l of list) {
    volumeByLocationMl[l.location] += l.volumeMl;
    countByLocation[l.location] += 1;
  }
  const total = list.reduce((a, l) => a + l.volumeMl, 0);
  const withPrior = options.withPrior ?? true;
  const order = sampleOrder({
    ...(withPrior ? {} : { priorStudyInstanceUid: undefined }),
    ...options.order,
  });
  return {
    id: options.id ?? SAMPLE_ANALYSIS_ID,
    order,
    status: 'succeeded',
    progress: 100,
    createdAt: '2026-03-02T09:00:00.000Z',
    updatedAt: '2026-03-02T09:04:10.000Z',
    startedAt: '2026-03-02T09:00:05.000Z',
    finishedAt: '2026-03-02T09:04:10.000Z',
    attempts: 1,
    result: {
      model: {
        id: 'mslesion-unet3d',
        name: 'MS lesion 3D U-Net',
        version: '1.0.0',
        variant: 'flair-t2-t1',
        channels: ['FLAIR', 'T2', 'T1'],
        sha256: '9b1d4f0c2e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c',
        reason: 'FLAIR, T2 and T1 present',
      },
      lesions: {
        count,
        totalVolumeMl: total,
        volumeByLocationMl,
        countByLocation,
        lesions: list,
      },
      ...(withPrior
        ? {
            change: {
              priorStudyInstanceUid: SAMPLE_PRIOR_UID,
              priorStudyDate: '2025-03-01',
              newCount: 2,
              enlargedCount: 1,
              disappearedCount: 1,
              shrunkCount: 0,
              stableCount: 15,
              mergedCount: 0,
              splitCount: 0,
              priorTotalVolumeMl: 7.6,
              totalVolumeChangeMl: total - 7.6,
              totalVolumeChangePercent: ((total - 7.6) / 7.6) * 100,
              registration: { method: 'rigid-mi', metric: 'mattes-mi', value: -0.61234, ncc: 0.912 },
              changes: [],
            },
          }
        : {}),
      series: {
        flair: { seriesInstanceUid: `${SAMPLE_STUDY_UID}.3`, description: 'FLAIR 3D', instances: 182 },
        t2: { seriesInstanceUid: `${SAMPLE_STUDY_UID}.2`, description: 'T2 TSE', instances: 182 },
        t1: { seriesInstanceUid: `${SAMPLE_STUDY_UID}.1`, description: 'T1 MPRAGE', instances: 182 },
      },
      warnings: [],
    },
    artifacts: [],
    delivery: [],
  };
}

export function sampleStudy(): StudyDescriptor {
  const series = (n: number, description: string): StudyDescriptor['series'][number] => ({
    studyInstanceUid: SAMPLE_STUDY_UID,
    seriesInstanceUid: `${SAMPLE_STUDY_UID}.${n}`,
    modality: 'MR',
    seriesNumber: n,
    numberOfInstances: 182,
    attributes: {
      seriesDescription: description,
      scanningSequence: [],
      sequenceVariant: [],
      scanOptions: [],
      imageType: ['ORIGINAL', 'PRIMARY'],
    },
  });
  return {
    studyInstanceUid: SAMPLE_STUDY_UID,
    patientId: 'MRN-0026',
    patientName: 'Doe^Jane',
    studyDate: '20260301',
    studyTime: '101500',
    studyDescription: 'MR Brain MS protocol',
    accessionNumber: 'ACC-77',
    series: [series(1, 'T1 MPRAGE'), series(2, 'T2 TSE'), series(3, 'FLAIR 3D')],
  };
}
