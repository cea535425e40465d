//! Every rule and every error of the coupon domain with the given/when/then harness, the
//! decisions' metadata, and real concurrency on the in-memory store.

use std::collections::HashMap;
use std::time::Duration;

use factum::prelude::*;
use factum::testing::{given, given_nothing};
use factum_examples::coupons::{
    AddItem, AddItems, ApplyCoupon, ApplyCouponTolerant, Cart, Coupon, CouponError, IssueCoupon,
    OpenCart, SetPrice, events,
};
use factum_examples::latency::Latency;
use futures::TryStreamExt;
use uuid::Uuid;

fn issued(coupon: &str, uses: u32) -> events::Event {
    events::CouponIssued {
        coupon: coupon.into(),
        uses,
    }
    .into()
}

fn applied(coupon: &str, cart: &str) -> events::Event {
    events::CouponApplied {
        coupon: coupon.into(),
        cart: cart.into(),
    }
    .into()
}

fn opened(cart: &str) -> events::Event {
    events::CartOpened { cart: cart.into() }.into()
}

fn priced(sku: &str, cents: u32) -> events::Event {
    events::PriceSet {
        sku: sku.into(),
        cents,
    }
    .into()
}

fn added(cart: &str, sku: &str, cents: u32) -> events::ItemAdded {
    events::ItemAdded {
        cart: cart.into(),
        sku: sku.into(),
        cents,
    }
}

fn applied_struct(coupon: &str, cart: &str) -> events::CouponApplied {
    events::CouponApplied {
        coupon: coupon.into(),
        cart: cart.into(),
    }
}

// IssueCoupon

#[test]
fn a_coupon_is_issued() {
    given_nothing()
        .when(IssueCoupon {
            coupon: "SPRING".into(),
            uses: 3,
        })
        .then([events::CouponIssued {
            coupon: "SPRING".into(),
            uses: 3,
        }]);
}

#[test]
fn a_coupon_is_issued_once_and_the_error_says_where() {
    // The coupon state reads the position of the issue from the stored event.
    given([opened("c1"), issued("SPRING", 3), opened("c2")])
        .when(IssueCoupon {
            coupon: "SPRING".into(),
            uses: 5,
        })
        .then_error(CouponError::CouponAlreadyIssued {
            coupon: "SPRING".into(),
            at: Position(2),
        });
}

#[test]
fn a_coupon_needs_a_use() {
    given_nothing()
        .when(IssueCoupon {
            coupon: "SPRING".into(),
            uses: 0,
        })
        .then_error(CouponError::NoUses {
            coupon: "SPRING".into(),
        });
}

// OpenCart

#[test]
fn a_cart_is_opened() {
    given([opened("c2")])
        .when(OpenCart { cart: "c1".into() })
        .then([events::CartOpened { cart: "c1".into() }]);
}

#[test]
fn a_cart_is_opened_once() {
    given([opened("c1")])
        .when(OpenCart { cart: "c1".into() })
        .then_error(CouponError::CartAlreadyOpen { cart: "c1".into() });
}

// SetPrice

#[test]
fn a_price_is_set() {
    given_nothing()
        .when(SetPrice {
            sku: "tea".into(),
            cents: 450,
        })
        .then([events::PriceSet {
            sku: "tea".into(),
            cents: 450,
        }]);
}

#[test]
fn a_price_changes() {
    given([priced("tea", 450)])
        .when(SetPrice {
            sku: "tea".into(),
            cents: 500,
        })
        .then([events::PriceSet {
            sku: "tea".into(),
            cents: 500,
        }]);
}

#[test]
fn the_same_price_changes_nothing() {
    given([priced("tea", 400), priced("tea", 450)])
        .when(SetPrice {
            sku: "tea".into(),
            cents: 450,
        })
        .then_nothing();
}

#[test]
fn a_price_is_above_zero() {
    given_nothing()
        .when(SetPrice {
            sku: "tea".into(),
            cents: 0,
        })
        .then_error(CouponError::ZeroPrice { sku: "tea".into() });
}

// AddItem

#[test]
fn an_item_is_added_at_its_current_price() {
    given([
        opened("c1"),
        priced("tea", 400),
        priced("mug", 900),
        priced("tea", 450),
    ])
    .when(AddItem {
        cart: "c1".into(),
        sku: "tea".into(),
    })
    .then([added("c1", "tea", 450)]);
}

