/**
 * Outbox on PostgreSQL (pg), in the service's schema (own table outbox_messages, own migration ledger
 * outbox_schema_migrations, migrated under an advisory lock). Claims use FOR UPDATE SKIP LOCKED, so
 * dispatchers on several hosts never wait on — or get — each other's messages; enqueue is an upsert on the
 * (analysis, channel) id, settled by the primary key when two writers race.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
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
import { checkEntry, sha256Hex } from '../sqlite/sqlite-outbox.ts';
import { appliedMigrations, migrate, openPool, withTransaction } from '../../postgres/pg-schema.ts';

export const POSTGRES_OUTBOX_MIGRATIONS = [
  {
    version: 1,
    name: 'outbox_messages',
    sql: `
CREATE TABLE outbox_messages (
  id text PRIMARY KEY,
  analysis_id text NOT NULL,
  channel text NOT NULL CHECK (channel IN ('fhir', 'hl7v2')),
  content_type text NOT NULL,
  payload text NOT NULL,
  payload_sha256 text NOT NULL,
  state text NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at bigint NOT NULL,
  lease_owner text,
  lease_token text,
  lease_expires_at bigint,
  last_error text,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  delivered_at timestamptz
);
CREATE INDEX outbox_due ON outbox_messages (state, next_attempt_at);
CREATE INDEX outbox_by_analysis ON outbox_messages (analysis_id);
`,
  },
] as const;

interface Row {
  id: string;
  analysis_id: string;
  channel: OutboxChannel;
  content_type: string;
  payload: string;
  payload_sha256: string;
  state: OutboxState;
  attempts: number;
  next_attempt_at: string;
  lease_token: string | null;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
  delivered_at: Date | null;
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
    nextAttemptAt: new Date(Number(r.next_attempt_at)).toISOString(),
    ...(r.last_error === null ? {} : { lastError: r.last_error }),
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
    ...(r.delivered_at === null ? {} : { deliveredAt: r.delivered_at.toISOString() }),
  };
}

function unavailable(message: string, cause: unknown): DomainError {
  return new DomainError('OUTBOX.UNAVAILABLE', message, { issueType: 'transient', cause });
}

export class PostgresOutbox implements Outbox {
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
  }): Promise<PostgresOutbox> {
    const schema = options.schema ?? 'mslesion';
    const pool = openPool({
      connectionString: options.connectionString,
      schema,
      maxConnections: options.maxConnections ?? 5,
    });
    const outbox = new PostgresOutbox(pool, schema);
    try {
      await migrate(pool, {
        schema,
        ledger: 'outbox_schema_migrations',
        lockKey: `mslesion-outbox-migrate:${schema}`,
        migrations: POSTGRES_OUTBOX_MIGRATIONS,
      });
    } catch (e) {
      await pool.end();
      throw unavailable('cannot open the PostgreSQL outbox', e);
    }
    return outbox;
  }

  appliedMigrations(): Promise<number[]> {
    return appliedMigrations(this.#pool, 'outbox_schema_migrations');
  }

  #tx<T>(work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return withTransaction(this.#pool, work);
  }

  async enqueue(entry: OutboxEntry, now: Date): Promise<EnqueueResult> {
    checkEntry(entry);
    const id = outboxMessageId(entry.analysisId, entry.channel);
    const sha = sha256Hex(entry.payload);
    return this.#tx(async (c) => {
      // Insert; when the id exists, lock that row and decide on it.
      const inserted = await c.query<Row>(
        `INSERT INTO outbox_messages (id, analysis_id, channel, content_type, payload, payload_sha256, state, attempts,
         next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, $8)
         ON CONFLICT (id) DO NOTHING RETURNING *`,
        [id, entry.analysisId, entry.channel, entry.contentType, entry.payload, sha, now.getTime(), now],
      );
      if (inserted.rows.length === 1) return { message: toMessage(inserted.rows[0]), changed: true };
      const existing = (await c.query<Row>('SELECT * FROM outbox_messages WHERE id = $1 FOR UPDATE', [id]))
        .rows[0];
      if (existing.payload_sha256 === sha && existing.state !== 'failed')
        return { message: toMessage(existing), changed: false };
      const r = await c.query<Row>(
        `UPDATE outbox_messages SET content_type = $2, payload = $3, payload_sha256 = $4, state = 'pending', attempts = 0,
         next_attempt_at = $5, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, last_error = NULL,
         delivered_at = NULL, updated_at = $6 WHERE id = $1 RETURNING *`,
        [id, entry.contentType, entry.payload, sha, now.getTime(), now],
      );
      return { message: toMessage(r.rows[0]), changed: true };
    });
  }

  async claimDue(request: ClaimDueRequest): Promise<readonly OutboxLease[]> {
    const channels = request.channels ?? ['fhir', 'hl7v2'];
    if (channels.length === 0 || request.limit <= 0) return [];
    const t = request.now.getTime();
    return this.#tx(async (c) => {
      const due = await c.query<{ id: string }>(
        `SELECT id FROM outbox_messages WHERE state = 'pending' AND next_attempt_at <= $1
         AND (lease_token IS NULL OR lease_expires_at <= $1) AND channel = ANY($2)
         ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED`,
        [t, channels, Math.floor(request.limit)],
      );
      const leases: OutboxLease[] = [];
      for (const { id } of due.rows) {
        const token = randomUUID();
        const expiresAt = t + request.leaseMs;
        const r = await c.query<Row>(
          `UPDATE outbox_messages SET lease_owner = $2, lease_token = $3, lease_expires_at = $4, attempts = attempts + 1,
           updated_at = $5 WHERE id = $1 RETURNING *`,
          [id, request.owner, token, expiresAt, request.now],
        );
        leases.push({ message: toMessage(r.rows[0]), token, expiresAt });
      }
      return leases;
    });
  }

  async markDelivered(id: string, token: string, now: Date): Promise<boolean> {
    const r = await this.#pool.query(
      `UPDATE outbox_messages SET state = 'delivered', delivered_at = $3, updated_at = $3, last_error = NULL,
       lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
       WHERE id = $1 AND lease_token = $2 AND state = 'pending'`,
      [id, token, now],
    );
    return r.rowCount === 1;
  }

  async markFailed(
    id: string,
    token: string,
    error: string,
    retryAt: Date | undefined,
    now: Date,
  ): Promise<boolean> {
    const r = await this.#pool.query(
      `UPDATE outbox_messages SET state = $3, next_attempt_at = $4, last_error = $5, updated_at = $6,
       lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
       WHERE id = $1 AND lease_token = $2 AND state = 'pending'`,
      [
        id,
        token,
        retryAt === undefined ? 'failed' : 'pending',
        (retryAt ?? now).getTime(),
        error.slice(0, 2000),
        now,
      ],
    );
    return r.rowCount === 1;
  }

  async retry(id: string, now: Date): Promise<boolean> {
    const r = await this.#pool.query(
      `UPDATE outbox_messages SET state = 'pending', attempts = 0, next_attempt_at = $2, updated_at = $3
       WHERE id = $1 AND state = 'failed'`,
      [id, now.getTime(), now],
    );
    return r.rowCount === 1;
  }

  async get(id: string): Promise<OutboxMessage | undefined> {
    const r = await this.#pool.query<Row>('SELECT * FROM outbox_messages WHERE id = $1', [id]);
    return r.rows.length === 0 ? undefined : toMessage(r.rows[0]);
  }

  async listByAnalysis(analysisId: string): Promise<readonly OutboxMessage[]> {
    const r = await this.#pool.query<Row>(
      'SELECT * FROM outbox_messages WHERE analysis_id = $1 ORDER BY channel',
      [analysisId],
    );
    return r.rows.map(toMessage);
  }

  async countByState(): Promise<Readonly<Record<OutboxState, number>>> {
    const out: Record<OutboxState, number> = { pending: 0, delivered: 0, failed: 0 };
    const r = await this.#pool.query<{ state: OutboxState; n: string }>(
      'SELECT state, COUNT(*) AS n FROM outbox_messages GROUP BY state',
    );
    for (const row of r.rows) out[row.state] = Number(row.n);
    return out;
  }

  async ping(): Promise<void> {
    try {
      await this.#pool.query('SELECT 1');
    } catch (e) {
      throw unavailable('the PostgreSQL outbox is unreachable', e);
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
