//! Edges of serial lanes found in a second review: answers that append nothing are
//! checked against the log before they go out, a panicking fold while warming up costs
//! only its decision, and a hot key's hand-over waits for deferred decisions.

use std::time::Duration;

use factum::lanes::{Dispatcher, Drain, LaneOptions, Strategy};
use factum::prelude::*;
use factum::{Context, Decide, Outcome};
use factum_examples::coupons::*;
use tokio::task::JoinHandle;

use crate::edges::{plug, setup};
use crate::gate::Gate;

type Answer<D> = Result<Outcome<<D as Decide>::Event>, DecideError<<D as Decide>::Error>>;

fn lanes(
    store: Gate<MemoryStore>,
    hot_lanes: usize,
    max_batch: usize,
) -> Dispatcher<Gate<MemoryStore>> {
    Dispatcher::with_options(
        Engine::new(store),
        LaneOptions {
            lanes: 1,
            hot_lanes,
            max_batch,
            queue: 2048,
            warm_states: 10_000,
        },
    )
}

async fn spawn_queued<D: Decide + Clone>(
    d: &Dispatcher<Gate<MemoryStore>>,
    decision: D,
    grow: usize,
) -> JoinHandle<Answer<D>> {
    let before = d.queued();
    let h = {
        let d = d.clone();
        tokio::spawn(async move { d.decide(decision).await })
    };
    for _ in 0..5000 {
        if d.queued() >= before + grow {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(d.queued(), before + grow);
    h
}

/// A refusal decided on warm states is checked against the log before it goes out: a
/// cart opened (and answered) through another strategy is not "not found" for the lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_on_warm_states_is_checked_against_the_log() {
    let store = MemoryStore::new();
    Engine::new(store.clone())
        .decide(&IssueCoupon {
            coupon: "C".into(),
            uses: 5,
        })
        .await
        .unwrap();
    let gate = Gate::new(store.clone());
    gate.open_all();
    let d = lanes(gate, 0, 256);
    let first = d.decide(ApplyCoupon::new("C", "x")).await;
    assert!(
        matches!(
            first,
            Err(DecideError::Domain(CouponError::CartNotFound { .. }))
        ),
        "{first:?}"
    );
    // Same dispatcher, another strategy (or another lane / process): committed and answered.
    d.decide_using(
        OpenCart { cart: "x".into() },
        Strategy::Optimistic,
        Context::default(),
    )
    .await
    .unwrap();
    let second = d.decide(ApplyCoupon::new("C", "x")).await;
    d.shutdown(Drain::Finish).await;
    assert!(
        second.is_ok(),
        "cart x was opened before this decision was submitted: {second:?}"
    );
}

#[derive(State, Clone, Debug, Default)]
pub struct Fragile {
    #[id]
    pub cart: String,
    pub n: u32,
}

#[factum::fold]
impl Fragile {
    fn opened(&mut self, e: &events::CartOpened) {
        if e.cart == "bad" {
            panic!("poison event");
        }
        self.n += 1;
    }
}

#[derive(factum::Decision, Clone, Debug)]
#[decision(partition = cart)]
pub struct Poke {
    pub cart: String,
}

impl Decide for Poke {
    type State = Fragile;
    type Event = events::CartEvent;
    type Error = CouponError;
    fn state(&self) -> Fragile {
        Fragile::new(&self.cart)
    }
    fn decide(&self, _: &Fragile) -> Result<Vec<events::CartEvent>, CouponError> {
        Ok(vec![])
    }
}

/// A fold that panics while the batch warms its cold states up costs only the decision
/// that needs that state (`Panicked`); the others of the batch commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_panicking_while_warming_up_costs_only_its_decision() {
    let store = MemoryStore::new();
    setup(&store, &[("PLUG", 1)], &["bad"]).await;
    let gate = Gate::new(store.clone());
    let d = lanes(gate.clone(), 0, 256);
    let p = plug(&d, &gate).await;
    let good = spawn_queued(
        &d,
        OpenCart {
            cart: "good".into(),
        },
        1,
    )
    .await;
    let bad = spawn_queued(&d, Poke { cart: "bad".into() }, 1).await;
    gate.open_all();
    p.await.unwrap().unwrap();
    let bad = bad.await.unwrap();
    let good = good.await.unwrap();
    d.shutdown(Drain::Finish).await;
    assert!(
        good.is_ok(),
        "an unrelated decision was lost with the panicking one: {good:?}"
    );
    assert!(
        matches!(bad, Err(DecideError::Panicked { decision: "Poke" })),
        "{bad:?}"
    );
}

