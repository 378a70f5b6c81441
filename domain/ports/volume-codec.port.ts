/** Encoding volumes as files for artifacts (NIfTI-1, gzipped): adapters/nifti implements it. */
import type { Volume } from '../model/volume.ts';

export interface VolumeCodec {
  /** .nii.gz bytes; `description` goes into the header's descrip field (≤ 79 characters). */
  encodeNifti(volume: Volume, description?: string): Uint8Array;
}
