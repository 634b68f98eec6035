-- The chain watcher's stored state, one row per contract on a chain: the block it follows
-- next, the hashes of the blocks in its reorg window and the token states (JSON, see
-- domain/membership_watch.py). Written after each append, so a restart resumes here.
-- Platform-wide (memberships belong to no tenant), so no tenant_id and no RLS.
CREATE TABLE IF NOT EXISTS chain_watcher_state (
    watcher     text PRIMARY KEY,  -- <chain id>:<contract>
    next_block  bigint      NOT NULL,
    state       jsonb       NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
