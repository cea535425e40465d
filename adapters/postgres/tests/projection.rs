//! Exactly-once projections on PostgreSQL: a read model in the store's schema, moved with
//! its checkpoint in one transaction; tailing woken by NOTIFY. The contract every such
//! sink keeps is the runtime's `factum::conformance::sink`; what is PostgreSQL's own is
//! here.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use factum::conformance::sink::{
    self, Faults, NAME, ReadModel, SinkHarness, append, append_from, expected, letters, options,
    stored_checkpoint,
};
use factum::listen::{HandlerError, ListenerStore, OnFailure, Subscription, SubscriptionError};
use factum::{Query, StoredEvent};
use factum_postgres::{PgProjection, PgProjectionSink, PostgresStore};
use tokio_postgres::Client;

/// PostgreSQL's own faults, beside the kit's.
#[derive(Clone, Default)]
struct Connections {
    /// Positions at which the projection terminates its own connection (once each).
    kill: Arc<Mutex<HashSet<u64>>>,
    /// The server processes (connections) the projection ran on.
    pids: Arc<Mutex<HashSet<i32>>>,
}

/// Counts events per tag; records each position it applied (a primary key: applying one
/// twice fails).
struct TagCounts {
    schema: String,
    faults: Faults,
    connections: Connections,
}

impl PgProjection for TagCounts {
    fn name(&self) -> &str {
        NAME
    }

    fn query(&self) -> Query {
        sink::query()
    }

    async fn apply(&mut self, client: &Client, event: &StoredEvent) -> Result<(), HandlerError> {
        let position = i64::try_from(event.position.0).map_err(HandlerError::permanent)?;
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(HandlerError::transient)?
            .get(0);
        self.connections.pids.lock().unwrap().insert(pid);
        for tag in &event.tags {
            client
                .execute(
                    &format!(
                        "INSERT INTO \"{}\".tag_counts AS t (tag, n) VALUES ($1, 1) \
                         ON CONFLICT (tag) DO UPDATE SET n = t.n + 1",
                        self.schema
                    ),
                    &[&format!("{}={}", tag.key, tag.value)],
                )
                .await
                .map_err(HandlerError::transient)?;
        }
        client
            .execute(
                &format!(
                    "INSERT INTO \"{}\".applied (position) VALUES ($1)",
                    self.schema
                ),
                &[&position],
            )
            .await
            .map_err(HandlerError::permanent)?;
        if self
            .connections
            .kill
            .lock()
            .unwrap()
            .remove(&event.position.0)
        {
            // The connection fails midway (its transaction goes with it).
            client
                .execute("SELECT pg_terminate_backend(pg_backend_pid())", &[])
                .await
                .map_err(HandlerError::transient)?;
        }
        // Fail after writing: the savepoint must undo it.
        self.faults.after_writing(event.position)
    }

    async fn reset(&mut self, client: &Client) -> Result<(), HandlerError> {
        client
            .batch_execute(&format!(
                "DELETE FROM \"{0}\".tag_counts; DELETE FROM \"{0}\".applied;",
                self.schema
            ))
            .await
            .map_err(HandlerError::transient)
    }
}

struct Fixture {
    store: PostgresStore,
    _guard: common::SchemaGuard,
}

impl SinkHarness for Fixture {
    type Store = PostgresStore;
    type Sink = PgProjectionSink<TagCounts>;

    fn store(&self) -> &PostgresStore {
        &self.store
    }

    async fn sink(&self, faults: &Faults) -> PgProjectionSink<TagCounts> {
        sink_with(self, faults, &Connections::default())
    }

    async fn read_model(&self) -> ReadModel {
        read_model(&self.store).await
    }
}

factum::projection_sink_conformance_tests!(|| fixture("pj_sink"));

async fn fixture(what: &str) -> Fixture {
    fixture_with(what, |_| {}).await
}

async fn fixture_with(
    what: &str,
    configure: impl FnOnce(&mut factum_postgres::PostgresOptions),
) -> Fixture {
    let (store, guard) = common::store_with(what, configure).await;
    common::connect_raw()
        .await
        .batch_execute(&format!(
            "CREATE TABLE \"{0}\".tag_counts (tag text PRIMARY KEY, n bigint NOT NULL);
             CREATE TABLE \"{0}\".applied (position bigint PRIMARY KEY);",
            store.schema()
        ))
        .await
        .expect("the read model's tables");
    Fixture {
        store,
        _guard: guard,
    }
}

/// A sink that also fails its connections as `connections` say, and records them.
fn sink_with(
    fixture: &Fixture,
    faults: &Faults,
    connections: &Connections,
) -> PgProjectionSink<TagCounts> {
    PgProjectionSink::new(
        fixture.store.clone(),
        TagCounts {
            schema: fixture.store.schema().to_owned(),
            faults: faults.clone(),
            connections: connections.clone(),
        },
    )
}

