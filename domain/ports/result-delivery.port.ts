/**
 * Hands the results of a succeeded analysis to the EHR channels (FHIR transaction bundle, HL7 v2 ORU). The
 * adapter (adapters/outbox/result-delivery.ts) writes them to the durable outbox; the outbox dispatcher
 * delivers them with retries and records the delivery status per analysis and channel. Idempotent: calling it
 * again with the same results queues nothing new; new results (a re-run) replace the queued ones.
 */
import type { Analysis, DeliveryStatus } from '../model/analysis.ts';
import type { StudyDescriptor } from './image-source.port.ts';

export interface ResultDeliveryInput {
  /** A succeeded analysis with its result. */
  readonly analysis: Analysis;
  /** The analysed study's metadata (ImagingStudy, dates). */
  readonly study: StudyDescriptor;
  /** The PDF report, when there is one (FHIR DiagnosticReport.presentedForm). */
  readonly pdf?: Uint8Array;
}

export interface ResultDelivery {
  /** The channels configured for delivery (empty: nothing is delivered). */
  readonly channels: readonly DeliveryStatus['channel'][];
  /** Queues the results on every configured channel; returns each channel's status after queueing. */
  deliver(input: ResultDeliveryInput): Promise<readonly DeliveryStatus[]>;
}
