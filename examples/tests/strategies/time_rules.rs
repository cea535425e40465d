//! Rules that depend on the command's time, decided at two instants through one
//! `Dispatcher` under every strategy, on every store: each strategy must answer as if it
//! had folded the state the command built. Serial lanes once kept a warm state by its ids
//! alone and decided the second command on the first one's clock (a username kept in
//! retention after it had passed, a sale at an expired price); snapshots were keyed the
//! same way and restored the first command's clock into the second one's state.

use std::time::{Duration, SystemTime};

use std::panic::AssertUnwindSafe;

use factum::lanes::{Dispatcher, Drain, Strategy};
use factum::prelude::*;
use factum::{Decide, EventStore};
use factum_examples::bank::{BankError, DAY, Deposit, OpenAccount, Withdraw};
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::STRATEGIES;

const MINUTE: Duration = Duration::from_secs(60);

#[factum::events]
pub mod events {
    /// A username was claimed by an owner.
    pub struct UsernameClaimed {
        #[tag]
        pub username: String,
        pub owner: String,
    }
    /// Its owner gave it up; it may be claimed again 3 days later.
    pub struct UsernameReleased {
        #[tag]
        pub username: String,
    }
    /// A product's price changed; orders at the old price are taken 10 minutes longer.
    pub struct PriceChanged {
        #[tag]
        pub product: String,
        pub cents: u32,
    }
    /// An order at a price.
    pub struct ProductOrdered {
        #[tag]
        pub product: String,
        pub cents: u32,
    }
}

/// Whether a username can be claimed at `now`: the fold itself compares each release's
/// time with the command's clock.
#[derive(State, Clone, Debug, PartialEq)]
#[state(constructor = false)]
pub struct Username {
    #[id]
    pub username: String,
    pub now: SystemTime,
    pub taken: bool,
    pub in_retention: bool,
}

