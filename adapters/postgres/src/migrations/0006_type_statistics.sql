-- factum-postgres schema, version 6: the planner learns how common each type is among a
-- tag's events.
--
-- Placeholders, replaced before this runs: {schema} is the quoted schema name.
--
-- Reads check an item's types as `(type || '') = ANY(...)`, so that the planner never
-- combines a tag's few events with every event of their type through the `(type,
-- position)` index. Without statistics on that expression the planner took it to keep
-- 0.5 % of the rows, so it expected a few hundred rows for a state of 100,000 events and
-- sorted them on disk, where the primary key returns them in order at half the cost.
-- Expression statistics (PostgreSQL 14 and later; older servers keep the estimate)
-- are filled by the next ANALYZE, which autovacuum runs as the table grows.
--
-- Re-runnable (IF NOT EXISTS).

DO $$
BEGIN
    IF current_setting('server_version_num')::integer >= 140000 THEN
        EXECUTE 'CREATE STATISTICS IF NOT EXISTS {schema}.events_type_text '
                'ON ((type || '''')) FROM {schema}.events';
    END IF;
END
$$;
