-- Gateway read models: API keys (what authentication reads), kill switches, and the
-- audit chainer's per-tenant head. Folded from control-topic events only.

CREATE TABLE api_keys (
    key_id         text PRIMARY KEY,
    tenant_id      text        NOT NULL,
    prefix         text        NOT NULL UNIQUE,
    key_hash       text        NOT NULL,  -- hex HMAC-SHA-256(server secret, key); never the key
    scopes         text[]      NOT NULL,
    name           text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    created_by     text        NOT NULL,
    expires_at     timestamptz NULL,
    revoked_at     timestamptz NULL,
    revoked_reason text        NULL,
    rotated_to     text        NULL,
    updated_at     timestamptz NOT NULL
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at, key_id);

-- Platform-wide: a kill switch stops a feature for every tenant, so no tenant_id.
CREATE TABLE kill_switches (
    feature           text PRIMARY KEY,
    enabled           boolean     NOT NULL,
    reason            text        NOT NULL,
    changed_by        text        NOT NULL,
    changed_by_tenant text        NOT NULL,
    changed_at        timestamptz NOT NULL,
    event_id          text        NOT NULL
);

-- Where each tenant's audit chain ends; the chainer locks this row to be the single
-- writer of a tenant's chain, whichever process or partition the fact came from.
CREATE TABLE audit_chain_heads (
    tenant_id  text PRIMARY KEY,
    sequence   bigint      NOT NULL,
    hash       text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Which source facts are chained already, so a re-delivered fact is never chained twice.
CREATE TABLE audit_chain_sources (
    source_event_id text PRIMARY KEY,
    tenant_id       text   NOT NULL,
    sequence        bigint NOT NULL
);
