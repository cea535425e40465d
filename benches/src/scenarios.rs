//! The measured scenarios, each generic over the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use factum::EngineStats;
use factum::lanes::{Dispatcher, Drain, LaneOptions, Strategy};
use factum::prelude::*;
use factum::{AppendCondition, AppendRequest, Context};
use serde::Serialize;

use crate::distributed::{self, Nats};
use crate::domain::{
    Account, Coupon, Deposit, Redeem, SnapshotAccount, SnapshotDeposit, deposit, issue,
};
use crate::measure::{Rate, rate};
use crate::profile::{CallFigures, Profile, Timed};

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Appends in the one-per-transaction and batched scenarios.
    pub appends: u64,
    /// Requests per batch.
    pub batch: u64,
    /// Decisions per concurrency level.
    pub decisions: u64,
}

/// A fresh key prefix, so repeated runs on one store never touch each other's events.
fn prefix(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::now_v7().simple())
}

/// The condition a deposit's decision appends under: no deposit on its account yet.
fn guard(account: &str) -> Query {
    Query::item(
        QueryItem::of::<crate::domain::ledger::Deposited>()
            .with_tags([Tag::new("account", account)]),
    )
}

/// Appends one event per append, each guarded by a condition on its own key (as a
/// decision's append is), one after another.
pub async fn appends_one_by_one<S: EventStore>(store: &S, sizes: Sizes) -> Rate {
    let run = prefix("single");
    rate(sizes.appends, async {
        for i in 0..sizes.appends {
            let key = format!("{run}-{i}");
            let condition = AppendCondition::new(guard(&key), None);
            store
                .append(vec![deposit(&key, i)], Some(condition))
                .await
                .unwrap_or_else(|e| panic!("append failed: {e}"));
        }
    })
    .await
}

/// The same appends, `batch` requests per `append_batch` call (one transaction each).
pub async fn appends_batched<S: EventStore>(store: &S, sizes: Sizes) -> Rate {
    let run = prefix("batched");
    rate(sizes.appends, async {
        let mut i = 0;
        while i < sizes.appends {
            let end = (i + sizes.batch).min(sizes.appends);
            let requests = (i..end)
                .map(|j| {
                    let key = format!("{run}-{j}");
                    let condition = AppendCondition::new(guard(&key), None);
                    AppendRequest::new(vec![deposit(&key, j)], Some(condition))
                })
                .collect();
            let results = store
                .append_batch(requests)
                .await
                .unwrap_or_else(|e| panic!("batch failed: {e}"));
            for r in results {
                r.unwrap_or_else(|e| panic!("a batched append failed: {e}"));
            }
            i = end;
        }
    })
    .await
}

/// `decisions` decisions, each on its own account, from `submitters` concurrent tasks.
pub async fn decisions_on_distinct_keys<S>(
    engine: &Engine<S>,
    sizes: Sizes,
    submitters: u64,
) -> Rate
where
    S: EventStore + Clone + 'static,
{
    let run = prefix(&format!("decide{submitters}"));
    let next = Arc::new(AtomicU64::new(0));
    rate(sizes.decisions, async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..submitters {
            let engine = engine.clone();
            let next = next.clone();
            let run = run.clone();
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= sizes.decisions {
                        break;
                    }
                    let decision = Deposit {
                        account: format!("{run}-{i}"),
                        amount: i,
                    };
                    let outcome = engine
                        .decide(&decision)
                        .await
                        .unwrap_or_else(|e| panic!("a decision failed: {e}"));
                    assert_eq!(
                        outcome.attempts, 1,
                        "decisions on distinct keys never conflict"
                    );
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap_or_else(|e| panic!("a submitter failed: {e}"));
        }
    })
    .await
}

/// Writes `events` deposits on `account`, 1,000 per append without a condition, as an
/// import would write them.
async fn append_deposits<S: EventStore>(store: &S, account: &str, events: u64) {
    let mut written = 0;
    while written < events {
        let n = (events - written).min(1000);
        let batch = (0..n).map(|i| deposit(account, written + i)).collect();
        store
            .append(batch, None)
            .await
            .unwrap_or_else(|e| panic!("appending {n} deposits on {account} failed: {e}"));
        written += n;
    }
}

/// Writes `events` deposits on one account, 1,000 per append; returns the account.
pub async fn preload<S: EventStore>(store: &S, events: u64) -> String {
    let account = prefix("fold");
    append_deposits(store, &account, events).await;
    account
}

