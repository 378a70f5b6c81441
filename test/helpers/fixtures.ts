/**
 * Paths of committed fixtures (test/fixtures, see ATTRIBUTION.md there), and unpacking of the packed DICOM
 * series into .tmp/fixtures (once per checkout; later calls reuse it).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FIXTURES = join(REPO_ROOT, 'test', 'fixtures');

export type DicomFixture = 'philips_ingenia_t1_mprage' | 'siemens_avanto_t1_mprage' | 'ge_fse_pd_axial';
export const DICOM_FIXTURES: readonly DicomFixture[] = [
  'philips_ingenia_t1_mprage',
  'siemens_avanto_t1_mprage',
  'ge_fse_pd_axial',
];

/** Directory holding the unpacked DICOM files of a real series. */
export function dicomSeriesDir(name: DicomFixture): string {
  const root = join(REPO_ROOT, '.tmp', 'fixtures', 'dicom');
  const dir = join(root, name);
  if (existsSync(dir)) return dir;
  mkdirSync(root, { recursive: true });
  const staging = `${dir}.${process.pid}.partial`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  execFileSync('tar', ['-xJf', join(FIXTURES, 'dicom', `${name}.tar.xz`), '-C', staging]);
  try {
    renameSync(join(staging, name), dir);
  } catch (e) {
    if (!existsSync(dir)) throw e; // a parallel test unpacked it first
  }
  rmSync(staging, { recursive: true, force: true });
  return dir;
}

export function openMs(...parts: string[]): string {
  return join(FIXTURES, 'open_ms', ...parts);
}

export function atlas(name: string): string {
  return join(FIXTURES, 'atlas', name);
}
