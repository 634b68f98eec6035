-- The tenant projection: the facts domain/entitlements.py folds into a tenant's
-- effective tier. Only facts are stored; the tier is evaluated when read, so an expiry
-- takes effect at its time without an event.

CREATE TABLE tenant_subscriptions (
    tenant_id  text PRIMARY KEY,
    tier       text        NOT NULL,
    expires_at timestamptz NULL,       -- NULL: no end
    reason     text        NOT NULL DEFAULT '',
    changed_by text        NOT NULL,
    changed_at timestamptz NOT NULL,
    event_id   text        NOT NULL
);

CREATE TABLE tenant_wallets (
    tenant_id text        NOT NULL,
    address   text        NOT NULL,  -- lower-case
    linked_at timestamptz NOT NULL,
    event_id  text        NOT NULL,
    PRIMARY KEY (tenant_id, address)
);
CREATE INDEX tenant_wallets_by_address ON tenant_wallets (address);

-- Platform-wide (the chain belongs to no tenant): each token's latest state.
CREATE TABLE membership_tokens (
    token_key  text PRIMARY KEY,       -- <chain_id>:<contract>:<token_id>
    chain_id   bigint      NOT NULL,
    contract   text        NOT NULL,  -- lower-case
    token_id   text        NOT NULL,
    holder     text        NOT NULL,  -- lower-case; '' once revoked
    tier       text        NOT NULL,
    expires_at timestamptz NOT NULL,
    event_id   text        NOT NULL,
    changed_at timestamptz NOT NULL
);
CREATE INDEX membership_tokens_by_holder ON membership_tokens (holder);

GRANT SELECT ON membership_tokens TO omnihub_reader;

SELECT omnihub_apply_tenant_rls();
