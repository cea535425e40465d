//! Serial lanes in detail, on the in-memory store behind a gate: what one batch holds,
//! how it handles a rule-breaking decision and a writer behind its back, and shutdown.

use factum::lanes::{Dispatcher, Drain, LaneOptions, Strategy};
use factum::prelude::*;
use factum::{Context, Outcome};
use factum_examples::coupons::{ApplyCoupon, CouponError, IssueCoupon, OpenCart, events};
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::gate::Gate;

type Answer = Result<Outcome<events::CouponEvent>, DecideError<CouponError>>;

fn one_lane(store: Gate<MemoryStore>) -> Dispatcher<Gate<MemoryStore>> {
    Dispatcher::with_options(
        Engine::new(store),
        LaneOptions {
            lanes: 1,
            hot_lanes: 0,
            ..LaneOptions::default()
        },
    )
}

async fn setup(store: &MemoryStore, coupons: &[(&str, u32)], carts: usize) {
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
    for cart in (0..carts)
        .map(|c| format!("cart-{c}"))
        .chain(["cart-plug".to_owned()])
    {
        engine.decide(&OpenCart { cart }).await.unwrap();
    }
}

fn apply(
    dispatcher: &Dispatcher<Gate<MemoryStore>>,
    coupon: &str,
    cart: usize,
) -> JoinHandle<Answer> {
    let dispatcher = dispatcher.clone();
    let decision = ApplyCoupon::new(coupon, format!("cart-{cart}"));
    tokio::spawn(async move { dispatcher.decide(decision).await })
}

