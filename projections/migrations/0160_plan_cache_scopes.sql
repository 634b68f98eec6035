-- Plan cache lookups at 100k entries (issue 14). One HNSW index over every tenant made a
-- tenant's lookup walk hundreds of other tenants' rows (the tenant filter keeps 1 in 20),
-- so entries are now stored once per *scope* that may see them and partitioned by it:
-- scope '*' holds the entries shared with every tenant, any other scope is one tenant
-- (the owner, or a tenant the entry is shared with by name). A lookup reads the scopes
-- (tenant, '*'): two small HNSW indexes instead of one large filtered one. Vectors are
-- halfvec: half the pages to read, and cosine differs from float4 in the 4th decimal.
-- The table is a projection, so the rows are copied as they are; a rebuild gives the same.
ALTER TABLE plan_cache_entries RENAME TO plan_cache_entries_0101;
ALTER INDEX plan_cache_entries_embedding_hnsw RENAME TO plan_cache_entries_0101_hnsw;

CREATE TABLE plan_cache_entries (
    scope           text          NOT NULL,  -- '*' or the tenant that may see this row
    tenant_id       text          NOT NULL,  -- the owner, whose plan it is
    template        text          NOT NULL,
    pattern         text          NOT NULL,
    slot_names      text[]        NOT NULL,
    steps           jsonb         NOT NULL,
    embedding       halfvec(384)  NOT NULL,
    model           text          NOT NULL,
    source_plan_id  text          NOT NULL,
    source_event_id text          NOT NULL,
    planned_at      timestamptz   NOT NULL,
    expires_at      timestamptz   NOT NULL,
    shared_with     text[]        NOT NULL DEFAULT '{}',
    PRIMARY KEY (scope, tenant_id, template, pattern)
) PARTITION BY LIST (scope);

CREATE TABLE plan_cache_entries_everyone PARTITION OF plan_cache_entries FOR VALUES IN ('*');
-- Tenants are not known in advance: they share 32 hash partitions, so a tenant's scan
-- skips only the few tenants hashed beside it.
CREATE TABLE plan_cache_entries_tenants PARTITION OF plan_cache_entries DEFAULT
    PARTITION BY HASH (scope);
DO $$
BEGIN
    FOR i IN 0..31 LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF plan_cache_entries_tenants'
            ' FOR VALUES WITH (MODULUS 32, REMAINDER %s)',
            'plan_cache_entries_t' || lpad(i::text, 2, '0'), i);
    END LOOP;
END $$;

CREATE INDEX plan_cache_entries_embedding_hnsw ON plan_cache_entries
    USING hnsw (embedding halfvec_cosine_ops) WITH (m = 16, ef_construction = 64);
CREATE INDEX plan_cache_entries_owner ON plan_cache_entries (tenant_id, template);
CREATE INDEX plan_cache_entries_expires ON plan_cache_entries (expires_at);

-- The scopes that hold an entry: '*' alone when shared with everyone, else its owner and
-- the tenants it is shared with by name.
CREATE FUNCTION plan_cache_scopes(owner text, shared_with text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE
RETURN CASE WHEN '*' = ANY (shared_with) THEN ARRAY['*']
            ELSE array_append(array_remove(shared_with, owner), owner) END;

INSERT INTO plan_cache_entries
SELECT s.scope, e.tenant_id, e.template, e.pattern, e.slot_names, e.steps,
       e.embedding::halfvec(384), e.model, e.source_plan_id, e.source_event_id,
       e.planned_at, e.expires_at, e.shared_with
FROM plan_cache_entries_0101 e, unnest(plan_cache_scopes(e.tenant_id, e.shared_with)) AS s(scope);
DROP TABLE plan_cache_entries_0101;

-- The nearest visible entries in one round trip: the search settings are the function's
-- own (SET clauses restore them on exit), so no transaction is opened around the query.
-- max_scans bounds the rows a filtered scan reads when fewer than lim match (a tenant
-- with few entries beside a large one): past it the lookup is a miss, not a slow hit.
CREATE FUNCTION plan_cache_nearest(
    probe halfvec, viewer text, goal_slots text[], now_at timestamptz, lim integer,
    ef integer, max_scans integer, exact boolean
) RETURNS TABLE (
    tenant_id text, template text, pattern text, slot_names text[], steps jsonb,
    model text, source_plan_id text, similarity double precision
)
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT
SET hnsw.ef_search = 64
SET hnsw.iterative_scan = strict_order
SET hnsw.max_scan_tuples = 1000
SET enable_indexscan = on
AS $$
BEGIN
    PERFORM set_config('hnsw.ef_search', ef::text, true);
    PERFORM set_config('hnsw.max_scan_tuples', max_scans::text, true);
    IF exact THEN
        PERFORM set_config('enable_indexscan', 'off', true);
    END IF;
    -- One scan per scope, each pruned to its own partition: a single scan of
    -- scope = ANY (viewer, '*') would also read the hash partition '*' falls in.
    RETURN QUERY
    SELECT * FROM (
        (SELECT e.tenant_id, e.template, e.pattern, e.slot_names, e.steps, e.model,
                e.source_plan_id, 1 - (e.embedding <=> probe) AS similarity
         FROM plan_cache_entries e
         WHERE e.scope = viewer AND e.slot_names <@ goal_slots AND e.expires_at > now_at
         ORDER BY e.embedding <=> probe LIMIT lim)
        UNION ALL
        (SELECT e.tenant_id, e.template, e.pattern, e.slot_names, e.steps, e.model,
                e.source_plan_id, 1 - (e.embedding <=> probe) AS similarity
         FROM plan_cache_entries e
         WHERE e.scope = '*' AND e.slot_names <@ goal_slots AND e.expires_at > now_at
         ORDER BY e.embedding <=> probe LIMIT lim)
    ) AS found
    ORDER BY found.similarity DESC
    LIMIT lim;
END $$;
