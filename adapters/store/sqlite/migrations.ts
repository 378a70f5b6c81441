/** SQLite schema, as an ordered list of migrations (applied once each, recorded in schema_migrations). */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'analyses',
    sql: `
CREATE TABLE analyses (
  id TEXT PRIMARY KEY,
  placer_order_number TEXT UNIQUE,
  patient_id TEXT NOT NULL,
  patient_id_system TEXT,
  study_instance_uid TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
  progress INTEGER NOT NULL DEFAULT 0,
  step TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  started_at TEXT,
  finished_at TEXT,
  lease_owner TEXT,
  lease_token TEXT,
  lease_expires_at INTEGER,
  order_json TEXT NOT NULL,
  error_json TEXT,
  findings_json TEXT,
  result_json TEXT,
  artifacts_json TEXT NOT NULL DEFAULT '[]',
  delivery_json TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX analyses_by_patient ON analyses (patient_id, created_at DESC, id DESC);
CREATE INDEX analyses_by_status ON analyses (status, updated_at);
CREATE INDEX analyses_by_study ON analyses (study_instance_uid);
`,
  },
];
