/**
 * The audit trail on SQLite: one row per AuditRecord, holding the record and its FHIR AuditEvent; the service's
 * database file when composed (own table, own migration ledger audit_schema_migrations). Append-only.
 */
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { AuditLog, AuditQuery, AuditRecord } from '../../domain/ports/audit-log.port.ts';
import { toAuditEvent } from './audit-event.ts';

const MIGRATIONS = [
  {
    version: 1,
    name: 'audit_events',
    sql: `
CREATE TABLE audit_events (
  id TEXT PRIMARY KEY,
  recorded TEXT NOT NULL,
  patient_id TEXT,
  record_json TEXT NOT NULL,
  audit_event_json TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit_events (recorded DESC);
CREATE INDEX audit_by_patient ON audit_events (patient_id, recorded DESC);
`,
  },
] as const;

function settle<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
}

export class SqliteAuditLog implements AuditLog {
  readonly #db: Database.Database;

  constructor(options: { readonly path: string; readonly busyTimeoutMs?: number }) {
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    this.#db = new Database(options.path, { timeout: options.busyTimeoutMs ?? 5000 });
    this.#db.pragma('journal_mode = WAL');
    this.#db.exec(
      'CREATE TABLE IF NOT EXISTS audit_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
    );
    this.#db
      .transaction(() => {
        const done = new Set(
          (
            this.#db.prepare('SELECT version FROM audit_schema_migrations').all() as { version: number }[]
          ).map((r) => r.version),
        );
        for (const m of MIGRATIONS) {
          if (done.has(m.version)) continue;
          this.#db.exec(m.sql);
          this.#db
            .prepare('INSERT INTO audit_schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
            .run(m.version, m.name, new Date().toISOString());
        }
      })
      .immediate();
  }

  record(record: AuditRecord): Promise<void> {
    return settle(() => {
      const id = randomUUID();
      this.#db
        .prepare(
          'INSERT INTO audit_events (id, recorded, patient_id, record_json, audit_event_json) VALUES (?, ?, ?, ?, ?)',
        )
        .run(
          id,
          record.recorded,
          record.patient?.id ?? null,
          JSON.stringify(record),
          JSON.stringify(toAuditEvent(record, id)),
        );
    });
  }

  list(query: AuditQuery): Promise<readonly AuditRecord[]> {
    return settle(() => {
      const where: string[] = [];
      const args: (string | number)[] = [];
      if (query.patientId !== undefined) {
        where.push('patient_id = ?');
        args.push(query.patientId);
      }
      if (query.since !== undefined) {
        where.push('recorded >= ?');
        args.push(query.since);
      }
      const sql = `SELECT record_json FROM audit_events ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY recorded DESC, rowid DESC LIMIT ?`;
      return (
        this.#db.prepare(sql).all(...args, Math.max(1, Math.min(10_000, query.limit))) as {
          record_json: string;
        }[]
      ).map((r) => JSON.parse(r.record_json) as AuditRecord);
    });
  }

  /** The stored FHIR AuditEvents, newest first (for export and tests). */
  auditEvents(limit = 100): Promise<readonly unknown[]> {
    return settle(() =>
      (
        this.#db
          .prepare('SELECT audit_event_json FROM audit_events ORDER BY recorded DESC, rowid DESC LIMIT ?')
          .all(limit) as {
          audit_event_json: string;
        }[]
      ).map((r) => JSON.parse(r.audit_event_json) as unknown),
    );
  }

  close(): Promise<void> {
    return settle(() => {
      if (this.#db.open) this.#db.close();
    });
  }
}
