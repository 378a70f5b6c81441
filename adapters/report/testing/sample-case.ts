/**
 * A real case for the output tests and the docs sample: open_ms cross_sectional patient26 (committed fixture,
 * CC-BY, see test/fixtures/ATTRIBUTION.md) — its FLAIR and the expert consensus lesion mask standing in for a
 * model output, the lesion table computed by domain/lesions (FLAIR-only anatomy), and the DICOM identity of a
 * study made from it (deterministic UIDs under the 2.25 root, as `mslesion import-nifti` would give it).
 * `withPrior` adds a synthetic prior: the two smallest lesions are "new" (the change mask), one more is
 * "enlarged", and the prior total volume is the current one minus those changes. Deterministic.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { analyzeLesions } from '../../../domain/lesions/lesion-table.ts';
import { anatomyFromFlair } from '../../../domain/lesions/anatomy.ts';
import type {
  AnalysisResult,
  ChangeSummary,
  LesionSummary,
  ModelUsed,
} from '../../../domain/model/analysis.ts';
import { createVolume, type Mask, type Volume } from '../../../domain/model/volume.ts';
import type { StudyDescriptor } from '../../../domain/ports/image-source.port.ts';
import { parseNifti } from '../../nifti/nifti.ts';
import type { DerivedContext, SourceSliceRef } from '../../dicom/derived/common.ts';
import { derivedUid } from '../../dicom/derived/uids.ts';

export const SAMPLE_ANALYSIS_ID = '3f0c7a52-9d1e-4b7a-8c2f-5e6d7a8b9c01';
const FIXTURE = join(
  import.meta.dirname,
  '..',
  '..',
  '..',
  'test',
  'fixtures',
  'open_ms',
  'cross_sectional',
  'patient26',
);

export const SAMPLE_MODEL: ModelUsed = {
  id: 'mslesion-unet3d',
  name: 'MS lesion 3D U-Net',
  version: '1.0.0',
  variant: 'flair-t2-t1',
  channels: ['FLAIR', 'T2', 'T1'],
  sha256: '9b1d4f0c2e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c',
  reason: 'FLAIR, T2 and T1 present',
};

export interface SampleCase {
  readonly flair: Volume;
  readonly mask: Mask;
  /** Lesion label map (1 = largest). */
  readonly labels: Volume<Int32Array>;
  readonly summary: LesionSummary;
  readonly study: StudyDescriptor;
  readonly context: DerivedContext;
  readonly result: AnalysisResult;
  readonly changeMask?: Mask;
}

interface Base {
  flair: Volume;
  mask: Mask;
  labels: Volume<Int32Array>;
  summary: LesionSummary;
}

const cache = new Map<string, Promise<Base>>();

async function loadBase(flairPath: string, maskPath: string): Promise<Base> {
  const flair = parseNifti(await readFile(flairPath)).volume;
  const raw = parseNifti(await readFile(maskPath)).volume;
  if (raw.dims.join() !== flair.dims.join())
    throw new Error(`the mask (${raw.dims.join('x')}) is not on the FLAIR grid (${flair.dims.join('x')})`);
  const mask = createVolume(
    raw.dims,
    flair.affine,
    Uint8Array.from(raw.data, (v) => (v !== 0 ? 1 : 0)),
  );
  const analysis = analyzeLesions(mask, flair, anatomyFromFlair(flair));
  return { flair, mask, labels: analysis.labelMap, summary: analysis.summary };
}

export interface SampleCaseOptions {
  readonly withPrior?: boolean;
  /** Other inputs (NIfTI; the mask on the FLAIR grid), e.g. a model's output instead of the expert mask. */
  readonly flairPath?: string;
  readonly maskPath?: string;
  readonly model?: ModelUsed;
}

