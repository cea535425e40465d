//! Exactly-once projections on PostgreSQL: a read model in the store's schema, moved with
//! its checkpoint in one transaction; tailing woken by NOTIFY.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use factum::decide::RetryPolicy;
use factum::listen::{
    HandlerError, ListenerStore, NewDeadLetter, OnFailure, Sink, Subscription, SubscriptionError,
    SubscriptionOptions,
};
use factum::{EventStore, Position, Query, QueryItem, StoredEvent};
use factum_postgres::{PgProjection, PgProjectionSink, PostgresStore};
use tokio_postgres::Client;

const NAME: &str = "tag_counts";

/// What makes the projection fail, shared with the test.
#[derive(Clone, Default)]
struct Faults {
    /// Positions that always fail (permanently), after writing.
    broken: Arc<Mutex<HashSet<u64>>>,
    /// Positions that fail (transiently, after writing) this many more times.
    flaky: Arc<Mutex<HashMap<u64, u32>>>,
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
}

impl PgProjection for TagCounts {
    fn name(&self) -> &str {
        NAME
    }

    fn query(&self) -> Query {
        Query::item(QueryItem::types(["Tagged"]))
    }

    async fn apply(&mut self, client: &Client, event: &StoredEvent) -> Result<(), HandlerError> {
        let position = i64::try_from(event.position.0).map_err(HandlerError::permanent)?;
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .map_err(HandlerError::transient)?
            .get(0);
        self.faults.pids.lock().unwrap().insert(pid);
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
        if self.faults.kill.lock().unwrap().remove(&event.position.0) {
            // The connection fails midway (its transaction goes with it).
            client
                .execute("SELECT pg_terminate_backend(pg_backend_pid())", &[])
                .await
                .map_err(HandlerError::transient)?;
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

fn sink(fixture: &Fixture, faults: &Faults) -> PgProjectionSink<TagCounts> {
    PgProjectionSink::new(
        fixture.store.clone(),
        TagCounts {
            schema: fixture.store.schema().to_owned(),
            faults: faults.clone(),
        },
    )
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

/// Appends `n` "Tagged" events with colors cycling red, green, blue (each with an
/// "Other" event beside it); returns the positions of the "Tagged" ones.
async fn append(store: &PostgresStore, n: usize) -> Vec<Position> {
    append_from(store, 0, n).await
}

/// Like [`append`], the first being the `start`-th "Tagged" event.
async fn append_from(store: &PostgresStore, start: usize, n: usize) -> Vec<Position> {
    let colors = ["red", "green", "blue"];
    let mut positions = Vec::new();
    for i in start..start + n {
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
async fn read_model(store: &PostgresStore) -> (Vec<(String, i64)>, Vec<u64>) {
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

/// The read model expected after applying `applied` (of the "Tagged" positions `all`).
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
async fn a_projection_catches_up_then_another_connections_append_wakes_it_by_notify() {
    let fixture = fixture("pj_tail").await;
    let mut all = append(&fixture.store, 9).await;
    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &Faults::default()))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_dropped_before_its_commit_leaves_nothing_behind() {
    let fixture = fixture("pj_drop").await;
    let all = append(&fixture.store, 6).await;
    let faults = Faults::default();
    let mut first = sink(&fixture, &faults);
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
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all[..2]));
    assert_eq!(
        fixture.store.load_checkpoint(NAME).await.unwrap(),
        Some(all[1])
    );

    // A new subscription goes on from the checkpoint: each event applied once.
    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &faults))
        .with_options(options(OnFailure::DeadLetterAndContinue));
    assert_eq!(sub.catch_up().await.unwrap().handled, 4);
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all));

