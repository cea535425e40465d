//! Lock behaviour, shown through `pg_locks` rather than timing: while another transaction
//! holds the locks of a conditional append on `course:c1`, appends touching `course:c1`
//! wait on exactly that key, and appends on `course:c2` complete.

mod common;

use std::time::Duration;

use common::{event, read_all};
use factum::{AppendCondition, EventStore, Query, QueryItem, Tag};

fn on_course(course: &str) -> AppendCondition {
    AppendCondition::new(
        Query::item(QueryItem::types(["Subscribed"]).with_tags([Tag::new("course", course)])),
        None,
    )
}

/// Polls until `count` store connections wait for the advisory lock `key`.
async fn wait_for_waiters(
    client: &tokio_postgres::Client,
    application: &str,
    key: i64,
    count: i64,
) {
    for _ in 0..3000 {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = $1 \
                   AND ((l.classid::bigint << 32) | l.objid::bigint) = $2",
                &[&application, &key],
            )
            .await
            .unwrap_or_else(|e| panic!("querying pg_locks failed: {e}"))
            .get(0);
        if waiting == count {
            return;
        }
        assert!(
            waiting < count,
            "{waiting} appends wait on the key, expected {count}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("after 30 s, {count} appends still do not wait on lock key {key}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_on_one_tag_serialize_and_on_disjoint_tags_run_in_parallel() {
    let (store, _guard) = common::store("locks").await;
    let application = common::application_name(store.schema());

    // The locks of a conditional append of a c1 subscription on course c1.
    let held = store.lock_keys(
        &[event("Subscribed", &[("course", "c1")])],
        Some(&on_course("c1")),
    );
    let exclusive: Vec<i64> = held.iter().filter(|k| k.exclusive).map(|k| k.key).collect();
    assert_eq!(
        exclusive.len(),
        1,
        "one exclusive key (the course tag): {held:?}"
    );
    assert_eq!(held.len(), 3, "tag, type and global keys: {held:?}");
    let c1_key = exclusive[0];

    let mut holder = common::connect_raw().await;
    let tx = holder
        .transaction()
        .await
        .unwrap_or_else(|e| panic!("BEGIN failed: {e}"));
    for key in &held {
        let sql = if key.exclusive {
            "SELECT pg_advisory_xact_lock($1)"
        } else {
            "SELECT pg_advisory_xact_lock_shared($1)"
        };
        tx.execute(sql, &[&key.key])
            .await
            .unwrap_or_else(|e| panic!("taking lock {key:?} failed: {e}"));
    }

    // Two appends that touch course c1: one only writes there, one also checks it.
    let writer = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .append(
                    vec![event("Subscribed", &[("course", "c1"), ("student", "s1")])],
                    None,
                )
                .await
        }
    });
    let checker = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .append(
                    vec![event("Noted", &[("student", "s2")])],
                    Some(on_course("c1")),
                )
                .await
        }
    });

    // Meanwhile appends on course c2 go through, conditional or not.
    let c2 = tokio::time::timeout(Duration::from_secs(30), async {
        let a = store
            .append(
                vec![event("Subscribed", &[("course", "c2")])],
                Some(on_course("c2")),
            )
            .await;
        let b = store
            .append(vec![event("Subscribed", &[("course", "c2")])], None)
            .await;
        (a, b)
    })
    .await
    .unwrap_or_else(|_| panic!("appends on course c2 were blocked by locks on course c1"));
    let (a, b) = (
        c2.0.unwrap_or_else(|e| panic!("the conditional c2 append failed: {e}")),
        c2.1.unwrap_or_else(|e| panic!("the c2 append failed: {e}")),
    );

    // Both c1 appends wait, on the c1 key, and have written nothing.
    let observer = common::connect_raw().await;
    wait_for_waiters(&observer, &application, c1_key, 2).await;
    assert!(!writer.is_finished() && !checker.is_finished());
    let log: Vec<_> = read_all(&store).await.iter().map(|e| e.position).collect();
    assert_eq!(
        log,
        [a.positions[0], b.positions[0]],
        "only the c2 appends are in"
    );

    tx.commit()
        .await
        .unwrap_or_else(|e| panic!("COMMIT failed: {e}"));
    let finish = |task: tokio::task::JoinHandle<_>| async move {
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .unwrap_or_else(|_| panic!("an append on c1 still waits after the locks were released"))
            .unwrap_or_else(|e| panic!("an append task failed: {e}"))
    };
    let written: factum::Appended = finish(writer)
        .await
        .unwrap_or_else(|e| panic!("the c1 append failed: {e}"));
    let checked: Result<factum::Appended, factum::AppendError> = finish(checker).await;
    // They ran one after the other: the checker conflicts with the writer's event if it
    // came second, and succeeds if it came first.
    match checked {
        Ok(checked) => assert!(checked.positions[0] < written.positions[0]),
        Err(factum::AppendError::Conflict { position, .. }) => {
            assert_eq!(position, written.positions[0]);
        }
        Err(e) => panic!("the checking append failed: {e}"),
    }
    assert!(
        written.positions[0] > b.positions[0],
        "c1 committed after c2"
    );
}
