//! The commit signal across processes: an append through one store instance wakes the
//! listeners of another instance (its own pool, as another process would have) on the
//! same schema, on every append path, through the notification sent after the commit
//! alone (no poll, no reconnection).

mod common;

use std::time::Duration;

use factum::listen::ListenerStore;
use factum::{AppendRequest, EventStore, Position};
use factum_postgres::{PIPELINE_ABOVE, PostgresOptions, PostgresStore};
use tokio::sync::watch;

/// How long a notification may take: a subscription polling every hour would otherwise
/// sleep through the append.
const WAKE_WITHIN: Duration = Duration::from_secs(2);

/// Waits until `head` shows at least `position`; `false` if that took longer than `within`.
async fn reaches(
    head: &mut watch::Receiver<Option<Position>>,
    position: Option<Position>,
    within: Duration,
) -> bool {
    tokio::time::timeout(within, async {
        while *head.borrow_and_update() < position {
            if head.changed().await.is_err() {
                return false;
            }
        }
        true
    })
    .await
    .unwrap_or(false)
}

/// A second instance on `schema`, as another process would open it.
async fn other_instance(schema: &str) -> PostgresStore {
    let mut options = PostgresOptions::from_env(schema);
    options.application_name = format!("{}-other", common::application_name(schema));
    PostgresStore::connect_with(options)
        .await
        .unwrap_or_else(|e| panic!("a second store instance: {e}"))
}

/// A store in a fresh schema, a second instance on it, and that instance's head once its
/// listening connection is up: it has seen a probe append of the first (nothing was
/// stored before, so only the probe's notification or the connection's first read of
/// the newest position shows it).
async fn listening(
    what: &str,
) -> (
    PostgresStore,
    common::SchemaGuard,
    PostgresStore,
    watch::Receiver<Option<Position>>,
) {
    let (writer, guard) = common::store(what).await;
    let reader = other_instance(writer.schema()).await;
    let mut head = reader.watch_head();
    let probe = writer
        .append(vec![common::event("Probe", &[])], None)
        .await
        .unwrap_or_else(|e| panic!("the probe append failed: {e}"));
    assert!(
        reaches(&mut head, probe.last(), Duration::from_secs(10)).await,
        "the listening connection did not start"
    );
    (writer, guard, reader, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instances_listener_is_woken_by_every_append_path() {
    let (writer, _guard) = common::store("notify_paths").await;
    let first = writer
        .append(vec![common::event("Seed", &[])], None)
        .await
        .unwrap_or_else(|e| panic!("the first append failed: {e}"));
    let reader = other_instance(writer.schema()).await;
    let mut head = reader.watch_head();
    // The listening connection's first read of the newest position: from then on only a
    // notification raises this instance's head (it appends nothing itself).
    assert!(
        reaches(&mut head, first.last(), Duration::from_secs(10)).await,
        "the listening connection did not start"
    );

    let single = writer
        .append(vec![common::event("Single", &[])], None)
        .await
        .unwrap_or_else(|e| panic!("a single append failed: {e}"));
    assert!(
        reaches(&mut head, single.last(), WAKE_WITHIN).await,
        "a single append did not wake another instance's listener within {WAKE_WITHIN:?}"
    );

    for (path, requests) in [("small batch", 2), ("pipelined batch", PIPELINE_ABOVE + 3)] {
        let batch = (0..requests)
            .map(|i| {
                AppendRequest::new(
                    vec![common::event("Batched", &[("i", &i.to_string())])],
                    None,
                )
            })
            .collect();
        let results = writer
            .append_batch(batch)
            .await
            .unwrap_or_else(|e| panic!("a {path} failed: {e}"));
        let newest = results
            .iter()
            .map(|r| {
                r.as_ref()
                    .unwrap_or_else(|e| panic!("a request of a {path} failed: {e}"))
                    .last()
            })
            .max()
            .flatten();
        assert!(
            reaches(&mut head, newest, WAKE_WITHIN).await,
            "a {path} did not wake another instance's listener within {WAKE_WITHIN:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_appends_ends_in_a_notification_of_the_newest() {
    let (writer, _guard, _reader, mut head) = listening("notify_burst").await;
    // Commits coalesce while a notification is in flight; the last one still goes out.
    let appends = (0..40).map(|i| {
        let writer = writer.clone();
        tokio::spawn(async move {
            writer
                .append(vec![common::event("Burst", &[("i", &i.to_string())])], None)
                .await
                .unwrap_or_else(|e| panic!("a concurrent append failed: {e}"))
                .last()
        })
    });
    let mut newest = None;
    for append in appends.collect::<Vec<_>>() {
        newest = newest.max(append.await.unwrap_or_else(|e| panic!("{e}")));
    }
    assert!(
        reaches(&mut head, newest, WAKE_WITHIN).await,
        "after a burst, another instance's listener did not see the newest commit within \
         {WAKE_WITHIN:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_notification_connection_is_replaced_and_no_append_fails() {
    let (writer, _guard, _reader, mut head) = listening("notify_loss").await;
    let admin = common::connect_raw().await;
    let notifying = format!("{}-notify", common::application_name(writer.schema()));
    for round in 0..3 {
        let terminated = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&notifying],
            )
            .await
            .unwrap_or_else(|e| panic!("terminating the notification connection failed: {e}"));
        assert_eq!(
            terminated.len(),
            1,
            "round {round}: not one notification connection"
        );
        // At once, before the client side may have seen its connection close.
        let appended = writer
            .append(vec![common::event("After", &[])], None)
            .await
            .unwrap_or_else(|e| panic!("round {round}: an append failed: {e}"));
        assert!(
            reaches(&mut head, appended.last(), WAKE_WITHIN).await,
            "round {round}: no notification within {WAKE_WITHIN:?} after the notification \
             connection was terminated"
        );
    }
}
