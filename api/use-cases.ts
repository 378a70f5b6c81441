/**
 * What the REST API drives: the use cases, bound to their dependencies by compose.ts. Routes call only these.
 */
import type { Analysis, AnalysisOrder } from '../domain/model/analysis.ts';
import type { AnalysisPage } from '../domain/ports/analysis-store.port.ts';
import type { StoredArtifact } from '../domain/ports/artifact-store.port.ts';
import type { ListAnalysesQuery } from '../domain/use-cases/analyses.ts';
import type { ReadinessReport } from '../domain/use-cases/readiness.ts';

export interface StowInstanceResult {
  readonly sopClassUid?: string;
  readonly sopInstanceUid?: string;
  /** Stored (true) or refused (false, with a DICOM failure reason and a coded explanation). */
  readonly stored: boolean;
  /** DICOM FailureReason (0x0110 processing failure, 0xA700 out of resources, 0xC000 cannot understand …). */
  readonly failureReason?: number;
  readonly error?: { readonly code: string; readonly message: string };
  /** WADO-RS URL of the stored instance, when known. */
  readonly retrieveUrl?: string;
}

export interface StowResult {
  readonly instances: readonly StowInstanceResult[];
  /** WADO-RS URL of the study, when every stored instance belongs to one study. */
  readonly retrieveUrl?: string;
}

export interface ApiUseCases {
  submitOrder(order: AnalysisOrder): Promise<{ analysis: Analysis; created: boolean }>;
  getAnalysis(id: string): Promise<Analysis>;
  listAnalyses(query: ListAnalysesQuery): Promise<AnalysisPage & { limit: number; offset: number }>;
  getArtifact(id: string, name: string): Promise<StoredArtifact>;
  readiness(): Promise<ReadinessReport>;
  /** STOW-RS: store the DICOM Part 10 instances of a multipart/related body (absent: not offered here). */
  receiveInstances?: (parts: readonly Uint8Array[]) => Promise<StowResult>;
}
