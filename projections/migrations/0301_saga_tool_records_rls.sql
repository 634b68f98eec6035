-- saga_tool_records carries tenant_id: put it under the tenant policy of 0201 when that
-- migration is part of this schema (the saga worker applies only 0300-0399 by itself).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'omnihub_apply_tenant_rls') THEN
        PERFORM omnihub_apply_tenant_rls();
    END IF;
END $$;
