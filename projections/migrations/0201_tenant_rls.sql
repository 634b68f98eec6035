-- Row-level security: a connection sees only the rows of the tenant it declared.
--
-- The API's read queries run as omnihub_reader inside a transaction that first does
-- SET LOCAL ROLE omnihub_reader and set_config('omnihub.tenant_id', <tenant>, true);
-- with no tenant set, current_setting(..., true) is NULL and no row matches.
-- Every table with a tenant_id column gets ENABLE + FORCE RLS, the tenant policy, and
-- an explicit policy letting the owning role (the projectors, which write for every
-- tenant) through; FORCE makes that owner access a named, reviewable policy.
--
-- omnihub_apply_tenant_rls() is idempotent: a later migration that adds a table with a
-- tenant_id column ends with SELECT omnihub_apply_tenant_rls(); and the integration test
-- tests/integration/test_rls.py fails while any tenant table lacks it.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'omnihub_reader') THEN
        CREATE ROLE omnihub_reader NOLOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
    END IF;
    EXECUTE format('GRANT omnihub_reader TO %I', current_user);
END $$;

CREATE OR REPLACE FUNCTION omnihub_apply_tenant_rls() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    t record;
    n integer := 0;
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO omnihub_reader', current_schema());
    FOR t IN
        SELECT c.table_name
        FROM information_schema.columns c
        JOIN information_schema.tables tb
          ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
        WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id'
          AND tb.table_type = 'BASE TABLE'
    LOOP
        EXECUTE format('GRANT SELECT ON %I TO omnihub_reader', t.table_name);
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t.table_name);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t.table_name);
        IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                       AND tablename = t.table_name AND policyname = 'tenant_isolation') THEN
            EXECUTE format(
                'CREATE POLICY tenant_isolation ON %I FOR ALL TO PUBLIC '
                'USING (tenant_id = current_setting(''omnihub.tenant_id'', true)) '
                'WITH CHECK (tenant_id = current_setting(''omnihub.tenant_id'', true))',
                t.table_name);
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                       AND tablename = t.table_name AND policyname = 'owner_all') THEN
            EXECUTE format('CREATE POLICY owner_all ON %I FOR ALL TO %I USING (true) '
                           'WITH CHECK (true)', t.table_name,
                           (SELECT tableowner FROM pg_tables
                            WHERE schemaname = current_schema() AND tablename = t.table_name));
        END IF;
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- Global tables the reader may also see (no tenant rows in them).
GRANT SELECT ON kill_switches TO omnihub_reader;

SELECT omnihub_apply_tenant_rls();
