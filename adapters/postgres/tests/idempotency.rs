//! Concurrent appends with one idempotency key: exactly one writes, every other one is a
//! duplicate naming the winner's positions, and the log holds the winner's events only.

mod common;

use std::sync::Arc;

use common::{event, read_all};
use factum::{AppendError, AppendRequest, EventStore, NewEvent, Position};
use tokio::sync::Barrier;

const TASKS: usize = 8;

fn keyed(key: &str) -> Vec<NewEvent> {
    (0..2)
        .map(|_| {
            let mut e = event("Paid", &[("order", "o1")]);
            e.metadata.idempotency_key = Some(key.to_owned());
            e
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_many_concurrent_appends_with_one_key_wins() {
    let (store, _guard) = common::store("idempotency").await;
    for round in 0..5 {
        let key = format!("pay-o1-{round}");
        let barrier = Arc::new(Barrier::new(TASKS));
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let store = store.clone();
                let barrier = barrier.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    // Half of them through a batch, which checks keys on its own path.
                    if t % 2 == 0 {
                        store.append(keyed(&key), None).await
                    } else {
                        let mut results = store
                            .append_batch(vec![AppendRequest::new(keyed(&key), None)])
                            .await
                            .unwrap_or_else(|e| panic!("a batch failed as a whole: {e}"));
                        results.remove(0)
                    }
                })
            })
            .collect();
        let mut winners: Vec<Vec<Position>> = Vec::new();
        let mut duplicates: Vec<(String, Vec<Position>)> = Vec::new();
        for task in tasks {
            match task.await.unwrap_or_else(|e| panic!("a task failed: {e}")) {
                Ok(appended) => winners.push(appended.positions),
                Err(AppendError::Duplicate { key, positions }) => duplicates.push((key, positions)),
                Err(e) => panic!("round {round}: an append failed: {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one append wins");
        assert_eq!(
            duplicates.len(),
            TASKS - 1,
            "round {round}: the others are duplicates"
        );
        for (k, positions) in &duplicates {
            assert_eq!(k, &key, "round {round}: the duplicate's key");
            assert_eq!(
                positions, &winners[0],
                "round {round}: a duplicate names the winner"
            );
        }
        let written: Vec<Position> = read_all(&store)
            .await
            .iter()
            .filter(|e| e.metadata.idempotency_key.as_deref() == Some(key.as_str()))
            .map(|e| e.position)
            .collect();
        assert_eq!(
            written, winners[0],
            "round {round}: only the winner's events are in the log"
        );
    }
}

/// A look-up answers keys PostgreSQL text cannot hold (a NUL character) with `None`,
/// like any key never recorded, beside the keys it finds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_of_keys_that_cannot_be_stored_finds_nothing() {
    let (store, _guard) = common::store("idempotency_nul").await;
    let appended = store
        .append(keyed("pay-o2"), None)
        .await
        .unwrap_or_else(|e| panic!("an append failed: {e}"));
    let keys = ["pay\0o2".to_owned(), "pay-o2".to_owned(), "\0".to_owned()];
    let found = store
        .find_idempotency_keys(&keys)
        .await
        .unwrap_or_else(|e| panic!("the look-up failed: {e}"));
    assert_eq!(found, vec![None, Some(appended.positions), None]);
    let none = store
        .find_idempotency_keys(&["\0".to_owned()])
        .await
        .unwrap_or_else(|e| panic!("the look-up failed: {e}"));
    assert_eq!(none, vec![None]);
}
