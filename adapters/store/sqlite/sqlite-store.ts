/**
 * AnalysisStore on SQLite (better-sqlite3): the embedded default. WAL journal so readers never block the
 * writer, a busy timeout so several processes can share one file, and every read-modify-write in an
 * IMMEDIATE transaction (the write lock is taken up front, so two claimers cannot both win).
 */
import Database from 'better-sqlite3';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
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
  toAnalysis,
  type AnalysisRow,
} from '../shared.ts';
import { SQLITE_MIGRATIONS } from './migrations.ts';

interface DbRow {
  id: string;
  status: AnalysisStatus;
  progress: number;
  step: string | null;
  attempts: number;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  lease_owner: string | null;
  lease_token: string | null;
  lease_expires_at: number | null;
  order_json: string;
  error_json: string | null;
  findings_json: string | null;
  result_json: string | null;
  artifacts_json: string;
  delivery_json: string;
}

function parse(json: string | null): unknown {
  return json === null ? null : JSON.parse(json);
}

function fromDb(r: DbRow): AnalysisRow {
  return {
    id: r.id,
    status: r.status,
    progress: r.progress,
    step: r.step,
    attempts: r.attempts,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    order: JSON.parse(r.order_json) as AnalysisOrder,
    error: parse(r.error_json) as AnalysisRow['error'],
    findings: parse(r.findings_json) as AnalysisRow['findings'],
    result: parse(r.result_json) as AnalysisRow['result'],
    artifacts: JSON.parse(r.artifacts_json) as AnalysisRow['artifacts'],
    delivery: JSON.parse(r.delivery_json) as AnalysisRow['delivery'],
  };
}

function json(v: unknown): string | null {
  return v === null ? null : JSON.stringify(v);
}

export interface SqliteStoreOptions {
  /** File path, or ':memory:' for a private in-memory database. */
  readonly path: string;
  /** How long a writer waits for another process's lock (default 5000 ms). */
  readonly busyTimeoutMs?: number;
}

/** Runs synchronous database work, turning a throw into a rejected promise. */
function settle<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
}

export class SqliteAnalysisStore implements AnalysisStore {
  readonly #db: Database.Database;

  constructor(options: SqliteStoreOptions) {
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    this.#db = new Database(options.path, { timeout: options.busyTimeoutMs ?? 5000 });
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.pragma('foreign_keys = ON');
    this.#migrate();
  }

