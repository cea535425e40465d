//! Durability across reopening, migrations, and files the store must refuse.

use factum::SnapshotStore;
use factum::model::Payload;
use factum::{
    AppendCondition, AppendError, Codec, EventStore, Metadata, NewEvent, Position, Query,
    QueryItem, ReadOptions, Snapshot, StoredEvent, Tag,
};
use factum_sqlite::{SCHEMA_VERSION, SqliteError, SqliteOptions, Synchronous};
use futures::TryStreamExt;

fn event(event_type: &str, tags: &[(&str, &str)], key: Option<&str>) -> NewEvent {
    NewEvent {
        event_type: event_type.to_owned(),
        version: 2,
        tags: tags.iter().map(|(k, v)| Tag::new(*k, *v)).collect(),
        payload: Codec::Json
            .encode(event_type, &serde_json::json!({ "type": event_type }))
            .expect("a JSON payload"),
        metadata: Metadata {
            idempotency_key: key.map(str::to_owned),
            correlation_id: Some(uuid::Uuid::now_v7()),
            ..Metadata::new()
        },
        recorded_at: None,
    }
}

async fn all<S: EventStore>(store: &S) -> Vec<StoredEvent> {
    store
        .read(&Query::all(), ReadOptions::forward())
        .try_collect()
        .await
        .expect("a full read")
}

fn raw(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("a raw connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.db");

    let store = factum_sqlite::open(&path).await.expect("a new store");
    let first = store
        .append(
            vec![
                event("A", &[("k", "1")], Some("req-1")),
                event("B", &[], Some("req-1")),
            ],
            None,
        )
        .await
        .expect("an append");
    store
        .append(vec![event("C", &[("k", "1"), ("l", "2")], None)], None)
        .await
        .expect("an append");
    let snapshot = Snapshot {
        key: "State|k:1".to_owned(),
        query: "A[k:1]".to_owned(),
        position: Position(3),
        payload: Payload {
            codec: Codec::MessagePack,
            bytes: vec![0x81, 0xa1, b'n', 0x03],
        },
    };
    store
        .save_snapshot(snapshot.clone())
        .await
        .expect("a snapshot");
    let before = all(&store).await;
    assert_eq!(before.len(), 3);
    drop(store);

    // Reopen (migration runs again and must change nothing) with the other durability.
    let options = SqliteOptions {
        synchronous: Synchronous::Normal,
        ..SqliteOptions::default()
    };
    let store = factum_sqlite::open_with(&path, options)
        .await
        .expect("the store reopened");
    assert_eq!(all(&store).await, before, "the events after a reopen");
    assert_eq!(store.head().await.expect("the head"), Some(Position(3)));
    assert_eq!(
        store
            .load_snapshot("State|k:1")
            .await
            .expect("a snapshot load"),
        Some(snapshot),
        "the snapshot after a reopen"
    );
    match store
        .append(vec![event("D", &[], Some("req-1"))], None)
        .await
    {
        Err(AppendError::Duplicate { key, positions }) => {
            assert_eq!(key, "req-1");
            assert_eq!(positions, first.positions, "the first append's positions");
        }
        other => panic!("a key recorded before the reopen must be a duplicate, got {other:?}"),
    }
    // Positions go on from the head, gap-free.
    let next = store
        .append(
            vec![event("D", &[("k", "1")], Some("req-2"))],
            Some(AppendCondition::new(
                Query::item(QueryItem::any().with_tags([Tag::new("k", "1")])),
                Some(Position(3)),
            )),
        )
        .await
        .expect("an append after the reopen");
    assert_eq!(next.positions, vec![Position(4)]);
    drop(store);

    // A third open of the migrated file, and the schema version stays the current one.
    let store = factum_sqlite::open(&path).await.expect("a third open");
    assert_eq!(all(&store).await.len(), 4);
    drop(store);
    let version: i64 = raw(&path)
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("the schema version");
    assert_eq!(version, SCHEMA_VERSION);
}

#[tokio::test]
async fn clones_share_one_store() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = factum_sqlite::open(dir.path().join("events.db"))
        .await
        .expect("a new store");
    let clone = store.clone();
    clone
        .append(vec![event("A", &[], None)], None)
        .await
        .expect("an append through a clone");
    drop(clone);
    assert_eq!(
        all(&store).await.len(),
        1,
        "the original sees the clone's append"
    );
    assert_eq!(store.path(), dir.path().join("events.db"));
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.db");
    drop(factum_sqlite::open(&path).await.expect("a new store"));
    raw(&path)
        .execute_batch(&format!("PRAGMA user_version = {};", SCHEMA_VERSION + 1))
        .expect("a newer version");
    match factum_sqlite::open(&path).await {
        Err(SqliteError::SchemaTooNew {
            found, supported, ..
        }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("a file of a newer schema must be refused, got {other:?}"),
    }
    let message = factum_sqlite::open(&path)
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        message.contains("newer factum-sqlite"),
        "the error says what to do: {message}"
    );
}

#[tokio::test]
async fn another_applications_database_is_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");

    let tables = dir.path().join("tables.db");
    raw(&tables)
        .execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY);")
        .expect("another application's table");
    let result = factum_sqlite::open(&tables).await;
    assert!(
        matches!(result, Err(SqliteError::NotAStore { .. })),
        "a database with foreign tables: {result:?}"
    );

    let versioned = dir.path().join("versioned.db");
    raw(&versioned)
        .execute_batch("PRAGMA user_version = 1;")
        .expect("another application's version");
    let result = factum_sqlite::open(&versioned).await;
    assert!(
        matches!(result, Err(SqliteError::NotAStore { .. })),
        "a versioned database of another application: {result:?}"
    );
}

#[tokio::test]
async fn invalid_options_and_paths_are_refused() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = SqliteOptions {
        readers: 0,
        ..SqliteOptions::default()
    };
    let result = factum_sqlite::open_with(dir.path().join("events.db"), options).await;
    assert!(
        matches!(
            result,
            Err(SqliteError::InvalidOption {
                option: "readers",
                ..
            })
        ),
        "no readers: {result:?}"
    );
    let result = factum_sqlite::open(dir.path().join("missing").join("events.db")).await;
    assert!(
        matches!(result, Err(SqliteError::Open { .. })),
        "a file in a missing directory: {result:?}"
    );
    let result = factum_sqlite::open(":memory:").await;
    assert!(
        matches!(result, Err(SqliteError::NoWal { .. })),
        "an in-memory database: {result:?}"
    );
}

#[test]
fn the_store_is_a_shareable_handle() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<factum_sqlite::SqliteStore>();
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.db");
    let wal = dir.path().join("events.db-wal");
    let store = factum_sqlite::open(&path).await.expect("a new store");
    store
        .append(vec![event("A", &[], None)], None)
        .await
        .expect("an append");
    let clone = store.clone();
    drop(store);
    // A clone keeps the threads and their connections, so the WAL file is still in use.
    assert!(wal.exists(), "the WAL file while a handle lives");
    assert_eq!(all(&clone).await.len(), 1, "the clone still reads");
    drop(clone);
    // The last connection to close checkpoints the WAL into the file and removes it.
    assert!(
        !wal.exists(),
        "the threads closed their connections with the last handle"
    );
    let conn = raw(&path);
    let count: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
        .expect("a count");
    assert_eq!(count, 1, "the event is in the main file");
}
