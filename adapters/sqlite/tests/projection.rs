//! Exactly-once projections on SQLite: a read model in the store's file, moved with its
//! checkpoint in one transaction.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use factum::decide::RetryPolicy;
use factum::listen::{
    HandlerError, ListenerStore, OnFailure, Sink, Subscription, SubscriptionError,
    SubscriptionOptions,
};
use factum::{EventStore, Position, Query, QueryItem, StoredEvent};
use factum_sqlite::{SqliteProjection, SqliteProjectionSink, SqliteStore};
use rusqlite::Connection;

const NAME: &str = "tag_counts";

/// What makes the projection fail, shared with the test.
#[derive(Clone, Default)]
struct Faults {
    /// Positions that always fail (permanently), after writing.
    broken: Arc<Mutex<HashSet<u64>>>,
    /// Positions that fail (transiently, after writing) this many more times.
    flaky: Arc<Mutex<HashMap<u64, u32>>>,
    /// Positions at which the projection runs `ROLLBACK` after writing (once each), as
    /// SQLite does on a full disk or an I/O error: the whole transaction is gone.
    rollback: Arc<Mutex<HashSet<u64>>>,
}

/// Counts events per tag; records each position it applied (a primary key: applying one
/// twice fails).
struct TagCounts {
    faults: Faults,
}

impl SqliteProjection for TagCounts {
    fn name(&self) -> &str {
        NAME
    }

