//! The strategies on PostgreSQL, each test in a schema of its own; and the store lock
//! across two stores sharing one database, as two application instances would.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use factum::Context;
use factum::lanes::{Dispatcher, Drain, Strategy};
use factum::prelude::*;
use factum_examples::coupons::{ApplyCoupon, CouponError, IssueCoupon, OpenCart, events};
use factum_postgres::PostgresStore;
use futures::TryStreamExt;

use crate::STRATEGIES;
use crate::rush::{Rush, run_rush};

/// A store in a fresh schema; panics naming `DATABASE_URL` when the server is unreachable.
pub(crate) async fn store(what: &str) -> PostgresStore {
    let schema = format!("factum_test_{what}_{}", uuid::Uuid::now_v7().simple());
    PostgresStore::from_env(&schema).await.unwrap_or_else(|e| {
        panic!(
            "cannot open a PostgreSQL store: {e}. These tests need a running server: set \
             DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) to one"
        )
    })
}

async fn drop(store: PostgresStore) {
    store.drop_schema().await.expect("drop the test schema");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_strategy_on_postgres() {
    for strategy in STRATEGIES {
        let pg = store("rush").await;
        run_rush(pg.clone(), Rush::strict(strategy))
            .await
            .assert_exact();
        drop(pg).await;
    }
    let pg = store("rush").await;
    run_rush(pg.clone(), Rush::tolerant())
        .await
        .assert_bounded_overbooking();
    drop(pg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_on_postgres() {
    let schemas = std::sync::Mutex::new(Vec::new());
    crate::duplicates::duplicates_commit_once(async || {
        let pg = store("dup").await;
        schemas.lock().unwrap().push(pg.clone());
        pg
    })
    .await;
    for pg in schemas.into_inner().unwrap() {
        drop(pg).await;
    }
}

/// Two instances of an application, each with its own store handle and dispatcher on
/// one database, rush one coupon under the store lock: they take turns on the coupon's
/// advisory lock, so nobody retries, and the coupon is applied exactly `uses` times.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_store_lock_serializes_a_hot_key_across_instances() {
    const USES: u32 = 30;
    const CUSTOMERS: usize = 120;
    let first = store("lock").await;
    let second = PostgresStore::from_env(first.schema())
        .await
        .expect("a second store");
    let engine = Engine::new(first.clone());
    engine
        .decide(&IssueCoupon {
            coupon: "HOT".into(),
            uses: USES,
        })
        .await
        .unwrap();
    for cart in 0..CUSTOMERS {
        engine
            .decide(&OpenCart {
                cart: format!("cart-{cart}"),
            })
            .await
            .unwrap();
    }
    let instances = [
        Dispatcher::new(Engine::new(first.clone())),
        Dispatcher::new(Engine::new(second.clone())),
    ];
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for submitter in 0..8 {
        let (dispatcher, next) = (instances[submitter % 2].clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut applied = 0;
            loop {
                let cart = next.fetch_add(1, Ordering::Relaxed);
                if cart >= CUSTOMERS {
                    return applied;
                }
                let decision = ApplyCoupon::new("HOT", format!("cart-{cart}"));
                match dispatcher
                    .decide_using(decision, Strategy::StoreLock, Context::default())
                    .await
                {
                    Ok(outcome) => {
                        assert_eq!(outcome.attempts, 1, "no retry under the lock");
                        applied += 1;
                    }
                    Err(DecideError::Domain(CouponError::CouponUsedUp { .. })) => {}
                    Err(other) => panic!("{other}"),
                }
            }
        }));
    }
    let mut applied = 0;
    for task in tasks {
        applied += task.await.unwrap();
    }
    assert_eq!(applied, USES as usize);
    let conflicts: u64 = instances.iter().map(|d| d.engine().stats().conflicts).sum();
    assert_eq!(conflicts, 0);
    let in_log: Vec<StoredEvent> = first
        .read(
            &Query::of::<events::CouponApplied>(),
            ReadOptions::forward(),
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(in_log.len(), USES as usize);
    for dispatcher in &instances {
        dispatcher.shutdown(Drain::Finish).await;
    }
    drop(first).await;
}
