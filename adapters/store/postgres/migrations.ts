/** PostgreSQL schema, as an ordered list of migrations (applied once each under an advisory lock). */
import type { Migration } from '../../postgres/pg-schema.ts';

export type { Migration };

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'analyses',
    sql: `
CREATE TABLE analyses (
  id uuid PRIMARY KEY,
  placer_order_number text UNIQUE,
  patient_id text NOT NULL,
  patient_id_system text,
  study_instance_uid text NOT NULL,
  status text NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
  progress integer NOT NULL DEFAULT 0,
  step text,
  attempts integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  started_at timestamptz,
  finished_at timestamptz,
  lease_owner text,
  lease_token uuid,
  lease_expires_at bigint,
  order_json jsonb NOT NULL,
  error_json jsonb,
  findings_json jsonb,
  result_json jsonb,
  artifacts_json jsonb NOT NULL DEFAULT '[]',
  delivery_json jsonb NOT NULL DEFAULT '[]'
);
CREATE INDEX analyses_by_patient ON analyses (patient_id, created_at DESC, id DESC);
CREATE INDEX analyses_by_status ON analyses (status, updated_at);
CREATE INDEX analyses_by_study ON analyses (study_instance_uid);
`,
  },
];
