/**
 * Heavy outputs of an analysis (masks, PDFs, DICOM objects) stored by analysis id and file name. Writes are
 * atomic: a reader sees either the whole previous content or the whole new one, never a partial file.
 * Names are plain file names (`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`, no `..`); anything else is rejected with
 * ARTIFACT.BAD_NAME before touching storage.
 */
import type { ArtifactRef } from '../model/analysis.ts';

export interface StoredArtifact {
  readonly ref: ArtifactRef;
  readonly data: Uint8Array;
}

export interface ArtifactStore {
  /** Stores (or atomically replaces) an artifact; returns its reference (size and sha256 computed here). */
  put(analysisId: string, name: string, data: Uint8Array, contentType: string): Promise<ArtifactRef>;
  /** The artifact, or undefined when there is none by that name. */
  get(analysisId: string, name: string): Promise<StoredArtifact | undefined>;
  /** Every artifact of an analysis, sorted by name (empty when none). */
  list(analysisId: string): Promise<readonly ArtifactRef[]>;
  /** Removes all artifacts of an analysis (no error when there are none). */
  removeAll(analysisId: string): Promise<void>;
  /** Throws when the storage is unusable (readiness check). */
  ping(): Promise<void>;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** True for a safe artifact file name (no path separators, no `..`, no leading dot). */
export function isValidArtifactName(name: string): boolean {
  return NAME.test(name) && !name.includes('..');
}
