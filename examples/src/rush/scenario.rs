//! The seed scenario, run once under one strategy: every command submitted through one
//! [`Dispatcher`], with the answer it got and how long it waited for it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use factum::lanes::{Dispatcher, Drain, LaneOptions, Strategy};
use factum::prelude::*;
use factum::{Context, EngineStats, Outcome};
use indicatif::ProgressBar;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::coupons::{
    AddItem, ApplyCoupon, ApplyCouponTolerant, CouponError, IssueCoupon, OpenCart, SetPrice,
};

/// The products the background carts take, with their prices in cents.
pub const SKUS: [(&str, u32); 4] = [("tea", 450), ("mug", 1200), ("cake", 380), ("jam", 600)];

/// The sizes of a rush.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rush {
    /// The coupon everyone wants.
    pub coupon: String,
    /// How many carts it may be applied to.
    pub uses: u32,
    /// Customers, each opening a cart of its own and applying the coupon to it.
    pub customers: usize,
    /// Customers arrive one after another, evenly over this window (zero: all at
    /// once).
    pub arrivals_over: Duration,
    /// How many customer requests the shop serves at once (its workers): the others
    /// wait for one to be free. Also what bounds the overbooking of [`Run::Tolerant`].
    pub submitters: usize,
    /// Carts filled in the background during the rush, each by its own task (opened
    /// before the rush).
    pub background_carts: usize,
    /// Items each background task adds to its cart, one decision each.
    pub items_per_cart: usize,
    /// The pause of a background task between two items.
    pub item_pause: Duration,
}

impl Rush {
    /// The seed scenario: a coupon with 100 uses, 1,000 customers arriving at once
    /// and served by 16 submitters, 8 other carts getting 50 items each meanwhile.
    pub fn seed() -> Self {
        Rush {
            coupon: "RUSH100".to_owned(),
            uses: 100,
            customers: 1_000,
            arrivals_over: Duration::ZERO,
            submitters: 16,
            background_carts: 8,
            items_per_cart: 50,
            item_pause: Duration::from_millis(1),
        }
    }

    /// How many commands the rush submits: two per customer (open the cart, apply the
    /// coupon) and the background items.
    pub fn commands(&self) -> usize {
        2 * self.customers + self.background_carts * self.items_per_cart
    }

    /// The cart of customer `n`.
    pub fn customer_cart(n: usize) -> String {
        format!("customer-{n:04}")
    }

    /// The background cart `b`.
    pub fn background_cart(b: usize) -> String {
        format!("browser-{b}")
    }
}

/// One of the four ways the demo runs the rush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// [`ApplyCoupon`] under [`Strategy::Optimistic`]: read, decide, conditional append,
    /// retry on conflict.
    Optimistic,
    /// [`ApplyCouponTolerant`] (`exclude = [CouponApplied]`) under
    /// [`Strategy::Optimistic`]: applications do not conflict with each other, and the
    /// coupon may be overbooked.
    Tolerant,
    /// [`ApplyCoupon`] under [`Strategy::SerialLanes`]: queued on the coupon's lane,
    /// decided one after another on warm states, committed in batches.
    SerialLanes,
    /// [`ApplyCoupon`] under [`Strategy::StoreLock`]: the store's lock on the coupon
    /// held around each read, decide and append.
    StoreLock,
}

impl Run {
    /// Every run, in the order the demo runs them.
    pub const ALL: [Run; 4] = [
        Run::Optimistic,
        Run::Tolerant,
        Run::SerialLanes,
        Run::StoreLock,
    ];

    /// The strategy every decision of the run goes through.
    pub fn strategy(self) -> Strategy {
        match self {
            Run::Optimistic | Run::Tolerant => Strategy::Optimistic,
            Run::SerialLanes => Strategy::SerialLanes,
            Run::StoreLock => Strategy::StoreLock,
        }
    }

    /// Whether customers apply the coupon with [`ApplyCouponTolerant`].
    pub fn tolerant(self) -> bool {
        self == Run::Tolerant
    }

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Run::Optimistic => "optimistic",
            Run::Tolerant => "optimistic + exclusion",
            Run::SerialLanes => "serial lanes",
            Run::StoreLock => "store lock",
        }
    }

    /// The most attempts an application of the coupon may take in this run (its retry
    /// policy's retries, plus one).
    pub fn allowed_attempts(self) -> u32 {
        let retry = if self.tolerant() {
            ApplyCouponTolerant::META.retry
        } else {
            ApplyCoupon::META.retry
        };
        retry.max_retries + 1
    }

    /// Its name in file and schema names.
    pub fn slug(self) -> &'static str {
        match self {
            Run::Optimistic => "optimistic",
            Run::Tolerant => "tolerant",
            Run::SerialLanes => "lanes",
            Run::StoreLock => "lock",
        }
    }
}

