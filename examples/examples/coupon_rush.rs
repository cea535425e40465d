//! The coupon rush: 1,000 customers arrive within a second, each opens a cart and applies
//! a coupon that has 100 uses, while other customers keep filling their carts.
//!
//! It runs twice, on a fresh store each time: first with [`ApplyCoupon`], which
//! validates against every application of the coupon and so applies it exactly 100
//! times (customers who lose a race retry); then with [`ApplyCouponTolerant`], which
//! leaves applications out of its validation query, so the rush causes no conflicts but
//! may overbook the coupon a little.
//!
//! The store is the embedded SQLite store (durable: WAL, `synchronous=FULL`), one file
//! per run under `./target/factum-demo/`; a run removes the previous run's file first
//! and leaves its own for inspection. After the rush the file is closed, reopened, and
//! the audit reads the log back from disk. `--memory` runs on the in-memory store
//! instead, with appends that take 1 ms to reach it ([`Latency`]) so that concurrent
//! customers race as they would against a database; `--latency MS` sets that delay for
//! either store (default: 0 for SQLite, 1 for memory).
//!
//! Conflicts come from the engine's counters ([`Engine::stats`]), which also count the
//! conflicts of customers who retried and then found the coupon used up.
//!
//! Run with `cargo run -p factum-examples --example coupon_rush -- [--memory] [--latency MS]`. Exits non-zero if the
//! strict run does not apply exactly 100 uses, any command is lost (neither committed
//! nor rejected by the domain), or the engine's counters disagree with the results the
//! tasks saw.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use factum::prelude::*;
use factum::{EngineStats, Outcome};
use factum_examples::coupons::{
    AddItem, ApplyCoupon, ApplyCouponTolerant, Coupon, CouponError, IssueCoupon, OpenCart,
    SetPrice, events,
};
use factum_examples::latency::Latency;
use futures::TryStreamExt;
use tokio::task::JoinSet;

type Decided<E> = Result<Outcome<E>, DecideError<CouponError>>;

const COUPON: &str = "RUSH100";
const USES: u32 = 100;
const CUSTOMERS: usize = 1_000;
/// Customers arrive one after another, evenly over this window.
const ARRIVALS_OVER: Duration = Duration::from_millis(1_000);
/// Where the SQLite runs keep their files.
const DEMO_DIR: &str = "target/factum-demo";
/// Carts filled in the background, each by its own task, during the rush.
const BACKGROUND_CARTS: usize = 8;
/// Items each background task adds to its cart, one decision each.
const ITEMS_PER_CART: usize = 50;
const SKUS: [(&str, u32); 4] = [("tea", 450), ("mug", 1200), ("cake", 380), ("jam", 600)];

/// Which coupon decision a run uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Strict,
    Tolerant,
}

impl Mode {
    fn title(self) -> &'static str {
        match self {
            Mode::Strict => "strict: ApplyCoupon validates every application of the coupon",
            Mode::Tolerant => {
                "tolerant: ApplyCouponTolerant excludes CouponApplied (tolerated overbooking)"
            }
        }
    }
}

/// What a run counted: from the decisions' results, from the engine's counters, and
/// from the log.
#[derive(Default)]
struct Tally {
    decisions: u64,
    applied: u64,
    coupon_retries: u64,
    background_retries: u64,
    rejections: u64,
    used_up: u64,
    lost: u64,
    elapsed: Duration,
    /// The engine's counters over the rush (setup excluded).
    engine: EngineStats,
    applied_in_log: u64,
    carts_with_two_coupons: u64,
    items_in_log: u64,
}

impl Tally {
    /// Counts one decision's result; returns its retries if it committed.
    fn count<E>(&mut self, what: &str, result: &Decided<E>) -> Option<u64> {
        self.decisions += 1;
        match result {
            Ok(outcome) => Some(u64::from(outcome.attempts - 1)),
            Err(DecideError::Domain(e)) => {
                self.rejections += 1;
                if matches!(e, CouponError::CouponUsedUp { .. }) {
                    self.used_up += 1;
                }
                None
            }
            Err(e) => {
                self.lost += 1;
                eprintln!("  lost: {what}: {e}");
                None
            }
        }
    }
}

