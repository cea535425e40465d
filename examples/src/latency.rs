//! A store wrapper that simulates the trip of a commit to a remote database, and counts
//! what reaches the store.
//!
//! The in-memory store answers in microseconds, so on a small machine concurrent
//! decisions rarely overlap and optimistic conflicts almost never show. Against a real
//! database an append travels for a while before the store checks its condition, and
//! any writer that gets in first meanwhile makes it conflict. [`Latency`] adds that trip
//! to every append, so demos and tests see the races a deployed service sees; its
//! [`calls`](Latency::calls) count every conflict, including those of decisions that
//! retried and then ended in a domain error (an error that carries no attempt count).
//!
//! ```
//! use std::time::Duration;
//! use factum::prelude::*;
//! use factum_examples::{courses::DefineCourse, latency::Latency};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let engine = Engine::new(Latency::new(MemoryStore::new(), Duration::from_millis(1)));
//! let define = DefineCourse { course: "rust-101".into(), capacity: 3 };
//! assert_eq!(engine.decide(&define).await.unwrap().positions, vec![Position(1)]);
//! assert_eq!(engine.store().calls().appends, 1);
//! # });
//! ```

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use factum::store::Appended;
use factum::{
    AppendCondition, AppendError, EventStore, NewEvent, Position, Query, ReadOptions, StoreError,
    StoredEvent,
};
use futures::Stream;

/// An [`EventStore`] that behaves like `inner`, except that each append waits `delay`
/// before the inner store checks its condition and writes. It counts the calls it
/// passes on.
///
/// Reads answer at once (think of a replica next door); only the commit travels. That
/// is the window in which a concurrent writer can invalidate what a decision read.
/// Clones share the counters, and the inner store when its clones do (as
/// [`factum::MemoryStore`]'s do).
#[derive(Clone, Debug)]
pub struct Latency<S> {
    inner: S,
    delay: Duration,
    counts: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    reads: AtomicU64,
    appends: AtomicU64,
    conflicts: AtomicU64,
}

/// What a [`Latency`] store saw, summed over all its clones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Calls {
    /// Reads started.
    pub reads: u64,
    /// Appends tried, successful or not.
    pub appends: u64,
    /// Appends refused because their condition failed: one per optimistic conflict.
    pub conflicts: u64,
}

impl<S> Latency<S> {
    /// `inner`, with appends that take `delay` to reach it.
    pub fn new(inner: S, delay: Duration) -> Self {
        Latency {
            inner,
            delay,
            counts: Arc::default(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The calls counted so far.
    pub fn calls(&self) -> Calls {
        Calls {
            reads: self.counts.reads.load(Ordering::Relaxed),
            appends: self.counts.appends.load(Ordering::Relaxed),
            conflicts: self.counts.conflicts.load(Ordering::Relaxed),
        }
    }
}

impl<S: EventStore> EventStore for Latency<S> {
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
        self.inner.read(query, options)
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended, AppendError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.counts.appends.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.append(events, condition).await;
        if let Err(AppendError::Conflict { .. }) = &result {
            self.counts.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn head(&self) -> impl Future<Output = Result<Option<Position>, StoreError>> + Send {
        self.inner.head()
    }
}
