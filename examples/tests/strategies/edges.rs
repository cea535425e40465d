//! Edges of serial lanes found in review, each once a bug: a warm state must never be
//! marked as holding events it did not fold, nobody is answered on the strength of
//! events that never commit or with a provisional position, and a panicking decision
//! costs only itself.

use factum::lanes::{Dispatcher, Drain, LaneOptions};
use factum::prelude::*;
use factum::{Decide, Outcome};
use factum_examples::coupons::{
    AddItems, ApplyCoupon, Cart, CouponError, IssueCoupon, OpenCart, SetPrice, events,
};
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::gate::Gate;

type Answer<D> = Result<Outcome<<D as Decide>::Event>, DecideError<<D as Decide>::Error>>;

fn one_lane(store: Gate<MemoryStore>, warm_states: usize) -> Dispatcher<Gate<MemoryStore>> {
    Dispatcher::with_options(
        Engine::new(store),
        LaneOptions {
            lanes: 1,
            hot_lanes: 0,
            warm_states,
            ..LaneOptions::default()
        },
    )
}

pub(crate) async fn setup(store: &MemoryStore, coupons: &[(&str, u32)], carts: &[&str]) {
    let engine = Engine::new(store.clone());
    for (coupon, uses) in coupons {
        engine
            .decide(&IssueCoupon {
                coupon: (*coupon).into(),
                uses: *uses,
            })
            .await
            .unwrap();
    }
    for cart in carts.iter().chain(&["cart-plug"]) {
        engine
            .decide(&OpenCart {
                cart: (*cart).into(),
            })
            .await
            .unwrap();
    }
}

/// Holds the lane in a first batch (the plug) so that what is queued next forms one batch.
pub(crate) async fn plug(
    d: &Dispatcher<Gate<MemoryStore>>,
    gate: &Gate<MemoryStore>,
) -> JoinHandle<Answer<ApplyCoupon>> {
    let p = {
        let d = d.clone();
        tokio::spawn(async move { d.decide(ApplyCoupon::new("PLUG", "cart-plug")).await })
    };
    gate.until_waiting(1).await;
    p
}

/// Spawns `decision` on the dispatcher and waits until it is queued (so order is kept).
pub(crate) async fn enqueue<D: Decide + Clone>(
    d: &Dispatcher<Gate<MemoryStore>>,
    decision: D,
) -> JoinHandle<Answer<D>> {
    let before = d.queued();
    let h = {
        let d = d.clone();
        tokio::spawn(async move { d.decide(decision).await })
    };
    for _ in 0..2000 {
        if d.queued() > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    assert_eq!(d.queued(), before + 1);
    h
}

async fn applied_to(store: &MemoryStore, coupon: &str) -> Vec<String> {
    let q = Query::of::<events::CouponApplied>();
    let mut out = Vec::new();
    let mut s = std::pin::pin!(store.read(&q, ReadOptions::forward()));
    while let Some(e) = s.next().await {
        let a = events::CouponApplied::from_stored(&e.unwrap()).unwrap();
        if a.coupon == coupon {
            out.push(a.cart);
        }
    }
    out
}

/// A warm state holding a batch request's events is not evicted (the cache is tiny
/// here), and one read fresh instead is never marked as holding them: no overbooking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_cache_never_marks_a_fresh_state_as_holding_batch_events() {
    let store = MemoryStore::new();
    setup(&store, &[("PLUG", 1), ("ONCE", 1)], &["cart-0", "cart-1"]).await;
    let gate = Gate::new(store.clone());
    let d = one_lane(gate.clone(), 2);
    let p = plug(&d, &gate).await;
    let a0 = enqueue(&d, ApplyCoupon::new("ONCE", "cart-0")).await;
    let o1 = enqueue(&d, OpenCart { cart: "x1".into() }).await;
    let o2 = enqueue(&d, OpenCart { cart: "x2".into() }).await;
    let a1 = enqueue(&d, ApplyCoupon::new("ONCE", "cart-1")).await;
    gate.open_all();
    p.await.unwrap().unwrap();
    assert!(a0.await.unwrap().is_ok());
    o1.await.unwrap().unwrap();
    o2.await.unwrap().unwrap();
    let r1 = a1.await.unwrap();
    assert!(
        matches!(
            r1,
            Err(DecideError::Domain(CouponError::CouponUsedUp { .. }))
        ),
        "{r1:?}"
    );
    d.shutdown(Drain::Finish).await;
    let applied = applied_to(&store, "ONCE").await;
    assert_eq!(applied, vec!["cart-0".to_owned()], "coupon ONCE has 1 use");
}