/// What one customer did.
struct Customer {
    opened: Decided<events::CartEvent>,
    applied: Option<Decided<events::CouponEvent>>,
}

/// One customer: arrives at `arrival`, opens a cart and applies the coupon to it.
async fn customer<S: EventStore + Clone + 'static>(
    engine: Engine<S>,
    arrival: tokio::time::Instant,
    mode: Mode,
    n: usize,
) -> Customer {
    tokio::time::sleep_until(arrival).await;
    let cart = format!("customer-{n:04}");
    let opened = engine.decide(&OpenCart { cart: cart.clone() }).await;
    if opened.is_err() {
        return Customer {
            opened,
            applied: None,
        };
    }
    let applied = match mode {
        Mode::Strict => engine.decide(&ApplyCoupon::new(COUPON, &cart)).await,
        Mode::Tolerant => {
            engine
                .decide(&ApplyCouponTolerant::new(COUPON, &cart))
                .await
        }
    };
    Customer {
        opened,
        applied: Some(applied),
    }
}

/// Fills one cart that has nothing to do with the coupon, item after item.
async fn background<S: EventStore + Clone + 'static>(
    engine: Engine<S>,
    cart: String,
) -> Vec<Decided<events::CartEvent>> {
    let mut results = Vec::with_capacity(ITEMS_PER_CART);
    for i in 0..ITEMS_PER_CART {
        let add = AddItem {
            cart: cart.clone(),
            sku: SKUS[i % SKUS.len()].0.into(),
        };
        results.push(engine.decide(&add).await);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    results
}

/// The coupon, the prices and the background carts; not timed.
async fn setup<S: EventStore + Clone + 'static>(
    engine: &Engine<S>,
) -> Result<(), DecideError<CouponError>> {
    let issue = IssueCoupon {
        coupon: COUPON.into(),
        uses: USES,
    };
    engine.decide(&issue).await?;
    for (sku, cents) in SKUS {
        let price = SetPrice {
            sku: sku.into(),
            cents,
        };
        engine.decide(&price).await?;
    }
    for b in 0..BACKGROUND_CARTS {
        let open = OpenCart {
            cart: format!("browser-{b}"),
        };
        engine.decide(&open).await?;
    }
    Ok(())
}

/// Which store the demo runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Memory,
}

async fn run(mode: Mode, backend: Backend, latency: Duration) -> Tally {
    match backend {
        Backend::Memory => {
            let engine = Engine::new(Latency::new(MemoryStore::new(), latency));
            let mut tally = rush(mode, &engine).await;
            audit(&engine, &mut tally).await;
            tally
        }
        Backend::Sqlite => {
            let name = match mode {
                Mode::Strict => "coupon_rush-strict.db",
                Mode::Tolerant => "coupon_rush-tolerant.db",
            };
            let path = std::path::Path::new(DEMO_DIR).join(name);
            let mut tally = Tally::default();
            let store = match fresh_sqlite(&path).await {
                Ok(store) => store,
                Err(e) => {
                    eprintln!("  {e}");
                    tally.lost += 1;
                    return tally;
                }
            };
            let engine = Engine::new(Latency::new(store, latency));
            tally = rush(mode, &engine).await;
            // Close the file, reopen it and audit what is on disk.
            drop(engine);
            match factum_sqlite::open(&path).await {
                Ok(store) => audit(&Engine::new(store), &mut tally).await,
                Err(e) => {
                    eprintln!("  reopening {} failed: {e}", path.display());
                    tally.lost += 1;
                }
            }
            println!("  (the log of this run is in {})", path.display());
            tally
        }
    }
}

