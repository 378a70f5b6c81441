/**
 * BulkExportJobStore on SQLite (better-sqlite3): table bulk_export_jobs with its own migration ledger
 * (bulk_schema_migrations), in the service's database file when composed. Claims, heartbeats and outcomes run
 * in IMMEDIATE transactions, so two runners (threads or processes on one host) never hold one job.
 */
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type {
  BulkExportJob,
  BulkExportJobStore,
  BulkExportRequest,
  BulkJobCompletion,
  BulkJobLease,
} from '../../domain/ports/bulk-export.port.ts';
import { fromRow, type BulkJobRow } from './rows.ts';

export const SQLITE_BULK_MIGRATIONS = [
  {
    version: 1,
    name: 'bulk_export_jobs',
    sql: `
CREATE TABLE bulk_export_jobs (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  request TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
  progress REAL NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  started_at TEXT,
  finished_at TEXT,
  transaction_time TEXT,
  expires_at INTEGER,
  lease_owner TEXT,
  lease_token TEXT,
  lease_expires_at INTEGER,
  output TEXT NOT NULL DEFAULT '[]',
  errors TEXT NOT NULL DEFAULT '[]',
  error TEXT
);
CREATE INDEX bulk_export_jobs_state ON bulk_export_jobs (state, created_at);
CREATE INDEX bulk_export_jobs_owner ON bulk_export_jobs (owner, state);
`,
  },
] as const;

interface SqliteRow {
  id: string;
  owner: string;
  request: string;
  state: BulkJobRow['state'];
  progress: number;
  attempts: number;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  transaction_time: string | null;
  expires_at: number | null;
  output: string;
  errors: string;
  error: string | null;
}

function toRow(r: SqliteRow): BulkJobRow {
  return {
    ...r,
    request: JSON.parse(r.request) as BulkExportRequest,
    output: JSON.parse(r.output) as BulkJobRow['output'],
    errors: JSON.parse(r.errors) as BulkJobRow['errors'],
    error: r.error === null ? null : (JSON.parse(r.error) as BulkJobRow['error']),
    expires_at: r.expires_at,
  };
}

function settle<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
}

export class SqliteBulkJobStore implements BulkExportJobStore {
  readonly #db: Database.Database;

  constructor(options: { readonly path: string; readonly busyTimeoutMs?: number }) {
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    this.#db = new Database(options.path, { timeout: options.busyTimeoutMs ?? 5000 });
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.exec(
      'CREATE TABLE IF NOT EXISTS bulk_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
    );
    this.#db
      .transaction(() => {
        const done = new Set(
          (this.#db.prepare('SELECT version FROM bulk_schema_migrations').all() as { version: number }[]).map(
            (r) => r.version,
          ),
        );
        for (const m of SQLITE_BULK_MIGRATIONS) {
          if (done.has(m.version)) continue;
          this.#db.exec(m.sql);
          this.#db
            .prepare('INSERT INTO bulk_schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
            .run(m.version, m.name, new Date().toISOString());
        }
      })
      .immediate();
  }

  #get(id: string): SqliteRow | undefined {
    return this.#db.prepare('SELECT * FROM bulk_export_jobs WHERE id = ?').get(id) as SqliteRow | undefined;
  }

