/**
 * BulkExportJobStore on PostgreSQL (pg), in the service's schema: table bulk_export_jobs with its own migration
 * ledger (bulk_schema_migrations, migrated under an advisory lock). Claims use FOR UPDATE SKIP LOCKED, so
 * API replicas on several hosts share the jobs without ever holding the same one; every write under a lease is
 * a single conditional UPDATE (lease token and state in the WHERE clause).
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { DomainError } from '../../domain/errors.ts';
import type {
  BulkExportJob,
  BulkExportJobStore,
  BulkExportRequest,
  BulkJobCompletion,
  BulkJobLease,
} from '../../domain/ports/bulk-export.port.ts';
import { migrate, openPool, withTransaction, type Migration } from '../postgres/pg-schema.ts';
import { fromRow, type BulkJobRow } from './rows.ts';

export const POSTGRES_BULK_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'bulk_export_jobs',
    sql: `
CREATE TABLE bulk_export_jobs (
  id text PRIMARY KEY,
  owner text NOT NULL,
  request jsonb NOT NULL,
  state text NOT NULL CHECK (state IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
  progress double precision NOT NULL DEFAULT 0,
  attempts integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  started_at timestamptz,
  finished_at timestamptz,
  transaction_time text,
  expires_at bigint,
  lease_owner text,
  lease_token text,
  lease_expires_at bigint,
  output jsonb NOT NULL DEFAULT '[]',
  errors jsonb NOT NULL DEFAULT '[]',
  error jsonb
);
CREATE INDEX bulk_export_jobs_state ON bulk_export_jobs (state, created_at);
CREATE INDEX bulk_export_jobs_owner ON bulk_export_jobs (owner, state);
`,
  },
];

interface PgRow {
  id: string;
  request: BulkExportRequest;
  state: BulkJobRow['state'];
  progress: number;
  attempts: number;
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  transaction_time: string | null;
  expires_at: string | null;
  output: BulkJobRow['output'];
  errors: BulkJobRow['errors'];
  error: BulkJobRow['error'];
}

function toJob(r: PgRow): BulkExportJob {
  return fromRow({
    ...r,
    created_at: r.created_at.toISOString(),
    updated_at: r.updated_at.toISOString(),
    started_at: r.started_at === null ? null : r.started_at.toISOString(),
    finished_at: r.finished_at === null ? null : r.finished_at.toISOString(),
    expires_at: r.expires_at === null ? null : Number(r.expires_at),
  });
}

function unavailable(message: string, cause: unknown): DomainError {
  return new DomainError('BULK.STORE_UNAVAILABLE', message, { issueType: 'transient', cause });
}

export class PostgresBulkJobStore implements BulkExportJobStore {
  readonly #pool: pg.Pool;
  readonly schema: string;

  private constructor(pool: pg.Pool, schema: string) {
    this.#pool = pool;
    this.schema = schema;
  }

  static async open(options: {
    readonly connectionString: string;
    readonly schema?: string;
    readonly maxConnections?: number;
  }): Promise<PostgresBulkJobStore> {
    const schema = options.schema ?? 'mslesion';
    const pool = openPool({
      connectionString: options.connectionString,
      schema,
      maxConnections: options.maxConnections ?? 3,
    });
    const store = new PostgresBulkJobStore(pool, schema);
    try {
      await migrate(pool, {
        schema,
        ledger: 'bulk_schema_migrations',
        lockKey: `mslesion-bulk-migrate:${schema}`,
        migrations: POSTGRES_BULK_MIGRATIONS,
      });
    } catch (e) {
      await pool.end();
      throw unavailable('cannot open the PostgreSQL bulk export store', e);
    }
    return store;
  }

  #tx<T>(work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return withTransaction(this.#pool, work);
  }

  async create(request: BulkExportRequest, now: Date): Promise<BulkExportJob> {
    const r = await this.#pool.query<PgRow>(
      `INSERT INTO bulk_export_jobs (id, owner, request, state, created_at, updated_at)
       VALUES ($1, $2, $3, 'queued', $4, $4) RETURNING *`,
      [randomUUID(), request.owner, JSON.stringify(request), now],
    );
    return toJob(r.rows[0]);
  }

  async get(id: string): Promise<BulkExportJob | undefined> {
    const r = await this.#pool.query<PgRow>('SELECT * FROM bulk_export_jobs WHERE id = $1', [id]);
    return r.rows.length === 0 ? undefined : toJob(r.rows[0]);
  }

  async countActive(owner: string): Promise<number> {
    const r = await this.#pool.query<{ n: string }>(
      "SELECT count(*) AS n FROM bulk_export_jobs WHERE owner = $1 AND state IN ('queued', 'running')",
      [owner],
    );
    return Number(r.rows[0].n);
  }

  claim(request: {
    owner: string;
    leaseMs: number;
    now: Date;
  }): Promise<{ job: BulkExportJob; lease: BulkJobLease } | undefined> {
    const t = request.now.getTime();
    return this.#tx(async (c) => {
      const due = await c.query<{ id: string }>(
        `SELECT id FROM bulk_export_jobs WHERE state = 'queued' OR (state = 'running' AND lease_expires_at < $1)
         ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED`,
        [t],
      );
      if (due.rows.length === 0) return undefined;
      const token = randomUUID();
      const expiresAt = t + request.leaseMs;
      const r = await c.query<PgRow>(
        `UPDATE bulk_export_jobs SET state = 'running', attempts = attempts + 1, progress = 0, started_at = $2,
         updated_at = $2, lease_owner = $3, lease_token = $4, lease_expires_at = $5 WHERE id = $1 RETURNING *`,
        [due.rows[0].id, request.now, request.owner, token, expiresAt],
      );
      return { job: toJob(r.rows[0]), lease: { token, expiresAt } };
    });
  }

  async #leased(sql: string, params: unknown[]): Promise<boolean> {
    const r = await this.#pool.query(sql, params);
    return r.rowCount === 1;
  }

  heartbeat(id: string, token: string, progress: number, leaseMs: number, now: Date): Promise<boolean> {
    return this.#leased(
      `UPDATE bulk_export_jobs SET progress = $3, lease_expires_at = $4, updated_at = $5
       WHERE id = $1 AND lease_token = $2 AND state = 'running'`,
      [id, token, Math.max(0, Math.min(100, progress)), now.getTime() + leaseMs, now],
    );
  }

  complete(id: string, token: string, c: BulkJobCompletion, now: Date): Promise<boolean> {
    return this.#leased(
      `UPDATE bulk_export_jobs SET state = 'completed', progress = 100, transaction_time = $3, output = $4, errors = $5,
       expires_at = $6, finished_at = $7, updated_at = $7, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
       WHERE id = $1 AND lease_token = $2 AND state = 'running'`,
      [
        id,
        token,
        c.transactionTime,
        JSON.stringify(c.output),
        JSON.stringify(c.errors),
        Date.parse(c.expiresAt),
        now,
      ],
    );
  }

  fail(
    id: string,
    token: string,
    error: { code: string; message: string },
    expiresAt: string,
    now: Date,
  ): Promise<boolean> {
    return this.#leased(
      `UPDATE bulk_export_jobs SET state = 'failed', error = $3, expires_at = $4, finished_at = $5, updated_at = $5,
       lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
       WHERE id = $1 AND lease_token = $2 AND state = 'running'`,
      [id, token, JSON.stringify(error), Date.parse(expiresAt), now],
    );
  }

  release(id: string, token: string, now: Date): Promise<boolean> {
    return this.#leased(
      `UPDATE bulk_export_jobs SET state = 'queued', progress = 0, updated_at = $3, lease_owner = NULL,
       lease_token = NULL, lease_expires_at = NULL WHERE id = $1 AND lease_token = $2 AND state = 'running'`,
      [id, token, now],
    );
  }

  cancel(id: string, now: Date): Promise<boolean> {
    return this.#leased(
      `UPDATE bulk_export_jobs SET state = 'cancelled', expires_at = $2, updated_at = $3, lease_owner = NULL,
       lease_token = NULL, lease_expires_at = NULL WHERE id = $1 AND state <> 'cancelled'`,
      [id, now.getTime(), now],
    );
  }

  async expired(now: Date, limit: number): Promise<readonly string[]> {
    const r = await this.#pool.query<{ id: string }>(
      `SELECT id FROM bulk_export_jobs WHERE state = 'cancelled'
       OR (state IN ('completed', 'failed') AND expires_at <= $1) ORDER BY updated_at, id LIMIT $2`,
      [now.getTime(), limit],
    );
    return r.rows.map((x) => x.id);
  }

  async remove(id: string): Promise<void> {
    await this.#pool.query('DELETE FROM bulk_export_jobs WHERE id = $1', [id]);
  }

  async ping(): Promise<void> {
    try {
      await this.#pool.query('SELECT 1');
    } catch (e) {
      throw unavailable('the PostgreSQL bulk export store does not answer', e);
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