/// Opens a new SQLite store at `path`, removing the file a previous run left there.
async fn fresh_sqlite(path: &std::path::Path) -> Result<factum_sqlite::SqliteStore, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Ok(()) if suffix.is_empty() => {
                println!("  removed the previous run's {}", file.display())
            }
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", file.display())),
        }
    }
    factum_sqlite::open(path)
        .await
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// The timed part: setup, then customers and background carts at once.
async fn rush<S: EventStore + Clone + 'static>(mode: Mode, engine: &Engine<S>) -> Tally {
    let mut tally = Tally::default();
    if let Err(e) = setup(engine).await {
        eprintln!("  setup failed: {e}");
        tally.lost += 1;
        return tally;
    }
    let before = engine.stats();

    let started = Instant::now();
    let mut browsers = JoinSet::new();
    for b in 0..BACKGROUND_CARTS {
        browsers.spawn(background(engine.clone(), format!("browser-{b}")));
    }
    let mut customers = JoinSet::new();
    let doors = tokio::time::Instant::now();
    for n in 0..CUSTOMERS {
        let arrival = doors + ARRIVALS_OVER * n as u32 / CUSTOMERS as u32;
        customers.spawn(customer(engine.clone(), arrival, mode, n));
    }
    while let Some(joined) = customers.join_next().await {
        let Ok(c) = joined else {
            tally.lost += 2;
            eprintln!("  lost: a customer task panicked");
            continue;
        };
        tally.count("open cart", &c.opened);
        if let Some(applied) = &c.applied
            && let Some(retries) = tally.count("apply coupon", applied)
        {
            tally.applied += 1;
            tally.coupon_retries += retries;
        }
    }
    while let Some(joined) = browsers.join_next().await {
        let Ok(results) = joined else {
            tally.lost += ITEMS_PER_CART as u64;
            eprintln!("  lost: a background task panicked");
            continue;
        };
        for result in &results {
            tally.background_retries += tally.count("add item", result).unwrap_or(0);
        }
    }
    tally.elapsed = started.elapsed();
    let after = engine.stats();
    tally.engine = after.since(&before);
    tally
}

/// Checks the run against the log itself, not against what the tasks reported.
async fn audit<S: EventStore + Clone + 'static>(engine: &Engine<S>, tally: &mut Tally) {
    let log: Vec<StoredEvent> = match engine
        .store()
        .read(&Query::all(), ReadOptions::forward())
        .try_collect()
        .await
    {
        Ok(log) => log,
        Err(e) => {
            eprintln!("  reading the log failed: {e}");
            tally.lost += 1;
            return;
        }
    };
    let mut coupon = Coupon::new(COUPON);
    let mut coupons_per_cart = HashMap::<String, u64>::new();
    for event in &log {
        let folded = if coupon.matches(event) {
            coupon.apply(event)
        } else {
            Ok(())
        };
        match (folded, events::Event::from_stored(event)) {
            (Ok(()), Ok(events::Event::CouponApplied(applied))) => {
                tally.applied_in_log += 1;
                *coupons_per_cart.entry(applied.cart).or_default() += 1;
            }
            (Ok(()), Ok(events::Event::ItemAdded(_))) => tally.items_in_log += 1,
            (Ok(()), Ok(_)) => {}
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("  the log does not decode: {e}");
                tally.lost += 1;
            }
        }
    }
    tally.carts_with_two_coupons = coupons_per_cart.values().filter(|&&n| n > 1).count() as u64;
    if u64::from(coupon.applied) != tally.applied_in_log {
        eprintln!(
            "  the coupon state folded {} applications, the log holds {}",
            coupon.applied, tally.applied_in_log
        );
        tally.lost += 1;
    }
}

fn print_table(mode: Mode, t: &Tally) {
    let secs = t.elapsed.as_secs_f64();
    let over = t.applied.saturating_sub(u64::from(USES));
    let applied = match mode {
        Mode::Strict => format!("{} of {USES} uses", t.applied),
        Mode::Tolerant => format!("{} of {USES} uses ({over} over)", t.applied),
    };
    let rows = [
        ("decisions", t.decisions.to_string()),
        ("applied coupons", applied),
        (
            "conflicts",
            // Every committed decision of the rush appends, and every conflict is an
            // append its condition refused.
            format!(
                "{} of {} appends",
                t.engine.conflicts,
                t.engine.committed + t.engine.conflicts
            ),
        ),
        (
            "retries",
            format!(
                "{} (coupon {}, other carts {})",
                t.coupon_retries + t.background_retries,
                t.coupon_retries,
                t.background_retries
            ),
        ),
        (
            "domain rejections",
            format!("{} ({} coupon used up)", t.rejections, t.used_up),
        ),
        ("lost commands", t.lost.to_string()),
        ("elapsed", format!("{:.0} ms", secs * 1000.0)),
        (
            "decisions/s",
            format!("{:.0}", t.decisions as f64 / secs.max(f64::EPSILON)),
        ),
    ];
    println!("{}", mode.title());
    println!("  +-------------------+----------------------------------+");
    for (name, value) in rows {
        println!("  | {name:<17} | {value:<32} |");
    }
    println!("  +-------------------+----------------------------------+");
}