  create(request: BulkExportRequest, now: Date): Promise<BulkExportJob> {
    return settle(() => {
      const id = randomUUID();
      const iso = now.toISOString();
      this.#db
        .prepare(
          `INSERT INTO bulk_export_jobs (id, owner, request, state, created_at, updated_at)
           VALUES (?, ?, ?, 'queued', ?, ?)`,
        )
        .run(id, request.owner, JSON.stringify(request), iso, iso);
      return fromRow(toRow(this.#get(id)!));
    });
  }

  get(id: string): Promise<BulkExportJob | undefined> {
    return settle(() => {
      const r = this.#get(id);
      return r === undefined ? undefined : fromRow(toRow(r));
    });
  }

  countActive(owner: string): Promise<number> {
    return settle(
      () =>
        (
          this.#db
            .prepare(
              "SELECT count(*) AS n FROM bulk_export_jobs WHERE owner = ? AND state IN ('queued', 'running')",
            )
            .get(owner) as { n: number }
        ).n,
    );
  }

  claim(request: {
    owner: string;
    leaseMs: number;
    now: Date;
  }): Promise<{ job: BulkExportJob; lease: BulkJobLease } | undefined> {
    return settle(() =>
      this.#db
        .transaction(() => {
          const t = request.now.getTime();
          const r = this.#db
            .prepare(
              `SELECT id FROM bulk_export_jobs
               WHERE state = 'queued' OR (state = 'running' AND lease_expires_at < ?)
               ORDER BY created_at, id LIMIT 1`,
            )
            .get(t) as { id: string } | undefined;
          if (r === undefined) return undefined;
          const token = randomUUID();
          const iso = request.now.toISOString();
          const expiresAt = t + request.leaseMs;
          this.#db
            .prepare(
              `UPDATE bulk_export_jobs SET state = 'running', attempts = attempts + 1, progress = 0, started_at = ?,
               updated_at = ?, lease_owner = ?, lease_token = ?, lease_expires_at = ? WHERE id = ?`,
            )
            .run(iso, iso, request.owner, token, expiresAt, r.id);
          return { job: fromRow(toRow(this.#get(r.id)!)), lease: { token, expiresAt } };
        })
        .immediate(),
    );
  }

  #leased(id: string, token: string, sql: string, params: unknown[]): boolean {
    return this.#db
      .transaction(() => {
        const r = this.#db
          .prepare("SELECT lease_token FROM bulk_export_jobs WHERE id = ? AND state = 'running'")
          .get(id) as { lease_token: string | null } | undefined;
        if (r?.lease_token !== token) return false;
        this.#db.prepare(sql).run(...params, id);
        return true;
      })
      .immediate();
  }

  heartbeat(id: string, token: string, progress: number, leaseMs: number, now: Date): Promise<boolean> {
    return settle(() =>
      this.#leased(
        id,
        token,
        'UPDATE bulk_export_jobs SET progress = ?, lease_expires_at = ?, updated_at = ? WHERE id = ?',
        [Math.max(0, Math.min(100, progress)), now.getTime() + leaseMs, now.toISOString()],
      ),
    );
  }

  complete(id: string, token: string, c: BulkJobCompletion, now: Date): Promise<boolean> {
    return settle(() =>
      this.#leased(
        id,
        token,
        `UPDATE bulk_export_jobs SET state = 'completed', progress = 100, transaction_time = ?, output = ?, errors = ?,
         expires_at = ?, finished_at = ?, updated_at = ?, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
         WHERE id = ?`,
        [
          c.transactionTime,
          JSON.stringify(c.output),
          JSON.stringify(c.errors),
          Date.parse(c.expiresAt),
          now.toISOString(),
          now.toISOString(),
        ],
      ),
    );
  }

  fail(
    id: string,
    token: string,
    error: { code: string; message: string },
    expiresAt: string,
    now: Date,
  ): Promise<boolean> {
    return settle(() =>
      this.#leased(
        id,
        token,
        `UPDATE bulk_export_jobs SET state = 'failed', error = ?, expires_at = ?, finished_at = ?, updated_at = ?,
         lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL WHERE id = ?`,
        [JSON.stringify(error), Date.parse(expiresAt), now.toISOString(), now.toISOString()],
      ),
    );
  }

  release(id: string, token: string, now: Date): Promise<boolean> {
    return settle(() =>
      this.#leased(
        id,
        token,
        `UPDATE bulk_export_jobs SET state = 'queued', progress = 0, updated_at = ?, lease_owner = NULL,
         lease_token = NULL, lease_expires_at = NULL WHERE id = ?`,
        [now.toISOString()],
      ),
    );
  }

  cancel(id: string, now: Date): Promise<boolean> {
    return settle(
      () =>
        this.#db
          .prepare(
            `UPDATE bulk_export_jobs SET state = 'cancelled', expires_at = ?, updated_at = ?, lease_owner = NULL,
             lease_token = NULL, lease_expires_at = NULL WHERE id = ? AND state <> 'cancelled'`,
          )
          .run(now.getTime(), now.toISOString(), id).changes === 1,
    );
  }

  expired(now: Date, limit: number): Promise<readonly string[]> {
    return settle(() =>
      (
        this.#db
          .prepare(
            `SELECT id FROM bulk_export_jobs WHERE state = 'cancelled'
             OR (state IN ('completed', 'failed') AND expires_at <= ?) ORDER BY updated_at, id LIMIT ?`,
          )
          .all(now.getTime(), limit) as { id: string }[]
      ).map((r) => r.id),
    );
  }

  remove(id: string): Promise<void> {
    return settle(() => {
      this.#db.prepare('DELETE FROM bulk_export_jobs WHERE id = ?').run(id);
    });
  }

  ping(): Promise<void> {
    return settle(() => {
      this.#db.prepare('SELECT 1').get();
    });
  }

  close(): Promise<void> {
    return settle(() => {
      if (this.#db.open) this.#db.close();
    });
  }
}