/// The hot-key barrier waits for the decisions before it that its batch deferred, so the
/// key never runs in its old lane and its new one at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_key_hand_over_waits_for_deferred_decisions() {
    let store = MemoryStore::new();
    let carts: Vec<String> = (0..300).map(|i| format!("c{i}")).collect();
    let carts: Vec<&str> = carts.iter().map(String::as_str).collect();
    setup(&store, &[("PLUG", 1)], &carts).await;
    let gate = Gate::new(store.clone());
    let d = lanes(gate.clone(), 1, 1024);
    let p = plug(&d, &gate).await;
    let mut handles = Vec::new();
    // K submission #1: issues K (Coupon folds CouponIssued reading the stored event:
    // provisional), #2..#256: deferred behind it in the same batch.
    let issue = spawn_queued(
        &d,
        IssueCoupon {
            coupon: "K".into(),
            uses: 1000,
        },
        1,
    )
    .await;
    for i in 0..255 {
        handles.push(spawn_queued(&d, ApplyCoupon::new("K", format!("c{i}")), 1).await);
    }
    assert_eq!(d.lanes(), 1);
    // #257: K turns hot: a barrier in the old lane, the decision in a new lane.
    let trigger = spawn_queued(&d, ApplyCoupon::new("K", "c299"), 2).await;
    assert_eq!(d.lanes(), 2);
    gate.open(2); // the plug's batch, then [Issue K, 255 deferred, barrier]
    p.await.unwrap().unwrap();
    issue.await.unwrap().unwrap();
    // Correct: the new lane waits until the 255 deferred decisions committed; so only one
    // batch can be at the gate now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting_two = tokio::time::timeout(Duration::from_secs(2), gate.until_waiting(2))
        .await
        .is_ok();
    gate.open_all();
    let t = trigger.await.unwrap();
    assert_eq!(t.expect("the trigger commits").attempts, 1);
    for h in handles {
        h.await.unwrap().expect("every earlier application commits");
    }
    assert_eq!(d.engine().stats().conflicts, 0);
    d.shutdown(Drain::Finish).await;
    assert!(
        !waiting_two,
        "key K had a batch in flight in the old lane and in its hot lane at once"
    );
}

/// A no-op decided on a warm state that another writer moved past is decided again on
/// the fresh state, so the write it asks for happens (no lost update).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_op_on_warm_states_is_checked_against_the_log() {
    let store = MemoryStore::new();
    let gate = Gate::new(store.clone());
    gate.open_all();
    let d = lanes(gate, 0, 256);
    d.decide(SetPrice {
        sku: "s".into(),
        cents: 200,
    })
    .await
    .unwrap();
    d.decide_using(
        SetPrice {
            sku: "s".into(),
            cents: 300,
        },
        Strategy::Optimistic,
        Context::default(),
    )
    .await
    .unwrap();
    let again = d
        .decide(SetPrice {
            sku: "s".into(),
            cents: 200,
        })
        .await
        .unwrap();
    d.shutdown(Drain::Finish).await;
    let mut price = Price::new("s");
    let q = Query::of::<events::PriceSet>();
    let mut s = std::pin::pin!(store.read(&q, ReadOptions::forward()));
    while let Some(e) = futures::StreamExt::next(&mut s).await {
        let e = e.unwrap();
        let p = events::PriceSet::from_stored(&e).unwrap();
        if p.sku == "s" {
            price.cents = Some(p.cents);
        }
    }
    assert_eq!(
        price.cents,
        Some(200),
        "SetPrice(200) answered Ok({} events) but the price is {:?}",
        again.events.len(),
        price.cents
    );
}
