-- audit_recorded v2 carries its place in the tenant's hash chain; keep it for auditors.
ALTER TABLE audit_log
    ADD COLUMN sequence  bigint NOT NULL DEFAULT 0,
    ADD COLUMN prev_hash text   NOT NULL DEFAULT '',
    ADD COLUMN hash      text   NOT NULL DEFAULT '';
CREATE INDEX audit_by_tenant_sequence ON audit_log (tenant_id, sequence);
