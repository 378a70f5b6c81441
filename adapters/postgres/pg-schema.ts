/**
 * What the PostgreSQL adapters share (analysis store, outbox, audit log): a pool whose connections work in the
 * service's schema, transactions, and migrations applied once each under an advisory lock, every adapter with
 * its own ledger table (so each can evolve on its own and several processes may start at the same time).
 */
import pg from 'pg';

/** A lower-case SQL identifier (config.ts checks the setting with the same rule). */
export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export interface PoolOptions {
  /** postgres://user:pass@host:port/db */
  readonly connectionString: string;
  /** Schema holding the tables (created by `migrate` when missing). */
  readonly schema: string;
  readonly maxConnections: number;
}

/** A pool on the schema (search_path). An idle client's error (a server restart) never crashes the process. */
export function openPool(options: PoolOptions): pg.Pool {
  if (!SCHEMA_NAME.test(options.schema)) throw new TypeError(`bad schema name ${options.schema}`);
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.maxConnections,
    options: `-c search_path=${options.schema}`,
    connectionTimeoutMillis: 10_000,
  });
  pool.on('error', () => undefined);
  return pool;
}

/** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
export async function withTransaction<T>(
  pool: pg.Pool,
  work: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const out = await work(c);
    await c.query('COMMIT');
    return out;
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.release();
  }
}

export interface MigrationPlan {
  readonly schema: string;
  /** The ledger table recording applied versions. */
  readonly ledger: string;
  /** Advisory lock key: concurrent starters migrate one after the other. */
  readonly lockKey: string;
  readonly migrations: readonly Migration[];
}

/** Creates the schema and the ledger when missing and applies the pending migrations, in one transaction. */
export async function migrate(pool: pg.Pool, plan: MigrationPlan): Promise<void> {
  if (!SCHEMA_NAME.test(plan.schema)) throw new TypeError(`bad schema name ${plan.schema}`);
  if (!SCHEMA_NAME.test(plan.ledger)) throw new TypeError(`bad ledger name ${plan.ledger}`);
  await withTransaction(pool, async (c) => {
    await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [plan.lockKey]);
    await c.query(`CREATE SCHEMA IF NOT EXISTS ${plan.schema}`);
    await c.query(
      `CREATE TABLE IF NOT EXISTS ${plan.ledger} (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const done = new Set(
      (await c.query<{ version: number }>(`SELECT version FROM ${plan.ledger}`)).rows.map((r) => r.version),
    );
    for (const m of plan.migrations) {
      if (done.has(m.version)) continue;
      await c.query(m.sql);
      await c.query(`INSERT INTO ${plan.ledger} (version, name) VALUES ($1, $2)`, [m.version, m.name]);
    }
  });
}

/** The versions recorded in a ledger, ascending. */
export async function appliedMigrations(pool: pg.Pool, ledger: string): Promise<number[]> {
  if (!SCHEMA_NAME.test(ledger)) throw new TypeError(`bad ledger name ${ledger}`);
  const r = await pool.query<{ version: number }>(`SELECT version FROM ${ledger} ORDER BY version`);
  return r.rows.map((x) => x.version);
}
