//! Files that are not factum stores are refused before anything in them changes: not the
//! journal mode (header bytes 18 and 19), not a pragma, not a table. An empty file
//! becomes a store.

mod common;

use std::path::{Path, PathBuf};

use factum::EventStore;
use factum_sqlite::SqliteError;

/// The file's bytes, and which of its companion files exist.
fn snapshot(path: &Path) -> (Vec<u8>, Vec<&'static str>) {
    let bytes = std::fs::read(path).expect("the file's bytes");
    let companions = ["-wal", "-shm", "-journal"]
        .into_iter()
        .filter(|suffix| companion(path, suffix).exists())
        .collect();
    (bytes, companions)
}

fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A database written by plain rusqlite (rollback journal, as SQLite makes by default).
fn foreign(dir: &Path, name: &str, sql: &str) -> PathBuf {
    let path = dir.join(name);
    let conn = rusqlite::Connection::open(&path).expect("a raw connection");
    conn.execute_batch(sql)
        .expect("another application's schema");
    drop(conn);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_applications_database_is_refused_unchanged() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cases = [
        (
            "a table",
            foreign(
                dir.path(),
                "table.db",
                "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); \
                 INSERT INTO users (name) VALUES ('ada');",
            ),
            "users",
        ),
        (
            "a view only",
            foreign(
                dir.path(),
                "view.db",
                "CREATE VIEW answer AS SELECT 42 AS n;",
            ),
            "answer",
        ),
        (
            "a schema version",
            foreign(dir.path(), "versioned.db", "PRAGMA user_version = 1;"),
            "version 1",
        ),
        (
            "another application id",
            foreign(dir.path(), "app.db", "PRAGMA application_id = 42;"),
            "0x2a",
        ),
    ];
    for (what, path, found) in cases {
        let before = snapshot(&path);
        assert_eq!(
            (before.0[18], before.0[19]),
            (1, 1),
            "{what}: a rollback-journal file to begin with"
        );
        assert!(before.1.is_empty(), "{what}: {:?}", before.1);
        match factum_sqlite::open(&path).await {
            Err(SqliteError::NotAStore {
                path: named,
                found: said,
                ..
            }) => {
                assert_eq!(named, path, "{what}: the error names the file");
                assert!(said.contains(found), "{what}: the error says {said:?}");
            }
            other => panic!("{what}: expected NotAStore, got {other:?}"),
        }
        let after = snapshot(&path);
        assert_eq!(
            (after.0[18], after.0[19]),
            (1, 1),
            "{what}: still in rollback-journal mode"
        );
        assert!(after.0 == before.0, "{what}: the file changed");
        assert!(after.1.is_empty(), "{what}: left {:?}", after.1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_sqlite_is_refused_unchanged() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "not a database, just some notes\n".repeat(200)).expect("a file");
    let before = snapshot(&path);
    let result = factum_sqlite::open(&path).await;
    assert!(
        matches!(&result, Err(SqliteError::NotAStore { found, .. }) if found.contains("not an SQLite database")),
        "{result:?}"
    );
    assert!(snapshot(&path) == before, "the file changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_file_becomes_a_store() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (what, path) in [
        ("a 0-byte file", {
            let path = dir.path().join("zero.db");
            std::fs::write(&path, b"").expect("an empty file");
            path
        }),
        (
            "a database with no schema objects",
            foreign(dir.path(), "blank.db", "VACUUM;"),
        ),
    ] {
        let store = factum_sqlite::open(&path)
            .await
            .unwrap_or_else(|e| panic!("{what} opens as a store: {e}"));
        store
            .append(vec![common::event("A", &[])], None)
            .await
            .unwrap_or_else(|e| panic!("{what}: an append: {e}"));
        drop(store);
        let reopened = factum_sqlite::open(&path)
            .await
            .unwrap_or_else(|e| panic!("{what} reopens as a store: {e}"));
        assert_eq!(
            reopened.head().await.expect("the head"),
            Some(factum::Position(1))
        );
    }
}

/// Openers racing to create one store: each must see the others' first migration whole
/// (its tables, version and application id together), never as another application's
/// tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openers_racing_on_a_new_file_all_open_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for round in 0..25 {
        let path = dir.path().join(format!("race-{round}.db"));
        let opens = (0..4).map(|_| {
            let path = path.clone();
            tokio::spawn(async move { factum_sqlite::open(&path).await.map(drop) })
        });
        for opened in futures::future::join_all(opens).await {
            let opened = opened.expect("the opener ran");
            assert!(opened.is_ok(), "round {round}: {:?}", opened.err());
        }
    }
}
