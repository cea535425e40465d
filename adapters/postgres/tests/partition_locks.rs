//! Partition locks across processes: two stores on one schema (two processes, as far as
//! the server can tell) exclude each other on a key, not on different keys; a lock
//! released, dropped, or lost with its connection lets the next waiter in; a waiter that
//! gives up leaves nothing held; holding locks never starves reads and appends.
//!
//! Waiting is shown through `pg_locks` (a session waiting on the key's advisory lock),
//! not only through timing.

mod common;

use std::time::Duration;

use common::{SchemaGuard, event, read_all};
use factum::PartitionLocks;
use factum::store::PartitionLock;
use factum::{EventStore, Query, ReadOptions};
use factum_postgres::{PostgresOptions, PostgresStore, partition_lock_key};

/// How long something that must happen at once may take before the test fails.
const PROMPTLY: Duration = Duration::from_secs(30);

/// Two stores on one fresh schema, with their own pools.
async fn two_stores(what: &str) -> (PostgresStore, PostgresStore, SchemaGuard) {
    let (first, guard) = common::store(what).await;
    let second = another_store(&guard.schema, |_| {}).await;
    (first, second, guard)
}

/// Another store on `schema`, as another process would open it.
async fn another_store(
    schema: &str,
    configure: impl FnOnce(&mut PostgresOptions),
) -> PostgresStore {
    let mut options = PostgresOptions::from_env(schema);
    options.application_name = common::application_name(schema);
    configure(&mut options);
    PostgresStore::connect_with(options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "a second store on schema {schema} failed to connect: {e}. These tests need a \
                 running server: set DATABASE_URL (default \
                 postgres://postgres@127.0.0.1:5432/test) to one"
            )
        })
}

async fn lock(store: &PostgresStore, key: &str) -> PartitionLock {
    store
        .lock_partition(key)
        .await
        .unwrap_or_else(|e| panic!("lock_partition({key:?}) failed: {e}"))
        .unwrap_or_else(|| panic!("a PostgreSQL store has partition locks"))
}

/// Spawns a task taking the lock on `key` in `store`.
fn spawn_lock(store: &PostgresStore, key: &'static str) -> tokio::task::JoinHandle<PartitionLock> {
    let store = store.clone();
    tokio::spawn(async move { lock(&store, key).await })
}

async fn finish(task: tokio::task::JoinHandle<PartitionLock>, what: &str) -> PartitionLock {
    tokio::time::timeout(PROMPTLY, task)
        .await
        .unwrap_or_else(|_| panic!("{what}: the waiter did not get the lock"))
        .unwrap_or_else(|e| panic!("{what}: the waiting task failed: {e}"))
}

/// The advisory locks on the partition key `key` of `schema`: (granted, waiting).
async fn sessions_on(client: &tokio_postgres::Client, schema: &str, key: &str) -> (i64, i64) {
    let (high, low) = partition_lock_key(schema, key);
    // `pg_locks` shows the two keys as oids: unsigned.
    let (high, low) = (i64::from(high as u32), i64::from(low as u32));
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted) \
             FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 \
               AND classid::int8 = $1 AND objid::int8 = $2",
            &[&high, &low],
        )
        .await
        .unwrap_or_else(|e| panic!("querying pg_locks failed: {e}"));
    (row.get(0), row.get(1))
}

