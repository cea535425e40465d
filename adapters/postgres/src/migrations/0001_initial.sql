-- factum-postgres schema, version 1.
--
-- Placeholders, replaced before this runs: {schema} is the quoted schema name,
-- {allocate_lock} the advisory lock key (bigint) guarding position allocation.

-- Positions come from this sequence, and only through allocate_positions() below.
CREATE SEQUENCE {schema}.positions AS bigint MINVALUE 1 START 1;

CREATE TABLE {schema}.events (
    position        bigint      PRIMARY KEY,
    -- The writing transaction: reads return only events with tx below the watermark,
    -- the oldest appender still running (see the crate docs for the proof).
    tx              xid8        NOT NULL DEFAULT pg_current_xact_id(),
    type            text        NOT NULL,
    version         integer     NOT NULL,
    -- Tags as '<byte length of key>:<key>:<value>', so that key and value never blur.
    tags            text[]      NOT NULL,
    codec           text        NOT NULL,
    -- The payload of a JSON event; NULL for other codecs.
    payload_json    jsonb,
    -- The payload of a non-JSON event, byte for byte; NULL for JSON.
    payload_bytes   bytea,
    id              uuid        NOT NULL,
    correlation_id  uuid,
    causation_id    uuid,
    idempotency_key text,
    -- When the append's writing statement started (after its lock waits).
    recorded_at     timestamptz NOT NULL DEFAULT statement_timestamp()
);

CREATE INDEX events_type_position ON {schema}.events (type, position);
-- Without the pending list of fastupdate, which every search would scan: a decision's
-- read and its append's check stay fast right after a burst of appends.
CREATE INDEX events_tags ON {schema}.events USING gin (tags) WITH (fastupdate = off);

CREATE TABLE {schema}.idempotency (
    key       text     PRIMARY KEY,
    positions bigint[] NOT NULL
);

CREATE TABLE {schema}.snapshots (
    key      text   PRIMARY KEY,
    query    text   NOT NULL,
    position bigint NOT NULL,
    codec    text   NOT NULL,
    payload  bytea  NOT NULL
);

-- Takes transaction-scoped advisory locks on `keys` in the order given (the caller
-- sorts them, so that no two appends wait on each other in a cycle): exclusive where
-- `exclusive` says so, shared otherwise.
CREATE FUNCTION {schema}.lock_keys(keys bigint[], exclusive boolean[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(cardinality(keys), 0) LOOP
        IF exclusive[i] THEN
            PERFORM pg_advisory_xact_lock(keys[i]);
        ELSE
            PERFORM pg_advisory_xact_lock_shared(keys[i]);
        END IF;
    END LOOP;
END
$$;

-- Allocates `n` consecutive positions and returns the first.
--
-- The critical section, under a session-level advisory lock released before this
-- returns, assigns the transaction its id (pg_current_xact_id() does if it has none)
-- and then draws the positions: so among appenders, transaction id order equals
-- position order. The caller must not have written anything before (that would have
-- assigned the id earlier). On any error, including a cancel, the lock is released
-- before the error goes on; a lost connection releases it with the session.
CREATE FUNCTION {schema}.allocate_positions(n integer) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    first bigint;
BEGIN
    IF n IS NULL OR n < 1 THEN
        RAISE EXCEPTION 'allocate_positions: n must be at least 1, got %', n;
    END IF;
    BEGIN
        PERFORM pg_advisory_lock({allocate_lock});
        PERFORM pg_current_xact_id();
        first := nextval('{schema}.positions');
        IF n > 1 THEN
            -- Nobody else draws from the sequence while the lock is held.
            PERFORM setval('{schema}.positions', first + n - 1);
        END IF;
        PERFORM pg_advisory_unlock({allocate_lock});
    EXCEPTION WHEN OTHERS OR QUERY_CANCELED THEN
        PERFORM pg_advisory_unlock({allocate_lock});
        RAISE;
    END;
    RETURN first;
END
$$;

-- Inserts events at the given positions and records idempotency keys: key i names the
-- key_counts[i] positions from key_firsts[i]. Returns how many keys were recorded (a key
-- recorded before is left alone, so fewer means a duplicate).
CREATE FUNCTION {schema}.insert_events(
    positions bigint[],
    types text[],
    versions integer[],
    tag_starts integer[],
    tag_counts integer[],
    tags text[],
    codecs text[],
    json_payloads text[],
    byte_payloads bytea[],
    ids uuid[],
    correlation_ids uuid[],
    causation_ids uuid[],
    idempotency_keys text[],
    keys text[],
    key_firsts bigint[],
    key_counts integer[]
) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    recorded integer;
BEGIN
    INSERT INTO {schema}.events (position, type, version, tags, codec, payload_json,
                                 payload_bytes, id, correlation_id, causation_id,
                                 idempotency_key)
    SELECT e.position, e.type, e.version, tags[e.tag_start : e.tag_start + e.tag_count - 1],
           e.codec, e.json_payload::jsonb, e.byte_payload, e.id, e.correlation_id,
           e.causation_id, e.idempotency_key
    FROM unnest(positions, types, versions, tag_starts, tag_counts, codecs, json_payloads,
                byte_payloads, ids, correlation_ids, causation_ids, idempotency_keys)
         AS e(position, type, version, tag_start, tag_count, codec, json_payload,
              byte_payload, id, correlation_id, causation_id, idempotency_key);
    INSERT INTO {schema}.idempotency (key, positions)
    SELECT k.key, ARRAY(SELECT generate_series(k.first, k.first + k.count - 1))
    FROM unnest(keys, key_firsts, key_counts) AS k(key, first, count)
    ON CONFLICT (key) DO NOTHING;
    GET DIAGNOSTICS recorded = ROW_COUNT;
    RETURN recorded;
END
$$;

-- One conditional append's write: allocates positions for the events, inserts them, and
-- records `keys` as naming all of them. Returns the first position and how many keys
-- were recorded.
CREATE FUNCTION {schema}.append_events(
    types text[],
    versions integer[],
    tag_starts integer[],
    tag_counts integer[],
    tags text[],
    codecs text[],
    json_payloads text[],
    byte_payloads bytea[],
    ids uuid[],
    correlation_ids uuid[],
    causation_ids uuid[],
    idempotency_keys text[],
    keys text[],
    OUT first_position bigint,
    OUT recorded integer
)
LANGUAGE plpgsql AS $$
DECLARE
    n integer := cardinality(types);
    k integer := coalesce(cardinality(keys), 0);
BEGIN
    first_position := {schema}.allocate_positions(n);
    recorded := {schema}.insert_events(
        ARRAY(SELECT generate_series(first_position, first_position + n - 1)),
        types, versions, tag_starts, tag_counts, tags, codecs, json_payloads,
        byte_payloads, ids, correlation_ids, causation_ids, idempotency_keys,
        keys, array_fill(first_position, ARRAY[k]), array_fill(n, ARRAY[k]));
END
$$;
