/**
 * The audit wrapper of the API's handlers: every read or write of patient data leaves an audit record (FHIR
 * AuditEvent through the AuditLog port), on success and on failure. An audit failure never hides the answer.
 */
import { isDomainError } from '../domain/errors.ts';
import type { AuditAction, AuditInteraction, AuditLog, AuditRecord } from '../domain/ports/audit-log.port.ts';
import type { ApiRequest, ApiResponse } from './http.ts';

/** What the handler touched; it fills this in as it learns (entities, the patient). */
export interface AuditContext {
  action: AuditAction;
  interaction: AuditInteraction;
  entities: { reference?: string; query?: string }[];
  patient?: { id: string; system?: string };
}

export type Audited = (
  interaction: AuditInteraction,
  action: AuditAction,
  run: (req: ApiRequest, ctx: AuditContext) => Promise<ApiResponse>,
) => (req: ApiRequest) => Promise<ApiResponse>;

/** A wrapper that audits on `log` (none: the handlers run unaudited) as coming through `source`. */
export function auditedBy(
  log: AuditLog | undefined,
  source: AuditRecord['source'],
  now: () => Date = () => new Date(),
): Audited {
  return (interaction, action, run) => async (req) => {
    const ctx: AuditContext = { action, interaction, entities: [] };
    let outcome: AuditRecord['outcome'] = '0';
    let description: string | undefined;
    try {
      return await run(req, ctx);
    } catch (e) {
      outcome = isDomainError(e) && e.issueType !== 'exception' ? '4' : '8';
      description = isDomainError(e) ? e.code : 'INTERNAL.ERROR';
      throw e;
    } finally {
      if (log !== undefined) {
        const record: AuditRecord = {
          recorded: now().toISOString(),
          action: ctx.action,
          interaction: ctx.interaction,
          outcome,
          ...(description === undefined ? {} : { outcomeDescription: description }),
          agent: { who: req.principal?.subject ?? 'anonymous' },
          source,
          entities: ctx.entities,
          ...(ctx.patient === undefined ? {} : { patient: ctx.patient }),
          ...(req.headers['x-request-id'] === undefined ? {} : { requestId: req.headers['x-request-id'] }),
        };
        await log.record(record).catch(() => undefined);
      }
    }
  };
}
