//! The coupon rush through distributed lanes, as separate processes on this machine: two
//! `factum-rush-worker`s (one owning the even partitions, one the odd ones, each standing
//! by for the other's) and a `factum-rush-client`, on NATS (2.11 or newer, at
//! `NATS_URL`) and PostgreSQL (at `DATABASE_URL`). A coupon with 100 uses, 300 customers
//! each opening a cart and applying it with an idempotency key. The log is then audited
//! from PostgreSQL against what the client was told: exactly 100 `CouponApplied`, every
//! acknowledged answer in the log where it was told, no command lost, no event
//! duplicated. The second run SIGKILLs the worker owning the coupon's partition in the
//! middle of the rush: the other takes its partitions over, gets its unacknowledged
//! commands redelivered, and the audit holds all the same.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use factum::prelude::*;
use factum_examples::coupons::events;
use factum_examples::distributed::RushSummary;
use factum_nats::{LanesOptions, WorkerStats, async_nats, nats_url, partition_of};
use factum_postgres::PostgresStore;
use futures::TryStreamExt;

const PARTITIONS: u32 = 8;
const USES: usize = 100;
const CUSTOMERS: usize = 300;
const COUPON: &str = "RUSH";

/// One rush at a time: the timings (pin TTL, ack wait) mean something on 2 cores only
/// when the machine is not running two rushes.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A child process and the lines it prints, read by a thread.
struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Process {
    fn start(program: &str, args: &[String]) -> Process {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("a piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Process {
            child,
            stdin,
            lines,
        }
    }

    /// The next line it prints; panics after `within`.
    fn line(&self, within: Duration, what: &str) -> String {
        self.lines
            .recv_timeout(within)
            .unwrap_or_else(|e| panic!("no {what} within {within:?} ({e}); see its stderr"))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A failed test leaves no process behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn worker(id: &str, own: &[u32], schema: &str, lanes: &[String]) -> Process {
    let own: Vec<String> = own.iter().map(u32::to_string).collect();
    let mut args = vec![
        format!("id={id}"),
        format!("own={}", own.join(",")),
        format!("schema={schema}"),
        // The owners pin their partitions before anyone stands by.
        "standby_after_ms=3000".to_owned(),
    ];
    args.extend_from_slice(lanes);
    let process = Process::start(env!("CARGO_BIN_EXE_factum-rush-worker"), &args);
    let connected = process.line(
        Duration::from_secs(60),
        &format!("`connected` from worker {id}"),
    );
    assert_eq!(connected, "connected");
    process
}

/// Tells connected workers to start, all at once, and waits until each pulls: however
/// long each took to connect, none stands by before the others could pin their own
/// partitions (`standby_after_ms` counts from here).
fn start_all(workers: &mut [Option<(&str, Process)>]) {
    for (id, process) in workers.iter_mut().flatten() {
        let stdin = process.stdin.as_mut().expect("the worker's stdin");
        writeln!(stdin, "start")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("start worker {id}: {e}"));
    }
    for (id, process) in workers.iter().flatten() {
        let ready = process.line(
            Duration::from_secs(30),
            &format!("`ready` from worker {id}"),
        );
        assert_eq!(ready, "ready");
    }
}

/// Waits (up to `within`) until no partition consumer has a command waiting or
/// delivered without acknowledgement: every command sent, redeliveries included, was
/// decided and acknowledged. Panics with what is left otherwise.
async fn wait_until_drained(nats: &async_nats::Client, options: &LanesOptions, within: Duration) {
    let jetstream = async_nats::jetstream::new(nats.clone());
    let stream = jetstream
        .get_stream(&options.stream)
        .await
        .expect("the commands stream");
    let deadline = Instant::now() + within;
    loop {
        let mut left = Vec::new();
        for partition in 0..options.partitions {
            let mut consumer = stream
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>(
                    &options.consumer_name(partition),
                )
                .await
                .expect("a partition consumer");
            let info = consumer.info().await.expect("consumer info");
            if info.num_pending > 0 || info.num_ack_pending > 0 {
                left.push((partition, info.num_pending, info.num_ack_pending));
            }
        }
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "commands left (partition, pending, unacknowledged) after {within:?}: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops a worker by closing its standard input, and returns its stats.
fn stop(mut worker: Process) -> WorkerStats {
    drop(worker.stdin.take());
    let line = worker.line(Duration::from_secs(30), "stats from a worker");
    let stats = line.strip_prefix("stats ").expect("a stats line");
    serde_json::from_str(stats).expect("stats in JSON")
}

async fn connect_nats() -> async_nats::Client {
    let url = nats_url();
    let client = async_nats::connect(&url).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach NATS at {url}: {e}. This test needs NATS 2.11 or newer with \
             JetStream: run `bash .ci/services` and set NATS_URL=nats://127.0.0.1:14222"
        )
    });
    if let Err(e) = factum_nats::lanes::check_server(&client) {
        panic!(
            "NATS_URL={url}: {e}. Run `bash .ci/services` (it starts 2.15.1 on 14222) and set \
             NATS_URL=nats://127.0.0.1:14222"
        );
    }
    client
}

