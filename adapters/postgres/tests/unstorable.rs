//! What PostgreSQL's text columns cannot hold: a NUL character in a JSON payload is kept
//! (as bytes) and round-trips; one in a tag is refused with a typed error for that append
//! only — in a batch, the other requests still commit. (The conformance case
//! `limits_refused` holds every store to the same refusals.)

#![allow(missing_docs)]

mod common;

use factum::prelude::*;
use factum::store::limits::{Field, Problem};
use factum::{AppendError, AppendRequest};

#[tokio::test]
async fn a_nul_in_a_json_payload_round_trips() {
    let (store, _guard) = common::store("nul_payload").await;
    let mut event = common::event("Noted", &[("note", "1")]);
    event.payload = Codec::Json
        .encode("Noted", &serde_json::json!({ "text": "before\u{0}after" }))
        .unwrap();
    store.append(vec![event], None).await.unwrap();
    let stored = common::read_all(&store).await;
    let value: serde_json::Value = stored[0].payload.decode().unwrap();
    assert_eq!(value["text"], "before\u{0}after");
    assert_eq!(stored[0].payload.codec, Codec::Json);
    // Still found by its tag.
    let by_tag = Query::item(QueryItem::any().with_tags([Tag::new("note", "1")]));
    let found: Vec<StoredEvent> =
        futures::TryStreamExt::try_collect(store.read(&by_tag, ReadOptions::forward()))
            .await
            .unwrap();
    assert_eq!(found.len(), 1);
}

#[tokio::test]
async fn a_nul_in_a_tag_fails_only_its_own_request() {
    let (store, _guard) = common::store("nul_tag").await;
    let bad = common::event("Noted", &[("note", "a\u{0}b")]);
    let single = store.append(vec![bad.clone()], None).await;
    assert!(
        matches!(&single, Err(AppendError::Unstorable(e)) if e.field == Field::TagValue && e.problem == Problem::Nul),
        "{single:?}"
    );
    let results = store
        .append_batch(vec![
            AppendRequest::new(vec![common::event("Noted", &[("note", "1")])], None),
            AppendRequest::new(vec![bad], None),
            AppendRequest::new(vec![common::event("Noted", &[("note", "2")])], None),
        ])
        .await
        .unwrap();
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(
        matches!(&results[1], Err(AppendError::Unstorable(e)) if e.field == Field::TagValue && e.problem == Problem::Nul),
        "{results:?}"
    );
    assert_eq!(
        common::read_all(&store).await.len(),
        2,
        "the two good requests only"
    );
}

/// A caller-set `recorded_at` past what a `timestamptz` holds (294276 AD) is refused for
/// its own append only, on the single path and both batch paths (the SQL function, and
/// the pipelined one above four requests).
#[tokio::test]
async fn a_time_out_of_timestamptz_range_fails_only_its_own_request() {
    let (store, _guard) = common::store("time_range").await;
    let year = std::time::Duration::from_secs(31_556_952);
    let far = std::time::UNIX_EPOCH + year * 300_000;
    let bad = common::event("Noted", &[("note", "far")]).with_recorded_at(far);
    let out_of_range = |r: &Result<factum::Appended, AppendError>| matches!(r, Err(AppendError::Unstorable(e)) if e.field == Field::RecordedAt);
    let single = store.append(vec![bad.clone()], None).await;
    assert!(out_of_range(&single), "{single:?}");
    for requests in [3, 6] {
        let batch = (0..requests)
            .map(|r| match r {
                1 => AppendRequest::new(vec![bad.clone()], None),
                _ => AppendRequest::new(vec![common::event("Noted", &[("note", "ok")])], None),
            })
            .collect();
        let results = store.append_batch(batch).await.unwrap();
        assert!(out_of_range(&results[1]), "{results:?}");
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), requests - 1);
    }
    assert_eq!(
        common::read_all(&store).await.len(),
        2 + 5,
        "the good requests only"
    );
}
