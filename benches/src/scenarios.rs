//! The measured scenarios, each generic over the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use factum::prelude::*;
use factum::{AppendCondition, AppendRequest};

use crate::domain::{Account, Deposit, deposit};
use crate::measure::{Rate, rate};

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Appends in the one-per-transaction and batched scenarios.
    pub appends: u64,
    /// Requests per batch.
    pub batch: u64,
    /// Decisions per concurrency level.
    pub decisions: u64,
}

/// A fresh key prefix, so repeated runs on one store never touch each other's events.
fn prefix(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::now_v7().simple())
}

/// The condition a deposit's decision appends under: no deposit on its account yet.
fn guard(account: &str) -> Query {
    Query::item(
        QueryItem::of::<crate::domain::ledger::Deposited>()
            .with_tags([Tag::new("account", account)]),
    )
}

/// Appends one event per append, each guarded by a condition on its own key (as a
/// decision's append is), one after another.
pub async fn appends_one_by_one<S: EventStore>(store: &S, sizes: Sizes) -> Rate {
    let run = prefix("single");
    rate(sizes.appends, async {
        for i in 0..sizes.appends {
            let key = format!("{run}-{i}");
            let condition = AppendCondition::new(guard(&key), None);
            store
                .append(vec![deposit(&key, i)], Some(condition))
                .await
                .unwrap_or_else(|e| panic!("append failed: {e}"));
        }
    })
    .await
}

/// The same appends, `batch` requests per `append_batch` call (one transaction each).
pub async fn appends_batched<S: EventStore>(store: &S, sizes: Sizes) -> Rate {
    let run = prefix("batched");
    rate(sizes.appends, async {
        let mut i = 0;
        while i < sizes.appends {
            let end = (i + sizes.batch).min(sizes.appends);
            let requests = (i..end)
                .map(|j| {
                    let key = format!("{run}-{j}");
                    let condition = AppendCondition::new(guard(&key), None);
                    AppendRequest::new(vec![deposit(&key, j)], Some(condition))
                })
                .collect();
            let results = store
                .append_batch(requests)
                .await
                .unwrap_or_else(|e| panic!("batch failed: {e}"));
            for r in results {
                r.unwrap_or_else(|e| panic!("a batched append failed: {e}"));
            }
            i = end;
        }
    })
    .await
}

/// `decisions` decisions, each on its own account, from `submitters` concurrent tasks.
pub async fn decisions_on_distinct_keys<S>(
    engine: &Engine<S>,
    sizes: Sizes,
    submitters: u64,
) -> Rate
where
    S: EventStore + Clone + 'static,
{
    let run = prefix(&format!("decide{submitters}"));
    let next = Arc::new(AtomicU64::new(0));
    rate(sizes.decisions, async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..submitters {
            let engine = engine.clone();
            let next = next.clone();
            let run = run.clone();
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= sizes.decisions {
                        break;
                    }
                    let decision = Deposit {
                        account: format!("{run}-{i}"),
                        amount: i,
                    };
                    let outcome = engine
                        .decide(&decision)
                        .await
                        .unwrap_or_else(|e| panic!("a decision failed: {e}"));
                    assert_eq!(
                        outcome.attempts, 1,
                        "decisions on distinct keys never conflict"
                    );
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap_or_else(|e| panic!("a submitter failed: {e}"));
        }
    })
    .await
}

/// Writes `events` deposits on one account, 1000 per append; returns the account.
pub async fn preload<S: EventStore>(store: &S, events: u64) -> String {
    let account = prefix("fold");
    let mut written = 0;
    while written < events {
        let n = (events - written).min(1000);
        let batch = (0..n).map(|i| deposit(&account, written + i)).collect();
        store
            .append(batch, None)
            .await
            .unwrap_or_else(|e| panic!("preload failed: {e}"));
        written += n;
    }
    account
}

/// Folds the account's state from its `events` events (read, decode, apply).
pub async fn fold<S: EventStore>(engine: &Engine<S>, account: &str, events: u64) -> Rate {
    rate(events, async {
        let (state, _) = engine
            .load(Account::new(account))
            .await
            .unwrap_or_else(|e| panic!("fold failed: {e}"));
        assert_eq!(state.deposits, events, "the fold saw every event");
    })
    .await
}
