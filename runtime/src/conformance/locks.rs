//! The case of partition locks, which the store-lock strategy takes: one holder per key.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::support::{join, named};
use crate::store::EventStore;

/// How long the lock case waits for something that must happen at once (a free key
/// granted, a released key handed on) before it calls the store stuck.
const PROMPTLY: Duration = Duration::from_secs(10);

/// How long the lock case watches a waiter to show that it waits.
const WAITS: Duration = Duration::from_millis(200);

/// [`PartitionLocks::lock_partition`](crate::store::PartitionLocks::lock_partition): a store that has no partition locks returns `Ok(None)`
/// and passes. Otherwise, two holders of one key never overlap (tasks counting themselves
/// in and out while they hold it, many times over, some releasing the lock and some
/// dropping it), a waiter waits while the key is held and gets it once it is released
/// or dropped, and a held key never delays another key.
pub async fn partition_locks<S: EventStore + Clone + 'static>(store: S) {
    named("partition_locks", async move {
        let lock = {
            let store = store.clone();
            move |key: &'static str| {
                let store = store.clone();
                async move {
                match store.lock_partition(key).await {
                    Ok(Some(lock)) => lock,
                    Ok(None) => panic!(
                        "lock_partition({key:?}) returned None after an earlier call returned a lock"
                    ),
                    Err(e) => panic!("lock_partition({key:?}) failed: {e}"),
                }
                }
            }
        };
        match store.lock_partition("first").await {
            Ok(Some(first)) => first.release().await,
            // No partition locks: nothing to check.
            Ok(None) => return,
            Err(e) => panic!("lock_partition(\"first\") failed: {e}"),
        }

        // Mutual exclusion.
        const TASKS: u32 = 4;
        const ROUNDS: u32 = 25;
        let inside = Arc::new(AtomicU32::new(0));
        let most = Arc::new(AtomicU32::new(0));
        let entered = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let (inside, most, entered) = (inside.clone(), most.clone(), entered.clone());
            let lock = lock.clone();
            tasks.push(tokio::spawn(async move {
                for round in 0..ROUNDS {
                    let held = lock("hot").await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    entered.fetch_add(1, Ordering::SeqCst);
                    if round % 3 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                    inside.fetch_sub(1, Ordering::SeqCst);
                    if (task + round) % 5 == 0 {
                        // Dropped: the release runs on a spawned task.
                        drop(held);
                    } else {
                        held.release().await;
                    }
                }
            }));
        }
        for task in tasks {
            join(task).await;
        }
        assert_eq!(
            most.load(Ordering::SeqCst),
            1,
            "two tasks held the lock on one key at once"
        );
        assert_eq!(
            entered.load(Ordering::SeqCst),
            TASKS * ROUNDS,
            "every round took the lock"
        );

        // A waiter waits while the key is held, and gets it once released.
        let held = lock("a").await;
        let waiter = tokio::spawn(lock("a"));
        tokio::time::sleep(WAITS).await;
        assert!(
            !waiter.is_finished(),
            "a second lock_partition(\"a\") returned while the first lock was held"
        );
        // Another key is free meanwhile.
        let other = tokio::time::timeout(PROMPTLY, lock("b"))
            .await
            .unwrap_or_else(|_| panic!("lock_partition(\"b\") waited while only \"a\" was held"));
        held.release().await;
        let second = tokio::time::timeout(PROMPTLY, join(waiter))
            .await
            .unwrap_or_else(|_| {
                panic!("the waiter on \"a\" did not get the lock after its holder released it")
            });
        other.release().await;

        // A dropped lock is released too.
        let waiter = tokio::spawn(lock("a"));
        tokio::time::sleep(WAITS).await;
        assert!(
            !waiter.is_finished(),
            "lock_partition(\"a\") returned while the waiter before it held the lock"
        );
        drop(second);
        let third = tokio::time::timeout(PROMPTLY, join(waiter))
            .await
            .unwrap_or_else(|_| {
                panic!("the waiter on \"a\" did not get the lock after its holder dropped it")
            });
        third.release().await;
        let again = tokio::time::timeout(PROMPTLY, lock("a"))
            .await
            .unwrap_or_else(|_| panic!("a released key could not be locked again"));
        again.release().await;
    })
    .await;
}
