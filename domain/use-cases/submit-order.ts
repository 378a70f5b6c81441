/**
 * Accepting an order (REST, FHIR ServiceRequest, HL7 ORM, CLI): validate it, store it as a queued analysis —
 * once per placer order number, also when identical orders race — and enqueue it when it is new.
 *
 * Error codes: ORDER.INVALID_STUDY_UID, ORDER.INVALID_PRIOR_STUDY_UID, ORDER.PRIOR_IS_CURRENT,
 * ORDER.INVALID_PATIENT_ID, ORDER.INVALID_PLACER_ORDER_NUMBER, ORDER.INVALID_MODEL_ID,
 * ORDER.INVALID_REFERENCE (all `value`/`invalid`, listed together in details.problems), ORDER.CONFLICT (the
 * placer order number is known for another study or patient).
 */
import { DomainError } from '../errors.ts';
import type { Analysis, AnalysisOrder } from '../model/analysis.ts';
import type { AnalysisStore } from '../ports/analysis-store.port.ts';
import type { Clock } from '../ports/clock.port.ts';
import type { JobQueue } from '../ports/job-queue.port.ts';
import type { Logger } from '../ports/logger.port.ts';

export interface SubmitOrderDeps {
  readonly store: AnalysisStore;
  readonly queue: JobQueue;
  readonly clock: Clock;
  readonly logger: Logger;
}

export interface OrderProblem {
  readonly code: string;
  readonly field: string;
  readonly message: string;
}

/** DICOM UID: digits and dots, no leading zeros in a component, at most 64 characters. */
const UID = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$/;
const MODEL_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;
// eslint-disable-next-line no-control-regex -- rejecting control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

export function isDicomUid(value: string): boolean {
  return value.length <= 64 && UID.test(value);
}

function checkText(
  problems: OrderProblem[],
  value: string | undefined,
  field: string,
  code: string,
  max: number,
): void {
  if (value === undefined) return;
  if (value.trim().length === 0 || value.length > max || CONTROL.test(value))
    problems.push({ code, field, message: `${field} must be 1–${max} printable characters` });
}

/** Every problem with an order (empty when it is acceptable). */
export function validateOrder(order: AnalysisOrder): OrderProblem[] {
  const problems: OrderProblem[] = [];
  if (!isDicomUid(order.studyInstanceUid))
    problems.push({
      code: 'ORDER.INVALID_STUDY_UID',
      field: 'studyInstanceUid',
      message: 'studyInstanceUid must be a DICOM UID (digits and dots, at most 64 characters)',
    });
  if (order.priorStudyInstanceUid !== undefined) {
    if (!isDicomUid(order.priorStudyInstanceUid))
      problems.push({
        code: 'ORDER.INVALID_PRIOR_STUDY_UID',
        field: 'priorStudyInstanceUid',
        message: 'priorStudyInstanceUid must be a DICOM UID (digits and dots, at most 64 characters)',
      });
    else if (order.priorStudyInstanceUid === order.studyInstanceUid)
      problems.push({
        code: 'ORDER.PRIOR_IS_CURRENT',
        field: 'priorStudyInstanceUid',
        message: 'the prior study must differ from the current study',
      });
  }
  checkText(problems, order.patientId, 'patientId', 'ORDER.INVALID_PATIENT_ID', 64);
  checkText(problems, order.patientIdSystem, 'patientIdSystem', 'ORDER.INVALID_PATIENT_ID', 256);
  checkText(problems, order.placerOrderNumber, 'placerOrderNumber', 'ORDER.INVALID_PLACER_ORDER_NUMBER', 64);
  checkText(problems, order.orderReference, 'orderReference', 'ORDER.INVALID_REFERENCE', 256);
  if (order.options.modelId !== undefined && !MODEL_ID.test(order.options.modelId))
    problems.push({
      code: 'ORDER.INVALID_MODEL_ID',
      field: 'options.modelId',
      message: 'options.modelId must be a model id (lower-case letters, digits, . _ -)',
    });
  return problems;
}

function sameOrder(a: AnalysisOrder, b: AnalysisOrder): boolean {
  return (
    a.studyInstanceUid === b.studyInstanceUid &&
    a.patientId === b.patientId &&
    (a.patientIdSystem ?? '') === (b.patientIdSystem ?? '') &&
    (a.priorStudyInstanceUid ?? '') === (b.priorStudyInstanceUid ?? '')
  );
}

export async function submitOrder(
  deps: SubmitOrderDeps,
  order: AnalysisOrder,
): Promise<{ analysis: Analysis; created: boolean }> {
  const problems = validateOrder(order);
  if (problems.length > 0) {
    const first = problems[0];
    throw new DomainError(first.code, problems.map((p) => p.message).join('; '), {
      issueType: 'value',
      details: { problems },
    });
  }
  const { analysis, created } = await deps.store.create(order, deps.clock.now());
  if (!created) {
    if (!sameOrder(analysis.order, order))
      throw new DomainError(
        'ORDER.CONFLICT',
        'this placer order number is already used by an order for another study or patient',
        { issueType: 'conflict', details: { analysisId: analysis.id } },
      );
    deps.logger.info({ analysisId: analysis.id, source: order.source }, 'repeated order: existing analysis');
    return { analysis, created };
  }
  try {
    await deps.queue.enqueue(analysis.id);
  } catch (e) {
    // The analysis is stored as queued: the worker's sweeper enqueues it again, so the order is not lost.
    deps.logger.warn(
      { analysisId: analysis.id, err: e instanceof Error ? e.message : String(e) },
      'enqueue failed; the sweeper will pick the analysis up',
    );
  }
  deps.logger.info({ analysisId: analysis.id, source: order.source }, 'analysis queued');
  return { analysis, created };
}
