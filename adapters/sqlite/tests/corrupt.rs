//! Rows that cannot be events are read back as `StoreError::Corrupt`, naming their
//! position and type: never a panic, never a silent skip.

mod common;

use common::event;

use factum::model::DecodeReason;
use factum::{
    AppendCondition, EventStore, Position, Query, QueryItem, ReadOptions, StoreError, StoredEvent,
    Tag,
};
use futures::StreamExt;

/// Reads everything the stream yields, errors included.
async fn read_all<S: EventStore>(
    store: &S,
    query: &Query,
    options: ReadOptions,
) -> Vec<Result<StoredEvent, StoreError>> {
    store.read(query, options).collect().await
}

/// Inserts a raw row at the next position, with its tag index entries, as a bug or a
/// hand edit might have.
fn insert_raw(
    path: &std::path::Path,
    event_type: &str,
    codec: &str,
    tags_sql: &str,
    tag: (&str, &str),
) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("a raw connection");
    let position: i64 = conn
        .query_row("SELECT max(position) + 1 FROM events", [], |row| row.get(0))
        .expect("the next position");
    conn.execute(
        &format!(
            "INSERT INTO events \
             (position, type, version, codec, payload, tags, event_id, recorded_at) \
             VALUES (?1, ?2, 4, ?3, CAST('{{}}' AS BLOB), {tags_sql}, randomblob(16), 0)"
        ),
        rusqlite::params![position, event_type, codec],
    )
    .expect("a raw event");
    conn.execute(
        "INSERT INTO event_tags (tag_key, tag_value, position) VALUES (?1, ?2, ?3)",
        rusqlite::params![tag.0, tag.1, position],
    )
    .expect("a raw tag");
    position
}

