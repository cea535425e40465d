//! The store conformance suite against the in-memory store, one test per case, and proof
//! that the suite fails stores that break the contract.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};

use factum::store::conformance;
use factum::{
    AppendCondition, AppendError, EventStore, MemoryStore, NewEvent, Position, Query, ReadOptions,
    StoreError, StoredEvent,
};
use futures::Stream;

factum::conformance_tests!(|| async { MemoryStore::new() });

/// `run_all` on an `Arc` of the store: the blanket implementation passes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_an_arc() {
    conformance::run_all(|| async { std::sync::Arc::new(MemoryStore::new()) }).await;
}

// --- Broken stores the suite must reject -------------------------------------------------

/// Ignores append conditions.
#[derive(Clone, Default)]
struct IgnoresConditions(MemoryStore);

impl EventStore for IgnoresConditions {
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        self.0.read(query, options)
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        _condition: Option<AppendCondition>,
    ) -> Result<factum::store::Appended, AppendError> {
        self.0.append(events, None).await
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        self.0.head().await
    }
}

/// Appends a batch one event at a time, each under the condition, and ignores `limit`.
#[derive(Clone, Default)]
struct Sloppy(MemoryStore);

impl EventStore for Sloppy {
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        self.0.read(
            query,
            ReadOptions {
                limit: None,
                ..options
            },
        )
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<factum::store::Appended, AppendError> {
        if events.is_empty() {
            return Err(AppendError::Empty);
        }
        let mut positions = Vec::new();
        for event in events {
            let appended = self.0.append(vec![event], condition.clone()).await?;
            positions.extend(appended.positions);
        }
        Ok(factum::store::Appended { positions })
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        self.0.head().await
    }
}

/// Runs a case that must fail and returns its panic message.
fn failure_of(case: impl Future<Output = ()>) -> String {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let panic = catch_unwind(AssertUnwindSafe(|| runtime.block_on(case)))
        .expect_err("the conformance case accepted a broken store");
    panic.downcast_ref::<String>().cloned().unwrap_or_default()
}

#[test]
fn the_suite_rejects_ignored_conditions() {
    let message = failure_of(conformance::append_condition_without_position(
        IgnoresConditions::default(),
    ));
    assert!(
        message.contains("case `append_condition_without_position` failed"),
        "{message}"
    );
    let message = failure_of(conformance::append_condition_with_position(
        IgnoresConditions::default(),
    ));
    assert!(
        message.contains("append_condition_with_position"),
        "{message}"
    );
    let message = failure_of(conformance::concurrent_overlapping_conditions(
        IgnoresConditions::default(),
    ));
    assert!(
        message.contains("racing appends on one condition succeeded"),
        "{message}"
    );
    let message = failure_of(conformance::random_consistency(IgnoresConditions::default()));
    assert!(message.contains("DCB violated"), "{message}");
}

#[test]
fn the_suite_rejects_non_atomic_batches_and_ignored_limits() {
    let message = failure_of(conformance::multi_event_appends(Sloppy::default()));
    assert!(message.contains("multi_event_appends"), "{message}");
    let message = failure_of(conformance::read_options(Sloppy::default()));
    assert!(message.contains("limit"), "{message}");
}