/// `events` deposits on one new account, appended as [`append_deposits`] does, timed.
pub async fn bulk_append<S: EventStore>(store: &S, events: u64) -> Rate {
    let account = prefix("bulk");
    rate(events, append_deposits(store, &account, events)).await
}

/// `loads` loads of `account`'s state kept with snapshots, after one untimed load that
/// folds its `events` events and saves the snapshot: each timed load reads the
/// snapshot and the events after it (none).
pub async fn warm_snapshot_loads<S: EventStore>(
    engine: &Engine<S>,
    account: &str,
    events: u64,
    loads: u64,
) -> Rate {
    let load = || async {
        let (state, _) = engine
            .load(SnapshotAccount::new(account))
            .await
            .unwrap_or_else(|e| panic!("loading from the snapshot failed: {e}"));
        assert_eq!(state.deposits, events, "the load saw every event");
    };
    load().await;
    let read_before = engine.stats().events_read;
    let timed = rate(loads, async {
        for _ in 0..loads {
            load().await;
        }
    })
    .await;
    assert_eq!(
        engine.stats().events_read,
        read_before,
        "warm loads start from the snapshot"
    );
    timed
}

/// `decisions` deposits on `account`, a long-lived state kept with snapshots, one after
/// the other: each loads the state from its snapshot and the events after it, and
/// appends guarded by the state's query after its position.
pub async fn decisions_on_a_long_state<S: EventStore>(
    engine: &Engine<S>,
    account: &str,
    decisions: u64,
) -> Rate {
    rate(decisions, async {
        for i in 0..decisions {
            let decision = SnapshotDeposit {
                account: account.to_owned(),
                amount: i,
            };
            let outcome = engine
                .decide(&decision)
                .await
                .unwrap_or_else(|e| panic!("a decision on the long state failed: {e}"));
            assert_eq!(outcome.attempts, 1, "one submitter never conflicts");
        }
    })
    .await
}

/// Folds the account's state from its `events` events (read, decode, apply).
pub async fn fold<S: EventStore>(engine: &Engine<S>, account: &str, events: u64) -> Rate {
    rate(events, async {
        let (state, _) = engine
            .load(Account::new(account))
            .await
            .unwrap_or_else(|e| panic!("fold failed: {e}"));
        assert_eq!(state.deposits, events, "the fold saw every event");
    })
    .await
}

/// A contention workload: `decisions` redemptions spread over `keys` coupons (decision
/// `i` on coupon `i % keys`), submitted by `submitters` concurrent tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// Its name in the report.
    pub name: &'static str,
    /// Coupons (partition keys).
    pub keys: u64,
    /// Decisions in one run.
    pub decisions: u64,
    /// Concurrent submitters.
    pub submitters: u64,
}

/// How the contention workloads are decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    /// Optimistic: read, decide, conditional append, back off and retry on conflict.
    Optimistic,
    /// Serial lanes with group commit (default [`LaneOptions`]).
    SerialLanes,
    /// Serial lanes committing one decision per transaction (`max_batch: 1`).
    LanesOneByOne,
    /// The store's partition lock around read, decide and append.
    StoreLock,
    /// Distributed lanes: each decision sent through NATS JetStream by a
    /// `factum_nats::LanesClient` to one of two `factum_nats::Worker`s in this process,
    /// which decide in serial lanes (default [`LaneOptions`]) and reply.
    Distributed,
}

impl Contender {
    /// Every contender, in report order.
    pub const ALL: [Contender; 5] = [
        Contender::Optimistic,
        Contender::SerialLanes,
        Contender::LanesOneByOne,
        Contender::StoreLock,
        Contender::Distributed,
    ];

    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Contender::Optimistic => "optimistic",
            Contender::SerialLanes => "serial lanes, group commit",
            Contender::LanesOneByOne => "serial lanes, 1 decision per txn",
            Contender::StoreLock => "store lock",
            Contender::Distributed => "distributed lanes (NATS)",
        }
    }

    /// Its short name in the JSON.
    pub fn id(self) -> &'static str {
        match self {
            Contender::Optimistic => "optimistic",
            Contender::SerialLanes => "serial_lanes",
            Contender::LanesOneByOne => "serial_lanes_max_batch_1",
            Contender::StoreLock => "store_lock",
            Contender::Distributed => "distributed_lanes_nats",
        }
    }

    fn strategy(self) -> Strategy {
        match self {
            Contender::Optimistic => Strategy::Optimistic,
            Contender::SerialLanes | Contender::LanesOneByOne | Contender::Distributed => {
                Strategy::SerialLanes
            }
            Contender::StoreLock => Strategy::StoreLock,
        }
    }

    /// Its lanes: `lanes` (whose `max_batch` is 1 for [`Contender::LanesOneByOne`]).
    fn options(self, lanes: LaneOptions) -> LaneOptions {
        match self {
            Contender::LanesOneByOne => LaneOptions {
                max_batch: 1,
                ..lanes
            },
            _ => lanes,
        }
    }
}