fn assert_corrupt(
    result: &Result<StoredEvent, StoreError>,
    position: i64,
    event_type: &str,
    needle: &str,
) {
    match result {
        Err(StoreError::Corrupt(e)) => {
            assert_eq!(
                e.position,
                Position(position as u64),
                "the position named: {e}"
            );
            assert_eq!(e.event_type, event_type, "the type named: {e}");
            assert_eq!(e.version, 4, "the version named: {e}");
            let DecodeReason::Corrupt(reason) = &e.reason else {
                panic!("a corrupt row's reason: {e}");
            };
            assert!(reason.contains(needle), "the reason names the cause: {e}");
            assert!(
                e.to_string().contains(event_type)
                    && e.to_string().contains(&format!("#{position}")),
                "the message names the type and position: {e}"
            );
        }
        other => panic!("expected a corrupt row at #{position}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_rows_are_errors_naming_their_position_and_type() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.db");
    let store = factum_sqlite::open(&path).await.expect("a new store");
    store
        .append(vec![event("Good", &[("k", "1")])], None)
        .await
        .expect("an append");

    let unknown_codec = insert_raw(&path, "BadCodec", "yaml", "'[]'", ("k", "1"));
    let bad_tags = insert_raw(
        &path,
        "BadTags",
        "json",
        "CAST(X'5B5B22FF222C2261225D5D' AS TEXT)",
        ("k", "2"),
    );
    let not_json_tags = insert_raw(&path, "NotJsonTags", "json", "'k:3'", ("k", "3"));

    let by_tag = |value: &str| Query::item(QueryItem::any().with_tags([Tag::new("k", value)]));

    // Forward: the good event, then the error, and the read ends there.
    let read = read_all(&store, &by_tag("1"), ReadOptions::forward()).await;
    assert_eq!(read.len(), 2, "one good event, then one error: {read:?}");
    assert!(matches!(&read[0], Ok(e) if e.event_type == "Good"));
    assert_corrupt(&read[1], unknown_codec, "BadCodec", "yaml");

    // Backward: the error comes first and ends the read.
    let read = read_all(&store, &by_tag("1"), ReadOptions::last(5)).await;
    assert_eq!(read.len(), 1, "the error ends a read: {read:?}");
    assert_corrupt(&read[0], unknown_codec, "BadCodec", "codec");

    let read = read_all(&store, &by_tag("2"), ReadOptions::forward()).await;
    assert_eq!(read.len(), 1);
    assert_corrupt(&read[0], bad_tags, "BadTags", "UTF-8");

    let read = read_all(&store, &by_tag("3"), ReadOptions::forward()).await;
    assert_eq!(read.len(), 1);
    assert_corrupt(&read[0], not_json_tags, "NotJsonTags", "JSON");

    // The rest of the store still works: head, appends, conditions over corrupt rows.
    assert_eq!(
        store.head().await.expect("the head"),
        Some(Position(not_json_tags as u64))
    );
    let conflict = store
        .append(
            vec![event("Good", &[])],
            Some(AppendCondition::new(by_tag("2"), None)),
        )
        .await;
    match conflict {
        Err(factum::AppendError::Conflict {
            position,
            event_type,
        }) => assert_eq!(
            (position, event_type.as_str()),
            (Position(bad_tags as u64), "BadTags")
        ),
        other => panic!("a condition over a corrupt row still conflicts, got {other:?}"),
    }

    // An index entry whose event is missing is an error too, not a skip.
    rusqlite::Connection::open(&path)
        .expect("a raw connection")
        .execute("DELETE FROM events WHERE position = ?1", [unknown_codec])
        .expect("a lost event");
    let read = read_all(&store, &by_tag("1"), ReadOptions::forward()).await;
    assert_eq!(read.len(), 2, "one good event, then one error: {read:?}");
    match &read[1] {
        Err(StoreError::Corrupt(e)) => {
            assert_eq!(
                e.position,
                Position(unknown_codec as u64),
                "the position named: {e}"
            );
            assert!(e.to_string().contains("no event"), "the reason: {e}");
        }
        other => panic!("a dangling index entry must be an error, got {other:?}"),
    }
}

// ---- Listeners behind a row they cannot read ----

use std::sync::{Arc, Mutex};
use std::time::Duration;

use factum::decide::RetryPolicy;
use factum::listen::{
    HandlerError, Listener, ListenerStore, OnFailure, Subscription, SubscriptionError,
    SubscriptionOptions,
};
use factum_sqlite::{SqliteProjection, SqliteProjectionSink, SqliteStore};

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

/// A store of five good events whose third row names an unknown codec.
async fn store_with_bad_codec(dir: &tempfile::TempDir) -> SqliteStore {
    let path = dir.path().join("events.db");
    let store = factum_sqlite::open(&path).await.expect("a new store");
    for _ in 0..5 {
        store
            .append(vec![event("Good", &[("k", "v")])], None)
            .await
            .expect("an append");
    }
    rusqlite::Connection::open(&path)
        .expect("a raw connection")
        .execute("UPDATE events SET codec = 'zstd' WHERE position = 3", [])
        .expect("spoiling the row");
    store
}

fn assert_one_letter(letters: &[factum::listen::DeadLetter]) {
    assert_eq!(letters.len(), 1, "one dead letter: {letters:?}");
    assert_eq!(letters[0].position, Position(3), "{letters:?}");
    assert_eq!(letters[0].event_type, "Good", "{letters:?}");
    assert!(letters[0].error.contains("zstd"), "the reason: {letters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_dead_letters_an_unreadable_row_and_goes_on() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = store_with_bad_codec(&dir).await;
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
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = store_with_bad_codec(&dir).await;
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
    rusqlite::Connection::open(dir.path().join("events.db"))
        .expect("a raw connection")
        .execute("UPDATE events SET codec = 'json' WHERE position = 3", [])
        .expect("repairing the row");
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

/// Records the positions it applies in its own table.
struct Applied;

impl SqliteProjection for Applied {
    fn name(&self) -> &str {
        "applied"
    }

    fn query(&self) -> Query {
        Query::all()
    }

    fn apply(
        &mut self,
        conn: &rusqlite::Connection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        conn.execute(
            "INSERT INTO applied (position) VALUES (?1)",
            [event.position.0 as i64],
        )
        .map(|_| ())
        .map_err(HandlerError::permanent)
    }

    fn reset(&mut self, conn: &rusqlite::Connection) -> Result<(), HandlerError> {
        conn.execute_batch("DELETE FROM applied")
            .map_err(HandlerError::transient)
    }
}

fn applied(path: &std::path::Path) -> Vec<i64> {
    let conn = rusqlite::Connection::open(path).expect("a raw connection");
    let mut stmt = conn
        .prepare("SELECT position FROM applied ORDER BY position")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exactly_once_projection_passes_or_stops_at_an_unreadable_row() {
    for on_failure in [
        OnFailure::DeadLetterAndContinue,
        OnFailure::DeadLetterAndStop,
    ] {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("events.db");
        let store = store_with_bad_codec(&dir).await;
        rusqlite::Connection::open(&path)
            .expect("a raw connection")
            .execute_batch("CREATE TABLE applied (position INTEGER PRIMARY KEY)")
            .expect("the read model");
        let sink = SqliteProjectionSink::new(&store, Applied)
            .await
            .expect("a sink");
        let mut sub =
            Subscription::new(store.clone(), sink).with_options(subscription_options(on_failure));
        let result = sub.catch_up().await;
        assert_one_letter(&store.dead_letters(Some("applied")).await.unwrap());
        match on_failure {
            OnFailure::DeadLetterAndContinue => {
                let progress = result.expect("the catch-up goes past the row");
                assert_eq!(progress.position, Position(5));
                assert_eq!(applied(&path), vec![1, 2, 4, 5]);
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
                assert_eq!(applied(&path), vec![1, 2]);
                assert_eq!(
                    store.load_checkpoint("applied").await.unwrap(),
                    Some(Position(2))
                );
            }
        }
    }
}
