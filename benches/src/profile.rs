//! `--profile`: a store wrapper that counts the store calls of a run and the time spent
//! in them (from the call to the answer; for a read, to the end of its stream), so a
//! scenario's time can be split into round trips.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use factum::store::StoreLayer;
use factum::store::{Appended, PartitionLock};
use factum::{
    AppendCondition, AppendError, AppendRequest, EventStore, NewEvent, Position, Query,
    ReadOptions, StoreError, StoredEvent,
};
use futures::{Stream, StreamExt};
use serde::Serialize;

/// The store calls counted.
#[derive(Clone, Copy, Debug)]
pub enum Call {
    /// `read` (and `visit_in_place`, for the memory store).
    Read,
    /// `append`.
    Append,
    /// `append_batch`.
    AppendBatch,
    /// `find_idempotency_keys`.
    FindKeys,
    /// `lock_partition`, up to the lock being held.
    Lock,
}

const CALLS: [(Call, &str); 5] = [
    (Call::Read, "read"),
    (Call::Append, "append"),
    (Call::AppendBatch, "append_batch"),
    (Call::FindKeys, "find_idempotency_keys"),
    (Call::Lock, "lock_partition"),
];

/// Counts and times per call.
#[derive(Debug, Default)]
pub struct Profile {
    counts: [AtomicU64; 5],
    nanos: [AtomicU64; 5],
    /// Requests sent through `append_batch`.
    batched_requests: AtomicU64,
}

impl Profile {
    fn record(&self, call: Call, started: Instant) {
        let i = call as usize;
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.nanos[i].fetch_add(nanos, Ordering::Relaxed);
    }

    /// The figures so far, per `decisions` decisions.
    pub fn summary(&self, decisions: u64) -> Vec<CallFigures> {
        let per = decisions.max(1) as f64;
        CALLS
            .iter()
            .map(|&(call, name)| {
                let i = call as usize;
                let count = self.counts[i].load(Ordering::Relaxed);
                let ms = self.nanos[i].load(Ordering::Relaxed) as f64 / 1e6;
                CallFigures {
                    call: name,
                    count,
                    per_decision: count as f64 / per,
                    total_ms: ms,
                    mean_ms: if count > 0 { ms / count as f64 } else { 0.0 },
                }
            })
            .filter(|f| f.count > 0)
            .collect()
    }

    /// Requests sent through `append_batch`.
    pub fn batched_requests(&self) -> u64 {
        self.batched_requests.load(Ordering::Relaxed)
    }

    /// Forgets what was counted so far (calls made while setting a run up).
    pub fn reset(&self) {
        for counter in self.counts.iter().chain(&self.nanos) {
            counter.store(0, Ordering::Relaxed);
        }
        self.batched_requests.store(0, Ordering::Relaxed);
    }
}

/// One call's figures in a run.
#[derive(Clone, Debug, Serialize)]
pub struct CallFigures {
    /// The call.
    pub call: &'static str,
    /// How many.
    pub count: u64,
    /// How many per decision.
    pub per_decision: f64,
    /// Time inside them, summed over concurrent callers, in milliseconds.
    pub total_ms: f64,
    /// Mean time of one, in milliseconds.
    pub mean_ms: f64,
}

/// Records a call's time when dropped (a read stream's end).
struct Timer {
    profile: Arc<Profile>,
    call: Call,
    started: Instant,
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.profile.record(self.call, self.started);
    }
}

/// `inner`, with its calls counted and timed in `profile`.
#[derive(Clone, Debug)]
pub struct Timed<S> {
    inner: S,
    profile: Arc<Profile>,
}

impl<S> Timed<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, profile: Arc<Profile>) -> Self {
        Timed { inner, profile }
    }

    fn timer(&self, call: Call) -> Timer {
        Timer {
            profile: self.profile.clone(),
            call,
            started: Instant::now(),
        }
    }
}

impl<S: EventStore> StoreLayer for Timed<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.inner
    }

    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        let timer = self.timer(Call::Read);
        self.inner.read(query, options).map(move |item| {
            let _ = &timer;
            item
        })
    }

    fn visit_in_place(
        &self,
        query: &Query,
        options: ReadOptions,
        visit: &mut dyn FnMut(&StoredEvent) -> ControlFlow<()>,
    ) -> bool {
        let started = Instant::now();
        let done = self.inner.visit_in_place(query, options, visit);
        if done {
            self.profile.record(Call::Read, started);
        }
        done
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended, AppendError> {
        let _timer = self.timer(Call::Append);
        self.inner.append(events, condition).await
    }

    async fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        self.profile
            .batched_requests
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let _timer = self.timer(Call::AppendBatch);
        self.inner.append_batch(batch).await
    }

    async fn find_idempotency_keys(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<Position>>>, StoreError> {
        let _timer = self.timer(Call::FindKeys);
        self.inner.find_idempotency_keys(keys).await
    }

    async fn lock_partition(&self, key: &str) -> Result<Option<PartitionLock>, StoreError> {
        let _timer = self.timer(Call::Lock);
        self.inner.lock_partition(key).await
    }
}
