-- The rest of each audit record's envelope, so a range of a chain can be verified from
-- the read model alone (the hash covers these too). Rows projected before this are
-- NULL here and verify only after `omnihub projections rebuild`.
ALTER TABLE audit_log
    ADD COLUMN run_id         text NULL,
    ADD COLUMN causation_id   text NULL,
    ADD COLUMN correlation_id text NULL;
-- The retention job and the range verification find a chain's checkpoints.
CREATE INDEX audit_checkpoints ON audit_log (tenant_id, sequence)
    WHERE category = 'retention' AND action = 'checkpoint';
