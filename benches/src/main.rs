//! `factum-bench`: the stores compared in one run.
//!
//! ```text
//! cargo run --release -p factum-benches -- [--runs N] [--stores memory,sqlite,postgres] [--quick]
//! ```
//!
//! For each store: appends per second one per transaction and batched, decisions per
//! second on distinct keys from 1 and 8 concurrent submitters, and events per second when
//! folding a state from 10 k and 100 k events. Every figure is the median of `--runs`
//! runs (default 5); the runs interleave the stores, so a noisy neighbour slows all of
//! them alike, and the table gives each store's ratio to the first. PostgreSQL is reached
//! at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`) in a schema of
//! its own, dropped at the end; SQLite writes a file under `target/factum-bench/`,
//! removed at the end.

mod domain;
mod measure;
mod report;
mod scenarios;
mod stores;

use measure::{Rate, median};
use scenarios::Sizes;
use stores::AnyStore;

/// What one row measures.
#[derive(Clone, Copy)]
enum Scenario {
    AppendsOneByOne,
    AppendsBatched,
    Decisions(u64),
    Fold(u64),
}

impl Scenario {
    fn label(self, sizes: Sizes) -> String {
        match self {
            Scenario::AppendsOneByOne => "appends/s, one per transaction".to_owned(),
            Scenario::AppendsBatched => format!("appends/s, batches of {}", sizes.batch),
            Scenario::Decisions(1) => "decisions/s, distinct keys, 1 submitter".to_owned(),
            Scenario::Decisions(n) => format!("decisions/s, distinct keys, {n} submitters"),
            Scenario::Fold(n) => format!("events/s folding a state of {} k events", n / 1000),
        }
    }
}

struct Args {
    runs: usize,
    stores: Vec<String>,
    quick: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        runs: 5,
        stores: vec!["memory".into(), "sqlite".into(), "postgres".into()],
        quick: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--runs" => {
                args.runs = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--runs takes a whole number from 1 up")?;
            }
            "--stores" => {
                let list = it
                    .next()
                    .ok_or("--stores takes a list like memory,sqlite")?;
                args.stores = list.split(',').map(str::to_owned).collect();
            }
            "--quick" => args.quick = true,
            other => return Err(format!("unknown argument {other:?}; see the crate docs")),
        }
    }
    Ok(args)
}

fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("factum-bench: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("cannot start tokio: {e}"));
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let sizes = if args.quick {
        Sizes {
            appends: 200,
            batch: 50,
            decisions: 200,
        }
    } else {
        Sizes {
            appends: 2000,
            batch: 100,
            decisions: 2000,
        }
    };
    let folds: &[u64] = if args.quick {
        &[10_000]
    } else {
        &[10_000, 100_000]
    };
    let mut stores = Vec::new();
    for name in &args.stores {
        match stores::open(name).await {
            Ok(store) => stores.push(store),
            Err(e) => {
                eprintln!("factum-bench: {e}");
                std::process::exit(1);
            }
        }
    }
    let mut scenarios = vec![
        Scenario::AppendsOneByOne,
        Scenario::AppendsBatched,
        Scenario::Decisions(1),
        Scenario::Decisions(8),
    ];
    scenarios.extend(folds.iter().map(|&n| Scenario::Fold(n)));

    // Fold sources are written once per store, before any timing.
    let mut fold_accounts: Vec<Vec<String>> = Vec::new();
    for store in &stores {
        let mut accounts = Vec::new();
        for &n in folds {
            eprintln!("preparing {n} events on {}", store.name());
            accounts.push(store.preload(n).await);
        }
        fold_accounts.push(accounts);
    }

    let mut rows = Vec::new();
    for scenario in scenarios {
        let label = scenario.label(sizes);
        let mut rates: Vec<Vec<Rate>> = vec![Vec::new(); stores.len()];
        for run in 0..args.runs {
            for (i, store) in stores.iter().enumerate() {
                let rate = match scenario {
                    Scenario::AppendsOneByOne => store.appends_one_by_one(sizes).await,
                    Scenario::AppendsBatched => store.appends_batched(sizes).await,
                    Scenario::Decisions(n) => store.decisions(sizes, n).await,
                    Scenario::Fold(n) => {
                        let index = folds.iter().position(|&f| f == n).unwrap_or(0);
                        store.fold(&fold_accounts[i][index], n).await
                    }
                };
                eprintln!(
                    "{label} · {} · run {}: {:.0}/s",
                    store.name(),
                    run + 1,
                    rate.per_second()
                );
                rates[i].push(rate);
            }
        }
        rows.push(report::Row {
            measure: label,
            medians: rates.iter().map(|r| Some(median(r))).collect(),
        });
    }
    let names: Vec<&str> = stores.iter().map(AnyStore::name).collect();
    report::print(&names, args.runs, &rows);
    for store in stores {
        store.close().await;
    }
}
