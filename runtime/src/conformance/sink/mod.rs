//! The contract of an exactly-once projection sink: a [`Sink`] that moves a read model and
//! its checkpoint (and its dead letters) in one transaction, for the adapters that offer
//! one.
//!
//! The read model is fixed, so that one set of cases serves every adapter: a projection
//! named [`NAME`] over the events of type [`TAGGED`] ([`query`]) that counts them per tag
//! (`key=value`), and records each position it applies in a table whose primary key is
//! the position, so that applying an event twice fails. Once it has written an event's
//! effects it asks [`Faults::after_writing`] whether to fail, so that every failure leaves
//! writes behind for the sink to undo. An adapter writes that projection for its sink and
//! a [`SinkHarness`] around a fresh store; then
//! [`projection_sink_conformance_tests!`](crate::projection_sink_conformance_tests) runs
//! every case:
//!
//! | case | what it checks |
//! | --- | --- |
//! | [`dropped_before_commit`] | a sink dropped before its commit leaves nothing behind; a redelivered event is skipped |
//! | [`failures_mid_batch`] | failures mid-batch apply nothing twice and lose nothing |
//! | [`dead_letter_with_checkpoint`] | a dead letter commits with the checkpoint, and a replay removes it |
//! | [`batch_started_over`] | a batch started over removes the dead letter of an event it applies |
//!
//! The helpers ([`append`], [`expected`], [`options`], ...) are public for the adapter's
//! own projection tests.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod cases;

pub use cases::{
    batch_started_over, dead_letter_with_checkpoint, dropped_before_commit, failures_mid_batch,
};

use super::support::{event, lock, types};
use crate::decide::RetryPolicy;
use crate::listen::{
    DeadLetter, HandlerError, ListenerStore, OnFailure, Sink, SubscriptionOptions,
};
use crate::model::{Position, Query, StoredEvent};
use crate::store::EventStore;

/// The name of the kit's projection, under which its checkpoint and dead letters are kept.
pub const NAME: &str = "tag_counts";

/// The type of the events the projection applies.
pub const TAGGED: &str = "Tagged";

/// The colors [`append_from`] tags its events with, in turn.
const COLORS: [&str; 3] = ["red", "green", "blue"];

/// The read model: the counts per tag (`key=value`, sorted), and the positions applied
/// (sorted).
pub type ReadModel = (Vec<(String, i64)>, Vec<u64>);

/// A fresh store and the kit's projection in a sink on it, for the cases.
pub trait SinkHarness {
    /// The store the sink keeps its checkpoint and dead letters in.
    type Store: ListenerStore + Clone + 'static;
    /// The exactly-once sink of the kit's projection.
    type Sink: Sink + 'static;

    /// The store, empty when the case begins.
    fn store(&self) -> &Self::Store;

    /// A new sink of the projection on [`store`](SinkHarness::store), failing as `faults`
    /// say.
    fn sink(&self, faults: &Faults) -> impl Future<Output = Self::Sink>;

    /// The read model as the store holds it now, committed work only.
    fn read_model(&self) -> impl Future<Output = ReadModel>;
}

/// Where the projection fails, shared between a case and the sinks it builds.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Positions that fail permanently, until [`repair`](Faults::repair).
    broken: Arc<Mutex<HashSet<Position>>>,
    /// Positions that fail transiently this many more times.
    flaky: Arc<Mutex<HashMap<Position, u32>>>,
}

impl Faults {
    /// Makes the event at `position` fail permanently, after writing, until repaired.
    pub fn break_at(&self, position: Position) {
        lock(&self.broken).insert(position);
    }

    /// Makes the event at `position` fail transiently, after writing, `times` more times.
    pub fn flake_at(&self, position: Position, times: u32) {
        lock(&self.flaky).insert(position, times);
    }

    /// Ends every permanent failure.
    pub fn repair(&self) {
        lock(&self.broken).clear();
    }

