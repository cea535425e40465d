//! A process deciding through serial lanes with group commit is killed with SIGKILL at
//! random moments, 20 times per store. After each kill the log is audited against what
//! the process had acknowledged (its side file): every acknowledged decision is in the
//! log where it was told, no decision is half-written (each `AddItems` of two items has
//! both events, or none), and the coupon is never applied more often than it has uses,
//! nor twice to one cart.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use factum::prelude::*;
use factum_examples::coupons::{IssueCoupon, SetPrice, events};
use futures::TryStreamExt;

const KILLS: usize = 20;
const USES: u32 = 600;

fn child(kind: &str, target: &str, ack: &Path, run: usize) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_factum-crash-child"))
        .args([kind, target])
        .arg(ack)
        .arg(run.to_string())
        .stdin(Stdio::null())
        .spawn()
        .expect("start the child process")
}

/// A pseudo-random delay between 150 and 650 ms: enough for the child to start and get
/// going, and to be killed at a different point each time.
fn random_delay(run: usize) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let mixed = (nanos ^ (run as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) % 500;
    Duration::from_millis(150 + mixed)
}

async fn setup<S: EventStore + Clone>(store: &S) {
    let engine = Engine::new(store.clone());
    engine
        .decide(&IssueCoupon {
            coupon: "CRASH".into(),
            uses: USES,
        })
        .await
        .unwrap();
    for (sku, cents) in [("tea", 450), ("mug", 1200)] {
        engine
            .decide(&SetPrice {
                sku: sku.into(),
                cents,
            })
            .await
            .unwrap();
    }
}

/// What the audits found over all kills.
#[derive(Default, Debug)]
struct Seen {
    acknowledged: usize,
    applied: usize,
    refused: usize,
}

async fn audit<S: EventStore>(store: &S, ack: &Path, seen: &mut Seen) {
    let log: Vec<StoredEvent> = store
        .read(&Query::all(), ReadOptions::forward())
        .try_collect()
        .await
        .expect("read the log back");
    let at: HashMap<u64, &StoredEvent> = log.iter().map(|e| (e.position.0, e)).collect();

    let text = std::fs::read_to_string(ack).expect("read the side file");
    // A kill may cut the last line short: only complete lines were acknowledged.
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    let mut acknowledged = 0;
    let mut refused = 0;
    for line in complete.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        let position = |i: usize| -> &StoredEvent {
            let p: u64 = words[i].parse().expect("a position");
            at.get(&p)
                .unwrap_or_else(|| panic!("acknowledged `{line}`, but nothing is at {p}"))
        };
        match words[0] {
            "open" => {
                let event = events::CartOpened::from_stored(position(2)).expect("a CartOpened");
                assert_eq!(event.cart, words[1], "{line}");
            }
            "apply" => {
                let event =
                    events::CouponApplied::from_stored(position(2)).expect("a CouponApplied");
                assert_eq!(event.cart, words[1], "{line}");
            }
            "items" => {
                for i in [2, 3] {
                    let event = events::ItemAdded::from_stored(position(i)).expect("an ItemAdded");
                    assert_eq!(event.cart, words[1], "{line}");
                }
            }
            "refused" => refused += 1,
            other => panic!("unknown side-file line {other}"),
        }
        acknowledged += 1;
    }

    let mut per_cart: HashMap<String, usize> = HashMap::new();
    let mut per_decision: HashMap<uuid::Uuid, usize> = HashMap::new();
    for event in &log {
        match event.event_type.as_str() {
            "CouponApplied" => {
                let applied = events::CouponApplied::from_stored(event).unwrap();
                *per_cart.entry(applied.cart).or_default() += 1;
            }
            "ItemAdded" => {
                let id = event
                    .metadata
                    .correlation_id
                    .expect("the child sets a correlation id per AddItems");
                *per_decision.entry(id).or_default() += 1;
            }
            _ => {}
        }
    }
    let applied: usize = per_cart.values().sum();
    assert!(
        per_cart.values().all(|n| *n == 1),
        "a cart got the coupon twice"
    );
    assert!(
        applied <= USES as usize,
        "{applied} applications of {USES} uses"
    );
    if refused > 0 || seen.refused > 0 {
        assert_eq!(applied, USES as usize, "refused while uses were left");
    }
    assert!(
        per_decision.values().all(|n| *n == 2),
        "an AddItems decision is half-written: {:?}",
        per_decision
            .values()
            .filter(|n| **n != 2)
            .collect::<Vec<_>>()
    );
    assert!(
        acknowledged >= seen.acknowledged,
        "acknowledgements only grow"
    );
    assert!(
        applied >= seen.applied,
        "an application disappeared from the log"
    );
    *seen = Seen {
        acknowledged,
        applied,
        refused: seen.refused.max(refused),
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_lane_process_on_sqlite_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("crash.db");
    let ack = dir.path().join("acknowledged.txt");
    {
        let store = factum_sqlite::open(&path).await.expect("create the store");
        setup(&store).await;
    }
    let mut seen = Seen::default();
    for run in 0..KILLS {
        let mut process = child("sqlite", path.to_str().unwrap(), &ack, run);
        tokio::time::sleep(random_delay(run)).await;
        assert!(
            process.try_wait().expect("poll the child").is_none(),
            "the child stopped on its own (run {run}); see its stderr"
        );
        process.kill().expect("SIGKILL the child");
        process.wait().expect("reap the child");
        let store = factum_sqlite::open(&path)
            .await
            .expect("reopen after the kill");
        audit(&store, &ack, &mut seen).await;
    }
    assert!(
        seen.acknowledged > KILLS,
        "the child got work done: {seen:?}"
    );
    eprintln!("sqlite: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_lane_process_on_postgres_loses_nothing_acknowledged() {
    let schema = format!("factum_test_crash_{}", uuid::Uuid::now_v7().simple());
    let store = factum_postgres::PostgresStore::from_env(&schema)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot open a PostgreSQL store: {e}. This test needs a running server: set \
                 DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) to one"
            )
        });
    setup(&store).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ack = dir.path().join("acknowledged.txt");
    let mut seen = Seen::default();
    for run in 0..KILLS {
        let mut process = child("postgres", &schema, &ack, run);
        tokio::time::sleep(random_delay(run)).await;
        assert!(
            process.try_wait().expect("poll the child").is_none(),
            "the child stopped on its own (run {run}); see its stderr"
        );
        process.kill().expect("SIGKILL the child");
        process.wait().expect("reap the child");
        audit(&store, &ack, &mut seen).await;
    }
    assert!(
        seen.acknowledged > KILLS,
        "the child got work done: {seen:?}"
    );
    eprintln!("postgres: {seen:?}");
    store.drop_schema().await.expect("drop the test schema");
}
