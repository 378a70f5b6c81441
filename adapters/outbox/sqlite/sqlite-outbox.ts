/**
 * Outbox on SQLite (better-sqlite3). Shares the service's database file when composed (its own tables and its
 * own migration ledger, outbox_schema_migrations, so it never collides with the store's). WAL + busy timeout
 * like the store; every read-modify-write runs in an IMMEDIATE transaction, so two dispatchers (threads or
 * processes) can never claim the same message.
 */
import Database from 'better-sqlite3';
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DomainError } from '../../../domain/errors.ts';
import {
  outboxMessageId,
  type ClaimDueRequest,
  type EnqueueResult,
  type Outbox,
  type OutboxChannel,
  type OutboxEntry,
  type OutboxLease,
  type OutboxMessage,
  type OutboxState,
} from '../../../domain/ports/outbox.port.ts';

export interface OutboxMigration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const SQLITE_OUTBOX_MIGRATIONS: readonly OutboxMigration[] = [
  {
    version: 1,
    name: 'outbox_messages',
    sql: `
CREATE TABLE outbox_messages (
  id TEXT PRIMARY KEY,
  analysis_id TEXT NOT NULL,
  channel TEXT NOT NULL CHECK (channel IN ('fhir', 'hl7v2')),
  content_type TEXT NOT NULL,
  payload TEXT NOT NULL,
  payload_sha256 TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  lease_owner TEXT,
  lease_token TEXT,
  lease_expires_at INTEGER,
  last_error TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  delivered_at TEXT
);
CREATE INDEX outbox_due ON outbox_messages (state, next_attempt_at);
CREATE INDEX outbox_by_analysis ON outbox_messages (analysis_id);
`,
  },
];

interface Row {
  id: string;
  analysis_id: string;
  channel: OutboxChannel;
  content_type: string;
  payload: string;
  payload_sha256: string;
  state: OutboxState;
  attempts: number;
  next_attempt_at: number;
  lease_owner: string | null;
  lease_token: string | null;
  lease_expires_at: number | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
  delivered_at: string | null;
}

function toMessage(r: Row): OutboxMessage {
  return {
    id: r.id,
    analysisId: r.analysis_id,
    channel: r.channel,
    contentType: r.content_type,
    payload: r.payload,
    payloadSha256: r.payload_sha256,
    state: r.state,
    attempts: r.attempts,
    nextAttemptAt: new Date(r.next_attempt_at).toISOString(),
    ...(r.last_error === null ? {} : { lastError: r.last_error }),
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    ...(r.delivered_at === null ? {} : { deliveredAt: r.delivered_at }),
  };
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function settle<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (e) {
    return Promise.reject(e instanceof Error ? e : new Error(String(e)));
  }
}

export function checkEntry(entry: OutboxEntry): void {
  const channel: string = entry.channel;
  if (channel !== 'fhir' && channel !== 'hl7v2')
    throw new DomainError('OUTBOX.BAD_CHANNEL', `unknown outbox channel ${channel}`, {
      issueType: 'value',
    });
  if (entry.payload.length === 0)
    throw new DomainError('OUTBOX.EMPTY_PAYLOAD', 'an outbox payload must not be empty', {
      issueType: 'value',
    });
}

export interface SqliteOutboxOptions {
  /** Database file (the service's store file when composed) or ':memory:'. */
  readonly path: string;
  readonly busyTimeoutMs?: number;
}

export class SqliteOutbox implements Outbox {
  readonly #db: Database.Database;

  constructor(options: SqliteOutboxOptions) {
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    this.#db = new Database(options.path, { timeout: options.busyTimeoutMs ?? 5000 });
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#migrate();
  }

