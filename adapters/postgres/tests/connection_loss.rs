//! A backend terminated in the middle of an append: the append fails with a typed store
//! error, writes nothing, and the next append (on a fresh pooled connection) succeeds.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{event, read_all};
use factum::SnapshotStore;
use factum::{
    AppendCondition, AppendError, AppendRequest, EventStore, Position, Query, QueryItem,
    StoreError, Tag,
};
use tokio::sync::oneshot;

fn on_account() -> AppendCondition {
    AppendCondition::new(
        Query::item(QueryItem::any().with_tags([Tag::new("account", "1")])),
        None,
    )
}

/// The pid of the one store connection that `pg_stat_activity` shows in `state` (and, if
/// given, waiting on an advisory lock).
async fn store_backend(client: &tokio_postgres::Client, application: &str, lock_wait: bool) -> i32 {
    for _ in 0..3000 {
        let rows = client
            .query(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 \
                 AND ((NOT $2 AND state = 'idle in transaction') \
                      OR ($2 AND wait_event_type = 'Lock' AND wait_event = 'advisory'))",
                &[&application, &lock_wait],
            )
            .await
            .unwrap_or_else(|e| panic!("querying pg_stat_activity failed: {e}"));
        if let [row] = &rows[..] {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("after 30 s, no store connection is where the test expects the append");
}

async fn terminate(client: &tokio_postgres::Client, pid: i32) {
    let done: bool = client
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap_or_else(|e| panic!("pg_terminate_backend failed: {e}"))
        .get(0);
    assert!(done, "backend {pid} was not terminated");
}

fn assert_backend_error(result: Result<factum::Appended, AppendError>) {
    match result {
        Err(AppendError::Store(StoreError::Backend(e))) => {
            eprintln!("the interrupted append failed as expected: {e}");
        }
        other => {
            panic!("an append whose connection died must fail with a backend error, got {other:?}")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_cut_off_while_waiting_for_its_locks_writes_nothing() {
    let (store, _guard) = common::store("loss_locks").await;
    let application = common::application_name(store.schema());
    let admin = common::connect_raw().await;

    // Hold the account's lock, so the append waits on it.
    let mut holder = common::connect_raw().await;
    let tx = holder
        .transaction()
        .await
        .unwrap_or_else(|e| panic!("BEGIN failed: {e}"));
    let account = store.lock_keys(
        &[event("Deposited", &[("account", "1")])],
        Some(&on_account()),
    );
    for key in account.iter().filter(|k| k.exclusive) {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key.key])
            .await
            .unwrap_or_else(|e| panic!("taking the lock failed: {e}"));
    }
    let append = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .append(
                    vec![event("Deposited", &[("account", "1")])],
                    Some(on_account()),
                )
                .await
        }
    });
    let pid = store_backend(&admin, &application, true).await;
    terminate(&admin, pid).await;
    assert_backend_error(
        append
            .await
            .unwrap_or_else(|e| panic!("the append task failed: {e}")),
    );
    tx.rollback()
        .await
        .unwrap_or_else(|e| panic!("ROLLBACK failed: {e}"));

    assert!(
        read_all(&store).await.is_empty(),
        "the interrupted append wrote something"
    );
    let retried = store
        .append(
            vec![event("Deposited", &[("account", "1")])],
            Some(on_account()),
        )
        .await
        .unwrap_or_else(|e| panic!("the retried append failed: {e}"));
    let log: Vec<Position> = read_all(&store).await.iter().map(|e| e.position).collect();
    assert_eq!(log, retried.positions);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_cut_off_right_before_its_commit_writes_nothing() {
    type Gate = (oneshot::Sender<()>, oneshot::Receiver<()>);
    let gate: Arc<Mutex<Option<Gate>>> = Arc::new(Mutex::new(None));
    let hook_gate = gate.clone();
    let (store, _guard) = common::store_with("loss_commit", move |o| {
        o.before_commit = Some(Arc::new(move |_: &[Position]| {
            let held = hook_gate.lock().map(|mut g| g.take()).unwrap_or(None);
            Box::pin(async move {
                if let Some((reached, go)) = held {
                    let _ = reached.send(());
                    let _ = go.await;
                }
            })
        }));
    })
    .await;
    let application = common::application_name(store.schema());
    let admin = common::connect_raw().await;

    let (reached_tx, reached) = oneshot::channel();
    let (go, go_rx) = oneshot::channel();
    *gate.lock().unwrap_or_else(|e| e.into_inner()) = Some((reached_tx, go_rx));
    let append = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .append(
                    vec![
                        event("Deposited", &[("account", "1")]),
                        event("Deposited", &[("account", "1")]),
                    ],
                    Some(on_account()),
                )
                .await
        }
    });
    reached
        .await
        .unwrap_or_else(|_| panic!("the append never reached its commit"));
    // Its rows are inserted, its transaction open: cut it off there.
    let pid = store_backend(&admin, &application, false).await;
    terminate(&admin, pid).await;
    let _ = go.send(());
    assert_backend_error(
        append
            .await
            .unwrap_or_else(|e| panic!("the append task failed: {e}")),
    );

    assert!(
        read_all(&store).await.is_empty(),
        "the interrupted append wrote something"
    );
    let retried = store
        .append(
            vec![event("Deposited", &[("account", "1")])],
            Some(on_account()),
        )
        .await
        .unwrap_or_else(|e| panic!("the retried append failed: {e}"));
    let log: Vec<Position> = read_all(&store).await.iter().map(|e| e.position).collect();
    assert_eq!(log, retried.positions);
}

