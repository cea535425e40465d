-- factum-postgres schema, version 5: the commit signal leaves the commit path.
--
-- Placeholders, replaced before this runs: {schema} is the quoted schema name.
--
-- Version 3's statement trigger made every appending transaction NOTIFY, and a
-- transaction that has notified holds PostgreSQL's one notification lock per database
-- (`Lock:object` on `pg_database` 0) from its commit's start to its end, WAL flush
-- included: appending commits then flushed one at a time. From this version on the
-- process that appended notifies the same channel itself, after its commit, in a
-- transaction of its own, coalesced (see the crate's `notifier` module).
--
-- A rolling deploy: listeners of the release before still LISTEN on the same channel and
-- parse the same payload (a position), so the new release's appends still wake them;
-- appends of the release before no longer notify anyone once this ran, and listeners of
-- either release find them by their subscription's poll. A notification was always only
-- a hint: the reads go through the watermark.
--
-- Re-runnable (IF EXISTS), like versions 3 and 4.

DROP TRIGGER IF EXISTS events_notify ON {schema}.events;
DROP FUNCTION IF EXISTS {schema}.notify_appended();