export async function loadSampleCase(options: SampleCaseOptions = {}): Promise<SampleCase> {
  const flairPath = options.flairPath ?? join(FIXTURE, 'FLAIR.nii.gz');
  const maskPath = options.maskPath ?? join(FIXTURE, 'lesion_mask.nii.gz');
  const key = `${flairPath}|${maskPath}`;
  let base = cache.get(key);
  if (base === undefined) {
    base = loadBase(flairPath, maskPath);
    cache.set(key, base);
  }
  const { flair, mask, labels, summary } = await base;
  const model = options.model ?? SAMPLE_MODEL;
  const studyUid = derivedUid('open-ms-patient26', 'study');
  const seriesUid = derivedUid('open-ms-patient26', 'series.flair');
  const forUid = derivedUid('open-ms-patient26', 'frame-of-reference');
  const slices: SourceSliceRef[] = Array.from({ length: flair.dims[2] }, (_, k) => ({
    sopInstanceUid: derivedUid('open-ms-patient26', `flair.${k + 1}`),
    sopClassUid: '1.2.840.10008.5.1.4.1.1.4',
    frameOfReferenceUid: forUid,
    sliceThickness: 1,
  }));
  const study: StudyDescriptor = {
    studyInstanceUid: studyUid,
    patientId: 'OPENMS-26',
    patientName: 'Sample^OpenMS26',
    patientBirthDate: '19800101',
    patientSex: 'F',
    studyDate: '20260301',
    studyTime: '101500',
    studyDescription: 'MR Brain MS protocol (sample)',
    accessionNumber: 'SAMPLE26',
    series: [
      {
        studyInstanceUid: studyUid,
        seriesInstanceUid: seriesUid,
        modality: 'MR',
        seriesNumber: 3,
        numberOfInstances: flair.dims[2],
        attributes: {
          seriesDescription: 'AX FLAIR',
          scanningSequence: ['SE', 'IR'],
          sequenceVariant: [],
          scanOptions: [],
          imageType: ['ORIGINAL', 'PRIMARY'],
        },
      },
    ],
  };
  let change: ChangeSummary | undefined;
  let changeMask: Mask | undefined;
  if (options.withPrior === true && summary.count >= 3) {
    const newIds = [summary.count, summary.count - 1];
    const enlargedId = Math.ceil(summary.count / 2);
    const byId = new Map(summary.lesions.map((l) => [l.id, l]));
    const newVol = newIds.reduce((a, id) => a + (byId.get(id)?.volumeMl ?? 0), 0);
    const enlarged = byId.get(enlargedId)!;
    const priorTotal = summary.totalVolumeMl - newVol - enlarged.volumeMl * 0.4;
    const cm = new Uint8Array(mask.data.length);
    const ids = new Set([...newIds, enlargedId]);
    for (let p = 0; p < cm.length; p++) if (ids.has(labels.data[p])) cm[p] = 1;
    changeMask = createVolume(mask.dims, mask.affine, cm);
    change = {
      priorStudyInstanceUid: derivedUid('open-ms-patient26', 'prior-study'),
      priorStudyDate: '2025-03-01',
      newCount: 2,
      enlargedCount: 1,
      disappearedCount: 1,
      shrunkCount: 0,
      stableCount: summary.count - 3,
      mergedCount: 0,
      splitCount: 0,
      priorTotalVolumeMl: priorTotal,
      totalVolumeChangeMl: summary.totalVolumeMl - priorTotal,
      totalVolumeChangePercent: ((summary.totalVolumeMl - priorTotal) / priorTotal) * 100,
      registration: { method: 'rigid', metric: 'mattes-mi', value: -0.62, ncc: 0.93 },
      changes: [
        ...newIds.map((id) => ({
          class: 'new' as const,
          currentIds: [id],
          priorIds: [],
          currentVolumeMl: byId.get(id)?.volumeMl ?? 0,
          priorVolumeMl: 0,
        })),
        {
          class: 'enlarged' as const,
          currentIds: [enlargedId],
          priorIds: [enlargedId],
          currentVolumeMl: enlarged.volumeMl,
          priorVolumeMl: enlarged.volumeMl * 0.6,
        },
        {
          class: 'disappeared' as const,
          currentIds: [],
          priorIds: [99],
          currentVolumeMl: 0,
          priorVolumeMl: 0.05,
        },
      ],
    };
  }
  const result: AnalysisResult = {
    model,
    lesions: summary,
    ...(change === undefined ? {} : { change }),
    series: { flair: { seriesInstanceUid: seriesUid, description: 'AX FLAIR', instances: flair.dims[2] } },
    warnings: [],
  };
  const context: DerivedContext = {
    analysisId: SAMPLE_ANALYSIS_ID,
    study,
    flairSeries: { seriesInstanceUid: seriesUid, seriesNumber: 3, modality: 'MR', description: 'AX FLAIR' },
    flairSlices: slices,
    model,
    createdAt: '2026-03-02T09:04:10.000Z',
  };
  return {
    flair,
    mask,
    labels,
    summary,
    study,
    context,
    result,
    ...(changeMask === undefined ? {} : { changeMask }),
  };
}
