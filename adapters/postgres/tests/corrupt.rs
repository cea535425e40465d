//! Rows that do not decode are errors naming their position, type and version: never a
//! panic, never a silent skip.

mod common;

use factum::model::DecodeReason;
use factum::{EventStore, Query, ReadOptions, StoreError};
use futures::StreamExt;

/// A row read back: its type, or the error's position, type, version and reason.
type Read = Result<String, (u64, String, u32, String)>;

/// Inserts a good event, then a row spoiled by `spoil` (SQL assignments), then a good one;
/// returns what a full read yields.
async fn read_around(what: &str, spoil: &str) -> Vec<Read> {
    let (store, _guard) = common::store(what).await;
    for _ in 0..3 {
        store
            .append(vec![common::event("Good", &[("k", "v")])], None)
            .await
            .unwrap_or_else(|e| panic!("an append failed: {e}"));
    }
    let client = common::connect_raw().await;
    client
        .batch_execute(&format!(
            "UPDATE \"{}\".events SET type = 'Bad', {spoil} WHERE position = 2",
            store.schema()
        ))
        .await
        .unwrap_or_else(|e| panic!("spoiling the row failed: {e}"));
    let query = Query::all();
    store
        .read(&query, ReadOptions::forward())
        .map(|r| match r {
            Ok(e) => Ok(e.event_type),
            Err(StoreError::Corrupt(d)) => {
                assert!(matches!(d.reason, DecodeReason::Corrupt(_)));
                Err((d.position.0, d.event_type, d.version, d.reason.to_string()))
            }
            Err(other) => panic!("expected a corrupt-row error, got {other}"),
        })
        .collect()
        .await
}

fn assert_corrupt(results: &[Read], version: u32, says: &str) {
    assert_eq!(results.len(), 3, "{results:?}");
    assert_eq!(results[0], Ok("Good".to_owned()));
    match &results[1] {
        Err((2, t, v, reason)) if t == "Bad" && *v == version => {
            assert!(reason.contains(says), "{reason:?} should say {says:?}");
        }
        other => panic!("the spoiled row must be an error at #2 naming Bad v{version}: {other:?}"),
    }
    assert_eq!(results[2], Ok("Good".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_codec_is_a_corrupt_row() {
    let results = read_around("codec", "codec = 'zstd', payload_bytes = '\\x00'").await;
    assert_corrupt(&results, 1, "unknown codec \"zstd\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_tag_is_a_corrupt_row() {
    let results = read_around("tag", "tags = ARRAY['k:v']").await;
    assert_corrupt(&results, 1, "corrupt tag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_payload_is_a_corrupt_row() {
    let results = read_around("payload", "version = 4, payload_json = NULL").await;
    assert_corrupt(&results, 4, "payload_json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_version_is_a_corrupt_row() {
    let results = read_around("version", "version = -3").await;
    assert_corrupt(&results, 0, "negative version -3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_with_an_unknown_codec_is_corrupt() {
    let (store, _guard) = common::store("snapshot").await;
    common::connect_raw()
        .await
        .batch_execute(&format!(
            "INSERT INTO \"{}\".snapshots VALUES ('k', 'q', 5, 'zstd', '\\x00')",
            store.schema()
        ))
        .await
        .unwrap_or_else(|e| panic!("inserting the snapshot failed: {e}"));
    match store.load_snapshot("k").await {
        Err(StoreError::Corrupt(d)) => {
            assert_eq!(d.position.0, 5);
            assert!(d.to_string().contains("zstd"), "{d}");
        }
        other => panic!("a snapshot with an unknown codec must be corrupt, got {other:?}"),
    }
}