#[test]
fn an_item_needs_an_open_cart() {
    given([opened("c2"), priced("tea", 450)])
        .when(AddItem {
            cart: "c1".into(),
            sku: "tea".into(),
        })
        .then_error(CouponError::CartNotFound { cart: "c1".into() });
}

#[test]
fn an_item_needs_a_price() {
    given([opened("c1"), priced("mug", 900)])
        .when(AddItem {
            cart: "c1".into(),
            sku: "tea".into(),
        })
        .then_error(CouponError::NoPrice { sku: "tea".into() });
}

// AddItems: one price state per product in the command

#[test]
fn several_items_are_added_each_at_its_price() {
    given([
        opened("c1"),
        priced("tea", 450),
        priced("mug", 900),
        priced("jam", 600),
    ])
    .when(AddItems {
        cart: "c1".into(),
        skus: vec!["mug".into(), "tea".into(), "mug".into()],
    })
    .then([
        added("c1", "mug", 900),
        added("c1", "tea", 450),
        added("c1", "mug", 900),
    ]);
}

#[test]
fn several_items_need_an_open_cart() {
    given([priced("tea", 450)])
        .when(AddItems {
            cart: "c1".into(),
            skus: vec!["tea".into()],
        })
        .then_error(CouponError::CartNotFound { cart: "c1".into() });
}

#[test]
fn several_items_need_at_least_one() {
    given([opened("c1")])
        .when(AddItems {
            cart: "c1".into(),
            skus: vec![],
        })
        .then_error(CouponError::NoItems { cart: "c1".into() });
}

#[test]
fn several_items_are_added_all_or_none() {
    given([opened("c1"), priced("tea", 450)])
        .when(AddItems {
            cart: "c1".into(),
            skus: vec!["tea".into(), "cake".into(), "jam".into()],
        })
        .then_error(CouponError::NoPrice { sku: "cake".into() });
}

#[test]
fn several_items_validate_against_every_price_they_read() {
    let decision = AddItems {
        cart: "c1".into(),
        skus: vec!["tea".into(), "mug".into(), "tea".into()],
    };
    let query = AddItems::validation_query(&decision.state());
    assert_eq!(
        query.to_string(),
        "CartOpened,CouponApplied,ItemAdded[cart:c1] | PriceSet[sku:tea] | PriceSet[sku:mug]"
    );
}

// ApplyCoupon and ApplyCouponTolerant: the same rules

/// Runs one scenario with both coupon decisions: they differ only under concurrency.
macro_rules! both {
    ($given:expr, $coupon:expr, $cart:expr, $assert:ident ( $($expected:tt)* )) => {{
        $given.when(ApplyCoupon::new($coupon, $cart)).$assert($($expected)*);
        $given.when(ApplyCouponTolerant::new($coupon, $cart)).$assert($($expected)*);
    }};
}

#[test]
fn a_coupon_is_applied_to_a_cart() {
    both!(
        given([issued("SPRING", 2), opened("c1"), applied("SPRING", "c0")]),
        "SPRING",
        "c1",
        then([applied_struct("SPRING", "c1")])
    );
}

#[test]
fn a_coupon_needs_an_open_cart() {
    both!(
        given([issued("SPRING", 2)]),
        "SPRING",
        "c1",
        then_error(CouponError::CartNotFound { cart: "c1".into() })
    );
}

#[test]
fn a_coupon_must_exist() {
    both!(
        given([opened("c1"), issued("SUMMER", 2)]),
        "SPRING",
        "c1",
        then_error(CouponError::CouponNotFound {
            coupon: "SPRING".into()
        })
    );
}

#[test]
fn a_coupon_is_used_up_after_its_uses() {
    both!(
        given([
            issued("SPRING", 2),
            applied("SPRING", "c1"),
            applied("SPRING", "c2"),
            opened("c3"),
        ]),
        "SPRING",
        "c3",
        then_error(CouponError::CouponUsedUp {
            coupon: "SPRING".into(),
            uses: 2
        })
    );
}

