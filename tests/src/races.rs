//! Stores that stage the races the append condition exists for, on every run: another
//! writer between a decision's read and its append, or every decider reading before
//! any appends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use factum::store::{AppendError, AppendRequest, Appended, EventStore, StoreError, StoreLayer};
use factum::{AppendCondition, NewEvent, Query, ReadOptions, StoredEvent};
use futures::Stream;

/// A store that lets another writer append one event between a decision's read and its
/// append, the first `times` times.
#[derive(Clone)]
pub struct Interfering<S> {
    /// The store, to which every call goes.
    pub inner: S,
    event: Arc<dyn Fn() -> NewEvent + Send + Sync>,
    times: Arc<AtomicU32>,
    armed: Arc<AtomicBool>,
}

/// `inner`, where `event` is appended between a read and the next append, `times` times.
pub fn interfering<S>(
    inner: S,
    times: u32,
    event: impl Fn() -> NewEvent + Send + Sync + 'static,
) -> Interfering<S> {
    Interfering {
        inner,
        event: Arc::new(event),
        times: Arc::new(AtomicU32::new(times)),
        armed: Arc::new(AtomicBool::new(false)),
    }
}

impl<S: EventStore> StoreLayer for Interfering<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.inner
    }

    /// Arms the interference (reads in place would bypass it: `visit_in_place` keeps
    /// the layer's default, which visits nothing).
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        self.armed.store(true, Ordering::SeqCst);
        self.inner.read(query, options)
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended, AppendError> {
        if self.armed.swap(false, Ordering::SeqCst)
            && self
                .times
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            self.inner.append(vec![(self.event)()], None).await?;
        }
        self.inner.append(events, condition).await
    }

    async fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        Ok(one_by_one(self, batch).await)
    }
}

/// A store whose first `n` appends wait until all `n` have been asked for: each of `n`
/// deciders has read before any of them appends, the widest race there is.
#[derive(Clone)]
pub struct AllReadFirst<S> {
    /// The store, to which every call goes.
    pub inner: S,
    gate: Arc<tokio::sync::Barrier>,
    waiting: Arc<AtomicUsize>,
}

impl<S> AllReadFirst<S> {
    /// `inner`, holding the first `deciders` appends until all of them arrived.
    pub fn new(inner: S, deciders: usize) -> Self {
        AllReadFirst {
            inner,
            gate: Arc::new(tokio::sync::Barrier::new(deciders)),
            waiting: Arc::new(AtomicUsize::new(deciders)),
        }
    }
}

impl<S: EventStore> StoreLayer for AllReadFirst<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.inner
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended, AppendError> {
        if self
            .waiting
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.gate.wait().await;
        }
        self.inner.append(events, condition).await
    }

    async fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        Ok(one_by_one(self, batch).await)
    }
}

/// A batch through the layer's own `append`, one request after another, so its batches
/// meet the race too.
async fn one_by_one<L: StoreLayer>(
    layer: &L,
    batch: Vec<AppendRequest>,
) -> Vec<Result<Appended, AppendError>> {
    let mut results = Vec::new();
    for request in batch {
        results.push(StoreLayer::append(layer, request.events, request.condition).await);
    }
    results
}
