//! The case of the [limits](crate::store::limits) every store holds events to: the same
//! values refused on every store, each alone, before anything is written.

use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::support::{event, named, read, tags, types};
use crate::model::{AppendCondition, Codec, NewEvent, Payload, Query};
use crate::store::limits::{
    Field, MAX_IDEMPOTENCY_KEY_BYTES, MAX_TAG_KEY_BYTES, MAX_TAG_VALUE_BYTES, MAX_TYPE_NAME_BYTES,
    MAX_VERSION,
};
use crate::store::{AppendError, AppendRequest, Appended, EventStore, ReadOptions};

/// Events past a limit — too long a type name, tag key, tag value (3,000 random bytes,
/// a megabyte) or idempotency key, a NUL in any of them, a JSON payload that is not
/// JSON (not UTF-8, a lone surrogate, nested too deep), a version above
/// [`MAX_VERSION`], a time out of range — are refused with [`AppendError::Unstorable`]
/// naming the field, and write nothing: alone, in a multi-event append, and as requests of
/// a batch (of 3 requests and of many), whose other requests all commit and whose
/// requests building on a refused one fail with [`AppendError::Dependency`]. An event at
/// every limit at once (random bytes, which compress worst) is stored and read back.
/// Reads and conditions may name what no event can hold: a NUL, or a tag value longer
/// than the limit, matches nothing (and fails nothing).
pub async fn limits_refused<S: EventStore + Clone + 'static>(store: S) {
    named("limits_refused", async move {
        let mut rng = StdRng::seed_from_u64(0x11_3175);
        let at_limit = at_every_limit(&mut rng);
        let appended = store
            .append(vec![at_limit.clone()], None)
            .await
            .unwrap_or_else(|e| panic!("an event at every limit was refused: {e}"));
        let tag = &at_limit.tags[0];
        let found = read(
            &store,
            &tags(&[(&tag.key, &tag.value)]),
            ReadOptions::forward(),
        )
        .await;
        assert_eq!(found.len(), 1, "the event at every limit, read by its tag");
        assert_eq!(found[0].position, appended.positions[0]);
        assert_eq!(
            (&found[0].event_type, &found[0].tags, &found[0].metadata),
            (&at_limit.event_type, &at_limit.tags, &at_limit.metadata),
            "the event at every limit comes back whole"
        );

        let bad = unstorable(&mut rng);
        for (what, event, field) in &bad {
            let alone = store.append(vec![event.clone()], None).await;
            assert_refused(&alone, *field, &format!("an append of {what}"));
            let with_good = store
                .append(vec![event_n("Good", 0), event.clone()], None)
                .await;
            assert_refused(&with_good, *field, &format!("a good event, then {what}"));
        }
        assert_only_good(&store, 0, "after the refused appends").await;

        // Batches of three (PostgreSQL: through its SQL function), then one of them all.
        let mut good = 0;
        for (what, event, field) in &bad {
            let results = store
                .append_batch(vec![
                    AppendRequest::new(vec![event_n("Good", good)], None),
                    AppendRequest::new(vec![event.clone()], None),
                    AppendRequest::new(vec![event_n("Good", good + 1)], None),
                ])
                .await
                .unwrap_or_else(|e| panic!("a batch of 3 holding {what} failed whole: {e}"));
            good += 2;
            assert_refused(&results[1], *field, &format!("{what} in a batch of 3"));
            for i in [0, 2] {
                assert_committed(
                    &results[i],
                    &format!("request {i} of a batch of 3 with {what}"),
                );
            }
        }
        let mut requests = Vec::new();
        let mut expected = Vec::new();
        for (what, event, field) in &bad {
            requests.push(AppendRequest::new(vec![event_n("Good", good)], None));
            expected.push(None);
            requests.push(AppendRequest::new(vec![event.clone()], None));
            expected.push(Some((*what, *field)));
            good += 1;
        }
        let refused = 1;
        requests.push(AppendRequest::new(vec![event_n("Good", good)], None).building_on([refused]));
        requests.push(AppendRequest::new(vec![event_n("Good", good + 1)], None).building_on([0]));
        good += 1;
        let results = store
            .append_batch(requests)
            .await
            .unwrap_or_else(|e| panic!("a batch holding every unstorable event failed whole: {e}"));
        assert_eq!(results.len(), expected.len() + 2, "one result per request");
        for (i, (result, expected)) in results.iter().zip(&expected).enumerate() {
            match expected {
                Some((what, field)) => {
                    assert_refused(result, *field, &format!("{what} (request {i} of a batch)"))
                }
                None => assert_committed(result, &format!("request {i} of a batch")),
            }
        }
        let dependent = &results[expected.len()];
        assert!(
            matches!(dependent, Err(AppendError::Dependency { index }) if *index == refused),
            "a request building on a refused one must fail with Dependency, got {}",
            shown(dependent)
        );
        assert_committed(
            &results[expected.len() + 1],
            "a request building on a good one",
        );
        assert_only_good(&store, good, "after the batches").await;

        let long = random(&mut rng, 3_000);
        let never = [
            tags(&[("note", "a\0b")]),
            tags(&[("no\0te", "b")]),
            types(&["Bad\0Type"]),
            tags(&[("note", long.as_str())]),
            tags(&[("n", "0"), ("note", "a\0b")]).union(types(&["Nul\0", "Good"])),
        ];
        for (i, query) in never.iter().enumerate() {
            let found = read(&store, query, ReadOptions::forward()).await;
            // Each round adds a good event; the last query names `Good` besides.
            let expected = if i == 4 { good + i } else { 0 };
            assert_eq!(
                found.len(),
                expected,
                "read {i}: what no event holds matches nothing"
            );
            let guarded = AppendRequest::new(
                vec![event_n("Guarded", i)],
                Some(AppendCondition::new(query.clone(), None)),
            );
            let results = store
                .append_batch(vec![
                    AppendRequest::new(vec![event_n("Good", 0)], None),
                    guarded,
                ])
                .await
                .unwrap_or_else(|e| panic!("a batch with condition {i} failed whole: {e}"));
            assert_committed(&results[0], &format!("the request before condition {i}"));
            if i == 4 {
                assert!(
                    matches!(results[1], Err(AppendError::Conflict { .. })),
                    "condition {i} matches the good events: {}",
                    shown(&results[1])
                );
            } else {
                assert_committed(&results[1], &format!("a request on condition {i}"));
            }
        }
    })
    .await;
}