/// The read model: counts per tag, and the positions applied.
async fn read_model(store: &PostgresStore) -> ReadModel {
    let client = common::connect_raw().await;
    let counts = client
        .query(
            &format!(
                "SELECT tag, n FROM \"{}\".tag_counts ORDER BY tag",
                store.schema()
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let applied = client
        .query(
            &format!(
                "SELECT position FROM \"{}\".applied ORDER BY position",
                store.schema()
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, i64>(0) as u64)
        .collect();
    (counts, applied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_catches_up_then_another_connections_append_wakes_it_by_notify() {
    let fixture = fixture("pj_tail").await;
    let mut all = append(&fixture.store, 9).await;
    let mut sub = Subscription::new(
        fixture.store.clone(),
        sink_with(&fixture, &Faults::default(), &Connections::default()),
    )
    .with_options(options(OnFailure::DeadLetterAndContinue));
    let progress = sub.catch_up().await.expect("a catch-up");
    assert_eq!(progress.handled, 9);
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all));

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let tail = tokio::spawn(async move {
        let progress = sub
            .run(async {
                let _ = stopped.await;
            })
            .await;
        (sub, progress)
    });
    // Wait until the listening connection is up and has read the newest position: from
    // then on, only a notification tells it of another connection's append.
    listening(&fixture.store).await;
    // A second store instance (its own pool) on the same schema: only NOTIFY tells the
    // first one.
    let other = PostgresStore::from_env(fixture.store.schema())
        .await
        .expect("a second store");
    for round in 0..2 {
        let started = Instant::now();
        let late = append_from(&other, all.len(), 1).await;
        all.extend(late.iter().copied());
        loop {
            if read_model(&fixture.store).await.1.len() == all.len() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "round {round}: the tailing projection did not see another connection's append \
                 within 2 s (poll interval 30 s): is NOTIFY delivered?"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let _ = stop.send(());
    let (_, progress) = tail.await.expect("the tail task");
    progress.expect("the tail ends cleanly");
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listening_connection_reconnects_after_it_is_terminated() {
    let fixture = fixture("pj_reconn").await;
    let mut head = fixture.store.watch_head();
    // Wait for the listening connection, then kill it.
    let admin = common::connect_raw().await;
    let name = format!(
        "{}-listen",
        common::application_name(fixture.store.schema())
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let killed: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        if killed > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no listening connection named {name}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Appends of another instance reach this one again once it reconnected.
    let other = PostgresStore::from_env(fixture.store.schema())
        .await
        .expect("a second store");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        head.borrow_and_update();
        let appended = append(&other, 1).await[0];
        let woke = tokio::time::timeout(Duration::from_millis(500), async {
            while *head.borrow_and_update() < Some(appended) {
                head.changed().await.expect("the signal stays open");
            }
        })
        .await;
        if woke.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the commit signal did not come back after its connection was terminated"
        );
    }
}

/// Waits until the store's listening connection has LISTENed and read the newest
/// position (its last statement, done).
async fn listening(store: &PostgresStore) {
    let admin = common::connect_raw().await;
    let name = format!("{}-listen", common::application_name(store.schema()));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
                 AND state = 'idle' AND query LIKE 'SELECT max(position)%'",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        if ready > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the listening connection {name} did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_runs_on_a_pool_of_one_connection_and_keeps_it_across_batches() {
    let fixture = fixture_with("pj_pool1", |options| {
        options.pool_size = 1;
        options.pool_wait_timeout = Some(Duration::from_secs(5));
    })
    .await;
    let all = append(&fixture.store, 10).await;
    let faults = Faults::default();
    let connections = Connections::default();
    faults.break_at(all[5]);
    let mut sub = Subscription::new(
        fixture.store.clone(),
        sink_with(&fixture, &faults, &connections),
    )
    .with_options(options(OnFailure::DeadLetterAndContinue));
    let limit = Duration::from_secs(20);
    let progress = tokio::time::timeout(limit, sub.catch_up())
        .await
        .expect("the catch-up hangs on the pool")
        .expect("a catch-up");
    assert_eq!((progress.handled, progress.dead_lettered), (9, 1));
    // Three batches, one connection: the sink does not close it after each batch.
    assert_eq!(connections.pids.lock().unwrap().len(), 1);

    faults.repair();
    let replay = tokio::time::timeout(limit, sub.replay_dead_letters())
        .await
        .expect("the replay hangs on the pool")
        .expect("a replay");
    assert_eq!(replay.handled, 1);
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all));
    tokio::time::timeout(limit, sub.rebuild())
        .await
        .expect("the rebuild hangs on the pool")
        .expect("a rebuild");
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all));
    // The sink holds no connection between batches: the store's own calls get the one.
    tokio::time::timeout(limit, fixture.store.dead_letters(None))
        .await
        .expect("the store waits for the sink's connection")
        .expect("the dead letters");
    assert_eq!(connections.pids.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_at_a_batchs_first_event_is_retried_not_dead_lettered() {
    let fixture = fixture("pj_kill1").await;
    let all = append(&fixture.store, 8).await;
    let connections = Connections::default();
    // The first event of the first and of the second batch (of 4).
    connections.kill.lock().unwrap().insert(all[0].0);
    connections.kill.lock().unwrap().insert(all[4].0);
    let sink = sink_with(&fixture, &Faults::default(), &connections);
    let mut sub = Subscription::new(fixture.store.clone(), sink)
        .with_options(options(OnFailure::DeadLetterAndContinue));
    let progress = sub.catch_up().await.expect("a catch-up");
    assert_eq!((progress.handled, progress.dead_lettered), (8, 0));
    assert!(letters(&fixture.store, None).await.is_empty());
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_mid_batch_loses_nothing_and_doubles_nothing() {
    let fixture = fixture("pj_kill2").await;
    let all = append(&fixture.store, 10).await;
    let connections = Connections::default();
    connections.kill.lock().unwrap().insert(all[2].0);
    let sink = sink_with(&fixture, &Faults::default(), &connections);
    let mut sub = Subscription::new(fixture.store.clone(), sink)
        .with_options(options(OnFailure::DeadLetterAndContinue));
    let stopped = sub.catch_up().await;
    assert!(
        matches!(&stopped, Err(SubscriptionError::Store { .. })),
        "{stopped:?}"
    );
    assert!(stored_checkpoint(&fixture.store).await < Some(all[0]));
    assert!(letters(&fixture.store, None).await.is_empty());
    let progress = sub.catch_up().await.expect("a catch-up");
    assert_eq!((progress.handled, progress.dead_lettered), (10, 0));
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all));
    assert!(letters(&fixture.store, None).await.is_empty());
}
