-- Semantic plan cache (issue 5): a projection of plan_generated, plan_cache_invalidated
-- and plan_template_shared, rebuildable from the log. One row per (tenant, template).
CREATE EXTENSION IF NOT EXISTS vector SCHEMA public;

CREATE TABLE plan_cache_entries (
    tenant_id       text        NOT NULL,
    template        text        NOT NULL,
    slot_names      text[]      NOT NULL,  -- sorted typed slots: a hit needs the same ones
    steps           jsonb       NOT NULL,  -- arguments refer to slots as {{NAME}}
    embedding       vector(384) NOT NULL,  -- all-MiniLM-L6-v2 of the template, unit length
    model           text        NOT NULL,
    source_plan_id  text        NOT NULL,
    source_event_id text        NOT NULL,
    planned_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    shared_with     text[]      NOT NULL DEFAULT '{}',  -- tenant ids, or '*' for all
    PRIMARY KEY (tenant_id, template)
);

-- Approximate nearest neighbours by cosine distance; tenant, slots and expiry filter
-- the scan (pgvector 0.8 iterative scans keep filtered queries complete).
CREATE INDEX plan_cache_entries_embedding_hnsw ON plan_cache_entries
    USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
CREATE INDEX plan_cache_entries_expires_at ON plan_cache_entries (expires_at);

-- Latest sharing decision per template, kept apart so a re-learned plan keeps it.
CREATE TABLE plan_cache_shares (
    tenant_id   text        NOT NULL,
    template    text        NOT NULL,
    shared_with text[]      NOT NULL,
    shared_at   timestamptz NOT NULL,
    event_id    text        NOT NULL,
    PRIMARY KEY (tenant_id, template)
);

-- Invalidation watermarks: plans generated at or before them are never served.
-- template '' stands for the whole tenant.
CREATE TABLE plan_cache_invalidations (
    tenant_id      text        NOT NULL,
    template       text        NOT NULL,
    invalidated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, template)
);

-- The projector's position, written in the same transaction as each change.
CREATE TABLE plan_cache_positions (
    projector   text    NOT NULL,
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint  NOT NULL,
    PRIMARY KEY (projector, topic, partition)
);
