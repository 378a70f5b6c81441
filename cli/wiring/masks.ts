/**
 * Small I/O wiring shared by the analytics commands (evaluate, longitudinal): NIfTI masks and volumes in, the
 * prediction brought onto the reference grid (optionally through an ITK transform), CSV/JSON out.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { readNifti } from '../../adapters/nifti/nifti.ts';
import { readItkTransform } from '../../adapters/itk/itk-transform.ts';
import { createVolume, sameGrid, type Mask, type Volume } from '../../domain/model/volume.ts';
import { gridOf, resampleMask } from '../../domain/preprocess/resample.ts';

/** A NIfTI read as a binary mask: voxels ≥ 0.5 are lesion (label maps: any label ≥ 1). */
export async function readBinaryMask(path: string): Promise<Mask> {
  const v = (await readNifti(path)).volume;
  const out = new Uint8Array(v.data.length);
  for (let p = 0; p < out.length; p++) out[p] = v.data[p] >= 0.5 ? 1 : 0;
  return createVolume(v.dims, v.affine, out);
}

export async function readVolume(path: string): Promise<Volume> {
  return (await readNifti(path)).volume;
}

/**
 * The prediction on the reference grid. With an ITK transform file (reference/fixed → prediction/moving points,
 * the ITK convention), the prediction is pulled through it; without one but on another grid, it is resampled
 * through the two headers. Label-aware (a voxel is lesion when its trilinear weight ≥ 0.5).
 */
export async function predictionOnReference(
  pred: Mask,
  ref: Mask,
  transformPath?: string,
): Promise<{ mask: Mask; note?: string }> {
  if (transformPath !== undefined) {
    const m = await readItkTransform(transformPath);
    return {
      mask: resampleMask(pred, gridOf(ref), { transform: m }),
      note: `prediction resampled through ${transformPath}`,
    };
  }
  if (sameGrid(pred, ref)) return { mask: pred };
  return {
    mask: resampleMask(pred, gridOf(ref)),
    note: `prediction (${pred.dims.join('×')}) resampled onto the reference grid (${ref.dims.join('×')}) through the headers`,
  };
}

export async function writeText(path: string, text: string): Promise<void> {
  await writeFile(path, text.endsWith('\n') ? text : text + '\n');
}

export async function ensureDir(path: string): Promise<void> {
  await mkdir(path, { recursive: true });
}

/** A CSV field, quoted when needed. */
export function csvField(v: string | number | null | undefined): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(6)) : v;
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvRow(values: readonly (string | number | null | undefined)[]): string {
  return values.map(csvField).join(',');
}
