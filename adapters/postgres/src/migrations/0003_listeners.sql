-- factum-postgres schema, version 3: what listeners keep, and the commit signal.
--
-- Placeholders, replaced before this runs: {schema} is the quoted schema name,
-- {notify_channel} the name of the store's notification channel (see the crate docs;
-- letters, digits and underscores only).
--
-- Written to be re-runnable (IF NOT EXISTS, OR REPLACE): a schema downgraded by hand to
-- an older version and migrated again keeps its listener data.

-- How far each listener has consumed the log (0: start over).
CREATE TABLE IF NOT EXISTS {schema}.listener_checkpoints (
    listener   text        PRIMARY KEY,
    position   bigint      NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Events a listener gave up on, until they are replayed or dropped.
CREATE TABLE IF NOT EXISTS {schema}.dead_letters (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    listener    text        NOT NULL,
    position    bigint      NOT NULL,
    event_type  text        NOT NULL,
    error       text        NOT NULL,
    attempts    integer     NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- One letter per listener and position: an event failing again replaces it.
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_listener ON {schema}.dead_letters (listener, position);

-- The commit signal: every statement inserting events notifies the store's channel with
-- the highest position it wrote. PostgreSQL delivers notifications when the transaction
-- commits (never for one that rolls back), to the sessions LISTENing then. This covers
-- every write path (append_batch(), the pipelined insert_events(), append_events()).
CREATE OR REPLACE FUNCTION {schema}.notify_appended() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    newest bigint;
BEGIN
    SELECT max(position) INTO newest FROM appended;
    IF newest IS NOT NULL THEN
        PERFORM pg_notify('{notify_channel}', newest::text);
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS events_notify ON {schema}.events;
CREATE TRIGGER events_notify
    AFTER INSERT ON {schema}.events
    REFERENCING NEW TABLE AS appended
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.notify_appended();
