//! Rows that cannot be events are read back as `StoreError::Corrupt`, naming their
//! position and type: never a panic, never a silent skip. What listeners and exactly-once
//! projections do behind such a row is the runtime's `factum::conformance::corrupt_rows`,
//! run here through a harness; what is SQLite's own is here.

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

// ---- Listeners and projections behind a row they cannot read ----

use factum::conformance::corrupt_rows::{CorruptRowHarness, NAME};
use factum::listen::HandlerError;
use factum_sqlite::{SqliteProjection, SqliteProjectionSink, SqliteStore};

/// Records the positions it applies in its own table.
struct Applied;

impl SqliteProjection for Applied {
    fn name(&self) -> &str {
        NAME
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

/// A store in a temporary file, with the projection's table beside the events.
struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: SqliteStore,
}

impl CorruptRowHarness for Fixture {
    type Store = SqliteStore;
    type Sink = SqliteProjectionSink<Applied>;

    fn store(&self) -> &SqliteStore {
        &self.store
    }

    async fn sink(&self) -> SqliteProjectionSink<Applied> {
        SqliteProjectionSink::new(&self.store, Applied)
            .await
            .expect("a sink")
    }

    async fn applied(&self) -> Vec<u64> {
        let conn = rusqlite::Connection::open(&self.path).expect("a raw connection");
        let mut stmt = conn
            .prepare("SELECT position FROM applied ORDER BY position")
            .expect("a query of the read model");
        stmt.query_map([], |r| r.get::<_, i64>(0))
            .expect("the read model")
            .map(|p| p.map(|p| p as u64))
            .collect::<Result<_, _>>()
            .expect("the positions applied")
    }

    async fn set_codec(&self, position: Position, codec: &str) {
        rusqlite::Connection::open(&self.path)
            .expect("a raw connection")
            .execute(
                "UPDATE events SET codec = ?1 WHERE position = ?2",
                rusqlite::params![codec, position.0 as i64],
            )
            .expect("changing the row's codec");
    }
}

factum::corrupt_row_conformance_tests!(fixture);

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.db");
    let store = factum_sqlite::open(&path).await.expect("a new store");
    rusqlite::Connection::open(&path)
        .expect("a raw connection")
        .execute_batch("CREATE TABLE applied (position INTEGER PRIMARY KEY)")
        .expect("the read model");
    Fixture {
        _dir: dir,
        path,
        store,
    }
}
