//! Distributed lanes against real servers: NATS (2.11 or newer, at `NATS_URL`) and
//! PostgreSQL (at `DATABASE_URL`), each test on a stream and a schema of its own.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::domain::{Release, Reserve, events};
use factum::lanes::Dispatcher;
use factum::prelude::*;
use factum::store::StoreLayer;
use factum_nats::async_nats::jetstream;
use factum_nats::lanes::{PRIORITY_GROUP, ensure_consumer, ensure_stream, partition, wire};
use factum_nats::{LanesClient, LanesError, Worker, partition_of};
use factum_postgres::PostgresStore;
use futures::{StreamExt, TryStreamExt};

async fn worker(
    store: &PostgresStore,
    options: &factum_nats::LanesOptions,
    id: &str,
    owned: impl IntoIterator<Item = u32>,
) -> Worker<PostgresStore> {
    Worker::builder(
        common::nats().await,
        Dispatcher::new(Engine::new(store.clone())),
        options.clone(),
    )
    .id(id)
    .partitions(owned)
    .handle::<Reserve>()
    .start()
    .await
    .expect("start a worker")
}

async fn reservations(store: &PostgresStore, seat: &str) -> Vec<StoredEvent> {
    store
        .read(
            &Query::item(
                QueryItem::of::<events::SeatReserved>().with_tags([Tag::new("seat", seat)]),
            ),
            ReadOptions::forward(),
        )
        .try_collect()
        .await
        .expect("read the log")
}

