use std::future::Future;

use std::ops::ControlFlow;

use futures::Stream;

use super::{AppendError, StoreError};
use crate::model::{AppendCondition, NewEvent, Payload, Position, Query, StoredEvent};

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

/// A lock on a partition key held in the store, released by [`PartitionLock::release`]
/// (or, failing that, when dropped: the release then runs on a spawned task).
///
/// See [`EventStore::lock_partition`].
#[must_use = "the lock is released when dropped"]
pub struct PartitionLock {
    release: Option<Release>,
}

type Release = Box<dyn FnOnce() -> futures::future::BoxFuture<'static, ()> + Send>;

impl PartitionLock {
    /// A held lock, released by running `release`.
    pub fn new<F>(release: impl FnOnce() -> F + Send + 'static) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        PartitionLock {
            release: Some(Box::new(move || Box::pin(release()))),
        }
    }

    /// Releases the lock and waits until the store has released it.
    pub async fn release(mut self) {
        if let Some(release) = self.release.take() {
            release().await;
        }
    }
}

impl Drop for PartitionLock {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => {
                    handle.spawn(release());
                }
                Err(_) => tracing::warn!(
                    "a partition lock was dropped outside a tokio runtime; the store releases it when its connection closes"
                ),
            }
        }
    }
}

impl std::fmt::Debug for PartitionLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLock")
            .field("held", &self.release.is_some())
            .finish()
    }
}

/// A state folded up to a position, kept so that a later load reads only what follows.
///
/// A snapshot is a cache, never the truth: the engine ignores one whose query differs
/// from the state's current query or whose payload no longer decodes, and rebuilds it
/// from the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Which state it holds: the state's name and ids (see `StateId::snapshot_key`).
    pub key: String,
    /// The query the state answers, as text; a snapshot for another query is stale.
    pub query: String,
    /// The position the folded state reflects: every matching event up to it, and no
    /// later one.
    pub position: Position,
    /// The encoded state.
    pub payload: Payload,
}

/// An append-only log of events with one global order and conditional appends.
///
/// Every implementation must pass the conformance suite in
/// `factum::conformance` (feature `conformance`).
pub trait EventStore: Send + Sync {
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
    fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> impl Future<Output = Result<Appended, AppendError>> + Send;

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

    /// Takes a lock on `key` that every process sharing the store respects, waiting
    /// while another holder has it: the store-lock strategy holds it around a decision's
    /// read, decide and append, so decisions on one partition key run one at a time
    /// across processes without conflicts. `Ok(None)` means the store has no such locks
    /// (the default); the caller then runs the decision optimistically.
    fn lock_partition(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<PartitionLock>, StoreError>> + Send {
        let _ = key;
        async { Ok(None) }
    }

    /// The snapshot saved under `key`, if any.
    fn load_snapshot(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;

    /// Saves `snapshot` under its key, replacing any earlier one (last writer wins: an
    /// older snapshot is still correct, only less useful).
    fn save_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<S: EventStore> EventStore for std::sync::Arc<S> {
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        (**self).read(query, options)
    }

    fn visit_in_place(
        &self,
        query: &Query,
        options: ReadOptions,
        visit: &mut dyn FnMut(&StoredEvent) -> ControlFlow<()>,
    ) -> bool {
        (**self).visit_in_place(query, options, visit)
    }

    fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> impl Future<Output = Result<Appended, AppendError>> + Send {
        (**self).append(events, condition)
    }

    fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> impl Future<Output = Result<Vec<Result<Appended, AppendError>>, StoreError>> + Send {
        (**self).append_batch(batch)
    }

    fn head(&self) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send {
        (**self).head()
    }

    fn find_idempotency_keys(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<Vec<Option<Vec<Position>>>, StoreError>> + Send {
        (**self).find_idempotency_keys(keys)
    }

    fn lock_partition(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<PartitionLock>, StoreError>> + Send {
        (**self).lock_partition(key)
    }

    fn load_snapshot(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send {
        (**self).load_snapshot(key)
    }

    fn save_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).save_snapshot(snapshot)
    }
}
