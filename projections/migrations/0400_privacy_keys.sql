-- Crypto-shredding (issue 13): one data key per subject (a tenant, or a data subject
-- named in requests), wrapped by the key-encryption key from settings. Erasure sets
-- wrapped to NULL: the ciphertext in the log can then never be opened again.
CREATE TABLE IF NOT EXISTS privacy_keys (
    key_id       text PRIMARY KEY,
    tenant_id    text        NOT NULL,
    subject_hash text        NOT NULL,  -- sha256 of the subject's name, never the name
    scope        text        NOT NULL CHECK (scope IN ('tenant', 'subject')),
    kek_id       text        NULL,
    wrapped      bytea       NULL,      -- NULL once erased
    created_at   timestamptz NOT NULL DEFAULT now(),
    erased_at    timestamptz NULL,
    erased_by    text        NULL
);
-- At most one live key per subject; after an erasure new data gets a new key.
CREATE UNIQUE INDEX IF NOT EXISTS privacy_keys_live
    ON privacy_keys (tenant_id, subject_hash) WHERE erased_at IS NULL;
CREATE INDEX IF NOT EXISTS privacy_keys_by_subject ON privacy_keys (subject_hash);

-- Which key sealed each run (or control stream): what an erasure must overwrite.
CREATE TABLE IF NOT EXISTS privacy_run_keys (
    run_id    text PRIMARY KEY,
    key_id    text NOT NULL REFERENCES privacy_keys (key_id),
    tenant_id text NOT NULL
);
CREATE INDEX IF NOT EXISTS privacy_run_keys_by_key ON privacy_run_keys (key_id);