  #migrate(): void {
    this.#db.exec(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
    );
    const apply = this.#db.transaction(() => {
      const done = new Set(
        (this.#db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map(
          (r) => r.version,
        ),
      );
      for (const m of SQLITE_MIGRATIONS) {
        if (done.has(m.version)) continue;
        this.#db.exec(m.sql);
        this.#db
          .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
          .run(m.version, m.name, new Date().toISOString());
      }
    });
    apply.immediate();
  }

  /** Versions of the applied migrations (for tests and diagnostics). */
  appliedMigrations(): number[] {
    return (
      this.#db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as {
        version: number;
      }[]
    ).map((r) => r.version);
  }

  #row(id: string): DbRow | undefined {
    return this.#db.prepare('SELECT * FROM analyses WHERE id = ?').get(id) as DbRow | undefined;
  }

  #write(
    row: AnalysisRow,
    lease: { owner: string | null; token: string | null; expiresAt: number | null },
  ): void {
    this.#db
      .prepare(
        `UPDATE analyses SET status = @status, progress = @progress, step = @step, attempts = @attempts,
           updated_at = @updatedAt, started_at = @startedAt, finished_at = @finishedAt,
           lease_owner = @leaseOwner, lease_token = @leaseToken, lease_expires_at = @leaseExpiresAt,
           error_json = @error, findings_json = @findings, result_json = @result,
           artifacts_json = @artifacts, delivery_json = @delivery
         WHERE id = @id`,
      )
      .run({
        id: row.id,
        status: row.status,
        progress: row.progress,
        step: row.step,
        attempts: row.attempts,
        updatedAt: row.updatedAt,
        startedAt: row.startedAt,
        finishedAt: row.finishedAt,
        leaseOwner: lease.owner,
        leaseToken: lease.token,
        leaseExpiresAt: lease.expiresAt,
        error: json(row.error),
        findings: json(row.findings),
        result: json(row.result),
        artifacts: JSON.stringify(row.artifacts),
        delivery: JSON.stringify(row.delivery),
      });
  }

  create(order: AnalysisOrder, now: Date): Promise<CreateResult> {
    const row = newRow(randomUUID(), order, now);
    const tx = this.#db.transaction((): CreateResult => {
      const inserted = this.#db
        .prepare(
          `INSERT INTO analyses (id, placer_order_number, patient_id, patient_id_system, study_instance_uid, status,
             progress, attempts, created_at, updated_at, order_json)
           VALUES (?, ?, ?, ?, ?, 'queued', 0, 0, ?, ?, ?)
           ON CONFLICT (placer_order_number) DO NOTHING`,
        )
        .run(
          row.id,
          order.placerOrderNumber ?? null,
          order.patientId,
          order.patientIdSystem ?? null,
          order.studyInstanceUid,
          row.createdAt,
          row.updatedAt,
          JSON.stringify(row.order),
        );
      if (inserted.changes === 1) return { analysis: toAnalysis(row), created: true };
      const existing = this.#db
        .prepare('SELECT * FROM analyses WHERE placer_order_number = ?')
        .get(order.placerOrderNumber ?? null) as DbRow;
      return { analysis: toAnalysis(fromDb(existing)), created: false };
    });
    return settle(() => tx.immediate());
  }

  get(id: string): Promise<Analysis | undefined> {
    return settle(() => {
      const r = this.#row(id);
      return r === undefined ? undefined : toAnalysis(fromDb(r));
    });
  }

  findByPlacerOrderNumber(placerOrderNumber: string): Promise<Analysis | undefined> {
    return settle(() => {
      const r = this.#db
        .prepare('SELECT * FROM analyses WHERE placer_order_number = ?')
        .get(placerOrderNumber) as DbRow | undefined;
      return r === undefined ? undefined : toAnalysis(fromDb(r));
    });
  }

  list(query: AnalysisQuery): Promise<AnalysisPage> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (query.patientId !== undefined) {
      where.push('patient_id = ?');
      params.push(query.patientId);
      if (query.patientIdSystem !== undefined) {
        where.push('patient_id_system = ?');
        params.push(query.patientIdSystem);
      }
    }
    if (query.status !== undefined) {
      where.push('status = ?');
      params.push(query.status);
    }
    if (query.studyInstanceUid !== undefined) {
      where.push('study_instance_uid = ?');
      params.push(query.studyInstanceUid);
    }
    const cond = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const read = this.#db.transaction((): AnalysisPage => {
      const total = (
        this.#db.prepare(`SELECT COUNT(*) AS n FROM analyses ${cond}`).get(...params) as { n: number }
      ).n;
      const rows = this.#db
        .prepare(`SELECT * FROM analyses ${cond} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`)
        .all(...params, query.limit, query.offset) as DbRow[];
      return { items: rows.map((r) => toAnalysis(fromDb(r))), total };
    });
    return settle(() => read.deferred());
  }

  listUndelivered(query: UndeliveredQuery): Promise<readonly string[]> {
    return settle(() => {
      if (query.channels.length === 0) return [];
      const missing = query.channels
        .map(
          () =>
            "NOT EXISTS (SELECT 1 FROM json_each(delivery_json) WHERE json_extract(json_each.value, '$.channel') = ?)",
        )
        .join(' OR ');
      const rows = this.#db
        .prepare(
          `SELECT id FROM analyses
           WHERE status = 'succeeded' AND finished_at >= ? AND finished_at <= ? AND (${missing})
           ORDER BY finished_at, id LIMIT ?`,
        )
        .all(
          query.finishedAfter.toISOString(),
          query.finishedBefore.toISOString(),
          ...query.channels,
          Math.max(1, query.limit),
        ) as { id: string }[];
      return rows.map((r) => r.id);
    });
  }

  update(id: string, patch: AnalysisPatch, now: Date, guard: UpdateGuard = {}): Promise<Analysis> {
    const tx = this.#db.transaction((): Analysis => {
      const r = this.#row(id);
      if (r === undefined) throw notFound(id);
      if (guard.leaseToken !== undefined && r.lease_token !== guard.leaseToken) throw leaseLost(id);
      const next = applyPatch(fromDb(r), patch, now);
      this.#write(
        next,
        guard.releaseLease === true
          ? { owner: null, token: null, expiresAt: null }
          : { owner: r.lease_owner, token: r.lease_token, expiresAt: r.lease_expires_at },
      );
      return toAnalysis(next);
    });
    return settle(() => tx.immediate());
  }

  claim(id: string, request: ClaimRequest): Promise<Claim | undefined> {
    const tx = this.#db.transaction((): Claim | undefined => {
      const r = this.#row(id);
      if (r === undefined) return undefined;
      const nowMs = request.now.getTime();
      const claimable =
        r.status === 'queued' ||
        (r.status === 'running' && (r.lease_expires_at === null || r.lease_expires_at < nowMs));
      if (!claimable) return undefined;
      const lease = { token: randomUUID(), owner: request.owner, expiresAt: nowMs + request.leaseMs };
      const current = fromDb(r);
      const next: AnalysisRow = {
        ...current,
        status: 'running',
        attempts: current.attempts + 1,
        startedAt: current.startedAt ?? request.now.toISOString(),
        finishedAt: null,
        updatedAt: request.now.toISOString(),
      };
      this.#write(next, lease);
      return { analysis: toAnalysis(next), lease };
    });
    return settle(() => tx.immediate());
  }

  renewLease(id: string, token: string, leaseMs: number, now: Date): Promise<boolean> {
    return settle(
      () =>
        this.#db
          .prepare(
            "UPDATE analyses SET lease_expires_at = ? WHERE id = ? AND lease_token = ? AND status = 'running'",
          )
          .run(now.getTime() + leaseMs, id, token).changes === 1,
    );
  }

  requeueStale(request: RequeueRequest): Promise<readonly string[]> {
    const tx = this.#db.transaction((): string[] => {
      const nowMs = request.now.getTime();
      const stale = (
        this.#db
          .prepare(
            `UPDATE analyses SET status = 'queued', step = 'requeued: lease expired', updated_at = ?,
               lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
             WHERE id IN (SELECT id FROM analyses WHERE status = 'running'
                          AND (lease_expires_at IS NULL OR lease_expires_at < ?) ORDER BY created_at LIMIT ?)
             RETURNING id`,
          )
          .all(request.now.toISOString(), nowMs, request.limit) as { id: string }[]
      ).map((x) => x.id);
      const lost = (
        this.#db
          .prepare(
            `SELECT id FROM analyses WHERE status = 'queued' AND updated_at < ? ORDER BY created_at LIMIT ?`,
          )
          .all(request.queuedBefore.toISOString(), Math.max(0, request.limit - stale.length)) as {
          id: string;
        }[]
      ).map((x) => x.id);
      return [...stale, ...lost.filter((x) => !stale.includes(x))];
    });
    return settle(() => tx.immediate());
  }

  countByStatus(): Promise<Readonly<Record<AnalysisStatus, number>>> {
    return settle(() => {
      const counts = Object.fromEntries(STATUSES.map((s) => [s, 0])) as Record<AnalysisStatus, number>;
      for (const r of this.#db
        .prepare('SELECT status, COUNT(*) AS n FROM analyses GROUP BY status')
        .all() as {
        status: AnalysisStatus;
        n: number;
      }[])
        counts[r.status] = r.n;
      return counts;
    });
  }

  ping(): Promise<void> {
    return settle(() => {
      this.#db.prepare('SELECT 1').get();
    });
  }

  close(): Promise<void> {
    if (this.#db.open) this.#db.close();
    return Promise.resolve();
  }
}
