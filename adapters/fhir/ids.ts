/**
 * Deterministic FHIR resource ids, so that delivering the same results twice (after a crash, a timeout, or in
 * parallel) writes the same resources again instead of creating new ones:
 * - per-analysis resources: `<analysis uuid>-<role>` (e.g. `…-total-volume`, `…-report`, `…-lesion-3`); the
 *   analysis id can be read back from the resource id (the read API does so);
 * - ImagingStudy: the Study Instance UID itself (digits and dots, at most 64 characters: a valid FHIR id), so
 *   two analyses of one study share one ImagingStudy;
 * - Device (the algorithm): `model-` + the first 40 hex digits of the model's sha256, shared by every analysis
 *   that ran that exact model file.
 */
import { createHash } from 'node:crypto';
import { DomainError } from '../../domain/errors.ts';
import type { ModelUsed } from '../../domain/model/analysis.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ROLE = /^[a-z][a-z0-9-]{0,26}$/;
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

export function isFhirId(id: string): boolean {
  return FHIR_ID.test(id);
}

export function isAnalysisId(id: string): boolean {
  return UUID.test(id);
}

export function resultId(analysisId: string, role: string): string {
  if (!UUID.test(analysisId))
    throw new DomainError('FHIR.BAD_ANALYSIS_ID', 'analysis id must be a lower-case UUID', {
      issueType: 'value',
    });
  if (!ROLE.test(role)) throw new TypeError(`bad resource role ${role}`);
  return `${analysisId}-${role}`;
}

/** Splits a per-analysis resource id back into analysis id and role (undefined for any other id). */
export function parseResultId(id: string): { analysisId: string; role: string } | undefined {
  if (id.length < 38 || id[36] !== '-') return undefined;
  const analysisId = id.slice(0, 36);
  const role = id.slice(37);
  if (!UUID.test(analysisId) || !ROLE.test(role)) return undefined;
  return { analysisId, role };
}

export function imagingStudyId(studyInstanceUid: string): string {
  if (!/^[0-9.]{1,64}$/.test(studyInstanceUid))
    throw new DomainError('FHIR.BAD_STUDY_UID', 'Study Instance UID must be digits and dots (≤ 64)', {
      issueType: 'value',
    });
  return studyInstanceUid;
}

export function deviceId(model: ModelUsed): string {
  const sha = model.sha256.toLowerCase();
  const hex = /^[0-9a-f]{40,}$/.test(sha)
    ? sha
    : createHash('sha256').update(`${model.id}|${model.version}|${model.sha256}`).digest('hex');
  return `model-${hex.slice(0, 40)}`;
}

/** The Study Instance UID as FHIR writes it in identifiers (urn:dicom:uid system, urn:oid: value). */
export function dicomUidValue(uid: string): string {
  return `urn:oid:${uid}`;
}