#[test]
fn a_cart_takes_one_coupon() {
    both!(
        given([
            issued("SPRING", 5),
            issued("SUMMER", 5),
            opened("c1"),
            applied("SUMMER", "c1"),
        ]),
        "SPRING",
        "c1",
        then_error(CouponError::CartHasCoupon {
            cart: "c1".into(),
            coupon: "SUMMER".into()
        })
    );
}

#[test]
fn a_cart_takes_the_same_coupon_once() {
    both!(
        given([issued("SPRING", 5), opened("c1"), applied("SPRING", "c1")]),
        "SPRING",
        "c1",
        then_error(CouponError::CartHasCoupon {
            cart: "c1".into(),
            coupon: "SPRING".into()
        })
    );
}

// Metadata: what the runtime knows about each decision

#[test]
fn apply_coupon_declares_its_keys_and_retries() {
    let meta = ApplyCoupon::META;
    assert_eq!(meta.name, "ApplyCoupon");
    assert_eq!(meta.partition, Some("coupon"));
    assert_eq!(meta.idempotency, Some("request"));
    assert_eq!(meta.emits, Some(&["CouponApplied"][..]));
    assert!(meta.exclude.types.is_empty());
    assert_eq!(meta.retry.max_retries, 100);

    let request = Uuid::now_v7();
    let decision = ApplyCoupon {
        coupon: "SPRING".into(),
        cart: "c1".into(),
        request,
    };
    assert_eq!(decision.partition_key().as_deref(), Some("SPRING"));
    assert_eq!(decision.idempotency_key(), Some(request.to_string()));
}

#[test]
fn the_tolerant_decision_does_not_validate_applications() {
    assert_eq!(ApplyCouponTolerant::META.exclude.types, &["CouponApplied"]);
    assert_eq!(
        ApplyCouponTolerant::META.exclude.only_in,
        Some(&["Coupon"][..])
    );
    let strict = ApplyCoupon::new("SPRING", "c1");
    let tolerant = ApplyCouponTolerant::new("SPRING", "c1");
    // Both read the same events ...
    assert_eq!(strict.state().read_query(), tolerant.state().read_query());
    // ... but only the strict one fails when a coupon application lands meanwhile.
    assert_eq!(
        ApplyCoupon::validation_query(&strict.state()).to_string(),
        "CartOpened,CouponApplied,ItemAdded[cart:c1] | CouponIssued,CouponApplied[coupon:SPRING]"
    );
    assert_eq!(
        ApplyCouponTolerant::validation_query(&tolerant.state()).to_string(),
        "CartOpened,CouponApplied,ItemAdded[cart:c1] | CouponIssued[coupon:SPRING]"
    );
}

#[test]
fn an_applied_coupon_carries_the_request_as_idempotency_key() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let engine = Engine::new(MemoryStore::new());
        setup(&engine, "SPRING", 1, &["c1"]).await;
        let decision = ApplyCoupon::new("SPRING", "c1");
        let outcome = engine.decide(&decision).await.unwrap();
        let log = read_log(&engine).await;
        let stored = log
            .iter()
            .find(|e| e.position == outcome.positions[0])
            .unwrap();
        assert_eq!(stored.event_type, "CouponApplied");
        assert!(stored.has_tag("coupon", "SPRING") && stored.has_tag("cart", "c1"));
        // Scoped by the decision, followed by the fingerprint of its content.
        let key = decision.idempotency().expect("an application has a key");
        assert_eq!(key.recorded(), format!("ApplyCoupon:{}", decision.request));
        assert_eq!(
            stored.metadata.idempotency_key.as_deref(),
            Some(key.metadata_key())
        );
    });
}

// `emits`: a decision that returns a type it did not declare is refused.

/// A deliberately wrong decision: it declares that it opens carts, but applies coupons.
#[derive(Decision)]
#[decision(emits = [events::CartOpened])]
struct SneakyOpenCart {
    cart: String,
}

impl Decide for SneakyOpenCart {
    type State = Cart;
    type Event = events::CartEvent;
    type Error = CouponError;

    fn state(&self) -> Cart {
        Cart::new(&self.cart)
    }

    fn decide(&self, _: &Cart) -> Result<Vec<events::CartEvent>, CouponError> {
        Ok(vec![
            events::CartOpened {
                cart: self.cart.clone(),
            }
            .into(),
            events::CouponApplied {
                coupon: "FREE".into(),
                cart: self.cart.clone(),
            }
            .into(),
        ])
    }
}

