/** Reading analyses and their artifacts (the query side of the API). */
import { DomainError } from '../errors.ts';
import type { Analysis, AnalysisStatus } from '../model/analysis.ts';
import type { AnalysisPage, AnalysisStore } from '../ports/analysis-store.port.ts';
import {
  isValidArtifactName,
  type ArtifactStore,
  type StoredArtifact,
} from '../ports/artifact-store.port.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID.test(value);
}

function checkId(id: string): void {
  if (!isUuid(id))
    throw new DomainError('REQUEST.INVALID_ID', 'an analysis id is a UUID', { issueType: 'value' });
}

export async function getAnalysis(deps: { readonly store: AnalysisStore }, id: string): Promise<Analysis> {
  checkId(id);
  const analysis = await deps.store.get(id);
  if (analysis === undefined)
    throw new DomainError('ANALYSIS.NOT_FOUND', `no analysis ${id}`, { issueType: 'not-found' });
  return analysis;
}

export interface ListAnalysesQuery {
  readonly patientId?: string;
  readonly patientIdSystem?: string;
  readonly status?: AnalysisStatus;
  readonly studyInstanceUid?: string;
  readonly limit?: number;
  readonly offset?: number;
}

export async function listAnalyses(
  deps: { readonly store: AnalysisStore },
  query: ListAnalysesQuery,
): Promise<AnalysisPage & { limit: number; offset: number }> {
  const limit = query.limit ?? 20;
  const offset = query.offset ?? 0;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100)
    throw new DomainError('REQUEST.INVALID_PAGE', 'limit must be an integer 1–100', { issueType: 'value' });
  if (!Number.isInteger(offset) || offset < 0)
    throw new DomainError('REQUEST.INVALID_PAGE', 'offset must be an integer ≥ 0', { issueType: 'value' });
  const page = await deps.store.list({ ...query, limit, offset });
  return { ...page, limit, offset };
}

/** An artifact of an analysis. Throws ANALYSIS.NOT_FOUND, ARTIFACT.BAD_NAME, ARTIFACT.NOT_FOUND. */
export async function getArtifact(
  deps: { readonly store: AnalysisStore; readonly artifacts: ArtifactStore },
  id: string,
  name: string,
): Promise<StoredArtifact> {
  if (!isValidArtifactName(name))
    throw new DomainError('ARTIFACT.BAD_NAME', 'not a valid artifact name', { issueType: 'value' });
  await getAnalysis(deps, id);
  const artifact = await deps.artifacts.get(id, name);
  if (artifact === undefined)
    throw new DomainError('ARTIFACT.NOT_FOUND', `analysis ${id} has no artifact ${name}`, {
      issueType: 'not-found',
    });
  return artifact;
}