    /// What the projection returns once it has written the effects of the event at
    /// `position`: the failure due there, if any.
    pub fn after_writing(&self, position: Position) -> Result<(), HandlerError> {
        if lock(&self.broken).contains(&position) {
            return Err(HandlerError::permanent(format!(
                "broken on purpose at {position}"
            )));
        }
        if let Some(left) = lock(&self.flaky).get_mut(&position)
            && *left > 0
        {
            *left -= 1;
            return Err(HandlerError::transient("flaky on purpose"));
        }
        Ok(())
    }
}

/// The projection's query: the events of type [`TAGGED`].
pub fn query() -> Query {
    types(&[TAGGED])
}

/// Batches of 4, two quick retries, and a poll interval (30 s) no case waits for.
pub fn options(on_failure: OnFailure) -> SubscriptionOptions {
    SubscriptionOptions {
        batch: 4,
        retry: RetryPolicy {
            max_retries: 2,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        },
        on_failure,
        poll_interval: Duration::from_secs(30),
    }
}

/// Appends `n` [`TAGGED`] events tagged `color` red, green, blue in turn, each with an
/// event of another type beside it; returns the positions of the [`TAGGED`] ones.
pub async fn append<S: EventStore>(store: &S, n: usize) -> Vec<Position> {
    append_from(store, 0, n).await
}

/// Like [`append`], the first being the `start`-th [`TAGGED`] event (its color goes on
/// from there).
pub async fn append_from<S: EventStore>(store: &S, start: usize, n: usize) -> Vec<Position> {
    let mut positions = Vec::new();
    for i in start..start + n {
        let color = COLORS[i % COLORS.len()];
        let appended = store
            .append(
                vec![
                    event(TAGGED, &[("color", color)]),
                    event("Other", &[("color", "red")]),
                ],
                None,
            )
            .await
            .unwrap_or_else(|e| panic!("appending a {TAGGED} event failed: {e}"));
        positions.push(appended.positions[0]);
    }
    positions
}

/// The read model after applying `applied`, of the [`TAGGED`] positions `all` that
/// [`append`] returned.
pub fn expected(all: &[Position], applied: &[Position]) -> ReadModel {
    let mut counts: HashMap<String, i64> = HashMap::new();
    for (i, p) in all.iter().enumerate() {
        if applied.contains(p) {
            *counts
                .entry(format!("color={}", COLORS[i % COLORS.len()]))
                .or_default() += 1;
        }
    }
    let mut counts: Vec<(String, i64)> = counts.into_iter().collect();
    counts.sort();
    let mut applied: Vec<u64> = applied.iter().map(|p| p.0).collect();
    applied.sort_unstable();
    (counts, applied)
}

/// The events the projection applies, in order.
pub async fn tagged_events<S: EventStore>(store: &S) -> Vec<StoredEvent> {
    cases::matching(store, &query()).await
}

/// The projection's stored checkpoint.
pub async fn stored_checkpoint<S: ListenerStore>(store: &S) -> Option<Position> {
    store
        .load_checkpoint(NAME)
        .await
        .unwrap_or_else(|e| panic!("loading the checkpoint of {NAME} failed: {e}"))
}

/// The dead letters of `listener`, or of every listener.
pub async fn letters<S: ListenerStore>(store: &S, listener: Option<&str>) -> Vec<DeadLetter> {
    store
        .dead_letters(listener)
        .await
        .unwrap_or_else(|e| panic!("reading the dead letters failed: {e}"))
}

/// Expands to one `#[test]` per case of the projection-sink contract
/// ([`conformance::sink`](crate::conformance::sink)), run against the harnesses `make()`
/// gives: an expression callable with no argument that returns a future of a fresh
/// [`SinkHarness`]. Like [`conformance_tests!`](crate::conformance_tests), each test runs on
/// its own two-worker tokio runtime.
#[macro_export]
macro_rules! projection_sink_conformance_tests {
    ($make:expr $(,)?) => {
        $crate::conformance_tests!(@cases_in [$crate::conformance::sink] ($make)
            dropped_before_commit
            failures_mid_batch
            dead_letter_with_checkpoint
            batch_started_over
        );
    };
}
