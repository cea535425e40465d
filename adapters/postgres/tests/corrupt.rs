//! Rows that do not decode are errors naming their position, type and version: never a
//! panic, never a silent skip.

mod common;

use factum::SnapshotStore;
use factum::model::DecodeReason;
use factum::{EventStore, Query, ReadOptions, StoreError};
use factum_postgres::PostgresStore;
use futures::StreamExt;

/// Runs `sql` on a raw connection, `{schema}` in it standing for the store's schema.
async fn execute(store: &PostgresStore, sql: &str) {
    let sql = sql.replace("{schema}", &format!("\"{}\"", store.schema()));
    common::connect_raw()
        .await
        .batch_execute(&sql)
        .await
        .unwrap_or_else(|e| panic!("{sql} failed: {e}"));
}

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
    execute(
        &store,
        &format!("UPDATE {{schema}}.events SET type = 'Bad', {spoil} WHERE position = 2"),
    )
    .await;
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
async fn a_missing_version_still_names_the_position_and_type() {
    let (store, _guard) = common::store("null_version").await;
    for _ in 0..3 {
        store
            .append(vec![common::event("Good", &[("k", "v")])], None)
            .await
            .unwrap_or_else(|e| panic!("an append failed: {e}"));
    }
    execute(
        &store,
        "ALTER TABLE {schema}.events ALTER COLUMN version DROP NOT NULL; \
         UPDATE {schema}.events SET type = 'Bad', version = NULL WHERE position = 2",
    )
    .await;
    let read: Vec<_> = store
        .read(&Query::all(), ReadOptions::forward())
        .collect()
        .await;
    match &read[1] {
        Err(StoreError::Corrupt(d)) => {
            assert_eq!((d.position.0, d.event_type.as_str()), (2, "Bad"), "{d}");
            assert!(d.reason.to_string().contains("version"), "{d}");
        }
        other => panic!("a row without a version must be corrupt at #2, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_with_an_unknown_codec_is_corrupt() {
    let (store, _guard) = common::store("snapshot").await;
    execute(
        &store,
        "INSERT INTO {schema}.snapshots VALUES ('k', 'q', 5, 'zstd', '\\x00')",
    )
    .await;
    match store.load_snapshot("k").await {
        Err(StoreError::Corrupt(d)) => {
            assert_eq!(d.position.0, 5);
            assert!(d.to_string().contains("zstd"), "{d}");
        }
        other => panic!("a snapshot with an unknown codec must be corrupt, got {other:?}"),
    }
}

// ---- Listeners behind a row they cannot read ----

use std::sync::{Arc, Mutex};
use std::time::Duration;

use factum::decide::RetryPolicy;
use factum::listen::{
    DeadLetter, HandlerError, Listener, ListenerStore, OnFailure, Subscription, SubscriptionError,
    SubscriptionOptions,
};
use factum::{Position, StoredEvent};
use factum_postgres::{PgProjection, PgProjectionSink};

/// Records the positions it handles.
struct Recording {
    name: &'static str,
    seen: Arc<Mutex<Vec<u64>>>,
}

impl Listener for Recording {
    fn name(&self) -> &str {
        self.name
    }

    fn query(&self) -> Query {
        Query::all()
    }

    async fn handle(&mut self, event: &StoredEvent) -> Result<(), HandlerError> {
        self.seen.lock().unwrap().push(event.position.0);
        Ok(())
    }
}

fn subscription_options(on_failure: OnFailure) -> SubscriptionOptions {
    SubscriptionOptions {
        batch: 2,
        retry: RetryPolicy {
            max_retries: 1,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        },
        on_failure,
        poll_interval: Duration::from_millis(20),
    }
}

/// Sets the codec of the row at #3.
async fn set_codec(store: &PostgresStore, codec: &str) {
    execute(
        store,
        &format!("UPDATE {{schema}}.events SET codec = '{codec}' WHERE position = 3"),
    )
    .await;
}

/// A store of five good events whose third row names an unknown codec.
async fn store_with_bad_codec(what: &str) -> (PostgresStore, common::SchemaGuard) {
    let (store, guard) = common::store(what).await;
    for _ in 0..5 {
        store
            .append(vec![common::event("Good", &[("k", "v")])], None)
            .await
            .unwrap_or_else(|e| panic!("an append failed: {e}"));
    }
    set_codec(&store, "zstd").await;
    (store, guard)
}

fn assert_one_letter(letters: &[DeadLetter]) {
    assert_eq!(letters.len(), 1, "one dead letter: {letters:?}");
    assert_eq!(letters[0].position, Position(3), "{letters:?}");
    assert_eq!(letters[0].event_type, "Good", "{letters:?}");
    assert!(letters[0].error.contains("zstd"), "the reason: {letters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_dead_letters_an_unreadable_row_and_goes_on() {
    let (store, _guard) = store_with_bad_codec("listen_on").await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = Recording {
        name: "recorder",
        seen: seen.clone(),
    };
    let mut sub = Subscription::listener(store.clone(), listener)
        .with_options(subscription_options(OnFailure::DeadLetterAndContinue));
    let progress = sub
        .catch_up()
        .await
        .expect("the catch-up goes past the row");
    assert_eq!(*seen.lock().unwrap(), vec![1, 2, 4, 5]);
    assert_eq!((progress.handled, progress.dead_lettered), (4, 1));
    assert_eq!(progress.position, Position(5));
    assert_eq!(
        store.load_checkpoint("recorder").await.unwrap(),
        Some(Position(5))
    );
    assert_one_letter(&store.dead_letters(Some("recorder")).await.unwrap());

    // Replaying a still-unreadable letter keeps it and fails nothing else.
    let replay = sub.replay_dead_letters().await.expect("a replay");
    assert_eq!((replay.handled, replay.dead_lettered), (0, 1));
    assert_one_letter(&store.dead_letters(Some("recorder")).await.unwrap());

    // A rebuild meets it again: one letter, the other events handled.
    seen.lock().unwrap().clear();
    let rebuilt = sub.rebuild().await.expect("a rebuild");
    assert_eq!(*seen.lock().unwrap(), vec![1, 2, 4, 5]);
    assert_eq!(rebuilt.position, Position(5));
    assert_one_letter(&store.dead_letters(Some("recorder")).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_stops_just_before_an_unreadable_row() {
    let (store, _guard) = store_with_bad_codec("listen_stop").await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let listener = Recording {
        name: "stopper",
        seen: seen.clone(),
    };
    let mut sub = Subscription::listener(store.clone(), listener)
        .with_options(subscription_options(OnFailure::DeadLetterAndStop));
    for _ in 0..2 {
        // The live run stops too, at once, rather than loop on the row.
        let run = tokio::time::timeout(
            Duration::from_secs(10),
            sub.run(futures::future::pending::<()>()),
        )
        .await
        .expect("the run stops on its own");
        match run {
            Err(SubscriptionError::Failed {
                position,
                event_type,
                error,
                ..
            }) => {
                assert_eq!((position, event_type.as_str()), (Position(3), "Good"));
                assert!(error.contains("zstd"), "{error}");
            }
            other => panic!("expected a stop at #3, got {other:?}"),
        }
        assert_eq!(*seen.lock().unwrap(), vec![1, 2]);
        assert_eq!(
            store.load_checkpoint("stopper").await.unwrap(),
            Some(Position(2))
        );
        assert_one_letter(&store.dead_letters(Some("stopper")).await.unwrap());
    }

    // Repaired, the row is handled and its letter goes.
    set_codec(&store, "json").await;
    sub.catch_up().await.expect("a catch-up");
    assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3, 4, 5]);
    assert!(
        store
            .dead_letters(Some("stopper"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Records the positions it applies in a table of the store's schema.
struct Applied {
    schema: String,
}

impl PgProjection for Applied {
    fn name(&self) -> &str {
        "applied"
    }

    fn query(&self) -> Query {
        Query::all()
    }

    async fn apply(
        &mut self,
        client: &tokio_postgres::Client,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        client
            .execute(
                &format!("INSERT INTO \"{}\".applied VALUES ($1)", self.schema),
                &[&(event.position.0 as i64)],
            )
            .await
            .map(|_| ())
            .map_err(HandlerError::permanent)
    }

    async fn reset(&mut self, client: &tokio_postgres::Client) -> Result<(), HandlerError> {
        client
            .batch_execute(&format!("DELETE FROM \"{}\".applied", self.schema))
            .await
            .map_err(HandlerError::transient)
    }
}

async fn applied(store: &PostgresStore) -> Vec<i64> {
    common::connect_raw()
        .await
        .query(
            &format!(
                "SELECT position FROM \"{}\".applied ORDER BY position",
                store.schema()
            ),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("reading the read model failed: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exactly_once_projection_passes_or_stops_at_an_unreadable_row() {
    for on_failure in [
        OnFailure::DeadLetterAndContinue,
        OnFailure::DeadLetterAndStop,
    ] {
        let (store, _guard) = store_with_bad_codec("projection").await;
        execute(
            &store,
            "CREATE TABLE {schema}.applied (position bigint PRIMARY KEY)",
        )
        .await;
        let sink = PgProjectionSink::new(
            store.clone(),
            Applied {
                schema: store.schema().to_owned(),
            },
        );
        let mut sub =
            Subscription::new(store.clone(), sink).with_options(subscription_options(on_failure));
        let result = sub.catch_up().await;
        assert_one_letter(&store.dead_letters(Some("applied")).await.unwrap());
        match on_failure {
            OnFailure::DeadLetterAndContinue => {
                let progress = result.expect("the catch-up goes past the row");
                assert_eq!(progress.position, Position(5));
                assert_eq!(applied(&store).await, vec![1, 2, 4, 5]);
                let replay = sub.replay_dead_letters().await.expect("a replay");
                assert_eq!((replay.handled, replay.dead_lettered), (0, 1));
                assert_one_letter(&store.dead_letters(Some("applied")).await.unwrap());
            }
            _ => {
                assert!(
                    matches!(
                        result,
                        Err(SubscriptionError::Failed {
                            position: Position(3),
                            ..
                        })
                    ),
                    "a stop at #3: {result:?}"
                );
                assert_eq!(applied(&store).await, vec![1, 2]);
                assert_eq!(
                    store.load_checkpoint("applied").await.unwrap(),
                    Some(Position(2))
                );
            }
        }
    }
}