/// What must hold after a run; the reasons it does not.
fn problems(mode: Mode, t: &Tally) -> Vec<String> {
    let mut problems = Vec::new();
    let name = match mode {
        Mode::Strict => "strict",
        Mode::Tolerant => "tolerant",
    };
    let expected = (2 * CUSTOMERS + BACKGROUND_CARTS * ITEMS_PER_CART) as u64;
    if t.lost > 0 || t.decisions != expected {
        problems.push(format!(
            "{name}: {} commands lost ({} of {expected} decisions accounted for)",
            t.lost, t.decisions
        ));
    }
    let committed = t.decisions.saturating_sub(t.rejections + t.lost);
    if (t.engine.committed, t.engine.rejected) != (committed, t.rejections) {
        problems.push(format!(
            "{name}: the engine counted {} commits and {} rejections, the tasks {committed} and {}",
            t.engine.committed, t.engine.rejected, t.rejections
        ));
    }
    if t.applied != t.applied_in_log {
        problems.push(format!(
            "{name}: {} applications committed, {} in the log",
            t.applied, t.applied_in_log
        ));
    }
    if t.items_in_log != (BACKGROUND_CARTS * ITEMS_PER_CART) as u64 {
        problems.push(format!(
            "{name}: {} background items in the log",
            t.items_in_log
        ));
    }
    match mode {
        Mode::Strict if t.applied != u64::from(USES) => problems.push(format!(
            "strict: the coupon was applied {} times, not {USES}",
            t.applied
        )),
        Mode::Strict if t.carts_with_two_coupons > 0 => problems.push(format!(
            "strict: {} carts got two coupons",
            t.carts_with_two_coupons
        )),
        Mode::Tolerant if t.applied < u64::from(USES) => problems.push(format!(
            "tolerant: the coupon was applied {} times, fewer than {USES}",
            t.applied
        )),
        _ => {}
    }
    problems
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let mut backend = Backend::Sqlite;
    let mut latency_ms = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--memory" => backend = Backend::Memory,
            "--latency" => match args.next().map(|a| a.parse::<u64>()) {
                Some(Ok(ms)) => latency_ms = Some(ms),
                _ => {
                    eprintln!(
                        "usage: coupon_rush [--memory] [--latency MS]: --latency takes milliseconds"
                    );
                    return ExitCode::FAILURE;
                }
            },
            other => {
                eprintln!("usage: coupon_rush [--memory] [--latency MS] (unexpected {other:?})");
                return ExitCode::FAILURE;
            }
        }
    }
    let latency_ms = latency_ms.unwrap_or(match backend {
        Backend::Sqlite => 0,
        Backend::Memory => 1,
    });
    println!(
        "coupon rush: {CUSTOMERS} customers arrive within {} ms, each opens a cart and applies \
         {COUPON} ({USES} uses);",
        ARRIVALS_OVER.as_millis()
    );
    let store = match backend {
        Backend::Sqlite => {
            format!("the embedded SQLite store (a file under {DEMO_DIR}/, synchronous=FULL)")
        }
        Backend::Memory => "the in-memory store".to_owned(),
    };
    println!(
        "meanwhile {BACKGROUND_CARTS} other carts get {ITEMS_PER_CART} items each. \
         On {store}; appends take {latency_ms} ms more to reach it."
    );
    let latency = Duration::from_millis(latency_ms);
    let mut problems_found = Vec::new();
    for mode in [Mode::Strict, Mode::Tolerant] {
        let tally = run(mode, backend, latency).await;
        println!();
        print_table(mode, &tally);
        problems_found.extend(problems(mode, &tally));
    }
    println!();
    if problems_found.is_empty() {
        println!(
            "ok: the strict run applied exactly {USES} uses, no command was lost, and the \
             engine's counters agree"
        );
        ExitCode::SUCCESS
    } else {
        for problem in problems_found {
            eprintln!("error: {problem}");
        }
        ExitCode::FAILURE
    }
}