/// What a command is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// [`OpenCart`] of a customer.
    OpenCart,
    /// [`ApplyCoupon`] or [`ApplyCouponTolerant`].
    ApplyCoupon,
    /// [`AddItem`] to a background cart.
    AddItem,
}

/// What a command was told.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// It committed, with these positions.
    Committed {
        /// Where its events are in the log.
        positions: Vec<Position>,
        /// [`Outcome::attempts`]: 1 without conflicts.
        attempts: u32,
        /// [`Outcome::replayed`]: the outcome of an earlier commit of its idempotency key.
        replayed: bool,
    },
    /// The domain refused it.
    Refused(CouponError),
    /// Anything else: a conflict after the last retry, a store error, a stopped
    /// dispatcher. The command is lost.
    Failed(String),
}

impl Answer {
    fn of<E>(result: Result<Outcome<E>, DecideError<CouponError>>) -> Self {
        match result {
            Ok(outcome) => Answer::Committed {
                positions: outcome.positions,
                attempts: outcome.attempts,
                replayed: outcome.replayed,
            },
            Err(DecideError::Domain(e)) => Answer::Refused(e),
            Err(e) => Answer::Failed(e.to_string()),
        }
    }
}

/// One command of the rush and its answer.
#[derive(Clone, Debug)]
pub struct Command {
    /// What it was.
    pub kind: Kind,
    /// The cart it was for.
    pub cart: String,
    /// What it was told.
    pub answer: Answer,
    /// From handing it to the dispatcher to its answer.
    pub latency: Duration,
}

/// What one run did, as its submitters saw it.
#[derive(Clone, Debug)]
pub struct Observed {
    /// Which run.
    pub run: Run,
    /// Every command that got an answer (a command missing here got none).
    pub commands: Vec<Command>,
    /// The positions the setup wrote (the coupon, the prices, the background carts).
    pub setup: Vec<Position>,
    /// From the doors opening to the last answer.
    pub elapsed: Duration,
    /// The engine's counters over the rush (setup excluded); serial lanes add theirs.
    pub stats: EngineStats,
    /// The most applications of the coupon in flight at once (submitted to the
    /// dispatcher, not yet answered); at most [`Rush::submitters`].
    pub peak_in_flight: usize,
    /// Serial lanes the dispatcher ran (hot-key lanes included).
    pub lanes: usize,
}

/// Counts applications in flight, and the most at once.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// One application in flight, until dropped.
struct InFlight<'a>(&'a Gauge);

impl Gauge {
    fn enter(&self) -> InFlight<'_> {
        let now = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        InFlight(self)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What every task of a run shares.
struct Shared<S> {
    dispatcher: Dispatcher<S>,
    rush: Rush,
    run: Run,
    progress: ProgressBar,
    /// One permit per submitter.
    submitters: Semaphore,
    applying: Gauge,
}

/// Awaits a decision's answer, timing it.
async fn timed<E>(
    decision: impl Future<Output = Result<Outcome<E>, DecideError<CouponError>>>,
) -> (Answer, Duration) {
    let started = Instant::now();
    let answer = Answer::of(decision.await);
    (answer, started.elapsed())
}

/// Waits for a free submitter, then awaits the decision `submit` makes, timed from
/// handing it to the dispatcher (the wait for a submitter is not included).
async fn served<E, F>(submitters: &Semaphore, submit: impl FnOnce() -> F) -> (Answer, Duration)
where
    F: Future<Output = Result<Outcome<E>, DecideError<CouponError>>>,
{
    match submitters.acquire().await {
        Ok(_permit) => timed(submit()).await,
        Err(_) => (Answer::Failed("no submitter".into()), Duration::ZERO),
    }
}

/// Runs the rush on `store` under `run`, advancing `progress` by one per answered
/// command. Fails only if the setup (issuing the coupon, pricing the products, opening
/// the background carts) fails; what happens to the commands of the rush is in the
/// [`Observed`].
pub async fn run<S: EventStore + Clone + 'static>(
    store: S,
    rush: &Rush,
    run: Run,
    progress: &ProgressBar,
) -> Result<Observed, String> {
    let engine = Engine::new(store);
    let setup = setup(&engine, rush)
        .await
        .map_err(|e| format!("setting up the rush failed: {e}"))?;
    let shared = Arc::new(Shared {
        dispatcher: Dispatcher::with_options(engine.clone(), LaneOptions::default()),
        rush: rush.clone(),
        run,
        progress: progress.clone(),
        submitters: Semaphore::new(rush.submitters.max(1)),
        applying: Gauge::default(),
    });
    let before = engine.stats();

    let started = Instant::now();
    let doors = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    for b in 0..rush.background_carts {
        tasks.spawn(background(shared.clone(), b));
    }
    for n in 0..rush.customers {
        let arrival = doors + rush.arrivals_over.mul_f64(n as f64 / rush.customers as f64);
        tasks.spawn(customer(shared.clone(), n, arrival));
    }
    let mut commands = Vec::with_capacity(rush.commands());
    while let Some(joined) = tasks.join_next().await {
        // A task that panicked leaves its commands without an answer: the audit counts
        // them lost.
        if let Ok(done) = joined {
            commands.extend(done);
        }
    }
    let elapsed = started.elapsed();
    shared.dispatcher.shutdown(Drain::Finish).await;
    Ok(Observed {
        run,
        commands,
        setup,
        elapsed,
        stats: engine.stats().since(&before),
        peak_in_flight: shared.applying.peak.load(Ordering::Relaxed),
        lanes: shared.dispatcher.lanes(),
    })
}

