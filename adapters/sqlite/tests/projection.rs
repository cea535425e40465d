//! Exactly-once projections on SQLite: a read model in the store's file, moved with its
//! checkpoint in one transaction. The contract every such sink keeps is the runtime's
//! `factum::conformance::sink`; what is SQLite's own is here.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use factum::conformance::sink::{
    self, Faults, NAME, ReadModel, SinkHarness, append, expected, letters, options,
    stored_checkpoint, tagged_events,
};
use factum::listen::{HandlerError, OnFailure, Sink, Subscription, SubscriptionError};
use factum::{Query, StoredEvent};
use factum_sqlite::{SqliteProjection, SqliteProjectionSink, SqliteStore};
use rusqlite::Connection;

/// Counts events per tag; records each position it applied (a primary key: applying one
/// twice fails).
struct TagCounts {
    faults: Faults,
    /// Positions at which the projection runs `ROLLBACK` after writing (once each), as
    /// SQLite does on a full disk or an I/O error: the whole transaction is gone.
    rollback: Arc<Mutex<HashSet<u64>>>,
}

impl SqliteProjection for TagCounts {
    fn name(&self) -> &str {
        NAME
    }

    fn query(&self) -> Query {
        sink::query()
    }

    fn apply(&mut self, conn: &Connection, event: &StoredEvent) -> Result<(), HandlerError> {
        let position = i64::try_from(event.position.0).map_err(HandlerError::permanent)?;
        for tag in &event.tags {
            conn.execute(
                "INSERT INTO tag_counts (tag, n) VALUES (?1, 1) \
                 ON CONFLICT (tag) DO UPDATE SET n = n + 1",
                [format!("{}={}", tag.key, tag.value)],
            )
            .map_err(HandlerError::transient)?;
        }
        conn.execute("INSERT INTO applied (position) VALUES (?1)", [position])
            .map_err(HandlerError::permanent)?;
        if self.rollback.lock().unwrap().remove(&event.position.0) {
            conn.execute_batch("ROLLBACK")
                .map_err(HandlerError::permanent)?;
        }
        // Fail after writing: the savepoint must undo it.
        self.faults.after_writing(event.position)
    }

    fn reset(&mut self, conn: &Connection) -> Result<(), HandlerError> {
        conn.execute_batch("DELETE FROM tag_counts; DELETE FROM applied;")
            .map_err(HandlerError::transient)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: SqliteStore,
}

impl SinkHarness for Fixture {
    type Store = SqliteStore;
    type Sink = SqliteProjectionSink<TagCounts>;

    fn store(&self) -> &SqliteStore {
        &self.store
    }

    async fn sink(&self, faults: &Faults) -> SqliteProjectionSink<TagCounts> {
        sink_with(self, faults, &Arc::default()).await
    }

    async fn read_model(&self) -> ReadModel {
        read_model(&self.path)
    }
}

factum::projection_sink_conformance_tests!(fixture);

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.db");
    let store = factum_sqlite::open(&path).await.expect("a store");
    Connection::open(&path)
        .expect("a connection")
        .execute_batch(
            "CREATE TABLE tag_counts (tag TEXT PRIMARY KEY, n INTEGER NOT NULL);
             CREATE TABLE applied (position INTEGER PRIMARY KEY);",
        )
        .expect("the read model's tables");
    Fixture {
        _dir: dir,
        path,
        store,
    }
}

/// A sink that also runs `ROLLBACK` at the positions in `rollback`.
async fn sink_with(
    fixture: &Fixture,
    faults: &Faults,
    rollback: &Arc<Mutex<HashSet<u64>>>,
) -> SqliteProjectionSink<TagCounts> {
    SqliteProjectionSink::new(
        &fixture.store,
        TagCounts {
            faults: faults.clone(),
            rollback: rollback.clone(),
        },
    )
    .await
    .expect("a projection sink")
}

