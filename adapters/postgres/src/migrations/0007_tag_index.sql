-- factum-postgres schema, version 7: each tag's events in position order.
--
-- Placeholders, replaced before this runs: {schema} is the quoted schema name.
--
-- The tags' GIN index answers "which events carry this tag" as an unordered set: a read
-- starting late in a long-lived state's history (the events after its snapshot, an
-- append's check for events after the decision's read) still walks every entry the tag
-- ever had (7 ms to find no event after the snapshot of a state of 100,000 events), and a
-- whole state comes back through a sort, on disk past work_mem. `event_tags` holds one row
-- per (tag, event), keyed in that order: reads start at a position within a tag and
-- stream the tag's events in order (0.05 ms for the same empty tail).
--
-- A statement trigger fills it from every insert into `events`, whichever function or
-- release wrote them: processes of the release before go on appending through their
-- functions during a rolling deploy, and their events are indexed the same. The trigger
-- takes the inserted rows as a transition table, so an append of 1,000 events adds one
-- statement, not 1,000. Events are never updated or deleted (they are the log), so
-- nothing else keeps the two in step; whatever copies `events` with triggers off (a
-- restore with --disable-triggers, logical replication of that table alone) must copy
-- `event_tags` with it. The GIN index stays: the release before reads through it.
--
-- Re-runnable (IF NOT EXISTS, OR REPLACE, ON CONFLICT).

CREATE TABLE IF NOT EXISTS {schema}.event_tags (
    tag      text   NOT NULL,
    position bigint NOT NULL,
    PRIMARY KEY (tag, position)
);

CREATE OR REPLACE FUNCTION {schema}.index_event_tags() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Stores deduplicate an event's tags before they append it; DISTINCT keeps an event
    -- written otherwise (by hand, by a tool) from failing on its repeated tag.
    INSERT INTO {schema}.event_tags (tag, position)
    SELECT DISTINCT t.tag, n.position FROM appended n, unnest(n.tags) AS t(tag);
    RETURN NULL;
END
$$;

-- Created before the backfill, in the same transaction: CREATE TRIGGER's lock on `events`
-- (SHARE ROW EXCLUSIVE) keeps every insert from here to this migration's commit waiting,
-- so the backfill below, a later statement, sees every event that does not go through the
-- trigger. Reads of `events` go on meanwhile (that lock does not block them, where DROP
-- TRIGGER's would, even for a trigger that does not exist: hence the lookup first).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_trigger
                   WHERE tgrelid = '{schema}.events'::regclass
                     AND tgname = 'events_index_tags') THEN
        CREATE TRIGGER events_index_tags AFTER INSERT ON {schema}.events
            REFERENCING NEW TABLE AS appended
            FOR EACH STATEMENT EXECUTE FUNCTION {schema}.index_event_tags();
    END IF;
END
$$;

INSERT INTO {schema}.event_tags (tag, position)
SELECT DISTINCT t.tag, e.position FROM {schema}.events e, unnest(e.tags) AS t(tag)
ON CONFLICT DO NOTHING;
