-- Trusted devices (issue 10): what device-signed requests are checked against. Folded
-- from device_registered / device_revoked on the control topic by the gateway.
CREATE TABLE IF NOT EXISTS trusted_devices (
    device_id      text PRIMARY KEY,
    tenant_id      text        NOT NULL,
    name           text        NOT NULL,
    public_key     text        NOT NULL,  -- Ed25519, 32 bytes base64url
    scopes         text[]      NOT NULL,
    first_seen_at  timestamptz NOT NULL,
    registered_at  timestamptz NOT NULL,
    registered_by  text        NOT NULL,
    revoked_at     timestamptz NULL,
    revoked_reason text        NULL
);
CREATE INDEX IF NOT EXISTS trusted_devices_by_tenant
    ON trusted_devices (tenant_id, registered_at, device_id);

SELECT omnihub_apply_tenant_rls();
