-- saga_tool_records carries tenant_id: put it under the tenant policy of 0201 when that
-- migration is part of this schema (the saga worker applies only 0300-0399 by itself).
-- to_regprocedure resolves through the search_path, so a function of the same name in
-- another schema (another deployment's, a test's) is not mistaken for this one's.
DO $$
BEGIN
    IF to_regprocedure('omnihub_apply_tenant_rls()') IS NOT NULL THEN
        PERFORM omnihub_apply_tenant_rls();
    END IF;
END $$;
