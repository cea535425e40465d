use std::future::Future;

use std::ops::ControlFlow;

use futures::Stream;

use super::{AppendError, StoreError};
use super::{PartitionLocks, SnapshotStore};
use crate::model::{AppendCondition, NewEvent, Position, Query, StoredEvent};

/// Where a read starts, which way it goes and how much it returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Start at this position (inclusive): the lowest position for a forward read, the
    /// highest for a backward one. `None` starts at the beginning (or the end, backwards).
    pub from: Option<Position>,
    /// Newest first.
    pub backwards: bool,
    /// Return at most this many events.
    pub limit: Option<usize>,
}

impl ReadOptions {
    /// A forward read of everything.
    pub fn forward() -> Self {
        ReadOptions::default()
    }

    /// A forward read starting at `from` (inclusive).
    pub fn from(from: Position) -> Self {
        ReadOptions {
            from: Some(from),
            ..ReadOptions::default()
        }
    }

    /// The newest `limit` matching events, newest first.
    pub fn last(limit: usize) -> Self {
        ReadOptions {
            from: None,
            backwards: true,
            limit: Some(limit),
        }
    }
}

/// Positions given to the events of one append, in the order they were passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// One position per appended event, strictly increasing.
    pub positions: Vec<Position>,
}

impl Appended {
    /// The highest position written.
    pub fn last(&self) -> Option<Position> {
        self.positions.last().copied()
    }
}

/// One append of a batch passed to [`EventStore::append_batch`].
#[derive(Clone, Debug, PartialEq)]
pub struct AppendRequest {
    /// The events, appended together or not at all.
    pub events: Vec<NewEvent>,
    /// The condition this append alone is checked against.
    pub condition: Option<AppendCondition>,
    /// Earlier requests of the same batch (by index) whose events this one was decided
    /// after, as a serial lane does when it decides queued decisions one after another
    /// before committing them together. Their events never violate this request's
    /// condition (its decision saw them); if one of them failed, this request fails too,
    /// with [`AppendError::Dependency`], and writes nothing (its decision relied on
    /// events that do not exist). An index that is not below the request's own also
    /// fails it with [`AppendError::Dependency`]. Empty for an independent request.
    pub builds_on: Vec<usize>,
}

impl AppendRequest {
    /// A request to append `events` under `condition`, independent of the rest of its
    /// batch.
    pub fn new(events: Vec<NewEvent>, condition: Option<AppendCondition>) -> Self {
        AppendRequest {
            events,
            condition,
            builds_on: Vec::new(),
        }
    }

    /// The request, decided after the events of the batch's requests at `indexes`.
    pub fn building_on(mut self, indexes: impl IntoIterator<Item = usize>) -> Self {
        self.builds_on.extend(indexes);
        self
    }
}

/// An append-only log of events with one global order and conditional appends.
///
/// A store also says where it keeps snapshots ([`SnapshotStore`]) and whether it has
/// partition locks ([`PartitionLocks`]); both have defaults for a store that has
/// neither. A store that wraps another (to measure it, delay it, fail it in a test) is
/// written as a [`StoreLayer`](super::StoreLayer) and forwards what it does not change.
///
/// Every implementation must pass the conformance suite in `factum::conformance`
/// (feature `conformance`).
pub trait EventStore: SnapshotStore + PartitionLocks + Send + Sync {
    /// The events matching `query`, in position order (or reverse order for a backward
    /// read), as a stream.
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a;

    /// For stores that hold their events in memory: calls `visit` with each event
    /// [`EventStore::read`] would return, in order, in place (no copy per event), until
    /// it breaks, and returns `true`. Every other store keeps the default, which returns
    /// `false` without calling `visit`; callers then read the stream.
    ///
    /// The engine folds states through it. It is synchronous on purpose: the visitor
    /// never lives across an `.await`, so the futures of callers stay `Send`.
    fn visit_in_place(
        &self,
        query: &Query,
        options: ReadOptions,
        visit: &mut dyn FnMut(&StoredEvent) -> ControlFlow<()>,
    ) -> bool {
        let _ = (query, options, visit);
        false
    }

    /// Appends `events` atomically if `condition` holds: no event matching its query exists
    /// after its position. Without a condition the append always succeeds. Writes nothing
    /// on error.
    ///
    /// Idempotency keys: every distinct recorded key the events carry is recorded with
    /// the append, once per store — the part of `metadata.idempotency_key` before its
    /// first `U+001F` ([`recorded_key`](crate::model::idempotency::recorded_key); what
    /// follows is a fingerprint the events keep but the store does not compare). If one
    /// was recorded before, the append writes nothing and fails with
    /// [`AppendError::Duplicate`], naming that recorded key and the positions the first
    /// append wrote (checked before the condition).
    ///
    /// The default appends a batch of this one request ([`EventStore::append_batch`]);
    /// a store with a cheaper path for one append overrides it.
    fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> impl Future<Output = Result<Appended, AppendError>> + Send {
        async move {
            let results = self
                .append_batch(vec![AppendRequest::new(events, condition)])
                .await?;
            alone(results)
        }
    }

    /// Appends several requests in order, each checked against its own condition as if
    /// it were appended alone right after the requests before it (so a request's
    /// condition sees the events of the earlier ones that succeeded). A request that
    /// fails writes nothing and does not stop the others. Returns one result per
    /// request, in order; the outer error means the batch as a whole failed and wrote
    /// nothing.
    ///
    /// Durable stores commit the whole batch in one transaction (one disk sync for many
    /// appends): the basis of group commit.
    fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> impl Future<Output = Result<Vec<Result<Appended, AppendError>>, StoreError>> + Send;

    /// The highest position written so far, if any.
    fn head(&self) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send;

    /// For each of `keys`, the positions written by the append that recorded it as an
    /// idempotency key (the positions [`AppendError::Duplicate`] would name), or `None`
    /// when no append recorded it. One result per key, in order. A key is looked up by
    /// its recorded part, as appends record it.
    fn find_idempotency_keys(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Vec<Position>>>, StoreError>> + Send;
}

/// The result of a batch of one request.
fn alone(results: Vec<Result<Appended, AppendError>>) -> Result<Appended, AppendError> {
    results
        .into_iter()
        .next()
        .unwrap_or_else(|| Err(missing_result()))
}

/// The result of a request a store's `append_batch` returned none for: fewer results
/// than requests.
pub(crate) fn missing_result() -> AppendError {
    AppendError::Store(StoreError::backend(MissingResult))
}

/// A store returned fewer results than requests.
#[derive(Debug, thiserror::Error)]
#[error("the store returned no result for this request of its batch")]
struct MissingResult;