/// Polls until `(granted, waiting)` sessions are on the partition key.
async fn wait_for(client: &tokio_postgres::Client, schema: &str, key: &str, want: (i64, i64)) {
    let mut seen = (0, 0);
    for _ in 0..3000 {
        seen = sessions_on(client, schema, key).await;
        if seen == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "after 30 s, the key {key:?} has {seen:?} (granted, waiting) sessions, expected {want:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_take_turns_on_a_key_and_not_on_different_keys() {
    let (first, second, guard) = two_stores("partition_turns").await;
    let observer = common::connect_raw().await;
    let schema = guard.schema.as_str();

    let held = lock(&first, "k").await;
    wait_for(&observer, schema, "k", (1, 0)).await;
    let waiter = spawn_lock(&second, "k");
    // The other store's session waits on the server for exactly this key.
    wait_for(&observer, schema, "k", (1, 1)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waiter.is_finished(),
        "the second store took key k while the first held it"
    );

    // Another key is free, in either store.
    let other = tokio::time::timeout(PROMPTLY, lock(&second, "j"))
        .await
        .unwrap_or_else(|_| panic!("key j waited while only key k was held"));
    let mine = tokio::time::timeout(PROMPTLY, lock(&first, "i"))
        .await
        .unwrap_or_else(|_| panic!("key i waited while only key k was held"));

    held.release().await;
    let taken = finish(waiter, "after the release").await;
    wait_for(&observer, schema, "k", (1, 0)).await;

    // A dropped lock is released too: the first store waits, then gets it.
    let waiter = spawn_lock(&first, "k");
    wait_for(&observer, schema, "k", (1, 1)).await;
    drop(taken);
    let again = finish(waiter, "after the drop").await;
    again.release().await;
    other.release().await;
    mine.release().await;
    for key in ["k", "j", "i"] {
        wait_for(&observer, schema, key, (0, 0)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_lost_with_its_connection_does_not_block_forever() {
    let (first, second, guard) = two_stores("partition_lost").await;
    let observer = common::connect_raw().await;
    let schema = guard.schema.as_str();

    let held = lock(&first, "k").await;
    let waiter = spawn_lock(&second, "k");
    wait_for(&observer, schema, "k", (1, 1)).await;

    // The holder's session dies (a crash, a network partition, an administrator).
    let (high, low) = partition_lock_key(schema, "k");
    let (high, low) = (i64::from(high as u32), i64::from(low as u32));
    let pid: i32 = observer
        .query_one(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 \
               AND granted AND classid::int8 = $1 AND objid::int8 = $2",
            &[&high, &low],
        )
        .await
        .unwrap_or_else(|e| panic!("finding the holder's session failed: {e}"))
        .get(0);
    let terminated: bool = observer
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap_or_else(|e| panic!("pg_terminate_backend failed: {e}"))
        .get(0);
    assert!(terminated, "the holder's backend {pid} was not terminated");

    // The server released the lock with the session: the waiter gets it.
    let taken = finish(waiter, "after the holder's session died").await;
    // The old holder's release fails quietly, and its connection is not pooled again:
    // once the key is free, the first store locks it on a healthy connection.
    held.release().await;
    taken.release().await;
    let again = tokio::time::timeout(PROMPTLY, lock(&first, "k"))
        .await
        .unwrap_or_else(|_| panic!("the first store could not lock k again"));
    wait_for(&observer, schema, "k", (1, 0)).await;
    again.release().await;
    wait_for(&observer, schema, "k", (0, 0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_gives_up_leaves_nothing_held() {
    let (first, second, guard) = two_stores("partition_give_up").await;
    let observer = common::connect_raw().await;
    let schema = guard.schema.as_str();

    let held = lock(&first, "k").await;
    let gave_up = tokio::time::timeout(Duration::from_millis(300), lock(&second, "k")).await;
    assert!(
        gave_up.is_err(),
        "the second store took k while it was held"
    );
    // The abandoned wait is cancelled on the server, not left to be granted later.
    wait_for(&observer, schema, "k", (1, 0)).await;
    held.release().await;
    wait_for(&observer, schema, "k", (0, 0)).await;
    let taken = tokio::time::timeout(PROMPTLY, lock(&second, "k"))
        .await
        .unwrap_or_else(|_| panic!("key k stayed held after its waiter gave up"));
    taken.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holding_every_lock_connection_never_starves_reads_and_appends() {
    let (store, guard) = common::store_with("partition_pool", |options| {
        options.pool_size = 1;
        options.lock_pool_size = 2;
    })
    .await;
    let observer = common::connect_raw().await;
    let schema = guard.schema.as_str();

    let a = lock(&store, "a").await;
    let b = lock(&store, "b").await;
    // No lock connection is left: a third key waits for one.
    let c = spawn_lock(&store, "c");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!c.is_finished(), "a third key was locked on a pool of two");
    // A second caller on a held key queues in process, without a connection.
    let a2 = spawn_lock(&store, "a");

    let work = async {
        let appended = store
            .append(vec![event("Opened", &[("account", "1")])], None)
            .await
            .unwrap_or_else(|e| panic!("an append while the locks are held failed: {e}"));
        let head = store
            .head()
            .await
            .unwrap_or_else(|e| panic!("head() while the locks are held failed: {e}"));
        assert_eq!(head, appended.last());
        assert_eq!(read_all(&store).await.len(), 1);
        let keys = store
            .find_idempotency_keys(&["none".to_owned()])
            .await
            .unwrap_or_else(|e| panic!("a key look-up while the locks are held failed: {e}"));
        assert_eq!(keys, vec![None]);
        let events: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(
            store.read(&Query::all(), ReadOptions::last(1)),
        )
        .await
        .unwrap_or_else(|e| panic!("a read while the locks are held failed: {e}"));
        assert_eq!(events.len(), 1);
    };
    tokio::time::timeout(PROMPTLY, work)
        .await
        .unwrap_or_else(|_| panic!("reads and appends were starved by held partition locks"));

    b.release().await;
    let c = finish(c, "after a lock connection came free").await;
    a.release().await;
    let a2 = finish(a2, "the in-process waiter on a").await;
    wait_for(&observer, schema, "a", (1, 0)).await;
    a2.release().await;
    c.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_lock_connections_turns_partition_locks_off() {
    let (store, _guard) = common::store_with("partition_off", |options| {
        options.lock_pool_size = 0;
    })
    .await;
    let lock = store
        .lock_partition("k")
        .await
        .unwrap_or_else(|e| panic!("lock_partition failed: {e}"));
    assert!(lock.is_none(), "locks are off, got {lock:?}");
}
