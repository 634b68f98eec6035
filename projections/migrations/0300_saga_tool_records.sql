-- Records written by the saga tool pg_record: one row per (run, step), keyed by the
-- step's idempotency key so a retried activity never writes twice.
CREATE TABLE IF NOT EXISTS saga_tool_records (
    idempotency_key text PRIMARY KEY,
    run_id text NOT NULL,
    tenant_id text NOT NULL,
    step_id text NOT NULL,
    collection text NOT NULL,
    record jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    compensated_at timestamptz
);
CREATE INDEX IF NOT EXISTS saga_tool_records_run ON saga_tool_records (run_id);
