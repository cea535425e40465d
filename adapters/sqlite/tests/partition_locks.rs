//! Partition locks are in-process: every store this process opens on one file shares
//! them, a store on another file does not.

use std::time::Duration;

use factum::EventStore;
use factum::store::PartitionLock;

async fn lock(store: &impl EventStore, key: &str) -> PartitionLock {
    store
        .lock_partition(key)
        .await
        .unwrap_or_else(|e| panic!("lock_partition({key:?}) failed: {e}"))
        .unwrap_or_else(|| panic!("the SQLite store has partition locks"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_on_one_file_share_their_locks() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.db");
    let first = factum_sqlite::open(&path).await.expect("a store");
    // Another path to the same file.
    let same = dir.path().join(".").join("events.db");
    let second = factum_sqlite::open(&same).await.expect("a second store");
    let other = factum_sqlite::open(dir.path().join("other.db"))
        .await
        .expect("a store on another file");

    let held = lock(&first, "k").await;
    let waiter = {
        let second = second.clone();
        tokio::spawn(async move { lock(&second, "k").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiter.is_finished(),
        "a second store on the same file took a key the first one holds"
    );
    // Another key of the same file, and the same key of another file, are free.
    let free = tokio::time::timeout(Duration::from_secs(10), lock(&second, "j"))
        .await
        .expect("another key is free");
    let elsewhere = tokio::time::timeout(Duration::from_secs(10), lock(&other, "k"))
        .await
        .expect("the same key of another file is free");
    held.release().await;
    let taken = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter gets the key once it is released")
        .expect("the waiting task");
    taken.release().await;
    free.release().await;
    elsewhere.release().await;

    // Once every store on the file is gone, a new one starts with a fresh table that
    // still works.
    drop((first, second));
    let reopened = factum_sqlite::open(&path).await.expect("the store again");
    lock(&reopened, "k").await.release().await;
}