    fn query(&self) -> Query {
        Query::item(QueryItem::types(["Tagged"]))
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
        if self
            .faults
            .rollback
            .lock()
            .unwrap()
            .remove(&event.position.0)
        {
            conn.execute_batch("ROLLBACK")
                .map_err(HandlerError::permanent)?;
        }
        // Fail after writing: the savepoint must undo it.
        if self
            .faults
            .broken
            .lock()
            .unwrap()
            .contains(&event.position.0)
        {
            return Err(HandlerError::permanent(format!(
                "broken on purpose at {}",
                event.position
            )));
        }
        if let Some(left) = self.faults.flaky.lock().unwrap().get_mut(&event.position.0)
            && *left > 0
        {
            *left -= 1;
            return Err(HandlerError::transient("flaky on purpose"));
        }
        Ok(())
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

async fn sink(fixture: &Fixture, faults: &Faults) -> SqliteProjectionSink<TagCounts> {
    SqliteProjectionSink::new(
        &fixture.store,
        TagCounts {
            faults: faults.clone(),
        },
    )
    .await
    .expect("a projection sink")
}

fn options(on_failure: OnFailure) -> SubscriptionOptions {
    SubscriptionOptions {
        batch: 4,
        retry: RetryPolicy {
            max_retries: 2,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        },
        on_failure,
        poll_interval: Duration::from_secs(30),
    }
}

/// Appends `n` "Tagged" events with colors cycling red, green, blue, and one "Other".
async fn append(store: &SqliteStore, n: usize) -> Vec<Position> {
    let colors = ["red", "green", "blue"];
    let mut positions = Vec::new();
    for i in 0..n {
        let appended = store
            .append(
                vec![
                    common::event("Tagged", &[("color", colors[i % 3])]),
                    common::event("Other", &[("color", "red")]),
                ],
                None,
            )
            .await
            .expect("an append");
        positions.push(appended.positions[0]);
    }
    positions
}

/// The read model: counts per tag, and the positions applied.
fn read_model(path: &Path) -> (Vec<(String, i64)>, Vec<u64>) {
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

/// The read model expected after applying `positions` (of events appended by `append`,
/// the i-th "Tagged" event being positions[i]).
fn expected(all: &[Position], applied: &[Position]) -> (Vec<(String, i64)>, Vec<u64>) {
    let colors = ["red", "green", "blue"];
    let mut counts: HashMap<String, i64> = HashMap::new();
    for (i, p) in all.iter().enumerate() {
        if applied.contains(p) {
            *counts
                .entry(format!("color={}", colors[i % 3]))
                .or_default() += 1;
        }
    }
    let mut counts: Vec<(String, i64)> = counts.into_iter().collect();
    counts.sort();
    let mut applied: Vec<u64> = applied.iter().map(|p| p.0).collect();
    applied.sort_unstable();
    (counts, applied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_catches_up_then_tails_new_appends_promptly() {
    let fixture = fixture().await;
    let mut all = append(&fixture.store, 9).await;
    let mut sub = Subscription::new(
        fixture.store.clone(),
        sink(&fixture, &Faults::default()).await,
    )
    .with_options(options(OnFailure::DeadLetterAndContinue));
    let progress = sub.catch_up().await.expect("a catch-up");
    assert_eq!(progress.handled, 9);
    assert_eq!(read_model(&fixture.path), expected(&all, &all));
    assert!(
        fixture.store.load_checkpoint(NAME).await.unwrap() >= all.last().copied(),
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
async fn a_sink_dropped_before_its_commit_leaves_nothing_behind() {
    let fixture = fixture().await;
    let all = append(&fixture.store, 6).await;
    let faults = Faults::default();
    let mut first = sink(&fixture, &faults).await;
    assert_eq!(first.checkpoint().await.unwrap(), None);
    let events: Vec<StoredEvent> = {
        use futures::TryStreamExt;
        fixture
            .store
            .read(&first.query(), factum::ReadOptions::forward())
            .try_collect()
            .await
            .unwrap()
    };
    for event in &events[..2] {
        first.apply(event).await.expect("applied");
    }
    first.commit(events[1].position).await.expect("a commit");
    // Two more, never committed.
    for event in &events[2..4] {
        first.apply(event).await.expect("applied");
    }
    drop(first);
    let committed = &all[..2];
    assert_eq!(read_model(&fixture.path), expected(&all, committed));
    assert_eq!(
        fixture.store.load_checkpoint(NAME).await.unwrap(),
        Some(all[1])
    );

    // A new subscription goes on from the checkpoint: each event applied once.
    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &faults).await)
        .with_options(options(OnFailure::DeadLetterAndContinue));
    assert_eq!(sub.catch_up().await.unwrap().handled, 4);
    assert_eq!(read_model(&fixture.path), expected(&all, &all));

    // Events delivered again (at or below the checkpoint, no dead letter) are skipped.
    let mut again = sink(&fixture, &faults).await;
    again.checkpoint().await.unwrap();
    again.apply(&events[0]).await.expect("skipped");
    again.commit(events[0].position).await.expect("a commit");
    assert_eq!(read_model(&fixture.path), expected(&all, &all));
    assert!(
        fixture.store.load_checkpoint(NAME).await.unwrap() >= all.last().copied(),
        "the checkpoint never moves back"
    );

    // A rebuild gives the same read model.
    sub.rebuild().await.expect("a rebuild");
    assert_eq!(read_model(&fixture.path), expected(&all, &all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_mid_batch_apply_nothing_twice_and_lose_nothing() {
    let fixture = fixture().await;
    let all = append(&fixture.store, 10).await;
    let faults = Faults::default();
    // Transient failures (after writing) that a retry gets past, mid-batch.
    faults.flaky.lock().unwrap().insert(all[2].0, 2);
    faults.flaky.lock().unwrap().insert(all[5].0, 1);
    // A permanent failure mid-batch: the subscription stops there.
    faults.broken.lock().unwrap().insert(all[6].0);
    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &faults).await)
        .with_options(options(OnFailure::DeadLetterAndStop));
    let stopped = sub.catch_up().await;
    assert!(
        matches!(&stopped, Err(SubscriptionError::Failed { position, .. }) if *position == all[6]),
        "{stopped:?}"
    );
    // Read model and checkpoint agree: everything before the failure, once.
    assert_eq!(read_model(&fixture.path), expected(&all, &all[..6]));
    let checkpoint = fixture.store.load_checkpoint(NAME).await.unwrap();
    assert!(
        checkpoint >= Some(all[5]) && checkpoint < Some(all[6]),
        "{checkpoint:?}"
    );
    let letters = fixture.store.dead_letters(Some(NAME)).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].position, all[6]);

    // Fixed: a restarted subscription applies it and the rest, and its dead letter goes
    // in the same transaction.
    faults.broken.lock().unwrap().clear();
    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &faults).await)
        .with_options(options(OnFailure::DeadLetterAndStop));
    assert_eq!(sub.catch_up().await.unwrap().handled, 4);
    assert_eq!(read_model(&fixture.path), expected(&all, &all));
    assert!(fixture.store.dead_letters(None).await.unwrap().is_empty());
    // Replaying finds nothing to do.
    assert_eq!(sub.replay_dead_letters().await.unwrap().handled, 0);

    sub.rebuild().await.expect("a rebuild");
    assert_eq!(read_model(&fixture.path), expected(&all, &all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_commits_with_the_checkpoint_and_a_replay_removes_it() {
    let fixture = fixture().await;
    let all = append(&fixture.store, 8).await;
    let faults = Faults::default();
    faults.broken.lock().unwrap().insert(all[3].0);

    // Dropped before the commit: neither the dead letter nor the effects are kept.
    let mut dropped = sink(&fixture, &faults).await;
    dropped.checkpoint().await.unwrap();
    dropped
        .dead_letter(factum::listen::NewDeadLetter {
            listener: NAME.to_owned(),
            position: all[3],
            event_type: "Tagged".to_owned(),
            error: "never committed".to_owned(),
            attempts: 1,
        })
        .await
        .unwrap();
    drop(dropped);
    assert!(fixture.store.dead_letters(None).await.unwrap().is_empty());

    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &faults).await)
        .with_options(options(OnFailure::DeadLetterAndContinue));
    let progress = sub.catch_up().await.unwrap();
    assert_eq!((progress.handled, progress.dead_lettered), (7, 1));
    let applied: Vec<Position> = all.iter().copied().filter(|p| *p != all[3]).collect();
    assert_eq!(read_model(&fixture.path), expected(&all, &applied));
    let letters = fixture.store.dead_letters(Some(NAME)).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].position, all[3]);
    assert!(
        letters[0].error.contains("on purpose"),
        "{}",
        letters[0].error
    );
    assert!(fixture.store.load_checkpoint(NAME).await.unwrap() >= all.last().copied());

    // Still broken: the replay keeps it.
    let replay = sub.replay_dead_letters().await.unwrap();
    assert_eq!((replay.handled, replay.dead_lettered), (0, 1));
    assert_eq!(fixture.store.dead_letters(None).await.unwrap().len(), 1);
    assert_eq!(read_model(&fixture.path), expected(&all, &applied));

    // Fixed: the replay applies it once and removes it.
    faults.broken.lock().unwrap().clear();
    let replay = sub.replay_dead_letters().await.unwrap();
    assert_eq!(replay.handled, 1);
    assert!(fixture.store.dead_letters(None).await.unwrap().is_empty());
    assert_eq!(read_model(&fixture.path), expected(&all, &all));
    assert_eq!(sub.replay_dead_letters().await.unwrap().handled, 0);
    assert_eq!(read_model(&fixture.path), expected(&all, &all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_lost_mid_batch_loses_nothing_and_doubles_nothing() {
    let fixture = fixture().await;
    let all = append(&fixture.store, 10).await;
    let faults = Faults::default();
    // The third event of the first batch (of 4) ends the transaction, with the first two
    // events' effects in it.
    faults.rollback.lock().unwrap().insert(all[2].0);
    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &faults).await)
        .with_options(options(OnFailure::DeadLetterAndContinue));
    let stopped = sub.catch_up().await;
    assert!(
        matches!(&stopped, Err(SubscriptionError::Store { source, .. })
            if factum::ErrorChain(source).to_string().contains("lost its batch's transaction")),
        "{stopped:?}"
    );
    // Nothing was committed past the lost events, and no dead letter stands for them.
    let checkpoint = fixture.store.load_checkpoint(NAME).await.unwrap();
    assert!(checkpoint < Some(all[0]), "{checkpoint:?}");
    assert!(fixture.store.dead_letters(None).await.unwrap().is_empty());
    assert_eq!(read_model(&fixture.path), expected(&all, &[]));

    // Run again: the batch is read again from the stored checkpoint.
    let progress = sub.catch_up().await.expect("a catch-up");
    assert_eq!((progress.handled, progress.dead_lettered), (10, 0));
    assert_eq!(read_model(&fixture.path), expected(&all, &all));
    assert!(fixture.store.dead_letters(None).await.unwrap().is_empty());
    assert!(fixture.store.load_checkpoint(NAME).await.unwrap() >= all.last().copied());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_lost_before_any_work_of_the_batch_is_retried() {
    let fixture = fixture().await;
    let all = append(&fixture.store, 6).await;
    let faults = Faults::default();
    // The first event of a batch: nothing else is lost with it, a retry starts over.
    faults.rollback.lock().unwrap().insert(all[0].0);
    faults.rollback.lock().unwrap().insert(all[4].0);
    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &faults).await)
        .with_options(options(OnFailure::DeadLetterAndContinue));
    let progress = sub.catch_up().await.expect("a catch-up");
    assert_eq!((progress.handled, progress.dead_lettered), (6, 0));
    assert_eq!(read_model(&fixture.path), expected(&all, &all));
    assert!(fixture.store.dead_letters(None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_started_over_removes_the_dead_letter_of_an_event_it_applies() {
    let fixture = fixture().await;
    let all = append(&fixture.store, 6).await;
    let faults = Faults::default();
    faults.broken.lock().unwrap().insert(all[2].0);
    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &faults).await)
        .with_options(options(OnFailure::DeadLetterAndStop));
    assert!(sub.catch_up().await.is_err());
    assert_eq!(fixture.store.dead_letters(None).await.unwrap().len(), 1);
    faults.broken.lock().unwrap().clear();

    let events: Vec<StoredEvent> = {
        use futures::TryStreamExt;
        fixture
            .store
            .read(&sub.sink().query(), factum::ReadOptions::forward())
            .try_collect()
            .await
            .unwrap()
    };
    let mut sink = sink(&fixture, &faults).await;
    let checkpoint = sink.checkpoint().await.unwrap();
    assert!(checkpoint >= Some(all[1]) && checkpoint < Some(all[2]));
    // The letter's event and the next one, then the batch starts over (a call of it was
    // dropped): the rollback brings the letter back, and applying its event again must
    // remove it again.
    for event in &events[2..4] {
        sink.apply(event).await.expect("applied");
    }
    for event in &events[2..4] {
        sink.apply(event).await.expect("applied again");
    }
    sink.commit(events[3].position).await.expect("a commit");
    assert!(
        fixture.store.dead_letters(None).await.unwrap().is_empty(),
        "the dead letter outlived its applied event"
    );
    assert_eq!(read_model(&fixture.path), expected(&all, &all[..4]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_abandoned_midway_does_not_block_appends() {
    let fixture = fixture().await;
    let all = append(&fixture.store, 4).await;
    let faults = Faults::default();
    let events: Vec<StoredEvent> = {
        use futures::TryStreamExt;
        fixture
            .store
            .read(
                &Query::item(QueryItem::types(["Tagged"])),
                factum::ReadOptions::forward(),
            )
            .try_collect()
            .await
            .unwrap()
    };
    let mut sink = sink(&fixture, &faults)
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