/// Holds the lane in its first commit (one application of `PLUG`) and queues `n` more
/// behind it, so that they form the next batch together.
async fn plugged(
    dispatcher: &Dispatcher<Gate<MemoryStore>>,
    gate: &Gate<MemoryStore>,
    queue: impl IntoIterator<Item = (&'static str, usize)>,
) -> (JoinHandle<Answer>, Vec<JoinHandle<Answer>>) {
    let plug = {
        let dispatcher = dispatcher.clone();
        tokio::spawn(async move {
            dispatcher
                .decide(ApplyCoupon::new("PLUG", "cart-plug"))
                .await
        })
    };
    gate.until_waiting(1).await;
    let queued: Vec<JoinHandle<Answer>> = queue
        .into_iter()
        .map(|(coupon, cart)| apply(dispatcher, coupon, cart))
        .collect();
    let n = queued.len();
    for _ in 0..2_000 {
        if dispatcher.queued() == n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        dispatcher.queued(),
        n,
        "every decision queued behind the plug"
    );
    (plug, queued)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_accepts_what_the_rule_allows_and_refuses_the_rest_alone() {
    let store = MemoryStore::new();
    setup(&store, &[("PLUG", 1), ("THREE", 3)], 1_000).await;
    let gate = Gate::new(store.clone());
    let dispatcher = one_lane(gate.clone());
    assert_eq!(
        dispatcher.strategy_for::<ApplyCoupon>(),
        Strategy::SerialLanes
    );
    let (plug, queued) = plugged(&dispatcher, &gate, (0..10).map(|cart| ("THREE", cart))).await;
    let before = dispatcher.engine().stats();
    gate.open_all();
    assert!(plug.await.unwrap().is_ok());
    let mut applied = 0;
    let mut used_up = 0;
    for answer in queued {
        match answer.await.unwrap() {
            Ok(outcome) => {
                assert_eq!(outcome.attempts, 1);
                applied += 1;
            }
            Err(DecideError::Domain(CouponError::CouponUsedUp { uses: 3, .. })) => used_up += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((applied, used_up), (3, 7));
    // The plug, then the ten in one transaction holding only the three that commit: the
    // seven refused never reached the store.
    assert_eq!(gate.sizes(), vec![1, 3]);
    let stats = dispatcher.engine().stats().since(&before);
    // The plug's commit completed after `before` too.
    assert_eq!(
        (stats.committed, stats.rejected, stats.conflicts),
        (1 + 3, 7, 0)
    );
    assert_eq!(applications(&store).await, 4);
    dispatcher.shutdown(Drain::Finish).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_behind_the_lanes_back_fails_one_request_and_it_is_decided_again() {
    let store = MemoryStore::new();
    setup(&store, &[("PLUG", 1), ("A", 5), ("B", 2), ("C", 5)], 10).await;
    let gate = Gate::new(store.clone());
    let dispatcher = one_lane(gate.clone());
    let (plug, queued) = plugged(&dispatcher, &gate, [("A", 0), ("B", 1), ("C", 2)]).await;
    gate.open(1);
    assert!(plug.await.unwrap().is_ok());
    // The lane decided the three on fresh states and waits to commit them...
    gate.until_waiting(1).await;
    // ...when another writer takes one of B's two uses.
    Engine::new(store.clone())
        .decide(&ApplyCoupon::new("B", "cart-9"))
        .await
        .unwrap();
    gate.open_all();
    let answers: Vec<Answer> = futures::future::join_all(queued)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let attempts: Vec<u32> = answers
        .iter()
        .map(|a| a.as_ref().expect("all three commit").attempts)
        .collect();
    assert_eq!(
        attempts,
        vec![1, 2, 1],
        "only B conflicted, and committed on its retry"
    );
    assert_eq!(gate.sizes(), vec![1, 3, 1]);
    assert_eq!(dispatcher.engine().stats().conflicts, 1);
    dispatcher.shutdown(Drain::Finish).await;
}

/// 50 applications queued behind the plug, and a shutdown begun with `drain`.
struct ShuttingDown {
    store: MemoryStore,
    gate: Gate<MemoryStore>,
    dispatcher: Dispatcher<Gate<MemoryStore>>,
    plug: JoinHandle<Answer>,
    queued: Vec<JoinHandle<Answer>>,
    shutdown: JoinHandle<()>,
}

async fn shutting_down(drain: Drain) -> ShuttingDown {
    let store = MemoryStore::new();
    setup(&store, &[("PLUG", 1), ("MANY", 100)], 60).await;
    let gate = Gate::new(store.clone());
    let dispatcher = one_lane(gate.clone());
    let (plug, queued) = plugged(&dispatcher, &gate, (0..50).map(|cart| ("MANY", cart))).await;
    let shutdown = tokio::spawn({
        let dispatcher = dispatcher.clone();
        async move { dispatcher.shutdown(drain).await }
    });
    while !dispatcher.is_shutting_down() {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    ShuttingDown {
        store,
        gate,
        dispatcher,
        plug,
        queued,
        shutdown,
    }
}

async fn applications(store: &MemoryStore) -> usize {
    store
        .read(
            &Query::of::<events::CouponApplied>(),
            ReadOptions::forward(),
        )
        .count()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishing_commits_every_queued_decision() {
    let run = shutting_down(Drain::Finish).await;
    // New work is refused as soon as the shutdown began.
    let late = run
        .dispatcher
        .decide(ApplyCoupon::new("MANY", "cart-55"))
        .await;
    assert!(matches!(late, Err(DecideError::Stopped { .. })), "{late:?}");
    run.gate.open_all();
    run.shutdown.await.unwrap();
    assert!(run.plug.await.unwrap().is_ok());
    for answer in run.queued {
        assert!(answer.await.unwrap().is_ok());
    }
    assert_eq!(applications(&run.store).await, 51);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_rejecting_answers_queued_decisions_and_applies_none_of_them() {
    let run = shutting_down(Drain::Reject).await;
    run.gate.open_all();
    run.shutdown.await.unwrap();
    // The batch already at the store completes and is answered.
    assert!(run.plug.await.unwrap().is_ok());
    let mut stopped = 0;
    for answer in run.queued {
        match answer.await.unwrap() {
            Err(DecideError::Stopped { decision }) => {
                assert_eq!(decision, "ApplyCoupon");
                stopped += 1;
            }
            other => panic!("a queued decision ran after a rejecting shutdown: {other:?}"),
        }
    }
    assert_eq!(stopped, 50);
    assert_eq!(applications(&run.store).await, 1, "only the plug");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_key_gets_a_lane_of_its_own() {
    let store = MemoryStore::new();
    setup(&store, &[("HOT", 10_000), ("COLD", 10_000)], 700).await;
    let dispatcher = Dispatcher::with_options(
        Engine::new(store.clone()),
        LaneOptions {
            lanes: 2,
            hot_lanes: 1,
            ..LaneOptions::default()
        },
    );
    for cart in 0..600 {
        let coupon = if cart % 10 == 0 { "COLD" } else { "HOT" };
        dispatcher
            .decide(ApplyCoupon::new(coupon, format!("cart-{cart}")))
            .await
            .unwrap();
    }
    assert_eq!(
        dispatcher.lanes(),
        3,
        "two hashed lanes and one for the hot coupon"
    );
    dispatcher.shutdown(Drain::Finish).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_run_under_the_strategy_their_metadata_or_the_application_chose() {
    let store = MemoryStore::new();
    setup(&store, &[("C", 10)], 3).await;
    let dispatcher = Dispatcher::new(Engine::new(store.clone()));
    assert_eq!(
        dispatcher.strategy_for::<ApplyCoupon>(),
        Strategy::SerialLanes
    );
    dispatcher
        .decide(ApplyCoupon::new("C", "cart-0"))
        .await
        .unwrap();
    assert_eq!(dispatcher.engine().stats().batches, 1);
    dispatcher.set_strategy::<ApplyCoupon>(Strategy::StoreLock);
    assert_eq!(
        dispatcher.strategy_for::<ApplyCoupon>(),
        Strategy::StoreLock
    );
    dispatcher
        .decide(ApplyCoupon::new("C", "cart-1"))
        .await
        .unwrap();
    assert_eq!(dispatcher.engine().stats().batches, 1, "not through a lane");
    // The lane's warm coupon missed the application made under the store lock: its
    // condition catches that, and it decides again on the caught-up state.
    let outcome = dispatcher
        .decide_using(
            ApplyCoupon::new("C", "cart-2"),
            Strategy::SerialLanes,
            Context::default(),
        )
        .await
        .unwrap();
    assert_eq!(outcome.attempts, 2);
    let stats = dispatcher.engine().stats();
    assert_eq!((stats.batches, stats.conflicts), (3, 1));
    dispatcher.shutdown(Drain::Finish).await;
}

/// A state whose fold reads the stored event (the coupon keeps the position it was
/// issued at) folds a batch's events before they commit, with provisional positions:
/// such a state is not kept warm past its batch, so the next decision sees the real one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn states_reading_positions_are_not_kept_warm_with_provisional_ones() {
    let store = MemoryStore::new();
    setup(&store, &[("PLUG", 1)], 20).await;
    let gate = Gate::new(store.clone());
    let dispatcher = one_lane(gate.clone());
    let (plug, queued) = plugged(&dispatcher, &gate, (0..3).map(|cart| ("PLUG", cart))).await;
    let issue = {
        let dispatcher = dispatcher.clone();
        tokio::spawn(async move {
            dispatcher
                .decide(IssueCoupon {
                    coupon: "NEW".into(),
                    uses: 5,
                })
                .await
        })
    };
    while dispatcher.queued() < 4 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    gate.open_all();
    plug.await.unwrap().unwrap();
    futures::future::join_all(queued).await;
    let issued = issue.await.unwrap().unwrap();
    let again = dispatcher
        .decide(IssueCoupon {
            coupon: "NEW".into(),
            uses: 5,
        })
        .await;
    match again {
        Err(DecideError::Domain(CouponError::CouponAlreadyIssued { at, .. })) => {
            assert_eq!(at, issued.positions[0])
        }
        other => panic!("expected CouponAlreadyIssued, got {other:?}"),
    }
    dispatcher.shutdown(Drain::Finish).await;
}

/// A full lane queue makes submitters wait (back-pressure) instead of growing without
/// bound; once the lane moves, every waiting decision is queued and answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_makes_submitters_wait() {
    let store = MemoryStore::new();
    setup(&store, &[("PLUG", 1), ("MANY", 100)], 10).await;
    let gate = Gate::new(store.clone());
    let dispatcher = Dispatcher::with_options(
        Engine::new(gate.clone()),
        LaneOptions {
            lanes: 1,
            hot_lanes: 0,
            queue: 2,
            ..LaneOptions::default()
        },
    );
    let plug = {
        let dispatcher = dispatcher.clone();
        tokio::spawn(async move {
            dispatcher
                .decide(ApplyCoupon::new("PLUG", "cart-plug"))
                .await
        })
    };
    gate.until_waiting(1).await;
    let waiting: Vec<JoinHandle<Answer>> = (0..6)
        .map(|cart| apply(&dispatcher, "MANY", cart))
        .collect();
    for _ in 0..2_000 {
        if dispatcher.queued() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The four others stay blocked in their send: nothing more gets queued.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        dispatcher.queued(),
        2,
        "the queue holds two; four submitters wait"
    );
    assert!(waiting.iter().all(|w| !w.is_finished()));
    gate.open_all();
    plug.await.unwrap().unwrap();
    for answer in waiting {
        answer.await.unwrap().unwrap();
    }
    dispatcher.shutdown(Drain::Finish).await;
}