#[test]
fn an_undeclared_emit_is_refused_and_nothing_is_appended() {
    // The harness's verdict ...
    let result = given([issued("FREE", 1)])
        .when(SneakyOpenCart { cart: "c1".into() })
        .result();
    assert!(
        matches!(
            result,
            Err(DecideError::UndeclaredEmit {
                decision: "SneakyOpenCart",
                event_type: "CouponApplied",
            })
        ),
        "expected an undeclared emit, got {result:?}"
    );
    // ... and the store's: not even the declared event was appended.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let engine = Engine::new(MemoryStore::new());
        setup(&engine, "FREE", 1, &[]).await;
        let error = engine
            .decide(&SneakyOpenCart { cart: "c1".into() })
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "SneakyOpenCart emitted CouponApplied, which is not in its `emits` list"
        );
        let log = read_log(&engine).await;
        assert_eq!(log.len(), 1, "only the coupon issue: {log:?}");
    });
}

// Error messages, as users read them.

#[test]
fn error_messages_name_the_coupon_cart_and_product() {
    let cases = [
        (
            CouponError::CouponAlreadyIssued {
                coupon: "SPRING".into(),
                at: Position(2),
            },
            "coupon SPRING was already issued, at #2",
        ),
        (
            CouponError::NoUses {
                coupon: "SPRING".into(),
            },
            "coupon SPRING needs at least one use",
        ),
        (
            CouponError::CouponNotFound {
                coupon: "SPRING".into(),
            },
            "coupon SPRING does not exist",
        ),
        (
            CouponError::CouponUsedUp {
                coupon: "SPRING".into(),
                uses: 2,
            },
            "coupon SPRING is used up (2 uses)",
        ),
        (
            CouponError::CartAlreadyOpen { cart: "c1".into() },
            "cart c1 is already open",
        ),
        (
            CouponError::CartNotFound { cart: "c1".into() },
            "cart c1 does not exist",
        ),
        (
            CouponError::CartHasCoupon {
                cart: "c1".into(),
                coupon: "SUMMER".into(),
            },
            "cart c1 already has coupon SUMMER",
        ),
        (
            CouponError::NoPrice { sku: "tea".into() },
            "product tea has no price",
        ),
        (
            CouponError::ZeroPrice { sku: "tea".into() },
            "the price of product tea must be above zero",
        ),
        (
            CouponError::NoItems { cart: "c1".into() },
            "adding items to cart c1 needs at least one product",
        ),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
    }
}

// Real concurrency: tokio tasks on several threads, one in-memory store whose appends
// take a millisecond to arrive (so the deciders' reads and appends really interleave).

const USES: u32 = 10;
const DECIDERS: usize = 50;

type Store = Latency<MemoryStore>;

fn rush_engine() -> Engine<Store> {
    Engine::new(Latency::new(MemoryStore::new(), Duration::from_millis(1)))
}

async fn setup<S: EventStore>(engine: &Engine<S>, coupon: &str, uses: u32, carts: &[&str]) {
    engine
        .decide(&IssueCoupon {
            coupon: coupon.into(),
            uses,
        })
        .await
        .unwrap();
    for cart in carts {
        engine
            .decide(&OpenCart {
                cart: (*cart).into(),
            })
            .await
            .unwrap();
    }
}

async fn read_log<S: EventStore>(engine: &Engine<S>) -> Vec<StoredEvent> {
    engine
        .store()
        .read(&Query::all(), ReadOptions::forward())
        .try_collect()
        .await
        .unwrap()
}

/// Counts, from the log alone, the coupon's applications and the carts with more than
/// one coupon; and folds the coupon state the decisions see.
async fn audit(engine: &Engine<Store>) -> (u32, usize, Coupon) {
    let log = read_log(engine).await;
    let mut per_cart: HashMap<String, u32> = HashMap::new();
    let mut applications = 0;
    let mut coupon = Coupon::new("RUSH");
    for event in &log {
        coupon.fold(event).unwrap();
        if let events::Event::CouponApplied(e) = events::Event::from_stored(event).unwrap() {
            applications += 1;
            *per_cart.entry(e.cart).or_default() += 1;
        }
    }
    let doubled = per_cart.values().filter(|&&n| n > 1).count();
    (applications, doubled, coupon)
}

