//! A store wrapper that simulates the trip of a commit to a remote database.
//!
//! The in-memory store answers in microseconds, so on a small machine concurrent
//! decisions rarely overlap and optimistic conflicts almost never show. Against a real
//! database an append travels for a while before the store checks its condition, and
//! any writer that gets in first meanwhile makes it conflict. [`Latency`] adds that trip
//! to every append, so demos and tests see the races a deployed service sees; count
//! them with the engine's [`stats`](factum::Engine::stats).
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
//! assert_eq!((engine.stats().committed, engine.stats().conflicts), (1, 0));
//! # });
//! ```

use std::time::Duration;

use factum::store::Appended;
use factum::store::StoreLayer;
use factum::{AppendCondition, AppendError, AppendRequest, EventStore, NewEvent, StoreError};

/// An [`EventStore`] that behaves like `inner`, except that each append waits `delay`
/// before the inner store checks its condition and writes.
///
/// Reads answer at once (think of a replica next door); only the commit travels. That
/// is the window in which a concurrent writer can invalidate what a decision read.
/// Clones share the inner store when its clones do (as [`factum::MemoryStore`]'s do).
#[derive(Clone, Debug)]
pub struct Latency<S> {
    inner: S,
    delay: Duration,
}

impl<S> Latency<S> {
    /// `inner`, with appends that take `delay` to reach it.
    pub fn new(inner: S, delay: Duration) -> Self {
        Latency { inner, delay }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// How long an append takes to reach the inner store.
    pub fn delay(&self) -> Duration {
        self.delay
    }
}

impl<S: EventStore> StoreLayer for Latency<S> {
    type Inner = S;

    // Latency is what a network adds to appends; reads stay as fast as the store.
    const READS_UNCHANGED: bool = true;

    fn inner(&self) -> &S {
        &self.inner
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended, AppendError> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.append(events, condition).await
    }

    async fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        // One trip for the whole batch: that is what batching buys.
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.inner.append_batch(batch).await
    }
}
