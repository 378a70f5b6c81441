/**
 * What the service's FHIR API needs from the FHIR mapping (adapters/fhir/fhir-results.ts implements it):
 * ServiceRequest intake and echo, the result resources of an analysis, search matching, the
 * CapabilityStatement and the local CodeSystem. Resources cross this port as plain JSON objects (the domain
 * knows no FHIR library).
 */
import type { Analysis, AnalysisOrder } from '../model/analysis.ts';

export interface FhirJson {
  readonly resourceType: string;
  readonly id?: string;
  readonly [key: string]: unknown;
}

export type SearchParams = Readonly<Record<string, string | readonly string[]>>;

export interface FhirResults {
  /** A ServiceRequest body → the order it carries. Throws DomainError FHIR.* (→ OperationOutcome). */
  orderFromServiceRequest(body: unknown): AnalysisOrder;
  /** The accepted order as a ServiceRequest (id = analysis id). */
  serviceRequest(analysis: Analysis): FhirJson;
  /** Every result resource of a succeeded analysis (empty for any other). */
  resultResources(analysis: Analysis): Promise<readonly FhirJson[]>;
  /** Resources of a type among `resources` matching FHIR search parameters (code, date, …; not subject). */
  matches(resources: readonly FhirJson[], resourceType: string, params: SearchParams): readonly FhirJson[];
  /**
   * The patient key (as orders store it) for a FHIR search's subject: a reference (`Patient/<id>` or a bare
   * id) or an identifier token (`system|value` or `value`). Throws FHIR.INVALID_SUBJECT.
   */
  patientOf(subject: { readonly reference?: string; readonly identifier?: string }): {
    readonly patientId: string;
    readonly patientIdSystem?: string;
  };
  capabilityStatement(): FhirJson;
  codeSystem(): FhirJson;
}
