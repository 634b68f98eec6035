-- Plan cache patterns (issue 14): a plan that does not take one of its goal's slots is
-- stored with that slot written back as its value, so one template can hold several
-- entries (one per written-back value). The template stays what is embedded and what
-- invalidations and shares name; the pattern is what a new goal must agree with.
ALTER TABLE plan_cache_entries ADD COLUMN pattern text;
UPDATE plan_cache_entries SET pattern = template WHERE pattern IS NULL;
ALTER TABLE plan_cache_entries ALTER COLUMN pattern SET NOT NULL;
ALTER TABLE plan_cache_entries DROP CONSTRAINT plan_cache_entries_pkey;
ALTER TABLE plan_cache_entries ADD PRIMARY KEY (tenant_id, template, pattern);
