/**
 * `node scripts/build-demo-study.ts [out-dir]` (default .tmp/demo-study): builds the bundled demo study — an
 * MR DICOM study (FLAIR, T2, T1) made with the research-import code from the real MS case
 * test/fixtures/open_ms/cross_sectional/patient26 (open_ms_data, CC-BY; Lesjak et al., Neuroinformatics 2017).
 * Deterministic: the same inputs always give the same files and UIDs, so a folder built earlier is reused
 * when it holds exactly the expected study. Tests and the demo build it on the fly; no DICOM is committed.
 *
 *   import { buildDemoStudy } from './scripts/build-demo-study.ts';
 *   const { dir, studyInstanceUid } = await buildDemoStudy('.tmp/demo-study');
 */
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FolderImageSource } from '../adapters/dicom/folder-source.ts';
import {
  buildResearchStudy,
  seriesFolderName,
  writeStudyFolder,
  type ImportedStudy,
} from '../adapters/dicom/research-import.ts';
import type { MrContrast } from '../adapters/dicom/mr-writer.ts';
import { readNifti } from '../adapters/nifti/nifti.ts';

const REPO_ROOT = resolve(fileURLToPath(import.meta.url), '..', '..');
export const DEMO_CASE = join(REPO_ROOT, 'test', 'fixtures', 'open_ms', 'cross_sectional', 'patient26');
export const DEMO_DEFAULT_DIR = join(REPO_ROOT, '.tmp', 'demo-study');
export const DEMO_PATIENT = {
  patientId: 'MSDEMO-26',
  patientName: 'Demo^Patient Twentysix',
  patientSex: 'O',
  studyDate: '20170615',
  studyTime: '093000',
  studyDescription: 'MS demo: open_ms patient26 (CC-BY, Lesjak 2017)',
  accessionNumber: 'DEMO26',
} as const;

export interface DemoStudy {
  readonly dir: string;
  readonly studyInstanceUid: string;
  readonly series: readonly { contrast: MrContrast; seriesInstanceUid: string; instances: number }[];
  /** False when an identical folder from an earlier build was reused. */
  readonly built: boolean;
}

async function matches(dir: string, study: ImportedStudy): Promise<boolean> {
  if (!existsSync(dir)) return false;
  try {
    const found = await new FolderImageSource(dir).findStudy(study.studyInstanceUid);
    return (
      found.series.length === study.series.length &&
      study.series.every((s) =>
        found.series.some(
          (f) => f.seriesInstanceUid === s.seriesInstanceUid && f.numberOfInstances === s.instances.length,
        ),
      )
    );
  } catch {
    return false;
  }
}

export async function buildDemoStudy(dir: string = DEMO_DEFAULT_DIR): Promise<DemoStudy> {
  const contrasts: MrContrast[] = ['FLAIR', 'T2', 'T1'];
  const volumes = await Promise.all(
    contrasts.map(async (contrast) => ({
      contrast,
      volume: (await readNifti(join(DEMO_CASE, `${contrast}.nii.gz`))).volume,
      source: `open_ms patient26 ${contrast}.nii.gz`,
    })),
  );
  const study = buildResearchStudy(volumes, DEMO_PATIENT);
  const summary = study.series.map((s) => ({
    contrast: s.contrast,
    seriesInstanceUid: s.seriesInstanceUid,
    instances: s.instances.length,
  }));
  if (await matches(dir, study))
    return { dir, studyInstanceUid: study.studyInstanceUid, series: summary, built: false };
  // a stale or partial demo folder: replace the series folders this build owns
  for (const s of study.series) await rm(join(dir, seriesFolderName(s)), { recursive: true, force: true });
  await writeStudyFolder(study, dir);
  return { dir, studyInstanceUid: study.studyInstanceUid, series: summary, built: true };
}

if (import.meta.main) {
  const dir = resolve(process.argv[2] ?? DEMO_DEFAULT_DIR);
  const t0 = performance.now();
  const demo = await buildDemoStudy(dir);
  console.log(
    `${demo.built ? 'built' : 'reused'} demo study ${demo.studyInstanceUid} in ${dir} (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
  for (const s of demo.series)
    console.log(`  ${s.contrast}: ${s.instances} instances, series ${s.seriesInstanceUid}`);
}
