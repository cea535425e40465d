//! `factum-bench`: the stores compared in one run.
//!
//! ```text
//! cargo run --release -p factum-benches -- [--runs N] [--stores memory,sqlite,postgres] [--quick]
//!     [--only basics|contention] [--json PATH] [--profile] [--submitters N]
//!     [--lanes N] [--hot-lanes N] [--no-distributed]
//! ```
//!
//! For each store: appends per second one per transaction and batched, decisions per
//! second on distinct keys from 1 and 8 concurrent submitters, events per second when
//! folding a state from 10 k and 100 k events, loads per second of the 100 k state kept
//! with snapshots, decisions per second on that state, a bulk append of 110 k events and
//! a reference row (the database's own one-row commits). Every figure is the median of `--runs`
//! runs (default 5); the runs interleave the stores, so a noisy neighbour slows all of
//! them alike, and the table gives each store's ratio to the first. PostgreSQL is reached
//! at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`) in a schema of
//! its own, dropped at the end; SQLite writes a file under `target/factum-bench/`,
//! removed at the end.
//!
//! Then the contention scenarios: coupon redemptions (each reads its coupon and appends
//! guarded by it) from 32 concurrent submitters, on one hot coupon (1,000 decisions) and
//! on 1,000 distinct coupons (one decision each), under each strategy: optimistic
//! retries, serial lanes with group commit, serial lanes committing one decision per
//! transaction, the store's partition lock, and distributed lanes over NATS JetStream.
//! Each run of each scenario gets a fresh
//! store (a new memory store, SQLite file or PostgreSQL schema), warmed up untimed by
//! 64 decisions on other coupons (so that a fresh pool's connections are open); the
//! runs interleave stores and strategies. The report gives decisions/s, retries, p50 and p99 latency,
//! and the target ratios: serial lanes ≥ 10× optimistic on the hot key with no retries,
//! group commit ≥ 3× one transaction per decision on distinct keys.
//!
//! **Distributed lanes (NATS).** The same workload, each decision sent by the submitters
//! through one `factum_nats::LanesClient` (its own NATS connection) and awaited until the
//! reply; two `factum_nats::Worker`s in this process (a NATS connection each) decide it,
//! each through a `Dispatcher` of its own (serial lanes with the `--lanes`/`--hot-lanes`
//! options) over a clone of the run's store, one owning the even partitions and one the
//! odd ones of the default 16, each standing by for the other's. Every run uses a
//! stream and subject prefix of its own (`FACTUM_BENCH_<uuid>`, `factum-bench.<uuid>`),
//! deleted after it; before the clock starts, one untimed redemption goes to each
//! partition. Retries and lane batches are the two workers' engines' counts; latency
//! runs from the request to its reply, so it includes the JetStream publish and its
//! acknowledgement, the pull by the worker, and the reply. The server is `NATS_URL`
//! (default `nats://127.0.0.1:4222`) and must be 2.11 or newer with JetStream (`bash
//! .ci/services` runs 2.15 on `nats://127.0.0.1:14222`); when it is unreachable or too
//! old, one line on stderr says so, the other strategies run, and the row says n/a.
//! `--no-distributed` leaves it out. Two ratios without a target compare it, per
//! workload and store, with the in-process serial lanes of the same run.
//!
//! Everything, every run's raw figures included, is also written as JSON to `--json`
//! (default `target/factum-bench.json`). `--profile` wraps the contention scenarios'
//! stores in a counter of store calls and the time spent in each kind, printed per run.
//! `--submitters` changes the contention scenarios' 32 concurrent submitters, and
//! `--lanes` and `--hot-lanes` the lanes' `LaneOptions::{lanes, hot_lanes}` (default 8 and
//! 4; `--hot-lanes 0` turns hot-key lanes off).

mod ceiling;
mod distributed;
mod domain;
mod measure;
mod profile;
mod report;
mod scenarios;
mod stores;

use factum::lanes::LaneOptions;
use measure::{Rate, median};
use report::{ContentionRow, Medians, Ratio};
use scenarios::{Contender, RunFigures, Sizes, Workload};
use serde::Serialize;
use stores::AnyStore;

/// What one row measures.
#[derive(Clone, Copy)]
enum Scenario {
    AppendsOneByOne,
    AppendsBatched,
    Decisions(u64),
    Fold(u64),
    BulkAppend(u64),
    WarmSnapshot(u64),
    LongState(u64),
    Ceiling(u64),
}

