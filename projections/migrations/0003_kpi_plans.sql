-- Plans made and model calls per tenant per minute, so dashboards see the plan cache's hit
-- rate (cache_hits / plans) and the model calls it saved (cache_hits).
ALTER TABLE kpi_minute
    ADD COLUMN plans       integer NOT NULL DEFAULT 0,
    ADD COLUMN model_calls integer NOT NULL DEFAULT 0;