/// The coupon, the prices and the background carts, decided directly on the engine;
/// not timed. Returns the positions written.
async fn setup<S: EventStore + Clone + 'static>(
    engine: &Engine<S>,
    rush: &Rush,
) -> Result<Vec<Position>, DecideError<CouponError>> {
    let mut written = Vec::new();
    let issue = IssueCoupon {
        coupon: rush.coupon.clone(),
        uses: rush.uses,
    };
    written.extend(engine.decide(&issue).await?.positions);
    for (sku, cents) in SKUS {
        let price = SetPrice {
            sku: sku.into(),
            cents,
        };
        written.extend(engine.decide(&price).await?.positions);
    }
    for b in 0..rush.background_carts {
        let open = OpenCart {
            cart: Rush::background_cart(b),
        };
        written.extend(engine.decide(&open).await?.positions);
    }
    Ok(written)
}

/// One customer: arrives at `arrival`, opens a cart and applies the coupon to it, each
/// request served by one of the submitters, through the dispatcher, with a correlation
/// id of its own.
async fn customer<S: EventStore + Clone + 'static>(
    shared: Arc<Shared<S>>,
    n: usize,
    arrival: tokio::time::Instant,
) -> Vec<Command> {
    tokio::time::sleep_until(arrival).await;
    let Shared {
        dispatcher,
        rush,
        run,
        progress,
        submitters,
        applying,
    } = &*shared;
    let strategy = run.strategy();
    let cart = Rush::customer_cart(n);
    let context = Context {
        correlation_id: Some(Uuid::now_v7()),
        causation_id: None,
    };
    let mut done = Vec::with_capacity(2);

    let open = OpenCart { cart: cart.clone() };
    let (answer, latency) = served(submitters, || {
        dispatcher.decide_using(open, strategy, context)
    })
    .await;
    let opened = matches!(answer, Answer::Committed { .. });
    done.push(Command {
        kind: Kind::OpenCart,
        cart: cart.clone(),
        answer,
        latency,
    });
    progress.inc(1);
    if !opened {
        // Its application is never submitted: the audit counts it lost.
        return done;
    }

    let (answer, latency) = if run.tolerant() {
        let apply = ApplyCouponTolerant::new(&rush.coupon, &cart);
        served(submitters, || async {
            let _in_flight = applying.enter();
            dispatcher.decide_using(apply, strategy, context).await
        })
        .await
    } else {
        let apply = ApplyCoupon::new(&rush.coupon, &cart);
        served(submitters, || async {
            let _in_flight = applying.enter();
            dispatcher.decide_using(apply, strategy, context).await
        })
        .await
    };
    done.push(Command {
        kind: Kind::ApplyCoupon,
        cart,
        answer,
        latency,
    });
    progress.inc(1);
    done
}

/// Fills background cart `b`, item after item, through the same dispatcher (but not
/// through the customers' submitters: it is another client).
async fn background<S: EventStore + Clone + 'static>(
    shared: Arc<Shared<S>>,
    b: usize,
) -> Vec<Command> {
    let cart = Rush::background_cart(b);
    let mut done = Vec::with_capacity(shared.rush.items_per_cart);
    for i in 0..shared.rush.items_per_cart {
        let add = AddItem {
            cart: cart.clone(),
            sku: SKUS[i % SKUS.len()].0.into(),
        };
        let decided =
            shared
                .dispatcher
                .decide_using(add, shared.run.strategy(), Context::default());
        let (answer, latency) = timed(decided).await;
        done.push(Command {
            kind: Kind::AddItem,
            cart: cart.clone(),
            answer,
            latency,
        });
        shared.progress.inc(1);
        tokio::time::sleep(shared.rush.item_pause).await;
    }
    done
}
