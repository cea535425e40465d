//! Group commit: concurrent appends from many tasks all land, each checked against its own
//! condition; batches answer per request.

mod common;

use common::event;

use std::collections::HashSet;
use std::sync::Arc;

use factum::SnapshotStore;
use factum::{
    AppendCondition, AppendError, AppendRequest, Codec, EventStore, Position, Query, QueryItem,
    ReadOptions, StoredEvent, Tag,
};
use factum_sqlite::SqliteStore;
use futures::TryStreamExt;
use tokio::sync::Barrier;

fn tagged(key: &str, value: &str) -> Query {
    Query::item(QueryItem::any().with_tags([Tag::new(key, value)]))
}

async fn read(store: &SqliteStore, query: &Query) -> Vec<StoredEvent> {
    store
        .read(query, ReadOptions::forward())
        .try_collect()
        .await
        .expect("a read")
}

async fn open(dir: &tempfile::TempDir) -> SqliteStore {
    factum_sqlite::open(dir.path().join("events.db"))
        .await
        .expect("a new store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_fifty_racers_on_one_condition_exactly_one_wins() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open(&dir).await;
    let racers = 50;
    let seat = tagged("seat", "1A");
    for round in 0..3 {
        let after = read(&store, &seat).await.last().map(|e| e.position);
        let barrier = Arc::new(Barrier::new(racers));
        let tasks: Vec<_> = (0..racers)
            .map(|racer| {
                let store = store.clone();
                let barrier = barrier.clone();
                let seat = seat.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    let racer = racer.to_string();
                    store
                        .append(
                            vec![event("SeatBooked", &[("seat", "1A"), ("racer", &racer)])],
                            Some(AppendCondition::new(seat, after)),
                        )
                        .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut conflicts = Vec::new();
        for task in tasks {
            match task.await.expect("a racer") {
                Ok(appended) => winners.push(appended.positions[0]),
                Err(AppendError::Conflict { position, .. }) => conflicts.push(position),
                Err(other) => panic!("round {round}: a racer failed: {other}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        assert!(
            conflicts.iter().all(|p| *p == winners[0]),
            "round {round}: every loser conflicts with the winner's event"
        );
        assert_eq!(read(&store, &seat).await.len(), round + 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_all_land_each_on_its_own_condition() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open(&dir).await;
    let tasks = 40;
    let appends = 10;
    let barrier = Arc::new(Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let account = t.to_string();
                let query = tagged("account", &account);
                barrier.wait().await;
                let mut written = Vec::new();
                let mut after = None;
                for n in 0..appends {
                    let events = vec![
                        event("Deposited", &[("account", &account)]),
                        event("Audited", &[("account", &account), ("n", &n.to_string())]),
                    ];
                    let appended = store
                        .append(events, Some(AppendCondition::new(query.clone(), after)))
                        .await
                        .unwrap_or_else(|e| panic!("task {t}, append {n}: {e}"));
                    // The append's own events do not count against a later condition
                    // that starts after them.
                    after = appended.last();
                    written.extend(appended.positions);
                }
                (query, written)
            })
        })
        .collect();
    let mut all = HashSet::new();
    for handle in handles {
        let (query, written) = handle.await.expect("a task");
        let read_back: Vec<Position> = read(&store, &query)
            .await
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(read_back, written, "the events of {query}");
        for position in written {
            assert!(all.insert(position), "position {position} handed out twice");
        }
    }
    assert_eq!(all.len(), tasks * appends * 2);
    let positions: Vec<u64> = read(&store, &Query::all())
        .await
        .iter()
        .map(|e| e.position.0)
        .collect();
    assert_eq!(
        positions,
        (1..=(tasks * appends * 2) as u64).collect::<Vec<_>>(),
        "positions are gap-free and every event is in the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_batches_answer_per_request() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open(&dir).await;
    let tasks = 10;
    let barrier = Arc::new(Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let own = t.to_string();
                let mut keyed = event("Keyed", &[("task", &own)]);
                keyed.metadata.idempotency_key = Some(format!("key-{t}"));
                let batch = vec![
                    // Holds: nobody else writes this task's tag.
                    AppendRequest::new(
                        vec![event("Own", &[("task", &own)])],
                        Some(AppendCondition::new(tagged("task", &own), None)),
                    ),
                    // Fails on the request before it.
                    AppendRequest::new(
                        vec![event("Own", &[("task", &own)])],
                        Some(AppendCondition::new(tagged("task", &own), None)),
                    ),
                    // Races with every other task: exactly one batch wins it.
                    AppendRequest::new(
                        vec![event("Shared", &[("shared", "1")])],
                        Some(AppendCondition::new(tagged("shared", "1"), None)),
                    ),
                    AppendRequest::new(vec![keyed.clone()], None),
                    AppendRequest::new(vec![keyed], None),
                    AppendRequest::new(Vec::new(), None),
                ];
                barrier.wait().await;
                store.append_batch(batch).await.expect("a batch")
            })
        })
        .collect();
    let mut shared_winners = 0;
    for handle in handles {
        let results = handle.await.expect("a task");
        assert_eq!(results.len(), 6);
        let first = results[0].as_ref().expect("request 0 holds");
        match &results[1] {
            Err(AppendError::Conflict { position, .. }) => {
                assert_eq!(*position, first.positions[0])
            }
            other => panic!("request 1 conflicts with request 0, got {other:?}"),
        }
        match &results[2] {
            Ok(_) => shared_winners += 1,
            Err(AppendError::Conflict { event_type, .. }) => assert_eq!(event_type, "Shared"),
            Err(other) => panic!("request 2: {other}"),
        }
        let keyed = results[3].as_ref().expect("request 3 holds");
        match &results[4] {
            Err(AppendError::Duplicate { positions, .. }) => {
                assert_eq!(positions, &keyed.positions)
            }
            other => panic!("request 4 repeats request 3's key, got {other:?}"),
        }
        assert!(matches!(results[5], Err(AppendError::Empty)));
    }
    assert_eq!(shared_winners, 1, "one batch wins the shared condition");
    assert_eq!(
        read(&store, &Query::all()).await.len(),
        tasks * 2 + 1,
        "the log holds exactly the requests that held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_transaction_fails_every_request_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.db");
    let options = factum_sqlite::SqliteOptions {
        busy_timeout: std::time::Duration::from_millis(20),
        ..factum_sqlite::SqliteOptions::default()
    };
    let store = factum_sqlite::open_with(&path, options)
        .await
        .expect("a new store");
    store
        .append(vec![event("Before", &[])], None)
        .await
        .expect("an append");

    // Another connection holds the write lock: the writer cannot begin its transaction.
    let blocker = rusqlite::Connection::open(&path).expect("a raw connection");
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("the write lock");
    let tasks: Vec<_> = (0..10)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(vec![event("Blocked", &[("n", &n.to_string())])], None)
                    .await
            })
        })
        .collect();
    for task in tasks {
        match task.await.expect("a task") {
            Err(AppendError::Store(factum::StoreError::Backend(e))) => {
                let e = e
                    .downcast_ref::<factum_sqlite::SqliteError>()
                    .unwrap_or_else(|| panic!("a backend error of this store, got {e}"));
                assert!(
                    matches!(e, factum_sqlite::SqliteError::GroupCommit(_)),
                    "the group's failure, got {e}"
                );
                // Busy: the same append may succeed once the lock is gone (it does below).
                assert!(e.is_retryable(), "a locked file is retryable: {e}");
            }
            other => panic!("an append while the file is locked must fail, got {other:?}"),
        }
    }
    let batch = store
        .append_batch(vec![AppendRequest::new(vec![event("Blocked", &[])], None)])
        .await;
    assert!(batch.is_err(), "a batch fails as a whole: {batch:?}");
    let snapshot = store
        .save_snapshot(factum::Snapshot {
            key: "k".into(),
            query: "q".into(),
            position: Position(1),
            payload: factum::model::Payload {
                codec: Codec::Json,
                bytes: b"{}".to_vec(),
            },
        })
        .await;
    assert!(snapshot.is_err(), "a snapshot save fails too");

    // Once the lock is gone, the store goes on where it was: nothing was written.
    blocker
        .execute_batch("ROLLBACK")
        .expect("the lock released");
    let after = store
        .append(vec![event("After", &[])], None)
        .await
        .expect("an append after the failure");
    assert_eq!(after.positions, vec![Position(2)]);
    let types: Vec<String> = read(&store, &Query::all())
        .await
        .into_iter()
        .map(|e| e.event_type)
        .collect();
    assert_eq!(types, vec!["Before", "After"]);
    assert_eq!(store.load_snapshot("k").await.expect("a load"), None);
}