/// A set naming one state twice (AddItems with one product twice): the member read
/// fresh does not replace the warm one that folded the batch's new price.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_named_twice_keeps_the_events_of_the_batch() {
    let store = MemoryStore::new();
    setup(&store, &[("PLUG", 1)], &["cart-x"]).await;
    Engine::new(store.clone())
        .decide(&SetPrice {
            sku: "sku1".into(),
            cents: 100,
        })
        .await
        .unwrap();
    let gate = Gate::new(store.clone());
    let d = one_lane(gate.clone(), 10_000);
    let p = plug(&d, &gate).await;
    let s = enqueue(
        &d,
        SetPrice {
            sku: "sku1".into(),
            cents: 200,
        },
    )
    .await;
    let add = enqueue(
        &d,
        AddItems {
            cart: "cart-x".into(),
            skus: vec!["sku1".into(), "sku1".into()],
        },
    )
    .await;
    gate.open_all();
    p.await.unwrap().unwrap();
    s.await.unwrap().unwrap();
    let added = add.await.unwrap().unwrap();
    d.shutdown(Drain::Finish).await;
    let cents: Vec<u32> = added.events.iter().map(|e| e.cents).collect();
    // The price was 200 when the items were added (SetPrice committed before them).
    assert_eq!(
        cents,
        vec![200, 200],
        "items added at a price that was no longer current"
    );
}

/// A later decision of the batch never decides on a provisional position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_decision_sees_a_provisional_position() {
    let store = MemoryStore::new();
    setup(&store, &[("PLUG", 1)], &[]).await;
    let gate = Gate::new(store.clone());
    let d = one_lane(gate.clone(), 10_000);
    let p = plug(&d, &gate).await;
    let first = enqueue(
        &d,
        IssueCoupon {
            coupon: "NEW".into(),
            uses: 5,
        },
    )
    .await;
    let second = enqueue(
        &d,
        IssueCoupon {
            coupon: "NEW".into(),
            uses: 5,
        },
    )
    .await;
    gate.open_all();
    p.await.unwrap().unwrap();
    let issued = first.await.unwrap().unwrap();
    match second.await.unwrap() {
        Err(DecideError::Domain(CouponError::CouponAlreadyIssued { at, .. })) => {
            assert_eq!(
                at, issued.positions[0],
                "the refusal names a position that is not the issue's"
            )
        }
        other => panic!("{other:?}"),
    }
    d.shutdown(Drain::Finish).await;
}

/// A refusal resting on an earlier batch request's events is held until that request
/// commits; when it fails instead, the refused decision is decided again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_resting_on_a_failed_request_is_decided_again() {
    let store = MemoryStore::new();
    setup(
        &store,
        &[("PLUG", 1), ("ONCE", 1), ("D", 5)],
        &["cart-0", "cart-1"],
    )
    .await;
    let gate = Gate::new(store.clone());
    let d = one_lane(gate.clone(), 10_000);
    let p = plug(&d, &gate).await;
    let a0 = enqueue(&d, ApplyCoupon::new("ONCE", "cart-0")).await;
    let a1 = enqueue(&d, ApplyCoupon::new("ONCE", "cart-1")).await;
    gate.open(1);
    p.await.unwrap().unwrap();
    gate.until_waiting(1).await;
    // Behind the lane's back: cart-0 gets another coupon, so ONCE on cart-0 will fail.
    Engine::new(store.clone())
        .decide(&ApplyCoupon::new("D", "cart-0"))
        .await
        .unwrap();
    gate.open_all();
    let r0 = a0.await.unwrap();
    let r1 = a1.await.unwrap();
    d.shutdown(Drain::Finish).await;
    let applied = applied_to(&store, "ONCE").await;
    assert!(
        matches!(
            r0,
            Err(DecideError::Domain(CouponError::CartHasCoupon { .. }))
        ),
        "{r0:?}"
    );
    assert!(
        r1.is_ok(),
        "cart-1 gets the use cart-0 could not take: {r1:?}"
    );
    assert_eq!(applied, vec!["cart-1".to_owned()]);
}

#[derive(factum::Decision, Clone, Debug)]
#[decision(partition = cart)]
pub struct Boom {
    pub cart: String,
    pub panic: bool,
}

impl Decide for Boom {
    type State = Cart;
    type Event = events::CartEvent;
    type Error = CouponError;
    fn state(&self) -> Cart {
        Cart::new(&self.cart)
    }
    fn decide(&self, _: &Cart) -> Result<Vec<events::CartEvent>, CouponError> {
        if self.panic {
            panic!("user bug in decide");
        }
        Ok(vec![])
    }
}

/// A panicking `decide` is answered `Panicked`, and its lane goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_decision_costs_only_itself() {
    let store = MemoryStore::new();
    setup(&store, &[], &["c"]).await;
    let d = Dispatcher::with_options(
        Engine::new(store.clone()),
        LaneOptions {
            lanes: 1,
            hot_lanes: 0,
            ..LaneOptions::default()
        },
    );
    let first = d
        .decide(Boom {
            cart: "c".into(),
            panic: true,
        })
        .await;
    assert!(
        matches!(first, Err(DecideError::Panicked { decision: "Boom" })),
        "{first:?}"
    );
    let later = d
        .decide(Boom {
            cart: "c".into(),
            panic: false,
        })
        .await;
    assert!(later.is_ok(), "a healthy decision after it: {later:?}");
}