/// What one run of a contention scenario measured.
#[derive(Clone, Debug, Serialize)]
pub struct RunFigures {
    /// Decisions submitted.
    pub decisions: u64,
    /// Decisions that committed.
    pub committed: u64,
    /// Decisions that failed (refused, conflict after the last retry, store error).
    pub failed: u64,
    /// Wall time from the first submission to the last answer, in seconds.
    pub elapsed_s: f64,
    /// Committed decisions per second.
    pub decisions_per_s: f64,
    /// Appends refused by their condition (each a retry, or a lane's catch-up).
    pub retries: u64,
    /// Store transactions the lanes committed (0 for the other strategies, which
    /// commit one per attempt).
    pub lane_batches: u64,
    /// Events read to fold states.
    pub events_read: u64,
    /// Median latency of a decision, submission to answer, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile of that latency, in milliseconds.
    pub p99_ms: f64,
    /// The longest one, in milliseconds.
    pub max_ms: f64,
    /// With `--profile`: the decisions' store calls, counted and timed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<Vec<CallFigures>>,
    /// With `--profile`: requests sent through `append_batch` (0 otherwise).
    pub batched_requests: u64,
}

/// The `q` quantile (nearest rank) of sorted `values`.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `workload` on `store` (fresh, empty) under `contender`: issues the coupons with
/// uses for every decision (untimed), then times the decisions from `submitters` tasks,
/// each decision's latency from its submission to its answer. Checks afterwards that
/// every coupon counts exactly the redemptions that committed. With `profile`, the
/// decisions' store calls are counted and timed. [`Contender::Distributed`] needs `nats`
/// (the connections to the NATS server), the others ignore it.
pub async fn contention<S>(
    store: S,
    workload: Workload,
    contender: Contender,
    lanes: LaneOptions,
    profile: Option<Arc<Profile>>,
    nats: Option<&Nats>,
) -> RunFigures
where
    S: EventStore + Clone + 'static,
{
    let run = prefix("coupon");
    let coupon = move |i: u64| format!("{run}-{}", i % workload.keys);
    let uses = workload.decisions.div_ceil(workload.keys);
    let mut issued = 0;
    while issued < workload.keys {
        let n = (workload.keys - issued).min(1000);
        let batch = (issued..issued + n)
            .map(|k| issue(&coupon(k), uses))
            .collect();
        store
            .append(batch, None)
            .await
            .unwrap_or_else(|e| panic!("issuing coupons failed: {e}"));
        issued += n;
    }

    // Untimed warm-up on other coupons, the same for every strategy: opens the pool's
    // connections and prepares their statements (a fresh PostgreSQL store opens them
    // lazily), so the timed part measures deciding, not connecting.
    let warm_up = Engine::new(store.clone());
    let warm_coupon = prefix("warm-up");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..workload.submitters {
        let engine = warm_up.clone();
        let coupon = format!("{warm_coupon}-{i}");
        tasks.spawn(async move {
            let store = engine.store();
            let issued = store.append(vec![issue(&coupon, 2)], None).await;
            issued.unwrap_or_else(|e| panic!("issuing a warm-up coupon failed: {e}"));
            for _ in 0..2 {
                let decision = Redeem {
                    coupon: coupon.clone(),
                    request: uuid::Uuid::now_v7(),
                };
                let done = engine.decide(&decision).await;
                done.unwrap_or_else(|e| panic!("a warm-up decision failed: {e}"));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap_or_else(|e| panic!("a warm-up task failed: {e}"));
    }

    let mut figures = match (&profile, contender) {
        (Some(p), Contender::Distributed) => {
            let timed = Timed::new(store.clone(), p.clone());
            let nats = nats.unwrap_or_else(|| panic!("the distributed contender needs NATS"));
            distributed::timed_decisions(timed, workload, lanes, coupon.clone(), nats, Some(p))
                .await
        }
        (None, Contender::Distributed) => {
            let nats = nats.unwrap_or_else(|| panic!("the distributed contender needs NATS"));
            distributed::timed_decisions(store.clone(), workload, lanes, coupon.clone(), nats, None)
                .await
        }
        (Some(p), _) => {
            let timed = Timed::new(store.clone(), p.clone());
            timed_decisions(timed, workload, contender, lanes, coupon.clone()).await
        }
        (None, _) => {
            timed_decisions(store.clone(), workload, contender, lanes, coupon.clone()).await
        }
    };
    if let Some(p) = &profile {
        figures.calls = Some(p.summary(workload.decisions));
        figures.batched_requests = p.batched_requests();
    }

    // Untimed: every committed redemption is in the log, once.
    let engine = Engine::new(store);
    let mut counted = 0;
    for k in 0..workload.keys {
        let (state, _) = engine
            .load(Coupon::new(coupon(k)))
            .await
            .unwrap_or_else(|e| panic!("reading a coupon back failed: {e}"));
        counted += state.redeemed;
    }
    assert_eq!(
        counted, figures.committed,
        "the log holds one redemption per committed decision"
    );
    figures
}

/// The timed part of [`contention`]: the decisions, on `store`.
async fn timed_decisions<S>(
    store: S,
    workload: Workload,
    contender: Contender,
    lanes: LaneOptions,
    coupon: impl Fn(u64) -> String + Clone + Send + 'static,
) -> RunFigures
where
    S: EventStore + Clone + 'static,
{
    let dispatcher = Dispatcher::with_options(Engine::new(store), contender.options(lanes));
    let strategy = contender.strategy();
    let before = dispatcher.engine().stats();
    let dispatcher_for_submitters = dispatcher.clone();
    let (latencies, failed, elapsed) =
        submit_all(workload, coupon, "a decision", move |decision| {
            let dispatcher = dispatcher_for_submitters.clone();
            async move {
                dispatcher
                    .decide_using(decision, strategy, Context::default())
                    .await
                    .map(|_| ())
            }
        })
        .await;
    let stats = dispatcher.engine().stats().since(&before);
    dispatcher.shutdown(Drain::Finish).await;

    figures_of(workload, &stats, failed, elapsed, latencies)
}

/// Sends the workload's decisions from `workload.submitters` concurrent submitters, each
/// waiting for its answer before the next, through `submit`; returns every decision's
/// latency, how many failed (the first failure is printed, as `what`) and the wall time.
pub(crate) async fn submit_all<F, Fut, E>(
    workload: Workload,
    coupon: impl Fn(u64) -> String + Clone + Send + 'static,
    what: &'static str,
    submit: F,
) -> (Vec<Duration>, u64, Duration)
where
    F: Fn(Redeem) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workload.submitters {
        let submit = submit.clone();
        let next = next.clone();
        let coupon = coupon.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut failed = 0u64;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= workload.decisions {
                    break;
                }
                let decision = Redeem {
                    coupon: coupon(i),
                    request: uuid::Uuid::now_v7(),
                };
                let submitted = Instant::now();
                let result = submit(decision).await;
                latencies.push(submitted.elapsed());
                if let Err(e) = result {
                    if failed == 0 {
                        eprintln!("{what} failed: {e}");
                    }
                    failed += 1;
                }
            }
            (latencies, failed)
        });
    }
    let mut latencies = Vec::with_capacity(workload.decisions as usize);
    let mut failed = 0;
    while let Some(done) = tasks.join_next().await {
        let (mine, f) = done.unwrap_or_else(|e| panic!("a submitter failed: {e}"));
        latencies.extend(mine);
        failed += f;
    }
    (latencies, failed, started.elapsed())
}

/// A run's figures from the engines' counts over the timed part, the failed decisions,
/// the wall time and every decision's latency.
pub(crate) fn figures_of(
    workload: Workload,
    stats: &EngineStats,
    failed: u64,
    elapsed: Duration,
    mut latencies: Vec<Duration>,
) -> RunFigures {
    latencies.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    RunFigures {
        decisions: workload.decisions,
        committed: stats.committed,
        failed,
        elapsed_s: elapsed.as_secs_f64(),
        decisions_per_s: stats.committed as f64 / elapsed.as_secs_f64().max(1e-9),
        retries: stats.conflicts,
        lane_batches: stats.batches,
        events_read: stats.events_read,
        p50_ms: ms(quantile(&latencies, 0.50)),
        p99_ms: ms(quantile(&latencies, 0.99)),
        max_ms: ms(latencies.last().copied().unwrap_or_default()),
        batched_requests: 0,
        calls: None,
    }
}
