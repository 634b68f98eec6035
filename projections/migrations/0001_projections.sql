-- The projections' read models. Every column is derived from events only (never now()),
-- so a rebuild from the log yields byte-identical rows.

-- Where each projector is in each partition; written in the same transaction as its
-- changes, so it is the source of truth for exactly-once application.
CREATE TABLE projector_positions (
    projector   text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    event_time  timestamptz NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projector, topic, partition)
);

CREATE TABLE runs (
    run_id            text PRIMARY KEY,
    tenant_id         text        NOT NULL,
    status            text        NOT NULL,
    goal              text        NULL,
    risk_score        double precision NULL,
    plan_id           text        NULL,
    planner           text        NULL,
    cache_hit         boolean     NOT NULL DEFAULT false,
    cache_similarity  double precision NULL,
    steps_planned     integer     NOT NULL DEFAULT 0,
    steps_started     integer     NOT NULL DEFAULT 0,
    steps_completed   integer     NOT NULL DEFAULT 0,
    steps_failed      integer     NOT NULL DEFAULT 0,
    steps_compensated integer     NOT NULL DEFAULT 0,
    approval_state    text        NULL,
    pending_approvals integer     NOT NULL DEFAULT 0,
    outcome_reason    text        NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    ended_at          timestamptz NULL,
    duration_ms       bigint      NULL,
    event_count       integer     NOT NULL DEFAULT 0,
    last_event_type   text        NOT NULL
);
CREATE INDEX runs_by_time ON runs (created_at DESC, run_id DESC);
CREATE INDEX runs_by_tenant_time ON runs (tenant_id, created_at DESC, run_id DESC);
CREATE INDEX runs_by_status_time ON runs (status, created_at DESC, run_id DESC);

-- The ordered timeline of each run; event_id as key makes a duplicate a no-op.
CREATE TABLE run_events (
    event_id    text PRIMARY KEY,
    run_id      text        NOT NULL,
    tenant_id   text        NOT NULL,
    seq         integer     NOT NULL,
    event_type  text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    actor       text        NOT NULL,
    summary     text        NOT NULL,
    payload     jsonb       NOT NULL,
    UNIQUE (run_id, seq)
);

CREATE TABLE approvals (
    approval_id  text PRIMARY KEY,
    run_id       text        NOT NULL,
    tenant_id    text        NOT NULL,
    step_id      text        NOT NULL,
    tool         text        NOT NULL,
    risk         double precision NOT NULL,
    reasons      jsonb       NOT NULL,
    requested_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    status       text        NOT NULL CHECK (status IN ('pending', 'granted', 'denied', 'expired')),
    decided_by   text        NULL,
    decided_at   timestamptz NULL,
    reason       text        NULL
);
CREATE INDEX approvals_queue ON approvals (tenant_id, status, requested_at);

CREATE TABLE audit_log (
    event_id    text PRIMARY KEY,
    tenant_id   text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    actor       text        NOT NULL,
    category    text        NOT NULL,
    action      text        NOT NULL,
    outcome     text        NOT NULL,
    subject     text        NOT NULL,
    resource    text        NOT NULL,
    details     jsonb       NOT NULL
);
CREATE INDEX audit_by_tenant_time ON audit_log (tenant_id, occurred_at DESC);

-- Counters per tenant per minute of event time.
CREATE TABLE kpi_minute (
    tenant_id     text        NOT NULL,
    minute        timestamptz NOT NULL,
    goals         integer     NOT NULL DEFAULT 0,
    completions   integer     NOT NULL DEFAULT 0,
    failures      integer     NOT NULL DEFAULT 0,
    cancellations integer     NOT NULL DEFAULT 0,
    compensations integer     NOT NULL DEFAULT 0,
    cache_hits    integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, minute)
);

-- One row per finished run, so p50/p95 per minute are exact (and order-independent).
CREATE TABLE kpi_run_durations (
    run_id      text PRIMARY KEY,
    tenant_id   text        NOT NULL,
    minute      timestamptz NOT NULL,
    duration_ms bigint      NOT NULL
);
CREATE INDEX kpi_durations_by_minute ON kpi_run_durations (tenant_id, minute);