/// Text of `len` random ASCII letters and digits: what compresses worst.
fn random(rng: &mut StdRng, len: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..len)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

fn event_n(event_type: &str, n: usize) -> NewEvent {
    event(event_type, &[("n", &n.to_string())])
}

fn at_every_limit(rng: &mut StdRng) -> NewEvent {
    let mut event = event("AtLimit", &[]);
    event.event_type = random(rng, MAX_TYPE_NAME_BYTES);
    event.tags = vec![crate::model::Tag::new(
        random(rng, MAX_TAG_KEY_BYTES),
        random(rng, MAX_TAG_VALUE_BYTES),
    )];
    event.metadata.idempotency_key = Some(random(rng, MAX_IDEMPOTENCY_KEY_BYTES));
    event
}

/// What each unstorable event is, the event, and the field its refusal names.
fn unstorable(rng: &mut StdRng) -> Vec<(&'static str, NewEvent, Field)> {
    let with = |what: &'static str, field: Field, change: &dyn Fn(&mut NewEvent)| {
        let mut event = event("Bad", &[("bad", what)]);
        change(&mut event);
        (what, event, field)
    };
    let tag = |key: String, value: String| {
        move |e: &mut NewEvent| {
            e.tags
                .push(crate::model::Tag::new(key.clone(), value.clone()));
        }
    };
    let json = |bytes: &'static [u8]| {
        move |e: &mut NewEvent| {
            e.payload = Payload {
                codec: Codec::Json,
                bytes: bytes.to_vec(),
            }
        }
    };
    let nested = format!("{}{}", "[".repeat(128), "]".repeat(128)).into_bytes();
    let year = Duration::from_secs(31_556_952);
    let long_type = random(rng, MAX_TYPE_NAME_BYTES + 1);
    let long_key = random(rng, MAX_IDEMPOTENCY_KEY_BYTES + 1);
    vec![
        with(
            "a tag value of 3000 random bytes",
            Field::TagValue,
            &tag("note".into(), random(rng, 3_000)),
        ),
        with(
            "a tag value of 1 MB",
            Field::TagValue,
            &tag("note".into(), "a".repeat(1_000_000)),
        ),
        with(
            "a tag value one byte too long",
            Field::TagValue,
            &tag("note".into(), "é".repeat(MAX_TAG_VALUE_BYTES / 2) + "x"),
        ),
        with(
            "a tag key one byte too long",
            Field::TagKey,
            &tag(random(rng, MAX_TAG_KEY_BYTES + 1), "v".into()),
        ),
        with(
            "a type name one byte too long",
            Field::TypeName,
            &|e: &mut NewEvent| e.event_type.clone_from(&long_type),
        ),
        with(
            "an idempotency key one byte too long",
            Field::IdempotencyKey,
            &|e: &mut NewEvent| e.metadata.idempotency_key = Some(long_key.clone()),
        ),
        with(
            "a NUL in the idempotency key",
            Field::IdempotencyKey,
            &|e: &mut NewEvent| e.metadata.idempotency_key = Some("key\0nul".into()),
        ),
        with(
            "a NUL in a tag value",
            Field::TagValue,
            &tag("note".into(), "a\0b".into()),
        ),
        with(
            "a NUL in a tag key",
            Field::TagKey,
            &tag("no\0te".into(), "v".into()),
        ),
        with(
            "a NUL in the type name",
            Field::TypeName,
            &|e: &mut NewEvent| e.event_type = "Bad\0Type".into(),
        ),
        with(
            "a JSON payload that is not JSON",
            Field::Payload,
            &json(b"{not json"),
        ),
        with(
            "a JSON payload that is not UTF-8",
            Field::Payload,
            &json(b"{\"a\": \"\xff\xfe\"}"),
        ),
        with(
            "a JSON payload with a lone surrogate",
            Field::Payload,
            &json(b"[\"\\udc00\"]"),
        ),
        with(
            "a JSON payload with trailing bytes",
            Field::Payload,
            &json(b"{} x"),
        ),
        with(
            "a JSON payload nested 128 deep",
            Field::Payload,
            &|e: &mut NewEvent| e.payload.bytes.clone_from(&nested),
        ),
        with(
            "a version above the limit",
            Field::Version,
            &|e: &mut NewEvent| e.version = MAX_VERSION + 1,
        ),
        with(
            "a time in 300000 AD",
            Field::RecordedAt,
            &|e: &mut NewEvent| e.recorded_at = Some(SystemTime::UNIX_EPOCH + year * 300_000),
        ),
        with(
            "a time in 5000 BC",
            Field::RecordedAt,
            &|e: &mut NewEvent| e.recorded_at = Some(SystemTime::UNIX_EPOCH - year * 7_000),
        ),
    ]
}

fn shown(result: &Result<Appended, AppendError>) -> String {
    match result {
        Ok(appended) => format!("a commit at {:?}", appended.positions),
        Err(e) => format!("{e}"),
    }
}

#[track_caller]
fn assert_refused(result: &Result<Appended, AppendError>, field: Field, what: &str) {
    match result {
        Err(AppendError::Unstorable(refused)) if refused.field == field => {}
        other => panic!(
            "{what}: expected AppendError::Unstorable naming the {field}, got {}",
            shown(other)
        ),
    }
}

#[track_caller]
fn assert_committed(result: &Result<Appended, AppendError>, what: &str) {
    if let Err(e) = result {
        panic!("{what} must commit: {e}");
    }
}

/// The store holds the event at every limit and `good` events of type `Good`, nothing
/// else.
async fn assert_only_good<S: EventStore>(store: &S, good: usize, what: &str) {
    let all = read(store, &Query::all(), ReadOptions::forward()).await;
    let goods = read(store, &types(&["Good"]), ReadOptions::forward()).await;
    assert_eq!(
        (all.len(), goods.len()),
        (good + 1, good),
        "{what}: the store must hold the event at every limit and {good} good events, \
         nothing of a refused request"
    );
}
