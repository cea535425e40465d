//! The coupon rush: 1,000 customers arrive within a second, each opens a cart and applies
//! a coupon that has 100 uses, while other customers keep filling their carts.
//!
//! It runs twice, on a fresh store each time: first with [`ApplyCoupon`], which
//! validates against every application of the coupon and so applies it exactly 100
//! times (customers who lose a race retry); then with [`ApplyCouponTolerant`], which
//! leaves applications out of its validation query, so the rush causes no conflicts but
//! may overbook the coupon a little.
//!
//! The store is the in-memory store, with appends that take 1 ms to reach it
//! ([`Latency`]; the first argument sets another delay, 0 for none), so concurrent
//! customers race as they would against a database.
//!
//! Conflicts come from the engine's counters ([`Engine::stats`]), which also count the
//! conflicts of customers who retried and then found the coupon used up.
//!
//! Run with `cargo run -p factum-examples --example coupon_rush`. Exits non-zero if the
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

/// The in-memory store, with appends that travel.
type Store = Latency<MemoryStore>;
type Decided<E> = Result<Outcome<E>, DecideError<CouponError>>;

const COUPON: &str = "RUSH100";
const USES: u32 = 100;
const CUSTOMERS: usize = 1_000;
/// Customers arrive one after another, evenly over this window.
const ARRIVALS_OVER: Duration = Duration::from_millis(1_000);
/// How long an append takes to reach the store, unless the first argument says.
const DEFAULT_LATENCY_MS: u64 = 1;
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
async fn customer(
    engine: Engine<Store>,
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
async fn background(engine: Engine<Store>, cart: String) -> Vec<Decided<events::CartEvent>> {
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
async fn setup(engine: &Engine<Store>) -> Result<(), DecideError<CouponError>> {
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

async fn run(mode: Mode, latency: Duration) -> Tally {
    let engine = Engine::new(Latency::new(MemoryStore::new(), latency));
    let mut tally = Tally::default();
    if let Err(e) = setup(&engine).await {
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

    audit(&engine, &mut tally).await;
    tally
}

/// Checks the run against the log itself, not against what the tasks reported.
async fn audit(engine: &Engine<Store>, tally: &mut Tally) {
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
    let latency_ms = match std::env::args().nth(1).map(|a| a.parse::<u64>()) {
        None => DEFAULT_LATENCY_MS,
        Some(Ok(ms)) => ms,
        Some(Err(_)) => {
            eprintln!("usage: coupon_rush [append latency in ms, default {DEFAULT_LATENCY_MS}]");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "coupon rush: {CUSTOMERS} customers arrive within {} ms, each opens a cart and applies \
         {COUPON} ({USES} uses);",
        ARRIVALS_OVER.as_millis()
    );
    println!(
        "meanwhile {BACKGROUND_CARTS} other carts get {ITEMS_PER_CART} items each. \
         In-memory store, appends take {latency_ms} ms to reach it."
    );
    let latency = Duration::from_millis(latency_ms);
    let mut problems_found = Vec::new();
    for mode in [Mode::Strict, Mode::Tolerant] {
        let tally = run(mode, latency).await;
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