async fn applied_so_far(store: &PostgresStore) -> usize {
    store
        .read(
            &Query::of::<events::CouponApplied>(),
            ReadOptions::forward(),
        )
        .try_collect::<Vec<_>>()
        .await
        .map_or(0, |events| events.len())
}

/// Runs one rush; with `kill`, returns how many of the killed worker's unacknowledged
/// commands the survivor got again.
async fn rush(kill: bool) -> u64 {
    let _alone = ONE_AT_A_TIME.lock().await;
    let nats = connect_nats().await;
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let schema = format!("factum_test_distributed_{unique}");
    let store = PostgresStore::from_env(&schema).await.unwrap_or_else(|e| {
        panic!(
            "cannot open a PostgreSQL store: {e}. This test needs a running server: set \
             DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) to one"
        )
    });
    let options = LanesOptions {
        partitions: PARTITIONS,
        ..LanesOptions::new(
            format!("FACTUM_RUSH_{unique}"),
            format!("factum-test.rush.{unique}"),
        )
    };
    let lanes = vec![
        format!("stream={}", options.stream),
        format!("prefix={}", options.prefix),
        format!("partitions={PARTITIONS}"),
        "ack_wait_ms=3000".to_owned(),
        "pinned_ttl_ms=1500".to_owned(),
    ];
    let evens: Vec<u32> = (0..PARTITIONS).filter(|p| p % 2 == 0).collect();
    let odds: Vec<u32> = (0..PARTITIONS).filter(|p| p % 2 == 1).collect();
    let mut workers = [
        Some(("even", worker("even", &evens, &schema, &lanes))),
        Some(("odd", worker("odd", &odds, &schema, &lanes))),
    ];
    start_all(&mut workers);

    let started = Instant::now();
    let mut client_args = lanes.clone();
    client_args.extend([
        format!("coupon={COUPON}"),
        format!("uses={USES}"),
        format!("customers={CUSTOMERS}"),
        "concurrency=32".to_owned(),
        "timeout_ms=2000".to_owned(),
        format!("run=r{unique}"),
    ]);
    let mut client = Process::start(env!("CARGO_BIN_EXE_factum-rush-client"), &client_args);

    let victim = (partition_of(COUPON, PARTITIONS) % 2) as usize;
    let mut killed = None;
    if kill {
        // In the middle of the rush: a third of the uses taken.
        let deadline = Instant::now() + Duration::from_secs(60);
        while applied_so_far(&store).await < USES / 3 {
            assert!(Instant::now() < deadline, "the rush does not get going");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            client.child.try_wait().expect("poll the client").is_none(),
            "the client finished before the kill"
        );
        let (name, mut process) = workers[victim].take().expect("the victim");
        process.child.kill().expect("SIGKILL the worker");
        process.child.wait().expect("reap the worker");
        killed = Some(name);
    }

    let line = client.line(Duration::from_secs(120), "the client's summary");
    let status = client.child.wait().expect("reap the client");
    assert!(status.success(), "the client failed: {status}");
    let summary: RushSummary = serde_json::from_str(&line).expect("a summary in JSON");
    let wall = started.elapsed();
    // Nothing lost: the commands the client gave up waiting for, and those the killed
    // worker never acknowledged (redelivered after the 3 s ack wait), are all decided
    // and acknowledged before the workers stop.
    wait_until_drained(&nats, &options, Duration::from_secs(60)).await;
    let stats: Vec<(&str, WorkerStats)> = workers
        .iter_mut()
        .filter_map(Option::take)
        .map(|(name, process)| (name, stop(process)))
        .collect();

    audit(&store, &summary).await;
    if let Some(killed) = killed {
        let survivor = stats[0].0;
        let deciders: BTreeSet<&str> = summary.applied.iter().map(|a| a.worker.as_str()).collect();
        assert!(
            deciders.contains(killed) && deciders.contains(survivor),
            "the coupon's partition moved from {killed} to {survivor}: applied by {deciders:?}"
        );
    }
    let redelivered = if killed.is_some() {
        stats[0].1.redelivered
    } else {
        0
    };
    eprintln!(
        "distributed rush (kill: {kill}): {} commands in {} ms by the client ({:.0}/s), \
         {} sent again, {} applied ({} replayed), {} used up; wall {wall:?}; workers {stats:?}",
        summary.commands,
        summary.elapsed_ms,
        summary.per_second,
        summary.resent,
        summary.applied.len(),
        summary.applied.iter().filter(|a| a.replayed).count(),
        summary.used_up.len(),
    );
    factum_nats::lanes::delete_stream(&nats, &options)
        .await
        .expect("delete the test stream");
    store.drop_schema().await.expect("drop the test schema");
    let _ = std::io::stderr().flush();
    redelivered
}

