/**
 * Research import: NIfTI volumes (FLAIR, T2, T1 …) of one patient → one MR DICOM study, one classic series per
 * volume (adapters/dicom/mr-writer.ts does the encoding). UIDs are name-based (root 2.25, see uids.ts) from the
 * patient id, study date, the voxel data and the contrast, so importing the same files again gives the same
 * UIDs (idempotent when stored to a PACS) and the demo study is identical on every build.
 *
 * writeStudyFolder() writes <out>/<NN>_<contrast>/IM<kkkk>.dcm atomically: everything goes to a hidden
 * staging folder beside <out> first and each series folder is renamed into place; an existing series folder
 * is never overwritten (IMPORT.OUTPUT_EXISTS).
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DomainError } from '../../domain/errors.ts';
import type { Volume } from '../../domain/model/volume.ts';
import {
  writeClassicMrSeries,
  type AcquisitionParameters,
  type MrContrast,
  type StudyInfo,
} from './mr-writer.ts';
import { isValidUid, uidFromName } from './uids.ts';

export interface ImportVolume {
  readonly contrast: MrContrast;
  readonly volume: Volume;
  /** Shown in DerivationDescription (a file name; never patient data). */
  readonly source?: string;
  readonly acquisition?: AcquisitionParameters;
  readonly seriesDescription?: string;
}

export interface ImportPatient {
  readonly patientId: string;
  readonly patientName?: string;
  readonly patientBirthDate?: string;
  readonly patientSex?: 'M' | 'F' | 'O';
  /** YYYYMMDD */
  readonly studyDate: string;
  readonly studyTime?: string;
  readonly studyDescription?: string;
  readonly accessionNumber?: string;
  /** Use this StudyInstanceUID instead of the derived one. */
  readonly studyInstanceUid?: string;
}

export interface ImportedSeries {
  readonly contrast: MrContrast;
  readonly seriesNumber: number;
  readonly seriesInstanceUid: string;
  readonly instances: readonly Uint8Array[];
}

export interface ImportedStudy {
  readonly studyInstanceUid: string;
  readonly frameOfReferenceUid: string;
  readonly series: readonly ImportedSeries[];
}

function contentHash(v: Volume): string {
  const h = createHash('sha256');
  h.update(v.dims.join('x'));
  h.update(v.affine.map((x) => x.toPrecision(12)).join(','));
  h.update(new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength));
  return h.digest('hex');
}

/** Builds the study in memory (Part-10 bytes per instance). */
export function buildResearchStudy(volumes: readonly ImportVolume[], patient: ImportPatient): ImportedStudy {
  if (volumes.length === 0)
    throw new DomainError('IMPORT.NO_INPUT', 'nothing to import', { issueType: 'required' });
  const seen = new Set<MrContrast>();
  for (const v of volumes) {
    if (seen.has(v.contrast))
      throw new DomainError('IMPORT.INVALID_ARGUMENT', `two ${v.contrast} volumes given`, {
        issueType: 'invalid',
      });
    seen.add(v.contrast);
  }
  if (patient.studyInstanceUid !== undefined && !isValidUid(patient.studyInstanceUid))
    throw new DomainError('IMPORT.INVALID_ARGUMENT', 'the study UID is not a valid DICOM UID', {
      issueType: 'invalid',
    });
  const hashes = volumes.map((v) => `${v.contrast}:${contentHash(v.volume)}`);
  const studyInstanceUid =
    patient.studyInstanceUid ??
    uidFromName('research-import', 'study', patient.patientId, patient.studyDate, ...hashes);
  // one frame of reference: the inputs of a research import are co-registered volumes of one session
  const frameOfReferenceUid = uidFromName('research-import', 'frame-of-reference', studyInstanceUid);
  const study: StudyInfo = {
    studyInstanceUid,
    patientId: patient.patientId,
    studyDate: patient.studyDate,
    ...(patient.patientName === undefined ? {} : { patientName: patient.patientName }),
    ...(patient.patientBirthDate === undefined ? {} : { patientBirthDate: patient.patientBirthDate }),
    ...(patient.patientSex === undefined ? {} : { patientSex: patient.patientSex }),
    ...(patient.studyTime === undefined ? {} : { studyTime: patient.studyTime }),
    ...(patient.studyDescription === undefined ? {} : { studyDescription: patient.studyDescription }),
    ...(patient.accessionNumber === undefined ? {} : { accessionNumber: patient.accessionNumber }),
  };
  const series = volumes.map((v, x): ImportedSeries => {
    const seriesNumber = x + 1;
    const seriesInstanceUid = uidFromName('research-import', 'series', studyInstanceUid, hashes[x]);
    const instances = writeClassicMrSeries(study, {
      volume: v.volume,
      contrast: v.contrast,
      seriesNumber,
      seriesInstanceUid,
      frameOfReferenceUid,
      sopInstanceUid: (k) => uidFromName('research-import', 'instance', seriesInstanceUid, String(k)),
      ...(v.source === undefined ? {} : { derivedFrom: v.source }),
      ...(v.acquisition === undefined ? {} : { acquisition: v.acquisition }),
      ...(v.seriesDescription === undefined ? {} : { seriesDescription: v.seriesDescription }),
    });
    return { contrast: v.contrast, seriesNumber, seriesInstanceUid, instances };
  });
  return { studyInstanceUid, frameOfReferenceUid, series };
}

export function seriesFolderName(s: ImportedSeries): string {
  return `${String(s.seriesNumber).padStart(2, '0')}_${s.contrast}`;
}

/** Writes the study under `out` (created if needed); returns the series folders written. */
export async function writeStudyFolder(study: ImportedStudy, out: string): Promise<string[]> {
  await mkdir(dirname(out), { recursive: true });
  await mkdir(out, { recursive: true });
  const existing = new Set(await readdir(out));
  for (const s of study.series)
    if (existing.has(seriesFolderName(s)))
      throw new DomainError('IMPORT.OUTPUT_EXISTS', `${join(out, seriesFolderName(s))} exists already`, {
        issueType: 'duplicate',
      });
  const staging = await mkdtemp(join(dirname(out), `.${basename(out)}.staging-`));
  try {
    for (const s of study.series) {
      const dir = join(staging, seriesFolderName(s));
      await mkdir(dir);
      for (let k = 0; k < s.instances.length; k++)
        await writeFile(join(dir, `IM${String(k + 1).padStart(4, '0')}.dcm`), s.instances[k]);
    }
    const written: string[] = [];
    for (const s of study.series) {
      const target = join(out, seriesFolderName(s));
      await rename(join(staging, seriesFolderName(s)), target);
      written.push(target);
    }
    return written;
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
