//! Distributed lanes against real servers: NATS (2.11 or newer, at `NATS_URL`) and
//! PostgreSQL (at `DATABASE_URL`), each test on a stream and a schema of its own.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::domain::{Release, Reserve, events};
use factum::lanes::Dispatcher;
use factum::prelude::*;
use factum_nats::async_nats::jetstream;
use factum_nats::lanes::{PRIORITY_GROUP, ensure_consumer, ensure_stream, partition};
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
