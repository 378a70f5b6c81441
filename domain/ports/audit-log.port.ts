/**
 * The audit trail: one record for every read or write of patient data (FHIR reads and searches, orders
 * received over REST, FHIR or HL7 v2, results delivered). Adapters store it as FHIR AuditEvent resources
 * (adapters/audit). Audit records are not logs: they name the patient (that is their purpose) and are kept
 * in the database, never written to the application log.
 */

export type AuditAction = 'C' | 'R' | 'U' | 'D' | 'E';
export type AuditInteraction = 'create' | 'read' | 'vread' | 'update' | 'delete' | 'search' | 'operation';
/** FHIR AuditEvent.outcome: 0 success, 4 minor failure (request refused), 8 serious, 12 major. */
export type AuditOutcome = '0' | '4' | '8' | '12';

export interface AuditRecord {
  /** ISO instant. */
  readonly recorded: string;
  readonly action: AuditAction;
  readonly interaction: AuditInteraction;
  readonly outcome: AuditOutcome;
  /** Short text of the outcome (error code on failure). */
  readonly outcomeDescription?: string;
  /** Who: the authenticated client (or the HL7 sending application). */
  readonly agent: { readonly who: string; readonly network?: string };
  /** The channel the access came through. */
  readonly source: 'rest' | 'fhir' | 'hl7v2' | 'delivery';
  /** What was touched: references like Observation/<id>, and the search query for searches. */
  readonly entities: readonly { readonly reference?: string; readonly query?: string }[];
  /** Whose data. */
  readonly patient?: { readonly id: string; readonly system?: string };
  readonly requestId?: string;
}

export interface AuditQuery {
  readonly patientId?: string;
  /** ISO instant (inclusive). */
  readonly since?: string;
  readonly limit: number;
}

export interface AuditLog {
  record(record: AuditRecord): Promise<void>;
  /** Newest first. */
  list(query: AuditQuery): Promise<readonly AuditRecord[]>;
}
