/**
 * AnalysisStore on PostgreSQL (pg): for several API and worker processes on several hosts. Claims and requeues
 * lock rows with FOR UPDATE SKIP LOCKED (a claimer never waits on another), updates read the row FOR UPDATE
 * and write it back in one transaction, and the placer-order-number unique index settles racing orders.
 * All tables live in one schema (default `mslesion`), migrated at start under an advisory lock.
 */
import pg from 'pg';
import { randomUUID } from 'node:crypto';
import type {
  AnalysisPage,
  AnalysisPatch,
  AnalysisQuery,
  AnalysisStore,
  Claim,
  ClaimRequest,
  CreateResult,
  RequeueRequest,
  UndeliveredQuery,
  UpdateGuard,
} from '../../../domain/ports/analysis-store.port.ts';
import type { Analysis, AnalysisOrder, AnalysisStatus } from '../../../domain/model/analysis.ts';
import {
  applyPatch,
  leaseLost,
  newRow,
  notFound,
  STATUSES,
  storeUnavailable,
  toAnalysis,
  type AnalysisRow,
} from '../shared.ts';
import { POSTGRES_MIGRATIONS } from './migrations.ts';
import { appliedMigrations, migrate, openPool, withTransaction } from '../../postgres/pg-schema.ts';

interface DbRow {
  id: string;
  status: AnalysisStatus;
  progress: number;
  step: string | null;
  attempts: number;
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  lease_owner: string | null;
  lease_token: string | null;
  lease_expires_at: string | null;
  order_json: AnalysisOrder;
  error_json: AnalysisRow['error'];
  findings_json: AnalysisRow['findings'];
  result_json: AnalysisRow['result'];
  artifacts_json: AnalysisRow['artifacts'];
  delivery_json: AnalysisRow['delivery'];
}

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

function fromDb(r: DbRow): AnalysisRow {
  return {
    id: r.id,
    status: r.status,
    progress: r.progress,
    step: r.step,
    attempts: r.attempts,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    startedAt: iso(r.started_at),
    finishedAt: iso(r.finished_at),
    order: r.order_json,
    error: r.error_json,
    findings: r.findings_json,
    result: r.result_json,
    artifacts: r.artifacts_json,
    delivery: r.delivery_json,
  };
}

const json = (v: unknown): string | null => (v === null ? null : JSON.stringify(v));

export interface PostgresStoreOptions {
  /** postgres://user:pass@host:port/db */
  readonly connectionString: string;
  /** Schema holding the tables (created when missing). */
  readonly schema?: string;
  readonly maxConnections?: number;
}

export class PostgresAnalysisStore implements AnalysisStore {
  readonly #pool: pg.Pool;
  readonly schema: string;

  private constructor(pool: pg.Pool, schema: string) {
    this.#pool = pool;
    this.schema = schema;
  }

  /** Connects, creates the schema when missing and applies pending migrations. */
  static async open(options: PostgresStoreOptions): Promise<PostgresAnalysisStore> {
    const schema = options.schema ?? 'mslesion';
    const pool = openPool({
      connectionString: options.connectionString,
      schema,
      maxConnections: options.maxConnections ?? 10,
    });
    const store = new PostgresAnalysisStore(pool, schema);
    try {
      await migrate(pool, {
        schema,
        ledger: 'schema_migrations',
        lockKey: `mslesion-migrate:${schema}`,
        migrations: POSTGRES_MIGRATIONS,
      });
    } catch (e) {
      await pool.end();
      throw storeUnavailable('cannot open the PostgreSQL store', e);
    }
    return store;
  }

  appliedMigrations(): Promise<number[]> {
    return appliedMigrations(this.#pool, 'schema_migrations');
  }

  #tx<T>(work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return withTransaction(this.#pool, work);
  }

