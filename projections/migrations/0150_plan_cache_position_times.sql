-- The plan cache's positions are kept by the one consumer base (streams/positions.py),
-- which records when each partition was last applied and the last event's time.
ALTER TABLE plan_cache_positions
    ADD COLUMN IF NOT EXISTS event_time timestamptz NULL,
    ADD COLUMN IF NOT EXISTS applied_at timestamptz NOT NULL DEFAULT now();