#[test]
fn the_partition_function_is_fixed_and_spreads_keys() {
    // FNV-1a 64 reference values, and the partitions they give: these must never change,
    // or running workers and clients of different builds would disagree.
    assert_eq!(partition::hash(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(partition::hash("a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(partition::hash("foobar"), 0x8594_4171_f739_67e8);
    assert_eq!(partition::hash("SPRING"), 0xf3cc_23b1_a17e_becc);
    assert_eq!(partition_of("SPRING", 16), 12);
    assert_eq!(partition_of("RUSH", 16), 3);
    assert_eq!(partition_of("coupon-1", 16), 9);
    assert_eq!(partition_of("coupon-1", 4), 1);
    assert_eq!(partition_of("", 16), 5);
    assert_eq!(factum_nats::lanes::command_subject("shop", 7), "shop.cmd.7");

    let mut counts = [0u32; 16];
    for i in 0..16_000 {
        counts[partition_of(&format!("cart-{i}"), 16) as usize] += 1;
    }
    for (p, n) in counts.iter().enumerate() {
        assert!(
            (800..=1200).contains(n),
            "partition {p} got {n} of 16000 keys: {counts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_round_trips_through_a_worker_on_postgres() {
    let nats = common::nats().await;
    let options = common::options("roundtrip");
    let store = common::store("roundtrip").await;
    let worker = worker(&store, &options, "w1", 0..options.partitions).await;
    let client = LanesClient::new(nats.clone(), options.clone())
        .await
        .expect("a client");

    let command = Reserve::new("1A", "ada");
    let outcome = client.request(&command).await.expect("committed");
    assert!(!outcome.replayed);
    assert_eq!(outcome.attempts, 1);
    assert_eq!(outcome.worker, "w1");
    assert_eq!(outcome.partition, client.partition_for(&command));
    assert_eq!(outcome.delivery, 1);
    let log = reservations(&store, "1A").await;
    assert_eq!(
        log.iter().map(|e| e.position).collect::<Vec<_>>(),
        outcome.positions,
        "the reply tells where the event is"
    );
    assert_eq!(
        events::SeatReserved::from_stored(&log[0]).unwrap().by,
        "ada"
    );

    // The same command again: the first outcome, nothing appended.
    let again = client.request(&command).await.expect("replayed");
    assert!(again.replayed);
    assert_eq!(again.positions, outcome.positions);
    assert_eq!(reservations(&store, "1A").await.len(), 1);

    let stats = worker.shutdown().await;
    assert_eq!((stats.committed, stats.replayed), (1, 1), "{stats:?}");
    common::clean_up(&nats, &options, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_refusal_is_a_typed_refusal_with_the_error_text() {
    let nats = common::nats().await;
    let options = common::options("refusal");
    let store = common::store("refusal").await;
    let worker = worker(&store, &options, "w1", 0..options.partitions).await;
    let client = LanesClient::new(nats.clone(), options.clone())
        .await
        .expect("a client");

    client
        .request(&Reserve::new("2B", "ada"))
        .await
        .expect("the first reservation commits");
    let refused = client
        .request(&Reserve::new("2B", "bob"))
        .await
        .expect_err("the seat is taken");
    assert_eq!(refused.refusal(), Some("seat 2B is taken by ada"));
    assert!(!refused.is_retryable());
    match &refused {
        LanesError::Refused {
            decision, worker, ..
        } => assert_eq!((decision.as_str(), worker.as_str()), ("Reserve", "w1")),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(reservations(&store, "2B").await.len(), 1);

    worker.shutdown().await;
    common::clean_up(&nats, &options, &store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_worker_a_request_times_out_with_a_typed_error() {
    let nats = common::nats().await;
    let options = factum_nats::LanesOptions {
        reply_timeout: Duration::from_millis(300),
        ..common::options("timeout")
    };
    let client = LanesClient::new(nats.clone(), options.clone())
        .await
        .expect("a client");
    let command = Reserve::new("3C", "ada");
    let started = Instant::now();
    let error = client.request(&command).await.expect_err("nobody answers");
    match &error {
        LanesError::Timeout {
            decision,
            subject,
            partition,
            waited,
        } => {
            assert_eq!(decision, "Reserve");
            assert_eq!(*partition, client.partition_for(&command));
            assert_eq!(subject, &options.subject(*partition));
            assert!(*waited >= Duration::from_millis(300), "{waited:?}");
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(error.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(5));
    factum_nats::lanes::delete_stream(&nats, &options)
        .await
        .expect("delete the test stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_decision_is_a_typed_error_and_the_worker_goes_on() {
    let nats = common::nats().await;
    let options = common::options("unknown");
    let store = common::store("unknown").await;
    let worker = worker(&store, &options, "w1", 0..options.partitions).await;
    let client = LanesClient::new(nats.clone(), options.clone())
        .await
        .expect("a client");

    let error = client
        .request(&Release { seat: "4D".into() })
        .await
        .expect_err("the worker does not handle Release");
    match &error {
        LanesError::UnknownDecision { decision, worker } => {
            assert_eq!((decision.as_str(), worker.as_str()), ("Release", "w1"));
        }
        other => panic!("expected an unknown decision, got {other:?}"),
    }
    client
        .request(&Reserve::new("4D", "ada"))
        .await
        .expect("the worker still decides what it handles");

    let stats = worker.shutdown().await;
    assert_eq!((stats.rejected, stats.committed), (1, 1), "{stats:?}");
    common::clean_up(&nats, &options, &store).await;
}

/// A worker received a command and committed it, but died before acknowledging it: the
/// broker delivers it again to the partition's next worker, which answers it with the
/// first commit's outcome and appends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_command_that_already_committed_is_answered_replayed() {
    let nats = common::nats().await;
    let options = common::options("redelivery");
    let store = common::store("redelivery").await;
    let client = LanesClient::new(nats.clone(), options.clone())
        .await
        .expect("a client");
    let command = Reserve::new("5E", "ada");
    let partition = client.partition_for(&command);

    // The first "worker": pulls the partition pinned, like a worker would, gets the
    // command, commits it, and dies before acknowledging.
    let jetstream = jetstream::new(nats.clone());
    let stream = ensure_stream(&jetstream, &options).await.expect("stream");
    let consumer = ensure_consumer(&stream, &options, partition)
        .await
        .expect("consumer");
    let mut pulled = consumer
        .stream()
        .group(PRIORITY_GROUP)
        .expires(options.pull_expires())
        .messages()
        .await
        .expect("pull");
    let asking = {
        let (client, command) = (client.clone(), command.clone());
        tokio::spawn(async move { client.request(&command).await })
    };
    let first = tokio::time::timeout(Duration::from_secs(10), pulled.next())
        .await
        .expect("the command is delivered")
        .expect("a message")
        .expect("not an error");
    assert_eq!(first.info().expect("JetStream metadata").delivered, 1);
    let committed = Engine::new(store.clone())
        .decide(&command)
        .await
        .expect("the first worker commits");
    drop(pulled);
    drop(first);

    // The next worker takes the partition over once the pin expires, and gets the
    // command again once the ack wait is over.
    let worker = worker(&store, &options, "w2", 0..options.partitions).await;
    let outcome = asking
        .await
        .expect("the request task")
        .expect("answered after the redelivery");
    assert!(outcome.replayed, "{outcome:?}");
    assert!(outcome.delivery >= 2, "{outcome:?}");
    assert_eq!(outcome.worker, "w2");
    assert_eq!(outcome.positions, committed.positions);
    assert_eq!(
        reservations(&store, "5E").await.len(),
        1,
        "no second commit"
    );

    let stats = worker.shutdown().await;
    assert_eq!((stats.committed, stats.replayed), (0, 1), "{stats:?}");
    assert!(stats.redelivered >= 1, "{stats:?}");
    common::clean_up(&nats, &options, &store).await;
}

/// Two workers, each owning half of the partitions: every key is decided by the worker
/// owning its partition, always the same one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_each_decide_the_keys_of_their_own_partitions() {
    let nats = common::nats().await;
    let options = common::options("owners");
    let store = common::store("owners").await;
    let low = worker(&store, &options, "low", [0, 1]).await;
    let high = worker(&store, &options, "high", [2, 3]).await;
    let client = LanesClient::new(nats.clone(), options.clone())
        .await
        .expect("a client");

    let seats: Vec<String> = (0..12).map(|i| format!("6F-{i}")).collect();
    let mut requests = futures::stream::FuturesUnordered::new();
    for round in 0..3 {
        for seat in &seats {
            let client = client.clone();
            let command = Reserve::new(seat, &format!("person-{round}"));
            requests.push(async move { (command.seat.clone(), client.request(&command).await) });
        }
    }
    let mut deciders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut committed = 0;
    while let Some((seat, result)) = requests.next().await {
        let worker = match result {
            Ok(outcome) => {
                committed += 1;
                outcome.worker
            }
            Err(LanesError::Refused { worker, .. }) => worker,
            Err(other) => panic!("{seat}: {other}"),
        };
        deciders.entry(seat).or_default().insert(worker);
    }
    assert_eq!(committed, seats.len(), "one reservation per seat");
    for (seat, workers) in &deciders {
        let owner = if partition_of(seat, options.partitions) < 2 {
            "low"
        } else {
            "high"
        };
        assert_eq!(
            workers.iter().collect::<Vec<_>>(),
            vec![owner],
            "seat {seat} is decided by the owner of its partition only"
        );
        assert_eq!(reservations(&store, seat).await.len(), 1);
    }
    let (low, high) = (low.shutdown().await, high.shutdown().await);
    assert!(
        low.received > 0 && high.received > 0,
        "both got work: {low:?} {high:?}"
    );
    common::clean_up(&nats, &options, &store).await;
}

/// Commands of one partition published back to back are decided in the order the stream
/// holds them: ten people each ask for ten seats, interleaved, before any worker runs;
/// every seat goes to the first who asked for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_of_one_partition_are_decided_in_stream_order() {
    let nats = common::nats().await;
    let options = factum_nats::LanesOptions {
        partitions: 1,
        ..common::options("order")
    };
    let store = common::store("order").await;
    LanesClient::new(nats.clone(), options.clone())
        .await
        .expect("a client (creates the stream)");
    let jetstream = jetstream::new(nats.clone());
    let (people, seats) = (10, 10);
    let mut stored = Vec::new();
    for person in 0..people {
        for seat in 0..seats {
            let command = Reserve::new(&format!("S{seat}"), &format!("p{person}"));
            let mut headers = factum_nats::async_nats::HeaderMap::new();
            headers.insert(wire::DECISION_HEADER, Reserve::META.name);
            let payload = serde_json::to_vec(&command).expect("JSON");
            stored.push(
                jetstream
                    .publish_with_headers(options.subject(0), headers, payload.into())
                    .await
                    .expect("publish"),
            );
        }
    }
    for ack in stored {
        ack.await.expect("stored");
    }

    let worker = worker(&store, &options, "w", [0]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while {
        let stats = worker.stats();
        stats.committed + stats.refused < people * seats
    } {
        assert!(
            Instant::now() < deadline,
            "not all decided: {:?}",
            worker.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for seat in 0..seats {
        let reserved = reservations(&store, &format!("S{seat}")).await;
        assert_eq!(reserved.len(), 1, "seat S{seat}: {reserved:?}");
        let event = events::SeatReserved::from_stored(&reserved[0]).expect("a SeatReserved");
        assert_eq!(event.by, "p0", "seat S{seat} went to the first who asked");
    }
    let stats = worker.shutdown().await;
    assert_eq!(
        (stats.committed, stats.refused),
        (seats, (people - 1) * seats),
        "{stats:?}"
    );
    common::clean_up(&nats, &options, &store).await;
}

/// A store whose appends fail while `failures` is above zero (counting down): the
/// database restarting; or, while `corrupt` is set, with corrupt data, which no retry
/// mends.
#[derive(Clone)]
struct Flaky {
    inner: PostgresStore,
    failures: Arc<AtomicU32>,
    corrupt: Arc<std::sync::atomic::AtomicBool>,
}

impl Flaky {
    fn new(inner: PostgresStore, failures: u32) -> Self {
        Flaky {
            inner,
            failures: Arc::new(AtomicU32::new(failures)),
            corrupt: Arc::default(),
        }
    }

    fn fail(&self) -> Result<(), factum::StoreError> {
        if self.corrupt.load(Ordering::SeqCst) {
            return Err(factum::StoreError::Corrupt(factum::DecodeError {
                position: factum::Position(1),
                event_type: "SeatReserved".into(),
                version: 1,
                reason: factum::model::DecodeReason::Corrupt("an unknown codec".into()),
            }));
        }
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            Err(factum::StoreError::backend(std::io::Error::other(
                "the database is restarting",
            )))
        } else {
            Ok(())
        }
    }
}

impl StoreLayer for Flaky {
    type Inner = PostgresStore;

    fn inner(&self) -> &PostgresStore {
        &self.inner
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<factum::AppendCondition>,
    ) -> Result<factum::Appended, factum::AppendError> {
        self.fail()?;
        self.inner.append(events, condition).await
    }

    async fn append_batch(
        &self,
        batch: Vec<factum::AppendRequest>,
    ) -> Result<Vec<Result<factum::Appended, factum::AppendError>>, factum::StoreError> {
        self.fail()?;
        self.inner.append_batch(batch).await
    }
}

/// A decision failing because the store does is delivered again (not acknowledged
/// away) and commits once the store is back; one failing on every delivery is answered
/// `Failed` on the last one and terminated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_failures_are_retried_until_the_deliveries_run_out() {
    let nats = common::nats().await;
    let options = factum_nats::LanesOptions {
        partitions: 1,
        max_deliver: 3,
        retry_delay: Duration::from_millis(100),
        ..common::options("retry")
    };
    let inner = common::store("retry").await;
    let store = Flaky::new(inner.clone(), 2);
    let client = LanesClient::new(nats.clone(), options.clone())
        .await
        .expect("a client");
    let worker = Worker::builder(
        nats.clone(),
        Dispatcher::new(Engine::new(store.clone())),
        options.clone(),
    )
    .id("w")
    .handle::<Reserve>()
    .start()
    .await
    .expect("start a worker");

    // Fails twice, commits on the third delivery.
    let outcome = client
        .request(&Reserve::new("1A", "ada"))
        .await
        .expect("committed once the store is back");
    assert_eq!(outcome.delivery, 3, "{outcome:?}");
    assert_eq!(reservations(&inner, "1A").await.len(), 1);

    // Fails on every delivery: answered Failed on the last, and gone from the stream.
    store.failures.store(u32::MAX, Ordering::SeqCst);
    let error = client
        .request(&Reserve::new("2B", "bob"))
        .await
        .expect_err("fails for good");
    assert!(matches!(error, LanesError::Failed { .. }), "{error:?}");
    assert!(error.to_string().contains("restarting"), "{error}");
    store.failures.store(0, Ordering::SeqCst);
    assert!(reservations(&inner, "2B").await.is_empty());

    // Corrupt data stays corrupt: answered Failed on the first delivery, not retried.
    store.corrupt.store(true, Ordering::SeqCst);
    let error = client
        .request(&Reserve::new("3C", "eve"))
        .await
        .expect_err("fails for good at once");
    assert!(matches!(error, LanesError::Failed { .. }), "{error:?}");
    assert!(error.to_string().contains("unknown codec"), "{error}");
    store.corrupt.store(false, Ordering::SeqCst);

    let stats = worker.shutdown().await;
    assert_eq!((stats.committed, stats.failed), (1, 2), "{stats:?}");
    assert_eq!(
        stats.retried,
        2 + 2,
        "no retry of the corrupt one: {stats:?}"
    );
    let jetstream = jetstream::new(nats.clone());
    let mut consumer = jetstream
        .get_stream(&options.stream)
        .await
        .expect("the stream")
        .get_consumer::<jetstream::consumer::pull::Config>(&options.consumer_name(0))
        .await
        .expect("the consumer");
    let info = consumer.info().await.expect("consumer info");
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0), "{info:?}");
    common::clean_up(&nats, &options, &inner).await;
}

/// A worker refuses to answer on a subject outside the reply prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_subject_outside_the_inbox_prefix_is_not_answered() {
    let nats = common::nats().await;
    let options = factum_nats::LanesOptions {
        partitions: 1,
        ..common::options("reply")
    };
    let store = common::store("reply").await;
    LanesClient::new(nats.clone(), options.clone())
        .await
        .expect("a client (creates the stream)");
    let worker = worker(&store, &options, "w", [0]).await;
    let mut spied = nats
        .subscribe("factum-test.spied")
        .await
        .expect("subscribe");
    let mut headers = factum_nats::async_nats::HeaderMap::new();
    headers.insert(wire::DECISION_HEADER, Reserve::META.name);
    headers.insert(wire::REPLY_HEADER, "factum-test.spied");
    let payload = serde_json::to_vec(&Reserve::new("3C", "eve")).expect("JSON");
    jetstream::new(nats.clone())
        .publish_with_headers(options.subject(0), headers, payload.into())
        .await
        .expect("publish")
        .await
        .expect("stored");
    let deadline = Instant::now() + Duration::from_secs(10);
    while worker.stats().committed < 1 {
        assert!(
            Instant::now() < deadline,
            "not decided: {:?}",
            worker.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answered = tokio::time::timeout(Duration::from_millis(300), spied.next()).await;
    assert!(
        answered.is_err(),
        "answered on a foreign subject: {answered:?}"
    );
    worker.shutdown().await;
    common::clean_up(&nats, &options, &store).await;
}