    // Events delivered again (at or below the checkpoint, no dead letter) are skipped.
    let mut again = sink(&fixture, &faults);
    again.checkpoint().await.unwrap();
    again.apply(&events[0]).await.expect("skipped");
    again.commit(events[0].position).await.expect("a commit");
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all));
    assert!(
        fixture.store.load_checkpoint(NAME).await.unwrap() >= all.last().copied(),
        "the checkpoint never moves back"
    );

    // A rebuild gives the same read model.
    sub.rebuild().await.expect("a rebuild");
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_mid_batch_apply_nothing_twice_and_lose_nothing() {
    let fixture = fixture("pj_fail").await;
    let all = append(&fixture.store, 10).await;
    let faults = Faults::default();
    faults.flaky.lock().unwrap().insert(all[2].0, 2);
    faults.flaky.lock().unwrap().insert(all[5].0, 1);
    faults.broken.lock().unwrap().insert(all[6].0);
    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &faults))
        .with_options(options(OnFailure::DeadLetterAndStop));
    let stopped = sub.catch_up().await;
    assert!(
        matches!(&stopped, Err(SubscriptionError::Failed { position, .. }) if *position == all[6]),
        "{stopped:?}"
    );
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all[..6]));
    let checkpoint = fixture.store.load_checkpoint(NAME).await.unwrap();
    assert!(
        checkpoint >= Some(all[5]) && checkpoint < Some(all[6]),
        "{checkpoint:?}"
    );
    let letters = fixture.store.dead_letters(Some(NAME)).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].position, all[6]);

    faults.broken.lock().unwrap().clear();
    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &faults))
        .with_options(options(OnFailure::DeadLetterAndStop));
    assert_eq!(sub.catch_up().await.unwrap().handled, 4);
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all));
    assert!(fixture.store.dead_letters(None).await.unwrap().is_empty());
    assert_eq!(sub.replay_dead_letters().await.unwrap().handled, 0);

    sub.rebuild().await.expect("a rebuild");
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_commits_with_the_checkpoint_and_a_replay_removes_it() {
    let fixture = fixture("pj_letters").await;
    let all = append(&fixture.store, 8).await;
    let faults = Faults::default();
    faults.broken.lock().unwrap().insert(all[3].0);

    // Dropped before the commit: the dead letter is not kept.
    let mut dropped = sink(&fixture, &faults);
    dropped.checkpoint().await.unwrap();
    dropped
        .dead_letter(NewDeadLetter {
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

    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &faults))
        .with_options(options(OnFailure::DeadLetterAndContinue));
    let progress = sub.catch_up().await.unwrap();
    assert_eq!((progress.handled, progress.dead_lettered), (7, 1));
    let applied: Vec<Position> = all.iter().copied().filter(|p| *p != all[3]).collect();
    assert_eq!(read_model(&fixture.store).await, expected(&all, &applied));
    let letters = fixture.store.dead_letters(Some(NAME)).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].position, all[3]);
    assert!(
        letters[0].error.contains("on purpose"),
        "{}",
        letters[0].error
    );
    assert!(fixture.store.load_checkpoint(NAME).await.unwrap() >= all.last().copied());

    let replay = sub.replay_dead_letters().await.unwrap();
    assert_eq!((replay.handled, replay.dead_lettered), (0, 1));
    assert_eq!(fixture.store.dead_letters(None).await.unwrap().len(), 1);
    assert_eq!(read_model(&fixture.store).await, expected(&all, &applied));

    faults.broken.lock().unwrap().clear();
    let replay = sub.replay_dead_letters().await.unwrap();
    assert_eq!(replay.handled, 1);
    assert!(fixture.store.dead_letters(None).await.unwrap().is_empty());
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all));
    assert_eq!(sub.replay_dead_letters().await.unwrap().handled, 0);
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all));
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
    faults.broken.lock().unwrap().insert(all[5].0);
    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &faults))
        .with_options(options(OnFailure::DeadLetterAndContinue));
    let limit = Duration::from_secs(20);
    let progress = tokio::time::timeout(limit, sub.catch_up())
        .await
        .expect("the catch-up hangs on the pool")
        .expect("a catch-up");
    assert_eq!((progress.handled, progress.dead_lettered), (9, 1));
    // Three batches, one connection: the sink does not close it after each batch.
    assert_eq!(faults.pids.lock().unwrap().len(), 1);

    faults.broken.lock().unwrap().clear();
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
    assert_eq!(faults.pids.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_at_a_batchs_first_event_is_retried_not_dead_lettered() {
    let fixture = fixture("pj_kill1").await;
    let all = append(&fixture.store, 8).await;
    let faults = Faults::default();
    // The first event of the first and of the second batch (of 4).
    faults.kill.lock().unwrap().insert(all[0].0);
    faults.kill.lock().unwrap().insert(all[4].0);
    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &faults))
        .with_options(options(OnFailure::DeadLetterAndContinue));
    let progress = sub.catch_up().await.expect("a catch-up");
    assert_eq!((progress.handled, progress.dead_lettered), (8, 0));
    assert!(fixture.store.dead_letters(None).await.unwrap().is_empty());
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_mid_batch_loses_nothing_and_doubles_nothing() {
    let fixture = fixture("pj_kill2").await;
    let all = append(&fixture.store, 10).await;
    let faults = Faults::default();
    faults.kill.lock().unwrap().insert(all[2].0);
    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &faults))
        .with_options(options(OnFailure::DeadLetterAndContinue));
    let stopped = sub.catch_up().await;
    assert!(
        matches!(&stopped, Err(SubscriptionError::Store { .. })),
        "{stopped:?}"
    );
    assert!(fixture.store.load_checkpoint(NAME).await.unwrap() < Some(all[0]));
    assert!(fixture.store.dead_letters(None).await.unwrap().is_empty());
    let progress = sub.catch_up().await.expect("a catch-up");
    assert_eq!((progress.handled, progress.dead_lettered), (10, 0));
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all));
    assert!(fixture.store.dead_letters(None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_started_over_removes_the_dead_letter_of_an_event_it_applies() {
    let fixture = fixture("pj_restart").await;
    let all = append(&fixture.store, 6).await;
    let faults = Faults::default();
    faults.broken.lock().unwrap().insert(all[2].0);
    let mut sub = Subscription::new(fixture.store.clone(), sink(&fixture, &faults))
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
    let mut sink = sink(&fixture, &faults);
    let checkpoint = sink.checkpoint().await.unwrap();
    assert!(checkpoint >= Some(all[1]) && checkpoint < Some(all[2]));
    // The letter's event and the next one, then the batch starts over (a call of it was
    // dropped): the rollback brings the letter back, and applying its event again must
    // delete it again.
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
    assert_eq!(read_model(&fixture.store).await, expected(&all, &all[..4]));
}
