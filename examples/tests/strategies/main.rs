//! Every concurrency strategy under a real rush, on every store: the invariant holds
//! afterwards, every acknowledged decision is in the log at the positions it was told,
//! duplicates commit once, and a lane's batch refuses a rule-breaking decision alone.

mod duplicates;
mod edges;
mod edges_again;
mod gate;
mod isolation;
mod keys;
mod lanes;
mod postgres;
mod rush;
mod time_rules;

use factum::lanes::Strategy;
use factum::prelude::*;
use rush::{Rush, run_rush};

/// The strategies every test runs.
pub const STRATEGIES: [Strategy; 3] = [
    Strategy::Optimistic,
    Strategy::SerialLanes,
    Strategy::StoreLock,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_strategy_on_the_memory_store() {
    for strategy in STRATEGIES {
        let report = run_rush(MemoryStore::new(), Rush::strict(strategy)).await;
        report.assert_exact();
    }
    let report = run_rush(MemoryStore::new(), Rush::tolerant()).await;
    report.assert_bounded_overbooking();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_strategy_on_sqlite() {
    for strategy in STRATEGIES {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = factum_sqlite::open(dir.path().join("rush.db"))
            .await
            .expect("open SQLite");
        let report = run_rush(store, Rush::strict(strategy)).await;
        report.assert_exact();
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = factum_sqlite::open(dir.path().join("rush.db"))
        .await
        .expect("open SQLite");
    run_rush(store, Rush::tolerant())
        .await
        .assert_bounded_overbooking();
}