fn carts() -> Vec<String> {
    (0..DECIDERS).map(|n| format!("cart-{n}")).collect()
}

/// Opens the carts, then starts one decider per cart on its own task, all released at
/// once by a barrier. Returns (applied, used up, anything else) counts.
async fn rush<D, F>(engine: &Engine<Store>, make: F) -> (u32, u32, Vec<String>)
where
    D: Decide<Error = CouponError>,
    F: Fn(&str) -> D,
{
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(DECIDERS));
    let mut tasks = tokio::task::JoinSet::new();
    for cart in carts() {
        let engine = engine.clone();
        let barrier = barrier.clone();
        let decision = make(&cart);
        tasks.spawn(async move {
            barrier.wait().await;
            engine.decide(&decision).await.map(|o| o.attempts)
        });
    }
    let (mut ok, mut used_up, mut other) = (0, 0, Vec::new());
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            Ok(_) => ok += 1,
            Err(DecideError::Domain(CouponError::CouponUsedUp { .. })) => used_up += 1,
            Err(e) => other.push(e.to_string()),
        }
    }
    (ok, used_up, other)
}

async fn rush_setup(extra_carts: &[&str]) -> Engine<Store> {
    let engine = rush_engine();
    let carts = carts();
    let mut cart_refs: Vec<&str> = carts.iter().map(String::as_str).collect();
    cart_refs.extend_from_slice(extra_carts);
    setup(&engine, "RUSH", USES, &cart_refs).await;
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_applications_never_overbook_a_coupon() {
    let engine = rush_setup(&[]).await;
    let before = engine.stats();

    let (ok, used_up, other) = rush(&engine, |cart| ApplyCoupon::new("RUSH", cart)).await;

    assert!(other.is_empty(), "no decision may be lost: {other:?}");
    assert_eq!(ok, USES, "exactly as many applications as uses");
    assert_eq!(used_up as usize, DECIDERS - USES as usize);
    let (applications, doubled, coupon) = audit(&engine).await;
    assert_eq!(applications, USES, "the log holds exactly the uses");
    assert_eq!(doubled, 0, "no cart has two coupons");
    assert_eq!((coupon.applied, coupon.remaining()), (USES, 0));
    let conflicts = engine.stats().conflicts - before.conflicts;
    assert!(
        conflicts > 0,
        "{DECIDERS} deciders released at once must have raced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tolerant_applications_overbook_by_at_most_the_concurrency() {
    let engine = rush_setup(&[]).await;
    let before = engine.stats();

    let (ok, used_up, other) = rush(&engine, |cart| ApplyCouponTolerant::new("RUSH", cart)).await;

    assert!(other.is_empty(), "no decision may be lost: {other:?}");
    assert_eq!(ok as usize + used_up as usize, DECIDERS);
    let (applications, doubled, coupon) = audit(&engine).await;
    assert_eq!(applications, ok, "the log holds what the deciders reported");
    assert!(
        (USES..=USES + DECIDERS as u32).contains(&applications),
        "between {USES} and {} applications, got {applications}",
        USES + DECIDERS as u32
    );
    assert_eq!(
        doubled, 0,
        "one decider per cart, so no cart has two coupons"
    );
    assert_eq!(coupon.applied, applications);
    assert_eq!(
        engine.stats().conflicts - before.conflicts,
        0,
        "applications are not in the validation query, so they never conflict"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn other_carts_never_conflict_with_a_coupon_rush() {
    let engine = rush_setup(&["quiet"]).await;
    engine
        .decide(&SetPrice {
            sku: "tea".into(),
            cents: 450,
        })
        .await
        .unwrap();

    let filler = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let mut attempts = Vec::new();
            for _ in 0..30 {
                let add = AddItem {
                    cart: "quiet".into(),
                    sku: "tea".into(),
                };
                attempts.push(engine.decide(&add).await.unwrap().attempts);
            }
            attempts
        })
    };
    let (ok, _, other) = rush(&engine, |cart| ApplyCoupon::new("RUSH", cart)).await;
    let attempts = filler.await.unwrap();

    assert!(other.is_empty(), "{other:?}");
    assert_eq!(ok, USES);
    assert!(
        attempts.iter().all(|&a| a == 1),
        "the quiet cart's decisions read nothing the rush writes: {attempts:?}"
    );
}
