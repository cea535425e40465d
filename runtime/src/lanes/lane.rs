use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::{mpsc, watch};

use super::Drain;
use super::job::{Job, LaneCtx, Step};
use super::warm::WarmStates;
use crate::decide::{Engine, MemberKey};
use crate::store::{AppendError, AppendRequest, EventStore, StoreError};

pub(crate) type Queued<S> = Box<dyn Job<S>>;

/// One serial lane: takes what queued up, decides it on warm states one after another,
/// commits it in one store transaction, answers, repeats.
pub(crate) struct Lane<S> {
    pub(crate) id: usize,
    pub(crate) ctx: LaneCtx<S>,
    pub(crate) queue: mpsc::Receiver<Queued<S>>,
    pub(crate) closing: watch::Receiver<Option<Drain>>,
    pub(crate) max_batch: usize,
}

/// A batch failure shared by every decision of the batch.
#[derive(Debug, thiserror::Error)]
#[error("the batch this decision was committed in failed: {0}")]
struct BatchFailed(Arc<StoreError>);

impl<S: EventStore + Clone + 'static> Lane<S> {
    pub(crate) fn new(
        id: usize,
        engine: Engine<S>,
        queue: mpsc::Receiver<Queued<S>>,
        closing: watch::Receiver<Option<Drain>>,
        max_batch: usize,
        warm_states: usize,
    ) -> Self {
        Lane {
            id,
            ctx: LaneCtx {
                engine,
                warm: WarmStates::new(warm_states),
                batch: Vec::new(),
            },
            queue,
            closing,
            max_batch: max_batch.max(1),
        }
    }

    pub(crate) async fn run(mut self) {
        let mut carry: VecDeque<Queued<S>> = VecDeque::new();
        loop {
            if *self.closing.borrow() == Some(Drain::Reject) {
                self.queue.close();
                while let Some(job) = carry.pop_front() {
                    job.stopped();
                }
                while let Some(job) = self.queue.recv().await {
                    job.stopped();
                }
                break;
            }
            if carry.is_empty() {
                match self.next().await {
                    Some(job) => carry.push_back(job),
                    None => break,
                }
                continue;
            }
            while carry.len() < self.max_batch {
                match self.queue.try_recv() {
                    Ok(job) => carry.push_back(job),
                    Err(_) => break,
                }
            }
            self.batch(&mut carry).await;
        }
        tracing::debug!(lane = self.id, "lane stopped");
    }

    /// The next queued decision, or `None` once the dispatcher is closing and the queue
    /// is empty (or it is rejecting queued work, which `run` then does).
    async fn next(&mut self) -> Option<Queued<S>> {
        loop {
            if self.closing.borrow().is_some() {
                self.queue.close();
                if *self.closing.borrow() == Some(Drain::Reject) {
                    return None;
                }
                return self.queue.recv().await;
            }
            let changed = {
                let closing = self.closing.changed();
                let next = self.queue.recv();
                match futures::future::select(std::pin::pin!(next), std::pin::pin!(closing)).await
                {
                    futures::future::Either::Left((job, _)) => return job,
                    futures::future::Either::Right((changed, _)) => changed,
                }
            };
            if changed.is_err() {
                // The dispatcher is gone without a shutdown: finish the queue.
                self.queue.close();
                return self.queue.recv().await;
            }
        }
    }

    /// Decides up to `max_batch` queued decisions and commits them together.
    async fn batch(&mut self, carry: &mut VecDeque<Queued<S>>) {
        let take = carry.len().min(self.max_batch);
        let mut jobs: Vec<Queued<S>> = carry.drain(..take).collect();
        let engine = self.ctx.engine.clone();
        let counters = engine.counters();

        // Duplicates of decisions committed earlier are answered from the log.
        let keys: Vec<String> = jobs
            .iter()
            .filter_map(|j| j.idempotency_key().map(str::to_owned))
            .collect();
        if !keys.is_empty() {
            match engine.store().find_idempotency_keys(&keys).await {
                Ok(found) => {
                    let mut found = found.into_iter();
                    let mut kept = Vec::with_capacity(jobs.len());
                    for job in jobs {
                        let hit = match job.idempotency_key() {
                            Some(_) => found.next().flatten(),
                            None => None,
                        };
                        match hit {
                            Some(positions) => job.replay(&engine, positions).await,
                            None => kept.push(job),
                        }
                    }
                    jobs = kept;
                }
                Err(e) => {
                    let shared = Arc::new(e);
                    for job in jobs {
                        job.failed(StoreError::backend(BatchFailed(shared.clone())));
                    }
                    return;
                }
            }
        }

        self.ctx.batch.clear();
        let mut requests: Vec<AppendRequest> = Vec::new();
        let mut deciders: Vec<(Queued<S>, Vec<MemberKey>)> = Vec::new();
        let mut provisional: Vec<MemberKey> = Vec::new();
        let mut refused: Vec<Queued<S>> = Vec::new();
        let mut deferred: Vec<Queued<S>> = Vec::new();
        let mut keys_in_batch: HashSet<String> = HashSet::new();
        for mut job in jobs {
            if let Some(key) = job.idempotency_key()
                && !keys_in_batch.insert(key.to_owned())
            {
                // Its twin commits first; then it is answered from the log.
                deferred.push(job);
                continue;
            }
            match job.decide(&mut self.ctx).await {
                Step::Append {
                    request,
                    members,
                    provisional: touched,
                } => {
                    requests.push(request);
                    deciders.push((job, members));
                    provisional.extend(touched);
                }
                Step::Answered => {}
                Step::Rejected => refused.push(job),
                Step::Defer => deferred.push(job),
            }
        }

        if !requests.is_empty() {
            let size = requests.len();
            let results = engine.store().append_batch(requests).await;
            counters.batches.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(lane = self.id, size, "batch committed");
            match results {
                Ok(results) => self.settle(deciders, results, &mut deferred).await,
                Err(e) => {
                    let shared = Arc::new(e);
                    for (job, members) in deciders {
                        for key in &members {
                            self.ctx.warm.evict(key);
                        }
                        job.failed(StoreError::backend(BatchFailed(shared.clone())));
                    }
                }
            }
        }
        for key in &provisional {
            self.ctx.warm.evict(key);
        }
        self.ctx.warm.settle();
        self.ctx.batch.clear();

        // Refused decisions with an idempotency key: a duplicate may have committed
        // since the lookup (in another process), and then the first outcome is theirs.
        if !refused.is_empty() {
            let keys: Vec<String> = refused
                .iter()
                .filter_map(|j| j.idempotency_key().map(str::to_owned))
                .collect();
            match engine.store().find_idempotency_keys(&keys).await {
                Ok(found) => {
                    for (job, hit) in refused.into_iter().zip(found) {
                        match hit {
                            Some(positions) => {
                                counters.rejected.fetch_sub(1, Ordering::Relaxed);
                                job.replay(&engine, positions).await;
                            }
                            None => job.rejected(),
                        }
                    }
                }
                Err(_) => {
                    for job in refused {
                        job.rejected();
                    }
                }
            }
        }
        for job in deferred.into_iter().rev() {
            carry.push_front(job);
        }
    }

    async fn settle(
        &mut self,
        deciders: Vec<(Queued<S>, Vec<MemberKey>)>,
        results: Vec<Result<crate::store::Appended, AppendError>>,
        retry: &mut Vec<Queued<S>>,
    ) {
        let engine = self.ctx.engine.clone();
        let counters = engine.counters();
        // States touched by a failed request hold events that were never written.
        let mut spoiled: HashSet<MemberKey> = HashSet::new();
        for ((_, members), result) in deciders.iter().zip(&results) {
            if result.is_err() {
                spoiled.extend(members.iter().cloned());
            }
        }
        let mut results = results.into_iter();
        for (job, members) in deciders {
            let result = results.next().unwrap_or(Err(AppendError::Store(StoreError::backend(
                MissingResult,
            ))));
            match result {
                Ok(appended) => {
                    if let Some(last) = appended.last() {
                        for key in members.iter().filter(|k| !spoiled.contains(*k)) {
                            self.ctx.warm.validate(key, last);
                        }
                    }
                    counters.committed.fetch_add(1, Ordering::Relaxed);
                    job.committed(appended.positions);
                }
                Err(AppendError::Conflict {
                    position,
                    event_type,
                }) => {
                    counters.conflicts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(lane = self.id, %position, %event_type, "conflict in a batch, catching up");
                    if let Some(job) = job.conflicted(position, event_type) {
                        retry.push(job);
                    }
                }
                // It was decided after a request that failed: decide it again.
                Err(AppendError::Dependency { .. }) => retry.push(job),
                Err(AppendError::Duplicate { positions, .. }) => {
                    job.replay(&engine, positions).await
                }
                Err(AppendError::Store(e)) => job.failed(e),
                Err(e) => job.failed(StoreError::backend(e)),
            }
        }
        for key in &spoiled {
            self.ctx.warm.evict(key);
        }
    }
}

/// A store returned fewer results than requests.
#[derive(Debug, thiserror::Error)]
#[error("the store returned no result for this request of the batch")]
struct MissingResult;
