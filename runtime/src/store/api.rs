use std::future::Future;

use futures::Stream;

use super::{AppendError, StoreError};
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

/// An append-only log of events with one global order and conditional appends.
///
/// Every implementation must pass the conformance suite in
/// `factum::store::conformance` (feature `conformance`).
pub trait EventStore: Send + Sync {
    /// The events matching `query`, in position order (or reverse order for a backward
    /// read), as a stream.
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a;

    /// Appends `events` atomically if `condition` holds: no event matching its query exists
    /// after its position. Without a condition the append always succeeds. Writes nothing
    /// on error.
    fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> impl Future<Output = Result<Appended, AppendError>> + Send;

    /// The highest position written so far, if any.
    fn head(&self) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send;
}

impl<S: EventStore> EventStore for std::sync::Arc<S> {
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        (**self).read(query, options)
    }

    fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> impl Future<Output = Result<Appended, AppendError>> + Send {
        (**self).append(events, condition)
    }

    fn head(&self) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send {
        (**self).head()
    }
}