  async #write(
    c: pg.PoolClient,
    row: AnalysisRow,
    lease: { owner: string | null; token: string | null; expiresAt: number | null },
  ): Promise<void> {
    await c.query(
      `UPDATE analyses SET status = $2, progress = $3, step = $4, attempts = $5, updated_at = $6, started_at = $7,
         finished_at = $8, lease_owner = $9, lease_token = $10, lease_expires_at = $11, error_json = $12,
         findings_json = $13, result_json = $14, artifacts_json = $15, delivery_json = $16
       WHERE id = $1`,
      [
        row.id,
        row.status,
        row.progress,
        row.step,
        row.attempts,
        row.updatedAt,
        row.startedAt,
        row.finishedAt,
        lease.owner,
        lease.token,
        lease.expiresAt,
        json(row.error),
        json(row.findings),
        json(row.result),
        JSON.stringify(row.artifacts),
        JSON.stringify(row.delivery),
      ],
    );
  }

  async create(order: AnalysisOrder, now: Date): Promise<CreateResult> {
    const row = newRow(randomUUID(), order, now);
    const inserted = await this.#pool.query(
      `INSERT INTO analyses (id, placer_order_number, patient_id, patient_id_system, study_instance_uid, status,
         progress, attempts, created_at, updated_at, order_json)
       VALUES ($1, $2, $3, $4, $5, 'queued', 0, 0, $6, $6, $7)
       ON CONFLICT (placer_order_number) DO NOTHING`,
      [
        row.id,
        order.placerOrderNumber ?? null,
        order.patientId,
        order.patientIdSystem ?? null,
        order.studyInstanceUid,
        row.createdAt,
        JSON.stringify(row.order),
      ],
    );
    if (inserted.rowCount === 1) return { analysis: toAnalysis(row), created: true };
    const existing = await this.findByPlacerOrderNumber(order.placerOrderNumber ?? '');
    if (existing === undefined) throw new Error('placer order number conflict without a row');
    return { analysis: existing, created: false };
  }

  async get(id: string): Promise<Analysis | undefined> {
    const r = await this.#pool.query<DbRow>('SELECT * FROM analyses WHERE id::text = $1', [id]);
    return r.rows.length === 0 ? undefined : toAnalysis(fromDb(r.rows[0]));
  }

  async findByPlacerOrderNumber(placerOrderNumber: string): Promise<Analysis | undefined> {
    const r = await this.#pool.query<DbRow>('SELECT * FROM analyses WHERE placer_order_number = $1', [
      placerOrderNumber,
    ]);
    return r.rows.length === 0 ? undefined : toAnalysis(fromDb(r.rows[0]));
  }

  async list(query: AnalysisQuery): Promise<AnalysisPage> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    const add = (sql: string, v: string): void => {
      params.push(v);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (query.patientId !== undefined) {
      add('patient_id = ?', query.patientId);
      if (query.patientIdSystem !== undefined) add('patient_id_system = ?', query.patientIdSystem);
    }
    if (query.status !== undefined) add('status = ?', query.status);
    if (query.studyInstanceUid !== undefined) add('study_instance_uid = ?', query.studyInstanceUid);
    const cond = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const r = await this.#pool.query<DbRow & { total: string }>(
      `SELECT *, COUNT(*) OVER () AS total FROM analyses ${cond}
       ORDER BY created_at DESC, id DESC LIMIT $${params.length + 1} OFFSET $${params.length + 2}`,
      [...params, query.limit, query.offset],
    );
    let total = r.rows.length > 0 ? Number(r.rows[0].total) : 0;
    if (r.rows.length === 0 && query.offset > 0) {
      const c = await this.#pool.query<{ n: string }>(`SELECT COUNT(*) AS n FROM analyses ${cond}`, params);
      total = Number(c.rows[0].n);
    }
    return { items: r.rows.map((x) => toAnalysis(fromDb(x))), total };
  }

  async listUndelivered(query: UndeliveredQuery): Promise<readonly string[]> {
    if (query.channels.length === 0) return [];
    const missing = query.channels
      .map((_, n) => `NOT delivery_json @> jsonb_build_array(jsonb_build_object('channel', $${n + 3}::text))`)
      .join(' OR ');
    const r = await this.#pool.query<{ id: string }>(
      `SELECT id::text AS id FROM analyses
       WHERE status = 'succeeded' AND finished_at >= $1 AND finished_at <= $2 AND (${missing})
       ORDER BY finished_at, id LIMIT $${query.channels.length + 3}`,
      [query.finishedAfter, query.finishedBefore, ...query.channels, Math.max(1, query.limit)],
    );
    return r.rows.map((x) => x.id);
  }

  async update(id: string, patch: AnalysisPatch, now: Date, guard: UpdateGuard = {}): Promise<Analysis> {
    return this.#tx(async (c) => {
      const r = await c.query<DbRow>('SELECT * FROM analyses WHERE id::text = $1 FOR UPDATE', [id]);
      if (r.rows.length === 0) throw notFound(id);
      const cur = r.rows[0];
      if (guard.leaseToken !== undefined && cur.lease_token !== guard.leaseToken) throw leaseLost(id);
      const next = applyPatch(fromDb(cur), patch, now);
      await this.#write(
        c,
        next,
        guard.releaseLease === true
          ? { owner: null, token: null, expiresAt: null }
          : {
              owner: cur.lease_owner,
              token: cur.lease_token,
              expiresAt: cur.lease_expires_at === null ? null : Number(cur.lease_expires_at),
            },
      );
      return toAnalysis(next);
    });
  }

  async claim(id: string, request: ClaimRequest): Promise<Claim | undefined> {
    const nowMs = request.now.getTime();
    const lease = { token: randomUUID(), owner: request.owner, expiresAt: nowMs + request.leaseMs };
    const r = await this.#pool.query<DbRow>(
      `UPDATE analyses SET status = 'running', attempts = attempts + 1, lease_owner = $2, lease_token = $3,
         lease_expires_at = $4, started_at = COALESCE(started_at, $5), finished_at = NULL, updated_at = $5
       WHERE id = (SELECT id FROM analyses WHERE id::text = $1
                   AND (status = 'queued' OR (status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < $6)))
                   FOR UPDATE SKIP LOCKED)
       RETURNING *`,
      [id, lease.owner, lease.token, lease.expiresAt, request.now.toISOString(), nowMs],
    );
    if (r.rows.length === 0) return undefined;
    return { analysis: toAnalysis(fromDb(r.rows[0])), lease };
  }

  async renewLease(id: string, token: string, leaseMs: number, now: Date): Promise<boolean> {
    const r = await this.#pool.query(
      `UPDATE analyses SET lease_expires_at = $3 WHERE id::text = $1 AND lease_token::text = $2 AND status = 'running'`,
      [id, token, now.getTime() + leaseMs],
    );
    return r.rowCount === 1;
  }

  async requeueStale(request: RequeueRequest): Promise<readonly string[]> {
    const stale = await this.#pool.query<{ id: string }>(
      `UPDATE analyses SET status = 'queued', step = 'requeued: lease expired', updated_at = $1,
         lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
       WHERE id IN (SELECT id FROM analyses WHERE status = 'running'
                    AND (lease_expires_at IS NULL OR lease_expires_at < $2)
                    ORDER BY created_at LIMIT $3 FOR UPDATE SKIP LOCKED)
       RETURNING id`,
      [request.now.toISOString(), request.now.getTime(), request.limit],
    );
    const ids = stale.rows.map((x) => x.id);
    const lost = await this.#pool.query<{ id: string }>(
      `SELECT id FROM analyses WHERE status = 'queued' AND updated_at < $1 ORDER BY created_at LIMIT $2`,
      [request.queuedBefore.toISOString(), Math.max(0, request.limit - ids.length)],
    );
    for (const x of lost.rows) if (!ids.includes(x.id)) ids.push(x.id);
    return ids;
  }

  async countByStatus(): Promise<Readonly<Record<AnalysisStatus, number>>> {
    const counts = Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<AnalysisStatus, number>;
    const r = await this.#pool.query<{ status: AnalysisStatus; n: string }>(
      'SELECT status, COUNT(*) AS n FROM analyses GROUP BY status',
    );
    for (const x of r.rows) counts[x.status] = Number(x.n);
    return counts;
  }

  async ping(): Promise<void> {
    await this.#pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