impl Scenario {
    fn label(self, sizes: Sizes) -> String {
        match self {
            Scenario::AppendsOneByOne => "appends/s, one per transaction".to_owned(),
            Scenario::AppendsBatched => format!("appends/s, batches of {}", sizes.batch),
            Scenario::Decisions(1) => "decisions/s, distinct keys, 1 submitter".to_owned(),
            Scenario::Decisions(n) => format!("decisions/s, distinct keys, {n} submitters"),
            Scenario::Fold(n) => format!("events/s folding a state of {} k events", n / 1000),
            Scenario::BulkAppend(n) => {
                format!(
                    "events/s, bulk append of {} k events (1,000 per append)",
                    n / 1000
                )
            }
            Scenario::WarmSnapshot(n) => {
                format!("loads/s, warm snapshot of a state of {} k events", n / 1000)
            }
            Scenario::LongState(n) => format!(
                "decisions/s on that state of {} k events (snapshot; 1 submitter)",
                n / 1000
            ),
            Scenario::Ceiling(n) => format!(
                "reference: commits/s, one single-row INSERT per transaction, no store \
                 ({n} clients; SQLite: 1)"
            ),
        }
    }
}

struct Args {
    runs: usize,
    stores: Vec<String>,
    quick: bool,
    basics: bool,
    contention: bool,
    json: std::path::PathBuf,
    profile: bool,
    submitters: u64,
    lanes: LaneOptions,
    distributed: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        runs: 5,
        stores: vec!["memory".into(), "sqlite".into(), "postgres".into()],
        quick: false,
        basics: true,
        contention: true,
        json: "target/factum-bench.json".into(),
        profile: false,
        submitters: 32,
        lanes: LaneOptions::default(),
        distributed: true,
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
            "--profile" => args.profile = true,
            "--no-distributed" => args.distributed = false,
            "--hot-lanes" => {
                args.lanes.hot_lanes = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--hot-lanes takes a whole number")?;
            }
            "--lanes" => {
                args.lanes.lanes = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--lanes takes a whole number from 1 up")?;
            }
            "--submitters" => {
                args.submitters = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--submitters takes a whole number from 1 up")?;
            }
            "--only" => match it.next().as_deref() {
                Some("basics") => args.contention = false,
                Some("contention") => args.basics = false,
                _ => return Err("--only takes basics or contention".to_owned()),
            },
            "--json" => {
                args.json = it.next().ok_or("--json takes a file path")?.into();
            }
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

/// One measure of the basic scenarios on one store, for the JSON.
#[derive(Serialize)]
struct BasicJson {
    measure: String,
    store: String,
    median_per_s: f64,
    runs_per_s: Vec<f64>,
}

/// One contention scenario on one store, for the JSON.
#[derive(Serialize)]
struct ScenarioJson {
    workload: &'static str,
    strategy: &'static str,
    strategy_name: &'static str,
    store: String,
    median: Medians,
    runs: Vec<RunFigures>,
}

/// The lanes' options (`max_batch` is 1 for the one-transaction-per-decision lanes).
#[derive(Serialize)]
struct LaneOptionsJson {
    lanes: usize,
    queue: usize,
    max_batch: usize,
    warm_states: usize,
    hot_lanes: usize,
}

/// The NATS server of the distributed lanes.
#[derive(Serialize)]
struct NatsJson {
    url: String,
    version: String,
}

/// The whole JSON report.
#[derive(Serialize)]
struct ReportJson {
    command: String,
    runs: usize,
    quick: bool,
    stores: Vec<String>,
    lanes: LaneOptionsJson,
    /// The NATS server the distributed lanes ran against, if they ran.
    nats: Option<NatsJson>,
    basics: Vec<BasicJson>,
    workloads: Vec<Workload>,
    contention: Vec<ScenarioJson>,
    ratios: Vec<Ratio>,
}

async fn run(args: Args) {
    let basics = if args.basics {
        run_basics(&args).await
    } else {
        Vec::new()
    };
    let nats = if args.contention && args.distributed {
        match distributed::connect().await {
            Ok(nats) => Some(nats),
            Err(e) => {
                eprintln!(
                    "factum-bench: skipping the distributed lanes (NATS) contender: {e} (they \
                     need NATS 2.11 or newer with JetStream: `bash .ci/services` runs one, \
                     then set NATS_URL=nats://127.0.0.1:14222)"
                );
                None
            }
        }
    } else {
        None
    };
    let (contention, workloads, ratios) = if args.contention {
        run_contention(&args, nats.as_ref()).await
    } else {
        (Vec::new(), Vec::new(), Vec::new())
    };
    let report = ReportJson {
        command: std::iter::once("factum-bench".to_owned())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        runs: args.runs,
        quick: args.quick,
        stores: args.stores.clone(),
        lanes: LaneOptionsJson {
            lanes: args.lanes.lanes,
            queue: args.lanes.queue,
            max_batch: args.lanes.max_batch,
            warm_states: args.lanes.warm_states,
            hot_lanes: args.lanes.hot_lanes,
        },
        nats: nats.map(|n| NatsJson {
            url: n.url,
            version: n.version,
        }),
        basics,
        workloads,
        contention,
        ratios,
    };
    let written = serde_json::to_vec_pretty(&report)
        .map_err(|e| e.to_string())
        .and_then(|json| {
            if let Some(dir) = args.json.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
            std::fs::write(&args.json, json).map_err(|e| e.to_string())
        });
    match written {
        Ok(()) => eprintln!("figures written to {}", args.json.display()),
        Err(e) => {
            eprintln!("factum-bench: cannot write {}: {e}", args.json.display());
            std::process::exit(1);
        }
    }
}

/// The contention scenarios: every workload under every strategy on every store, each
/// run on a fresh store; runs outermost, so that the stores and the strategies compared
/// in a ratio are measured close together. The distributed contender runs only with
/// `nats`; without it, its row says n/a.
async fn run_contention(
    args: &Args,
    nats: Option<&distributed::Nats>,
) -> (Vec<ScenarioJson>, Vec<Workload>, Vec<Ratio>) {
    let (decisions, keys) = if args.quick { (200, 200) } else { (1000, 1000) };
    let hot = Workload {
        name: "hot key",
        keys: 1,
        decisions,
        submitters: args.submitters,
    };
    let distinct = Workload {
        name: "distinct keys",
        keys,
        decisions,
        submitters: args.submitters,
    };
    let workloads = vec![hot, distinct];
    // figures[workload][contender][store] = one entry per run
    let mut figures: Vec<Vec<Vec<Vec<RunFigures>>>> =
        vec![vec![vec![Vec::new(); args.stores.len()]; Contender::ALL.len()]; workloads.len()];
    let mut opened = 0;
    for run in 0..args.runs {
        for (w, workload) in workloads.iter().enumerate() {
            for (c, contender) in Contender::ALL.iter().enumerate() {
                if *contender == Contender::Distributed && nats.is_none() {
                    continue;
                }
                for (s, name) in args.stores.iter().enumerate() {
                    opened += 1;
                    let store = match stores::fresh(name, opened).await {
                        Ok(store) => store,
                        Err(e) => {
                            eprintln!("factum-bench: {e}");
                            std::process::exit(1);
                        }
                    };
                    let profile = args.profile.then(Default::default);
                    let f = store
                        .contention(*workload, *contender, args.lanes, profile, nats)
                        .await;
                    store.close().await;
                    report::log_run(
                        &format!(
                            "{} · {} · {name} · run {}",
                            workload.name,
                            contender.name(),
                            run + 1
                        ),
                        &f,
                    );
                    figures[w][c][s].push(f);
                }
            }
        }
    }

    let mut rows = Vec::new();
    let mut json = Vec::new();
    for (w, workload) in workloads.iter().enumerate() {
        for (c, contender) in Contender::ALL.iter().enumerate() {
            let medians: Vec<Option<Medians>> = figures[w][c]
                .iter()
                .map(|runs| (!runs.is_empty()).then(|| Medians::of(runs)))
                .collect();
            for (s, store) in args.stores.iter().enumerate() {
                if let Some(median) = medians[s] {
                    json.push(ScenarioJson {
                        workload: workload.name,
                        strategy: contender.id(),
                        strategy_name: contender.name(),
                        store: store.clone(),
                        median,
                        runs: figures[w][c][s].clone(),
                    });
                }
            }
            let skipped = *contender == Contender::Distributed && nats.is_none();
            rows.push(ContentionRow {
                workload: workload.name.to_owned(),
                strategy: contender.name().to_owned(),
                medians,
                missing: if skipped { "n/a" } else { "-" },
            });
        }
    }

    let index = |c: Contender| Contender::ALL.iter().position(|&x| x == c).unwrap_or(0);
    let per_run = |w: usize, fast: Contender, slow: Contender, s: usize| -> Vec<f64> {
        figures[w][index(fast)][s]
            .iter()
            .zip(&figures[w][index(slow)][s])
            .map(|(f, b)| f.decisions_per_s / b.decisions_per_s.max(1e-9))
            .collect()
    };
    let mut ratios = Vec::new();
    for (s, store) in args.stores.iter().enumerate() {
        let hot_runs = per_run(0, Contender::SerialLanes, Contender::Optimistic, s);
        let retries: Vec<u64> = figures[0][index(Contender::SerialLanes)][s]
            .iter()
            .map(|f| f.retries)
            .collect();
        let median = report::median_of(hot_runs.iter().copied());
        ratios.push(Ratio {
            store: store.clone(),
            id: "hot_key_serial_lanes_over_optimistic",
            description: "hot key: serial lanes / optimistic decisions/s",
            target: Some(10.0),
            met: Some(median >= 10.0 && retries.iter().all(|&r| r == 0)),
            per_run: hot_runs,
            median,
            retries_per_run: Some(retries),
        });
        let distinct_runs = per_run(1, Contender::SerialLanes, Contender::LanesOneByOne, s);
        let median = report::median_of(distinct_runs.iter().copied());
        ratios.push(Ratio {
            store: store.clone(),
            id: "distinct_keys_group_commit_over_one_txn_per_decision",
            description: "distinct keys: group commit / 1 decision per txn decisions/s",
            target: Some(3.0),
            met: Some(median >= 3.0),
            per_run: distinct_runs,
            median,
            retries_per_run: None,
        });
    }
    // What routing through NATS costs: distributed lanes against the same serial lanes
    // (group commit) in process, on each workload, in the same run. No target.
    if nats.is_some() {
        let compared = [
            (
                "hot_key_distributed_over_serial_lanes",
                "hot key: distributed (NATS) / in-process serial lanes decisions/s",
            ),
            (
                "distinct_keys_distributed_over_serial_lanes",
                "distinct keys: distributed (NATS) / in-process serial lanes decisions/s",
            ),
        ];
        for (s, store) in args.stores.iter().enumerate() {
            for (w, (id, description)) in compared.into_iter().enumerate() {
                let runs = per_run(w, Contender::Distributed, Contender::SerialLanes, s);
                let retries: Vec<u64> = figures[w][index(Contender::Distributed)][s]
                    .iter()
                    .map(|f| f.retries)
                    .collect();
                ratios.push(Ratio {
                    store: store.clone(),
                    id,
                    description,
                    target: None,
                    met: None,
                    median: report::median_of(runs.iter().copied()),
                    per_run: runs,
                    retries_per_run: Some(retries),
                });
            }
        }
    }

    let names: Vec<&str> = args.stores.iter().map(String::as_str).collect();
    report::print_contention(&names, args.runs, &rows);
    report::print_ratios(args.runs, &ratios);
    (json, workloads, ratios)
}

/// The basic scenarios on stores opened once; returns their figures for the JSON.
async fn run_basics(args: &Args) -> Vec<BasicJson> {
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
    let largest = folds.last().copied().unwrap_or(10_000);
    scenarios.push(Scenario::WarmSnapshot(largest));
    scenarios.push(Scenario::LongState(largest));
    scenarios.push(Scenario::BulkAppend(largest + largest / 10));
    scenarios.push(Scenario::Ceiling(8));

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
    let mut json = Vec::new();
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
                    Scenario::WarmSnapshot(n) => {
                        let index = folds.iter().position(|&f| f == n).unwrap_or(0);
                        let loads = if args.quick { 20 } else { 200 };
                        store
                            .warm_snapshot_loads(&fold_accounts[i][index], n, loads)
                            .await
                    }
                    Scenario::LongState(n) => {
                        let index = folds.iter().position(|&f| f == n).unwrap_or(0);
                        let decisions = if args.quick { 20 } else { 200 };
                        store
                            .decisions_on_a_long_state(&fold_accounts[i][index], decisions)
                            .await
                    }
                    Scenario::BulkAppend(n) => store.bulk_append(n).await,
                    Scenario::Ceiling(clients) => match store.ceiling(clients, sizes.appends).await
                    {
                        Some(rate) => rate,
                        None => continue,
                    },
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
        for (store, runs) in stores.iter().zip(&rates) {
            if runs.is_empty() {
                continue;
            }
            json.push(BasicJson {
                measure: label.clone(),
                store: store.name().to_owned(),
                median_per_s: median(runs),
                runs_per_s: runs.iter().map(|r| r.per_second()).collect(),
            });
        }
        rows.push(report::Row {
            measure: label,
            medians: rates
                .iter()
                .map(|r| (!r.is_empty()).then(|| median(r)))
                .collect(),
        });
    }
    let names: Vec<&str> = stores.iter().map(AnyStore::name).collect();
    report::print(&names, args.runs, &rows);
    report::print_against_ceiling(&names, &rows);
    for store in stores {
        store.close().await;
    }
    json
}