/// Terminates every idle connection `application` has open on the server (its pool's
/// connections waiting to be checked out), returning how many it terminated. It returns as
/// soon as the signals are sent: the backends end a moment later.
async fn terminate_idle(client: &tokio_postgres::Client, application: &str) -> usize {
    let rows = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND state = 'idle'",
            &[&application],
        )
        .await
        .unwrap_or_else(|e| panic!("terminating the pooled backends failed: {e}"));
    rows.len()
}

/// Connections that died while pooled (a server restart, `pg_terminate_backend`) are
/// replaced without failing the operation that checks one out next: the pool does not
/// ping a connection before handing it out, so a read that meets a dead one runs again
/// on a fresh connection (a read changes nothing), and an append never reaches the server
/// on one it can tell is dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_died_while_pooled_fail_no_read_and_no_append() {
    let (store, _guard) = common::store("loss_pooled").await;
    let application = common::application_name(store.schema());
    let admin = common::connect_raw().await;
    let on_cart = |cart: &str| {
        AppendCondition::new(
            Query::item(QueryItem::any().with_tags([Tag::new("cart", cart)])),
            None,
        )
    };
    let mut appended = 0;
    for round in 0..20 {
        // Several connections in the pool: concurrent reads each check one out.
        let reads = (0..4).map(|_| read_all(&store));
        futures::future::join_all(reads).await;
        let terminated = terminate_idle(&admin, &application).await;
        assert!(
            terminated > 0,
            "round {round}: no pooled connection to terminate"
        );
        // At once: the client has not read their end yet, nor have some of them ended.
        use futures::TryStreamExt;
        let read: Result<Vec<factum::StoredEvent>, StoreError> = store
            .read(&Query::all(), factum::ReadOptions::forward())
            .try_collect()
            .await;
        let read = read.unwrap_or_else(|e| {
            panic!("round {round}: a read after {terminated} pooled connections died failed: {e}")
        });
        assert_eq!(read.len(), appended, "round {round}: the read lost events");

        futures::future::join_all((0..4).map(|_| read_all(&store))).await;
        terminate_idle(&admin, &application).await;
        let cart = format!("c{round}");
        store
            .append(
                vec![event("Added", &[("cart", &cart)])],
                Some(on_cart(&cart)),
            )
            .await
            .unwrap_or_else(|e| {
                panic!("round {round}: an append after the pooled connections died failed: {e}")
            });
        appended += 1;

        // A batch past `PIPELINE_ABOVE` requests: the pipelined path, in a transaction.
        futures::future::join_all((0..4).map(|_| read_all(&store))).await;
        terminate_idle(&admin, &application).await;
        let batch: Vec<AppendRequest> = (0..=factum_postgres::PIPELINE_ABOVE)
            .map(|i| {
                let cart = format!("c{round}-{i}");
                AppendRequest::new(
                    vec![event("Added", &[("cart", &cart)])],
                    Some(on_cart(&cart)),
                )
            })
            .collect();
        let results = store.append_batch(batch).await.unwrap_or_else(|e| {
            panic!("round {round}: a batch after the pooled connections died failed: {e}")
        });
        for result in &results {
            assert!(
                result.is_ok(),
                "round {round}: a request failed: {result:?}"
            );
        }
        appended += results.len();
    }
    assert_eq!(read_all(&store).await.len(), appended);
}

/// The other statements of a decision's path: the idempotency-key look-up of a keyed
/// decision and the snapshot load and save of a state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_died_while_pooled_fail_no_key_look_up_and_no_snapshot() {
    let (store, _guard) = common::store("loss_pooled_keys").await;
    let application = common::application_name(store.schema());
    let admin = common::connect_raw().await;
    for round in 0..20 {
        let snapshot = factum::Snapshot {
            key: format!("state-{round}"),
            query: "q".to_owned(),
            position: factum::Position(1),
            payload: factum::Codec::Json
                .encode("State", &serde_json::json!({ "round": round }))
                .expect("a payload"),
        };
        futures::future::join_all((0..4).map(|_| read_all(&store))).await;
        terminate_idle(&admin, &application).await;
        store
            .save_snapshot(snapshot.clone())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "round {round}: a snapshot save after the pooled connections died failed: {e}"
                )
            });

        futures::future::join_all((0..4).map(|_| read_all(&store))).await;
        terminate_idle(&admin, &application).await;
        let loaded = store
            .load_snapshot(&snapshot.key)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "round {round}: a snapshot load after the pooled connections died failed: {e}"
                )
            });
        assert_eq!(loaded, Some(snapshot), "round {round}");

        futures::future::join_all((0..4).map(|_| read_all(&store))).await;
        terminate_idle(&admin, &application).await;
        let found = store
            .find_idempotency_keys(&[format!("key-{round}")])
            .await
            .unwrap_or_else(|e| {
                panic!("round {round}: a key look-up after the pooled connections died failed: {e}")
            });
        assert_eq!(found, vec![None], "round {round}");
    }
}