/// The read model: counts per tag, and the positions applied.
fn read_model(path: &Path) -> ReadModel {
    let conn = Connection::open(path).expect("a connection");
    let mut counts = conn
        .prepare("SELECT tag, n FROM tag_counts ORDER BY tag")
        .unwrap();
    let counts = counts
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let mut applied = conn
        .prepare("SELECT position FROM applied ORDER BY position")
        .unwrap();
    let applied = applied
        .query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|p| p.map(|p| p as u64))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    (counts, applied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_catches_up_then_tails_new_appends_promptly() {
    let fixture = fixture().await;
    let mut all = append(&fixture.store, 9).await;
    let mut sub = Subscription::new(
        fixture.store.clone(),
        fixture.sink(&Faults::default()).await,
    )
    .with_options(options(OnFailure::DeadLetterAndContinue));
    let progress = sub.catch_up().await.expect("a catch-up");
    assert_eq!(progress.handled, 9);
    assert_eq!(read_model(&fixture.path), expected(&all, &all));
    assert!(
        stored_checkpoint(&fixture.store).await >= all.last().copied(),
        "the checkpoint passes the last event"
    );

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let tail = tokio::spawn(async move {
        let progress = sub
            .run(async {
                let _ = stopped.await;
            })
            .await;
        (sub, progress)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Another store on the same file: its appends wake the subscription too.
    let other = factum_sqlite::open(&fixture.path)
        .await
        .expect("a second store");
    let started = Instant::now();
    let late = append(&other, 2).await;
    all.extend(late.iter().copied());
    loop {
        if read_model(&fixture.path).1.len() == all.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the tailing projection did not see the appends within 2 s (poll interval 30 s)"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    let (_, progress) = tail.await.expect("the tail task");
    progress.expect("the tail ends cleanly");
    assert_eq!(read_model(&fixture.path), expected(&all, &all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_lost_mid_batch_loses_nothing_and_doubles_nothing() {
    let fixture = fixture().await;
    let all = append(&fixture.store, 10).await;
    let rollback: Arc<Mutex<HashSet<u64>>> = Arc::default();
    // The third event of the first batch (of 4) ends the transaction, with the first two
    // events' effects in it.
    rollback.lock().unwrap().insert(all[2].0);
    let sink = sink_with(&fixture, &Faults::default(), &rollback).await;
    let mut sub = Subscription::new(fixture.store.clone(), sink)
        .with_options(options(OnFailure::DeadLetterAndContinue));
    let stopped = sub.catch_up().await;
    assert!(
        matches!(&stopped, Err(SubscriptionError::Store { source, .. })
            if factum::ErrorChain(source).to_string().contains("lost its batch's transaction")),
        "{stopped:?}"
    );
    // Nothing was committed past the lost events, and no dead letter stands for them.
    let checkpoint = stored_checkpoint(&fixture.store).await;
    assert!(checkpoint < Some(all[0]), "{checkpoint:?}");
    assert!(letters(&fixture.store, None).await.is_empty());
    assert_eq!(read_model(&fixture.path), expected(&all, &[]));

    // Run again: the batch is read again from the stored checkpoint.
    let progress = sub.catch_up().await.expect("a catch-up");
    assert_eq!((progress.handled, progress.dead_lettered), (10, 0));
    assert_eq!(read_model(&fixture.path), expected(&all, &all));
    assert!(letters(&fixture.store, None).await.is_empty());
    assert!(stored_checkpoint(&fixture.store).await >= all.last().copied());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_lost_before_any_work_of_the_batch_is_retried() {
    let fixture = fixture().await;
    let all = append(&fixture.store, 6).await;
    let rollback: Arc<Mutex<HashSet<u64>>> = Arc::default();
    // The first event of a batch: nothing else is lost with it, a retry starts over.
    rollback.lock().unwrap().insert(all[0].0);
    rollback.lock().unwrap().insert(all[4].0);
    let sink = sink_with(&fixture, &Faults::default(), &rollback).await;
    let mut sub = Subscription::new(fixture.store.clone(), sink)
        .with_options(options(OnFailure::DeadLetterAndContinue));
    let progress = sub.catch_up().await.expect("a catch-up");
    assert_eq!((progress.handled, progress.dead_lettered), (6, 0));
    assert_eq!(read_model(&fixture.path), expected(&all, &all));
    assert!(letters(&fixture.store, None).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_abandoned_midway_does_not_block_appends() {
    let fixture = fixture().await;
    let all = append(&fixture.store, 4).await;
    let faults = Faults::default();
    let events = tagged_events(&fixture.store).await;
    let mut sink = fixture
        .sink(&faults)
        .await
        .with_idle_limit(Duration::from_millis(200));
    sink.checkpoint().await.unwrap();
    // A batch begun (its transaction holds the write lock), then left: its caller went
    // away, the sink stays.
    sink.apply(&events[0]).await.expect("applied");
    let started = Instant::now();
    let more = append(&fixture.store, 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the append waited {:?} for the abandoned batch",
        started.elapsed()
    );
    // The batch is lost: the rest of it is refused, and its commit fails.
    assert!(sink.apply(&events[1]).await.is_err());
    assert!(sink.commit(events[1].position).await.is_err());
    assert_eq!(read_model(&fixture.path), expected(&all, &[]));

    // Started over, everything is applied once.
    let mut all = all;
    all.extend(more);
    let mut sub = Subscription::new(fixture.store.clone(), sink)
        .with_options(options(OnFailure::DeadLetterAndContinue));
    assert_eq!(sub.catch_up().await.unwrap().handled, 5);
    let applied: Vec<u64> = all.iter().map(|p| p.0).collect();
    assert_eq!(read_model(&fixture.path).1, applied);
}