/// The log read back, checked against every answer the client got.
async fn audit(store: &PostgresStore, summary: &RushSummary) {
    let log: Vec<StoredEvent> = store
        .read(&Query::all(), ReadOptions::forward())
        .try_collect()
        .await
        .expect("read the log back");
    let at: HashMap<u64, &StoredEvent> = log.iter().map(|e| (e.position.0, e)).collect();

    // No command lost: every customer's cart opened and its application answered.
    assert_eq!(summary.customers, CUSTOMERS);
    assert_eq!(summary.opened.len(), CUSTOMERS, "every cart opened");
    let answered: BTreeSet<&str> = summary
        .applied
        .iter()
        .map(|a| a.cart.as_str())
        .chain(summary.used_up.iter().map(String::as_str))
        .collect();
    assert_eq!(answered.len(), CUSTOMERS, "every application answered once");
    assert_eq!(summary.applied.len() + summary.used_up.len(), CUSTOMERS);

    // Every acknowledged answer is in the log where it was told.
    for opened in &summary.opened {
        if let Some(position) = opened.position {
            let event = at
                .get(&position)
                .unwrap_or_else(|| panic!("{opened:?}: nothing at {position}"));
            let event = events::CartOpened::from_stored(event).expect("a CartOpened");
            assert_eq!(event.cart, opened.cart);
        }
    }
    for applied in &summary.applied {
        let event = at
            .get(&applied.position)
            .unwrap_or_else(|| panic!("{applied:?}: nothing at {}", applied.position));
        let event = events::CouponApplied::from_stored(event).expect("a CouponApplied");
        assert_eq!(
            (event.cart.as_str(), event.coupon.as_str()),
            (applied.cart.as_str(), COUPON)
        );
    }

    // Exactly the uses, none duplicated, none that nobody was told of.
    let mut issued = 0;
    let mut opened: HashMap<String, usize> = HashMap::new();
    let mut applied: HashMap<String, u64> = HashMap::new();
    for event in &log {
        match event.event_type.as_str() {
            "CouponIssued" => issued += 1,
            "CartOpened" => {
                let e = events::CartOpened::from_stored(event).expect("a CartOpened");
                *opened.entry(e.cart).or_default() += 1;
            }
            "CouponApplied" => {
                let e = events::CouponApplied::from_stored(event).expect("a CouponApplied");
                assert!(
                    applied.insert(e.cart.clone(), event.position.0).is_none(),
                    "cart {} got the coupon twice",
                    e.cart
                );
            }
            other => panic!("unexpected event {other}"),
        }
    }
    assert_eq!(issued, 1, "the coupon is issued once");
    assert_eq!(opened.len(), CUSTOMERS);
    assert!(opened.values().all(|n| *n == 1), "a cart opened twice");
    assert_eq!(applied.len(), USES, "exactly {USES} applications");
    let told: HashMap<&str, u64> = summary
        .applied
        .iter()
        .map(|a| (a.cart.as_str(), a.position))
        .collect();
    for (cart, position) in &applied {
        assert_eq!(
            told.get(cart.as_str()),
            Some(position),
            "the application to {cart} at {position} is the one the client was told of"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rush_through_distributed_lanes_loses_and_duplicates_nothing() {
    rush(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_worker_mid_rush_moves_its_partitions_and_loses_nothing() {
    // Every rush checks that nothing was lost and the partition moved. Whether the kill
    // caught the victim between pulling a batch and acknowledging it is chance (a fast
    // group commit leaves little time), so the redelivery path must show in one of a few.
    let mut redelivered = Vec::new();
    for _ in 0..3 {
        redelivered.push(rush(true).await);
        if redelivered.last() > Some(&0) {
            return;
        }
    }
    panic!(
        "in none of {} kills did the survivor get the killed worker's unacknowledged commands again: {redelivered:?}",
        redelivered.len()
    );
}
