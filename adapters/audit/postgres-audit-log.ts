/**
 * The audit trail on PostgreSQL (deployments whose analysis store is PostgreSQL): one row per AuditRecord with
 * its FHIR AuditEvent, in the service's schema (own ledger audit_schema_migrations). Append-only; several
 * processes (API nodes, workers) write to it at once.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { DomainError } from '../../domain/errors.ts';
import type { AuditLog, AuditQuery, AuditRecord } from '../../domain/ports/audit-log.port.ts';
import { migrate, openPool, type Migration } from '../postgres/pg-schema.ts';
import { toAuditEvent } from './audit-event.ts';

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'audit_events',
    sql: `
CREATE TABLE audit_events (
  seq bigserial PRIMARY KEY,
  id uuid NOT NULL UNIQUE,
  recorded timestamptz NOT NULL,
  patient_id text,
  record_json jsonb NOT NULL,
  audit_event_json jsonb NOT NULL
);
CREATE INDEX audit_by_time ON audit_events (recorded DESC, seq DESC);
CREATE INDEX audit_by_patient ON audit_events (patient_id, recorded DESC, seq DESC);
`,
  },
];

function unavailable(message: string, cause: unknown): DomainError {
  return new DomainError('AUDIT.UNAVAILABLE', message, { issueType: 'transient', cause });
}

export class PostgresAuditLog implements AuditLog {
  readonly #pool: pg.Pool;

  private constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  static async open(options: {
    readonly connectionString: string;
    readonly schema?: string;
    readonly maxConnections?: number;
  }): Promise<PostgresAuditLog> {
    const schema = options.schema ?? 'mslesion';
    const pool = openPool({
      connectionString: options.connectionString,
      schema,
      maxConnections: options.maxConnections ?? 3,
    });
    try {
      await migrate(pool, {
        schema,
        ledger: 'audit_schema_migrations',
        lockKey: `mslesion-audit-migrate:${schema}`,
        migrations: MIGRATIONS,
      });
    } catch (e) {
      await pool.end();
      throw unavailable('cannot open the PostgreSQL audit log', e);
    }
    return new PostgresAuditLog(pool);
  }

  async record(record: AuditRecord): Promise<void> {
    const id = randomUUID();
    try {
      await this.#pool.query(
        'INSERT INTO audit_events (id, recorded, patient_id, record_json, audit_event_json) VALUES ($1, $2, $3, $4, $5)',
        [
          id,
          record.recorded,
          record.patient?.id ?? null,
          JSON.stringify(record),
          JSON.stringify(toAuditEvent(record, id)),
        ],
      );
    } catch (e) {
      throw unavailable('cannot write the audit record', e);
    }
  }

  async list(query: AuditQuery): Promise<readonly AuditRecord[]> {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (query.patientId !== undefined) {
      args.push(query.patientId);
      where.push(`patient_id = $${String(args.length)}`);
    }
    if (query.since !== undefined) {
      args.push(query.since);
      where.push(`recorded >= $${String(args.length)}`);
    }
    args.push(Math.max(1, Math.min(10_000, query.limit)));
    const r = await this.#pool.query<{ record_json: AuditRecord }>(
      `SELECT record_json FROM audit_events ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY recorded DESC, seq DESC LIMIT $${String(args.length)}`,
      args,
    );
    return r.rows.map((x) => x.record_json);
  }

  /** The stored FHIR AuditEvents, newest first (for export and tests). */
  async auditEvents(limit = 100): Promise<readonly unknown[]> {
    const r = await this.#pool.query<{ audit_event_json: unknown }>(
      'SELECT audit_event_json FROM audit_events ORDER BY recorded DESC, seq DESC LIMIT $1',
      [limit],
    );
    return r.rows.map((x) => x.audit_event_json);
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
