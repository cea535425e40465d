//! One request sent many times at once: exactly one commit, and every sender gets the
//! same outcome — under each strategy, across strategies, and after a restart.

use factum::lanes::{Dispatcher, Drain, Strategy};
use factum::prelude::*;
use factum::{Context, Outcome};
use factum_examples::coupons::{ApplyCoupon, CouponError, IssueCoupon, OpenCart, events};
use futures::TryStreamExt;

use crate::STRATEGIES;

type Answer = Result<Outcome<events::CouponEvent>, DecideError<CouponError>>;

async fn setup<S: EventStore + Clone>(store: &S) {
    let engine = Engine::new(store.clone());
    engine
        .decide(&IssueCoupon {
            coupon: "TWICE".into(),
            uses: 10,
        })
        .await
        .unwrap();
    engine
        .decide(&OpenCart {
            cart: "cart".into(),
        })
        .await
        .unwrap();
}

/// Sends `request` once per strategy in `strategies`, all at the same time.
async fn race<S: EventStore + Clone + 'static>(
    dispatcher: &Dispatcher<S>,
    request: &ApplyCoupon,
    strategies: &[Strategy],
) -> Vec<Answer> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(strategies.len()));
    let tasks: Vec<_> = strategies
        .iter()
        .map(|&strategy| {
            let (dispatcher, request, barrier) =
                (dispatcher.clone(), request.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                dispatcher
                    .decide_using(request, strategy, Context::default())
                    .await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("a sender task"));
    }
    answers
}

async fn applications<S: EventStore>(store: &S) -> Vec<Position> {
    let query = Query::of::<events::CouponApplied>();
    store
        .read(&query, ReadOptions::forward())
        .map_ok(|e| e.position)
        .try_collect()
        .await
        .unwrap()
}

/// Exactly one commit, and everyone was told its events and positions.
fn assert_one_outcome(answers: &[Answer], in_log: &[Position], context: &str) {
    assert_eq!(in_log.len(), 1, "{context}: one application in the log");
    let outcomes: Vec<&Outcome<events::CouponEvent>> = answers
        .iter()
        .map(|a| a.as_ref().unwrap_or_else(|e| panic!("{context}: {e}")))
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| !o.replayed).count(),
        1,
        "{context}: one sender committed, the others got its outcome replayed"
    );
    for outcome in &outcomes {
        assert_eq!(outcome.positions, in_log, "{context}");
        assert_eq!(outcome.events, outcomes[0].events, "{context}");
    }
}

pub async fn duplicates_commit_once<S: EventStore + Clone + 'static>(make: impl AsyncFn() -> S) {
    for strategy in crate::STRATEGIES {
        let store = make().await;
        setup(&store).await;
        let dispatcher = Dispatcher::new(Engine::new(store.clone()));
        let request = ApplyCoupon::new("TWICE", "cart");
        let answers = race(&dispatcher, &request, &[strategy; 8]).await;
        assert_one_outcome(&answers, &applications(&store).await, strategy.name());
        dispatcher.shutdown(Drain::Finish).await;
    }
    let store = make().await;
    setup(&store).await;
    let dispatcher = Dispatcher::new(Engine::new(store.clone()));
    let request = ApplyCoupon::new("TWICE", "cart");
    let mixed: Vec<Strategy> = STRATEGIES.iter().copied().cycle().take(9).collect();
    let answers = race(&dispatcher, &request, &mixed).await;
    assert_one_outcome(&answers, &applications(&store).await, "mixed strategies");
    dispatcher.shutdown(Drain::Finish).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_on_the_memory_store() {
    duplicates_commit_once(async || MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_on_sqlite_and_after_a_restart() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let next = std::sync::atomic::AtomicUsize::new(0);
    duplicates_commit_once(async || {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        factum_sqlite::open(dir.path().join(format!("dup-{n}.db")))
            .await
            .expect("open SQLite")
    })
    .await;

    // The first outcome outlives the process that committed it.
    let path = dir.path().join("restart.db");
    let request = ApplyCoupon::new("TWICE", "cart");
    let first = {
        let store = factum_sqlite::open(&path).await.expect("open SQLite");
        setup(&store).await;
        let dispatcher = Dispatcher::new(Engine::new(store.clone()));
        let first = dispatcher.decide(request.clone()).await.unwrap();
        dispatcher.shutdown(Drain::Finish).await;
        first
    };
    let store = factum_sqlite::open(&path).await.expect("reopen SQLite");
    let dispatcher = Dispatcher::new(Engine::new(store.clone()));
    for strategy in STRATEGIES {
        let again = dispatcher
            .decide_using(request.clone(), strategy, Context::default())
            .await
            .unwrap();
        assert!(again.replayed, "{strategy}");
        assert_eq!(
            (&again.events, &again.positions),
            (&first.events, &first.positions)
        );
    }
    assert_eq!(applications(&store).await, first.positions);
    dispatcher.shutdown(Drain::Finish).await;
}