#[factum::fold]
impl Username {
    fn claimed(&mut self, _: &events::UsernameClaimed) {
        self.taken = true;
        self.in_retention = false;
    }
    fn released(&mut self, _: &events::UsernameReleased, stored: &StoredEvent) {
        self.taken = false;
        self.in_retention = stored.recorded_at + 3 * DAY > self.now;
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RuleError {
    #[error("username {0} is taken or in retention")]
    Unavailable(String),
    #[error("{0} cents is not a price of {1} now")]
    NotAPrice(u32, String),
}

#[derive(Decision, Clone, Debug)]
#[decision(partition = username)]
pub struct ClaimUsername {
    pub username: String,
    pub owner: String,
    pub now: SystemTime,
}

impl Decide for ClaimUsername {
    type State = Username;
    type Event = events::Event;
    type Error = RuleError;

    fn state(&self) -> Username {
        Username {
            username: self.username.clone(),
            now: self.now,
            taken: false,
            in_retention: false,
        }
    }

    fn decide(&self, name: &Username) -> Result<Vec<events::Event>, RuleError> {
        if name.taken || name.in_retention {
            return Err(RuleError::Unavailable(self.username.clone()));
        }
        Ok(vec![
            events::UsernameClaimed {
                username: self.username.clone(),
                owner: self.owner.clone(),
            }
            .into(),
        ])
    }
}

#[derive(Decision, Clone, Debug)]
#[decision(partition = username)]
pub struct ReleaseUsername {
    pub username: String,
}

impl Decide for ReleaseUsername {
    type State = ();
    type Event = events::Event;
    type Error = RuleError;

    fn state(&self) {}

    fn decide(&self, _: &()) -> Result<Vec<events::Event>, RuleError> {
        Ok(vec![
            events::UsernameReleased {
                username: self.username.clone(),
            }
            .into(),
        ])
    }
}

/// The prices a product can be ordered at, at `now`: the current one, and the one
/// before for 10 minutes after a change.
macro_rules! price_state {
    ($(#[$attr:meta])* $name:ident $(, $state_attr:meta)?) => {
        #[derive(State, Clone, Debug, PartialEq)]
        $(#[$attr])*
        $(#[$state_attr])?
        pub struct $name {
            #[id]
            pub product: String,
            pub now: Option<SystemTime>,
            pub valid: Vec<u32>,
        }

        #[factum::fold]
        impl $name {
            fn changed(&mut self, e: &events::PriceChanged, stored: &StoredEvent) {
                let now = self.now.unwrap_or(SystemTime::UNIX_EPOCH);
                let old = self.valid.last().copied();
                self.valid.clear();
                if let Some(old) = old
                    && stored.recorded_at + 10 * MINUTE > now
                {
                    self.valid.push(old);
                }
                self.valid.push(e.cents);
            }
        }
    };
}

price_state!(Price);
price_state!(
    /// The same, keeping a snapshot after every event: a restored snapshot must be one
    /// folded from this command's clock.
    #[derive(serde::Serialize, serde::Deserialize)]
    SnapshotPrice,
    state(snapshot_every = 1)
);

/// Orders `product` at `cents` at `now`, on the state kind `S`.
macro_rules! order_decision {
    ($name:ident, $state:ident) => {
        #[derive(Decision, Clone, Debug)]
        #[decision(partition = product, emits = [events::ProductOrdered])]
        pub struct $name {
            pub product: String,
            pub cents: u32,
            pub now: SystemTime,
        }

        impl Decide for $name {
            type State = $state;
            type Event = events::Event;
            type Error = RuleError;

            fn state(&self) -> $state {
                $state {
                    now: Some(self.now),
                    ..$state::new(&self.product)
                }
            }

            fn decide(&self, price: &$state) -> Result<Vec<events::Event>, RuleError> {
                if !price.valid.contains(&self.cents) {
                    return Err(RuleError::NotAPrice(self.cents, self.product.clone()));
                }
                Ok(vec![
                    events::ProductOrdered {
                        product: self.product.clone(),
                        cents: self.cents,
                    }
                    .into(),
                ])
            }
        }
    };
}

order_decision!(Order, Price);
order_decision!(SnapshotOrder, SnapshotPrice);

#[derive(Decision, Clone, Debug)]
#[decision(partition = product)]
pub struct ChangePrice {
    pub product: String,
    pub cents: u32,
}

impl Decide for ChangePrice {
    type State = ();
    type Event = events::Event;
    type Error = RuleError;

    fn state(&self) {}

    fn decide(&self, _: &()) -> Result<Vec<events::Event>, RuleError> {
        Ok(vec![
            events::PriceChanged {
                product: self.product.clone(),
                cents: self.cents,
            }
            .into(),
        ])
    }
}

fn dispatcher<S: EventStore + Clone + 'static>(store: S, strategy: Strategy) -> Dispatcher<S> {
    let d = Dispatcher::new(Engine::new(store));
    d.set_strategy::<ClaimUsername>(strategy);
    d.set_strategy::<ReleaseUsername>(strategy);
    d.set_strategy::<Order>(strategy);
    d.set_strategy::<SnapshotOrder>(strategy);
    d.set_strategy::<ChangePrice>(strategy);
    d.set_strategy::<OpenAccount>(strategy);
    d.set_strategy::<Deposit>(strategy);
    d.set_strategy::<Withdraw>(strategy);
    d
}

fn refused<T: std::fmt::Debug, E: std::fmt::Debug>(answer: Result<T, DecideError<E>>) -> E {
    match answer {
        Err(DecideError::Domain(e)) => e,
        other => panic!("expected a domain refusal, got {other:?}"),
    }
}

/// Retention: released now, so refused a day later and accepted four days later; and
/// the other order: accepted late, then refused on the earlier clock (taken by then).
async fn retention<S: EventStore + Clone + 'static>(d: &Dispatcher<S>) {
    let now = SystemTime::now();
    let claim = |name: &str, owner: &str, at: SystemTime| ClaimUsername {
        username: name.into(),
        owner: owner.into(),
        now: at,
    };
    let release = |name: &str| ReleaseUsername {
        username: name.into(),
    };
    d.decide(claim("alice", "a", now)).await.unwrap();
    d.decide(release("alice")).await.unwrap();
    let err = refused(d.decide(claim("alice", "b", now + DAY)).await);
    assert_eq!(err, RuleError::Unavailable("alice".into()));
    d.decide(claim("alice", "c", now + 4 * DAY))
        .await
        .unwrap_or_else(|e| panic!("retention passed, yet refused: {e}"));

    d.decide(claim("bob", "a", now)).await.unwrap();
    d.decide(release("bob")).await.unwrap();
    d.decide(claim("bob", "b", now + 4 * DAY))
        .await
        .unwrap_or_else(|e| panic!("retention passed, yet refused: {e}"));
    refused(d.decide(claim("bob", "c", now + DAY)).await);
}

/// Grace period: the old price is taken within 10 minutes of the change, refused
/// after, and taken again on an earlier clock.
macro_rules! grace {
    ($fn_name:ident, $order:ident) => {
        async fn $fn_name<S: EventStore + Clone + 'static>(d: &Dispatcher<S>) {
            let product = stringify!($fn_name);
            for cents in [100, 120] {
                d.decide(ChangePrice {
                    product: product.into(),
                    cents,
                })
                .await
                .unwrap();
            }
            let now = SystemTime::now();
            let order = |cents, at| $order {
                product: product.into(),
                cents,
                now: at,
            };
            d.decide(order(100, now + MINUTE))
                .await
                .unwrap_or_else(|e| panic!("within the grace period, yet refused: {e}"));
            let err = refused(d.decide(order(100, now + 20 * MINUTE)).await);
            assert_eq!(err, RuleError::NotAPrice(100, product.into()));
            d.decide(order(120, now + 20 * MINUTE)).await.unwrap();
            d.decide(order(100, now + 2 * MINUTE))
                .await
                .unwrap_or_else(|e| panic!("within the grace period, yet refused: {e}"));
        }
    };
}

grace!(grace_period, Order);
grace!(grace_period_with_snapshots, SnapshotOrder);

/// Daily limit (the bank example): 400 of 500 withdrawn now, so 200 more is refused now
/// and accepted 25 hours later, when the first withdrawal has left the window.
async fn daily_limit<S: EventStore + Clone + 'static>(d: &Dispatcher<S>) {
    let now = SystemTime::now();
    d.decide(OpenAccount::new("acc", "owner", 0)).await.unwrap();
    d.decide(Deposit::new("acc", 100_000)).await.unwrap();
    d.decide(Withdraw::new("acc", 40_000, now)).await.unwrap();
    let err = refused(d.decide(Withdraw::new("acc", 20_000, now)).await);
    assert!(matches!(err, BankError::DailyLimitExceeded { .. }), "{err}");
    d.decide(Withdraw::new("acc", 20_000, now + DAY + 60 * MINUTE))
        .await
        .unwrap_or_else(|e| panic!("a day later, yet refused: {e}"));
}

/// Every rule under every strategy, each on a fresh store from `open`; panics listing
/// every rule and strategy that answered wrong.
pub async fn time_rules_hold<S: EventStore + Clone + 'static>(
    open: impl AsyncFn(&str) -> S,
    close: impl AsyncFn(S),
) {
    let mut wrong = Vec::new();
    for strategy in STRATEGIES {
        let store = open("time").await;
        let d = dispatcher(store.clone(), strategy);
        let rules: [(&str, BoxFuture<'_, ()>); 4] = [
            ("retention", Box::pin(retention(&d))),
            ("grace period", Box::pin(grace_period(&d))),
            (
                "grace period with snapshots",
                Box::pin(grace_period_with_snapshots(&d)),
            ),
            ("daily limit", Box::pin(daily_limit(&d))),
        ];
        for (rule, check) in rules {
            if let Err(panic) = AssertUnwindSafe(check).catch_unwind().await {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(ToString::to_string))
                    .unwrap_or_default();
                wrong.push(format!("{strategy:?}, {rule}: {message}"));
            }
        }
        d.shutdown(Drain::Finish).await;
        close(store).await;
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_rules_on_the_memory_store() {
    time_rules_hold(async |_| MemoryStore::new(), async |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_rules_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let files = std::sync::atomic::AtomicUsize::new(0);
    time_rules_hold(
        async |what| {
            let n = files.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            factum_sqlite::open(dir.path().join(format!("{what}-{n}.db")))
                .await
                .expect("open SQLite")
        },
        async |_| {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_rules_on_postgres() {
    time_rules_hold(
        crate::postgres::store,
        async |pg: factum_postgres::PostgresStore| {
            pg.drop_schema().await.expect("drop the test schema");
        },
    )
    .await;
}

#[tokio::test]
async fn a_lane_keeps_a_state_warm_for_an_equal_start_only() {
    let d = dispatcher(MemoryStore::new(), Strategy::SerialLanes);
    for cents in [100, 120] {
        let change = ChangePrice {
            product: "chair".into(),
            cents,
        };
        d.decide(change).await.unwrap();
    }
    let at = SystemTime::now();
    let order = |at| Order {
        product: "chair".into(),
        cents: 120,
        now: at,
    };
    let read = || d.engine().stats().events_read;
    let before = read();
    for _ in 0..5 {
        d.decide(order(at)).await.unwrap();
    }
    assert_eq!(
        read() - before,
        2,
        "the price's two events read once, then warm"
    );
    d.decide(order(at + MINUTE)).await.unwrap();
    assert_eq!(read() - before, 4, "another start is folded afresh");
    d.decide(order(at + MINUTE)).await.unwrap();
    assert_eq!(read() - before, 4, "and then kept warm in its place");
    d.shutdown(Drain::Finish).await;
}

/// How many of a product sold, under a limit the command sets (a state whose fold reads
/// no stored event, so a lane keeps it warm across a batch).
#[derive(State, Clone, Debug, PartialEq)]
pub struct Shelf {
    #[id]
    pub product: String,
    pub limit: u32,
    pub sold: u32,
}

#[factum::fold]
impl Shelf {
    fn sold(&mut self, _: &events::ProductOrdered) {
        self.sold += 1;
    }
}

/// Sells one if fewer than `limit` sold, or only reprices (an event the shelf does not
/// fold) when `reprice` is set.
#[derive(Decision, Clone, Debug)]
#[decision(partition = product)]
pub struct Sell {
    pub product: String,
    pub limit: u32,
    pub reprice: bool,
}

impl Decide for Sell {
    type State = Shelf;
    type Event = events::Event;
    type Error = RuleError;

    fn state(&self) -> Shelf {
        Shelf {
            limit: self.limit,
            ..Shelf::new(&self.product)
        }
    }

    fn decide(&self, shelf: &Shelf) -> Result<Vec<events::Event>, RuleError> {
        if self.reprice {
            let e = events::PriceChanged {
                product: self.product.clone(),
                cents: 1,
            };
            return Ok(vec![e.into()]);
        }
        if shelf.sold >= shelf.limit {
            return Err(RuleError::NotAPrice(0, self.product.clone()));
        }
        let e = events::ProductOrdered {
            product: self.product.clone(),
            cents: 1,
        };
        Ok(vec![e.into()])
    }
}

/// In one batch, a decision on the warm shelf folded from its limit appends nothing the
/// shelf folds, while one built with another limit reads its own copy and sells: the
/// warm shelf then misses that sale, so it goes once the batch settles instead of costing
/// the next decision with its limit a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_state_missing_an_append_of_its_batch_is_dropped() {
    use crate::gate::Gate;
    use factum::lanes::LaneOptions;

    let store = MemoryStore::new();
    crate::edges::setup(&store, &[("PLUG", 1)], &[]).await;
    let gate = Gate::new(store.clone());
    let options = LaneOptions {
        lanes: 1,
        hot_lanes: 0,
        ..LaneOptions::default()
    };
    let d = Dispatcher::with_options(Engine::new(gate.clone()), options);
    let sell = |limit, reprice| Sell {
        product: "sofa".into(),
        limit,
        reprice,
    };
    gate.open(1);
    d.decide(sell(5, false)).await.unwrap();

    let plug = crate::edges::plug(&d, &gate).await;
    let reprice = crate::edges::enqueue(&d, sell(5, true)).await;
    let other = crate::edges::enqueue(&d, sell(9, false)).await;
    gate.open_all();
    plug.await.unwrap().unwrap();
    assert_eq!(reprice.await.unwrap().unwrap().attempts, 1);
    other.await.unwrap().unwrap();
    assert_eq!(
        gate.sizes.lock().unwrap().last(),
        Some(&2),
        "both committed in one batch"
    );

    let next = d.decide(sell(5, false)).await.unwrap();
    assert_eq!(
        next.attempts, 1,
        "decided on a shelf holding the other sale"
    );
    d.shutdown(Drain::Finish).await;
}