  #migrate(): void {
    this.#db.exec(
      'CREATE TABLE IF NOT EXISTS outbox_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
    );
    this.#db
      .transaction(() => {
        const done = new Set(
          (
            this.#db.prepare('SELECT version FROM outbox_schema_migrations').all() as { version: number }[]
          ).map((r) => r.version),
        );
        for (const m of SQLITE_OUTBOX_MIGRATIONS) {
          if (done.has(m.version)) continue;
          this.#db.exec(m.sql);
          this.#db
            .prepare('INSERT INTO outbox_schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
            .run(m.version, m.name, new Date().toISOString());
        }
      })
      .immediate();
  }

  appliedMigrations(): number[] {
    return (
      this.#db.prepare('SELECT version FROM outbox_schema_migrations ORDER BY version').all() as {
        version: number;
      }[]
    ).map((r) => r.version);
  }

  #row(id: string): Row | undefined {
    return this.#db.prepare('SELECT * FROM outbox_messages WHERE id = ?').get(id) as Row | undefined;
  }

  enqueue(entry: OutboxEntry, now: Date): Promise<EnqueueResult> {
    return settle(() => {
      checkEntry(entry);
      const id = outboxMessageId(entry.analysisId, entry.channel);
      const sha = sha256Hex(entry.payload);
      const iso = now.toISOString();
      return this.#db
        .transaction((): EnqueueResult => {
          const existing = this.#row(id);
          if (existing === undefined) {
            this.#db
              .prepare(
                `INSERT INTO outbox_messages (id, analysis_id, channel, content_type, payload, payload_sha256, state,
                 attempts, next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)`,
              )
              .run(
                id,
                entry.analysisId,
                entry.channel,
                entry.contentType,
                entry.payload,
                sha,
                now.getTime(),
                iso,
                iso,
              );
            return { message: toMessage(this.#row(id)!), changed: true };
          }
          if (existing.payload_sha256 === sha && existing.state !== 'failed')
            return { message: toMessage(existing), changed: false };
          // New content (or a failed message queued again): due now, lease voided, attempts restart.
          this.#db
            .prepare(
              `UPDATE outbox_messages SET content_type = ?, payload = ?, payload_sha256 = ?, state = 'pending',
               attempts = 0, next_attempt_at = ?, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL,
               last_error = NULL, delivered_at = NULL, updated_at = ? WHERE id = ?`,
            )
            .run(entry.contentType, entry.payload, sha, now.getTime(), iso, id);
          return { message: toMessage(this.#row(id)!), changed: true };
        })
        .immediate();
    });
  }

  claimDue(request: ClaimDueRequest): Promise<readonly OutboxLease[]> {
    return settle(() => {
      const t = request.now.getTime();
      const channels = request.channels ?? ['fhir', 'hl7v2'];
      if (channels.length === 0 || request.limit <= 0) return [];
      const marks = channels.map(() => '?').join(', ');
      return this.#db
        .transaction((): OutboxLease[] => {
          const rows = this.#db
            .prepare(
              `SELECT * FROM outbox_messages WHERE state = 'pending' AND next_attempt_at <= ?
               AND (lease_token IS NULL OR lease_expires_at <= ?) AND channel IN (${marks})
               ORDER BY next_attempt_at, id LIMIT ?`,
            )
            .all(t, t, ...channels, Math.floor(request.limit)) as Row[];
          const leases: OutboxLease[] = [];
          const update = this.#db.prepare(
            `UPDATE outbox_messages SET lease_owner = ?, lease_token = ?, lease_expires_at = ?,
             attempts = attempts + 1, updated_at = ? WHERE id = ?`,
          );
          for (const r of rows) {
            const token = randomUUID();
            const expiresAt = t + request.leaseMs;
            update.run(request.owner, token, expiresAt, request.now.toISOString(), r.id);
            leases.push({ message: toMessage(this.#row(r.id)!), token, expiresAt });
          }
          return leases;
        })
        .immediate();
    });
  }

  markDelivered(id: string, token: string, now: Date): Promise<boolean> {
    return settle(
      () =>
        this.#db
          .prepare(
            `UPDATE outbox_messages SET state = 'delivered', delivered_at = ?, updated_at = ?, last_error = NULL,
             lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
             WHERE id = ? AND lease_token = ? AND state = 'pending'`,
          )
          .run(now.toISOString(), now.toISOString(), id, token).changes === 1,
    );
  }

  markFailed(
    id: string,
    token: string,
    error: string,
    retryAt: Date | undefined,
    now: Date,
  ): Promise<boolean> {
    return settle(
      () =>
        this.#db
          .prepare(
            `UPDATE outbox_messages SET state = ?, next_attempt_at = ?, last_error = ?, updated_at = ?,
             lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
             WHERE id = ? AND lease_token = ? AND state = 'pending'`,
          )
          .run(
            retryAt === undefined ? 'failed' : 'pending',
            (retryAt ?? now).getTime(),
            error.slice(0, 2000),
            now.toISOString(),
            id,
            token,
          ).changes === 1,
    );
  }

  retry(id: string, now: Date): Promise<boolean> {
    return settle(
      () =>
        this.#db
          .prepare(
            `UPDATE outbox_messages SET state = 'pending', attempts = 0, next_attempt_at = ?, updated_at = ?
             WHERE id = ? AND state = 'failed'`,
          )
          .run(now.getTime(), now.toISOString(), id).changes === 1,
    );
  }

  get(id: string): Promise<OutboxMessage | undefined> {
    return settle(() => {
      const r = this.#row(id);
      return r === undefined ? undefined : toMessage(r);
    });
  }

  listByAnalysis(analysisId: string): Promise<readonly OutboxMessage[]> {
    return settle(() =>
      (
        this.#db
          .prepare('SELECT * FROM outbox_messages WHERE analysis_id = ? ORDER BY channel')
          .all(analysisId) as Row[]
      ).map(toMessage),
    );
  }

  countByState(): Promise<Readonly<Record<OutboxState, number>>> {
    return settle(() => {
      const out: Record<OutboxState, number> = { pending: 0, delivered: 0, failed: 0 };
      for (const r of this.#db
        .prepare('SELECT state, COUNT(*) AS n FROM outbox_messages GROUP BY state')
        .all() as {
        state: OutboxState;
        n: number;
      }[])
        out[r.state] = r.n;
      return out;
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
