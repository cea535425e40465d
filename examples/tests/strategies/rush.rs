//! A coupon rush through a [`Dispatcher`], with the audit every strategy must pass.

use std::collections::HashMap;
use std::sync::Arc;

use factum::lanes::{Dispatcher, LaneOptions, Strategy};
use factum::prelude::*;
use factum::{Context, Outcome};
use factum_examples::coupons::{
    ApplyCoupon, ApplyCouponTolerant, CouponError, IssueCoupon, OpenCart, events,
};
use futures::TryStreamExt;
use tokio::task::JoinSet;

pub const COUPON: &str = "RUSH";

/// How one rush runs.
#[derive(Clone, Copy, Debug)]
pub struct Rush {
    pub strategy: Strategy,
    pub tolerant: bool,
    pub uses: u32,
    pub customers: usize,
    pub submitters: usize,
}

impl Rush {
    pub fn strict(strategy: Strategy) -> Self {
        Rush {
            strategy,
            tolerant: false,
            uses: 40,
            customers: 200,
            submitters: 16,
        }
    }

    /// Optimistic with the `CouponApplied` exclusion: overbooking tolerated, bounded.
    pub fn tolerant() -> Self {
        Rush {
            tolerant: true,
            ..Rush::strict(Strategy::Optimistic)
        }
    }
}

/// What the submitters were told and what the log holds.
#[derive(Debug)]
pub struct Report {
    pub rush: Rush,
    /// Decisions acknowledged as committed, with the positions they were told.
    pub acknowledged: Vec<(String, Vec<Position>)>,
    /// Decisions refused because the coupon was used up.
    pub used_up: usize,
    /// Any other answer (must be none).
    pub other: Vec<String>,
    /// `CouponApplied` events in the log, by cart, with their positions.
    pub in_log: HashMap<String, Vec<Position>>,
    /// What the engine counted during the rush.
    pub stats: factum::EngineStats,
}

impl Report {
    fn assert_complete(&self) {
        assert!(
            self.other.is_empty(),
            "{:?}: unexpected answers {:?}",
            self.rush,
            self.other
        );
        assert_eq!(
            self.acknowledged.len() + self.used_up,
            self.rush.customers,
            "{:?}: every customer is answered",
            self.rush
        );
        for (cart, positions) in &self.acknowledged {
            assert_eq!(
                self.in_log.get(cart),
                Some(positions),
                "{:?}: acknowledged application to {cart} is in the log where it was told",
                self.rush
            );
        }
        let applied: usize = self.in_log.values().map(Vec::len).sum();
        assert_eq!(
            applied,
            self.acknowledged.len(),
            "{:?}: no application in the log that nobody was told of, none twice",
            self.rush
        );
    }

    /// Exactly `uses` applications.
    pub fn assert_exact(&self) {
        self.assert_complete();
        assert_eq!(
            self.acknowledged.len(),
            self.rush.uses as usize,
            "{:?}",
            self.rush
        );
    }

    /// At least `uses`, at most one more per concurrent submitter.
    pub fn assert_bounded_overbooking(&self) {
        self.assert_complete();
        let applied = self.acknowledged.len();
        let uses = self.rush.uses as usize;
        assert!(
            applied >= uses && applied <= uses + self.rush.submitters,
            "{:?}: {applied} applications",
            self.rush
        );
    }
}

type Answer = Result<Outcome<events::CouponEvent>, DecideError<CouponError>>;

pub async fn run_rush<S: EventStore + Clone + 'static>(store: S, rush: Rush) -> Report {
    let engine = Engine::new(store.clone());
    let dispatcher = Dispatcher::with_options(
        engine.clone(),
        LaneOptions {
            lanes: 4,
            ..LaneOptions::default()
        },
    );
    engine
        .decide(&IssueCoupon {
            coupon: COUPON.into(),
            uses: rush.uses,
        })
        .await
        .expect("issue the coupon");
    for cart in 0..rush.customers {
        engine
            .decide(&OpenCart {
                cart: format!("cart-{cart}"),
            })
            .await
            .expect("open a cart");
    }
    let before = engine.stats();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..rush.submitters {
        let (dispatcher, next) = (dispatcher.clone(), next.clone());
        tasks.spawn(async move {
            let mut answers: Vec<(String, Answer)> = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= rush.customers {
                    return answers;
                }
                let cart = format!("cart-{i}");
                let answer = if rush.tolerant {
                    dispatcher
                        .decide_using(
                            ApplyCouponTolerant::new(COUPON, &cart),
                            rush.strategy,
                            Context::default(),
                        )
                        .await
                } else {
                    dispatcher
                        .decide_using(
                            ApplyCoupon::new(COUPON, &cart),
                            rush.strategy,
                            Context::default(),
                        )
                        .await
                };
                answers.push((cart, answer));
            }
        });
    }
    let mut report = Report {
        rush,
        acknowledged: Vec::new(),
        used_up: 0,
        other: Vec::new(),
        in_log: HashMap::new(),
        stats: Default::default(),
    };
    while let Some(answers) = tasks.join_next().await {
        for (cart, answer) in answers.expect("a submitter task") {
            match answer {
                Ok(outcome) if !outcome.replayed && outcome.events.len() == 1 => {
                    report.acknowledged.push((cart, outcome.positions))
                }
                Err(DecideError::Domain(CouponError::CouponUsedUp { .. })) => report.used_up += 1,
                other => report.other.push(format!("{cart}: {other:?}")),
            }
        }
    }
    dispatcher.shutdown(factum::lanes::Drain::Finish).await;
    report.stats = engine.stats().since(&before);
    eprintln!("{:?} {:?}", rush.strategy, report.stats);
    let query = Query::of::<events::CouponApplied>();
    let mut log = std::pin::pin!(store.read(&query, ReadOptions::forward()));
    while let Some(event) = log.try_next().await.expect("read the log") {
        let applied = events::CouponApplied::from_stored(&event).expect("decode");
        assert_eq!(applied.coupon, COUPON);
        report
            .in_log
            .entry(applied.cart)
            .or_default()
            .push(event.position);
    }
    report
}
