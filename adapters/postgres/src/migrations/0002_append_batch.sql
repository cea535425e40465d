-- factum-postgres schema, version 2: conditional appends in one call.
--
-- Placeholders, replaced before this runs: {schema} is the quoted schema name.
--
-- append_batch() does what an append (or a batch of them) used to do in several
-- statements, each a round trip: take the locks, check each request's idempotency keys and
-- condition, allocate positions, insert. The functions of version 1 stay: lock_keys(),
-- allocate_positions() (still the one place positions are drawn) and insert_events() serve
-- the large batches, which the client pipelines instead (cheaper per request than this
-- function's dynamic checks); append_events() is unused.

-- Appends a batch of requests in the calling transaction, in order, and returns one row
-- per request (`request`, from 0): `status` 0 accepted (`first_position` the first of
-- its consecutive positions), 1 dependency (`dependency`: which entry of its builds_on,
-- from 0, failed or is not earlier), 2 empty, 3 unstorable (both as the client said in
-- `req_states`), 4 duplicate (`duplicate_key`, `duplicate_positions`), 5 conflict
-- (`first_position` the conflicting event's, `conflict_type` its type).
--
-- 1. Takes the advisory locks `lock_ids` (ascending; exclusive where `lock_exclusive`
--    says so) with lock_keys().
-- 2. If `upfront`, allocates `total` positions at once (the batch's order); otherwise at
--    the first accepted request (a single append's order: after its checks). Requests
--    draw their positions from there in order, by `req_counts`, whether they are
--    accepted or not (a failed one leaves a gap), except those refused before (dependency,
--    empty, unstorable). Nothing writes before the allocation, so the transaction's id is
--    assigned in allocate_positions() (see the crate docs).
-- 3. For each request, in order: its builds_on (`deps[dep_starts[r] ..]`, request indexes
--    from 0) must all be accepted earlier requests; then its idempotency keys
--    (`keys[key_starts[r] ..]`) must be new, in the table (where the accepted requests
--    before it recorded theirs) — the first recorded one in byte order is the duplicate;
--    then its condition: `checks[r]`, a statement returning the first conflicting
--    `(position, type)`, run with $1 = `check_afters[r]`, $2 = `check_params`, $3 = the
--    positions of the requests it builds on (exempt). Each is a fresh statement (this
--    function is volatile), so in READ COMMITTED it sees every commit before it, and the
--    events this batch inserted already.
-- 4. Inserts an accepted request's events (`req_firsts[r]` is its first in the event
--    arrays) and records its keys, naming all its positions. A key recorded meanwhile
--    (impossible under the keys' exclusive locks) raises SQLSTATE FX001: nothing of the
--    transaction may commit.
CREATE FUNCTION {schema}.append_batch(
    lock_ids bigint[],
    lock_exclusive boolean[],
    upfront boolean,
    total integer,
    req_counts integer[],
    req_states integer[],
    req_firsts integer[],
    dep_starts integer[],
    dep_counts integer[],
    deps integer[],
    key_starts integer[],
    key_counts integer[],
    keys text[],
    checks text[],
    check_afters bigint[],
    check_params text[],
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
    idempotency_keys text[]
) RETURNS TABLE (
    request integer,
    status integer,
    first_position bigint,
    conflict_type text,
    duplicate_key text,
    duplicate_positions bigint[],
    dependency integer
)
LANGUAGE plpgsql AS $$
DECLARE
    n_requests integer := coalesce(cardinality(req_counts), 0);
    base bigint;
    handed bigint := 0;
    offset_r bigint;
    accepted boolean[] := array_fill(false, ARRAY[n_requests]);
    firsts bigint[] := array_fill(NULL::bigint, ARRAY[n_requests]);
    exempt bigint[];
    earlier integer;
    own_keys text[];
    found_key text;
    found_positions bigint[];
    found_type text;
    found_position bigint;
    e1 integer;
    e2 integer;
    recorded integer;
BEGIN
    PERFORM {schema}.lock_keys(lock_ids, lock_exclusive);
    IF upfront THEN
        base := {schema}.allocate_positions(total);
    END IF;
    FOR r IN 1 .. n_requests LOOP
        request := r - 1;
        status := NULL;
        first_position := NULL;
        conflict_type := NULL;
        duplicate_key := NULL;
        duplicate_positions := NULL;
        dependency := NULL;

        exempt := '{}';
        FOR d IN 0 .. dep_counts[r] - 1 LOOP
            earlier := deps[dep_starts[r] + d];
            IF earlier >= r - 1 OR NOT accepted[earlier + 1] THEN
                dependency := d;
                EXIT;
            END IF;
            exempt := exempt || ARRAY(SELECT generate_series(
                firsts[earlier + 1], firsts[earlier + 1] + req_counts[earlier + 1] - 1));
        END LOOP;
        IF dependency IS NOT NULL THEN
            status := 1;
            RETURN NEXT;
            CONTINUE;
        END IF;
        IF req_states[r] <> 0 THEN
            status := req_states[r];
            RETURN NEXT;
            CONTINUE;
        END IF;
        offset_r := handed;
        handed := handed + req_counts[r];

        IF key_counts[r] > 0 THEN
            own_keys := keys[key_starts[r] : key_starts[r] + key_counts[r] - 1];
            SELECT i.key, i.positions INTO found_key, found_positions
            FROM {schema}.idempotency AS i
            WHERE i.key = ANY(own_keys)
            ORDER BY i.key COLLATE "C"
            LIMIT 1;
            IF FOUND THEN
                status := 4;
                duplicate_key := found_key;
                duplicate_positions := found_positions;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;

        IF checks[r] IS NOT NULL THEN
            found_position := NULL;
            EXECUTE checks[r] INTO found_position, found_type
                USING check_afters[r], check_params, exempt;
            IF found_position IS NOT NULL THEN
                status := 5;
                first_position := found_position;
                conflict_type := found_type;
                RETURN NEXT;
                CONTINUE;
            END IF;
        END IF;

        IF base IS NULL THEN
            base := {schema}.allocate_positions(total);
        END IF;
        first_position := base + offset_r;
        e1 := req_firsts[r];
        e2 := e1 + req_counts[r] - 1;
        INSERT INTO {schema}.events (position, type, version, tags, codec, payload_json,
                                     payload_bytes, id, correlation_id, causation_id,
                                     idempotency_key)
        SELECT first_position + e.ord - 1, e.type, e.version,
               append_batch.tags[e.tag_start : e.tag_start + e.tag_count - 1],
               e.codec, e.json_payload::jsonb, e.byte_payload, e.id, e.correlation_id,
               e.causation_id, e.idempotency_key
        FROM unnest(types[e1:e2], versions[e1:e2], tag_starts[e1:e2], tag_counts[e1:e2],
                    codecs[e1:e2], json_payloads[e1:e2], byte_payloads[e1:e2], ids[e1:e2],
                    correlation_ids[e1:e2], causation_ids[e1:e2], idempotency_keys[e1:e2])
             WITH ORDINALITY
             AS e(type, version, tag_start, tag_count, codec, json_payload, byte_payload,
                  id, correlation_id, causation_id, idempotency_key, ord);
        IF key_counts[r] > 0 THEN
            INSERT INTO {schema}.idempotency (key, positions)
            SELECT k.key, ARRAY(SELECT generate_series(first_position,
                                                       first_position + req_counts[r] - 1))
            FROM unnest(own_keys) AS k(key)
            ON CONFLICT (key) DO NOTHING;
            GET DIAGNOSTICS recorded = ROW_COUNT;
            IF recorded <> key_counts[r] THEN
                RAISE EXCEPTION 'append_batch: an idempotency key of request % was recorded concurrently', r - 1
                    USING ERRCODE = 'FX001';
            END IF;
        END IF;
        accepted[r] := true;
        firsts[r] := first_position;
        status := 0;
        RETURN NEXT;
    END LOOP;
END
$$;
