use std::collections::{HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use super::Drain;
use super::job::{Held, Job, LaneCtx, Step};
use super::settle::keys_of;
use super::warm::{Cold, Entry, WarmStates, warm_up};
use crate::decide::{Engine, MemberKey};
use crate::model::Position;
use crate::store::{AppendRequest, EventStore, StoreError};
use crate::telemetry;

/// What a lane's queue holds.
pub(crate) enum Queued<S> {
    /// A decision to decide and commit.
    Decision(Work<S>),
    /// A hot key moving to a lane of its own: signalled once everything queued here
    /// before it has committed (or been answered), so that the new lane may start and
    /// the key never runs in two lanes at once.
    HandOver(oneshot::Sender<()>),
}

/// A queued decision.
pub(crate) type Work<S> = Box<dyn Job<S>>;

impl<S> Queued<S> {
    /// Answers it without running it: the lane is stopping.
    fn stopped(self) {
        match self {
            Queued::Decision(job) => job.stopped(),
            // Dropped, the signal lets the new lane start: nothing is left to wait for.
            Queued::HandOver(_) => {}
        }
    }
}

/// One serial lane: takes what queued up, decides it on warm states one after another,
/// commits it in one store transaction, answers, repeats.
pub(crate) struct Lane<S> {
    pub(crate) id: usize,
    pub(crate) ctx: LaneCtx<S>,
    pub(crate) queue: mpsc::Receiver<Queued<S>>,
    pub(crate) closing: watch::Receiver<Option<Drain>>,
    pub(crate) max_batch: usize,
    /// A lane taking over a hot key from another starts once the other has committed
    /// what it had queued for the key.
    pub(crate) start_after: Option<oneshot::Receiver<()>>,
}

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
                lane: id,
                engine,
                warm: WarmStates::new(warm_states),
                batch: Vec::new(),
            },
            queue,
            closing,
            max_batch: max_batch.max(1),
            start_after: None,
        }
    }

    pub(crate) async fn run(mut self) {
        if let Some(start) = self.start_after.take() {
            // An error only means the other lane is gone: nothing to wait for.
            let _ = start.await;
        }
        let mut carry: VecDeque<Queued<S>> = VecDeque::new();
        loop {
            if *self.closing.borrow() == Some(Drain::Reject) {
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
            let take = carry.len().min(self.max_batch);
            let mut jobs = Vec::with_capacity(take);
            let mut hand_overs = Vec::new();
            for queued in carry.drain(..take) {
                match queued {
                    Queued::Decision(job) => jobs.push(job),
                    Queued::HandOver(signal) => hand_overs.push(signal),
                }
            }
            let mut again = Vec::new();
            telemetry::lane_queue(self.id, self.queue.len());
            let span = tracing::debug_span!("lane_batch", lane = self.id, size = jobs.len());
            let batch =
                AssertUnwindSafe(self.batch(jobs, &mut again).instrument(span)).catch_unwind();
            let panicked = batch.await.is_err();
            if panicked {
                // Store code panicked mid-batch: its decisions were dropped unanswered
                // (their callers get `LaneFailed`); what the warm states hold is unknown.
                tracing::error!(
                    lane = self.id,
                    "a batch panicked; its decisions are lost to their callers"
                );
                self.ctx.warm.clear();
                self.ctx.batch.clear();
            }
            // A hand-over waits for what this batch sends back to be decided again; after
            // a panic it goes at once, so a batch that keeps panicking cannot hold the
            // key's new lane back for good (what runs in both lanes meanwhile is still
            // guarded by its append condition).
            let waiting: Vec<Queued<S>> = if again.is_empty() || panicked {
                for signal in hand_overs {
                    // An error only means the new lane is gone.
                    let _ = signal.send(());
                }
                Vec::new()
            } else {
                hand_overs.into_iter().map(Queued::HandOver).collect()
            };
            let again = again.into_iter().map(Queued::Decision);
            for queued in again.chain(waiting).rev() {
                carry.push_front(queued);
            }
        }
        // Whatever is left is answered, never dropped: a rejecting shutdown, or a
        // dispatcher gone.
        self.queue.close();
        while let Some(queued) = carry.pop_front() {
            queued.stopped();
        }
        while let Some(queued) = self.queue.recv().await {
            queued.stopped();
        }
        tracing::debug!(lane = self.id, "lane stopped");
    }

    /// The next queued decision, or `None` once the dispatcher is closing and the queue
    /// is empty (or it is rejecting queued work, which `run` then does).
    async fn next(&mut self) -> Option<Queued<S>> {
        loop {
            let closing = *self.closing.borrow();
            if let Some(drain) = closing {
                self.queue.close();
                if drain == Drain::Reject {
                    return None;
                }
                return self.queue.recv().await;
            }
            let changed = {
                let closing = self.closing.changed();
                let next = self.queue.recv();
                match futures::future::select(std::pin::pin!(next), std::pin::pin!(closing)).await {
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

    /// Decides `jobs` one after another and commits what they decided together. Jobs to
    /// decide again (in the next batch, first) go to `again`.
    async fn batch(&mut self, jobs: Vec<Work<S>>, again: &mut Vec<Work<S>>) {
        let engine = self.ctx.engine.clone();
        let counters = engine.counters();
        // The idempotency lookup and the read of the cold states go to the store
        // together: one round trip's wait instead of two.
        let cold = self.cold_states(&jobs);
        let keys = keys_of(&jobs);
        let floor = self.ctx.warm.highest();
        let lookup = async {
            if keys.is_empty() {
                Ok(Vec::new())
            } else {
                engine.store().find_idempotency_keys(&keys).await
            }
        };
        let (found, warmed) = futures::join!(lookup, warm_up(&engine, cold, floor, self.id));
        for (cold, valid) in warmed {
            let entry = Entry::new(cold.state, cold.start, valid, Vec::new());
            self.ctx.warm.put(cold.key, entry);
        }
        let jobs = self.replay_duplicates(jobs, found).await;

        self.ctx.batch.clear();
        let mut requests: Vec<AppendRequest> = Vec::new();
        let mut deciders: Vec<(Work<S>, Vec<MemberKey>)> = Vec::new();
        let mut provisional: Vec<MemberKey> = Vec::new();
        let mut held: Vec<(Work<S>, Held)> = Vec::new();
        let mut keys_in_batch: HashSet<String> = HashSet::new();
        for mut job in jobs {
            if let Some(key) = job.idempotency_key()
                && !keys_in_batch.insert(key.to_owned())
            {
                // Its twin commits first; then it is answered from the log.
                again.push(job);
                continue;
            }
            let step = AssertUnwindSafe(job.decide(&mut self.ctx))
                .catch_unwind()
                .await;
            match step {
                Ok(Step::Append {
                    request,
                    members,
                    provisional: touched,
                }) => {
                    requests.push(request);
                    deciders.push((job, members));
                    provisional.extend(touched);
                }
                Ok(Step::Answered) => {}
                Ok(Step::Held(waiting)) => held.push((job, waiting)),
                Ok(Step::Defer) => again.push(job),
                Err(_) => {
                    // The states it had taken out are gone with it; the others are intact.
                    tracing::error!(lane = self.id, "a decision panicked while deciding");
                    job.panicked();
                }
            }
        }

        let mut failed = vec![false; requests.len()];
        let mut written: Vec<Position> = Vec::new();
        if !requests.is_empty() {
            let size = requests.len();
            match engine.store().append_batch(requests).await {
                Ok(results) => {
                    counters.batches.fetch_add(1, Ordering::Relaxed);
                    telemetry::lane_batch(self.id, size);
                    tracing::debug!(lane = self.id, size, "batch committed");
                    for result in results.iter().flatten() {
                        written.extend_from_slice(&result.positions);
                    }
                    self.settle(deciders, results, &mut failed, again).await;
                }
                Err(e) => {
                    let shared = Arc::new(e);
                    failed.fill(true);
                    for (job, members) in deciders {
                        for key in &members {
                            self.ctx.warm.evict(key);
                        }
                        job.failed(StoreError::Batch(shared.clone()));
                    }
                }
            }
        }
        for key in &provisional {
            self.ctx.warm.evict(key);
        }
        self.ctx.warm.settle();
        self.ctx.batch.clear();
        written.sort_unstable();
        self.release_held(held, &failed, &written, again).await;
    }

    /// The states `jobs` will decide on that the lane does not hold warm, each once.
    fn cold_states(&self, jobs: &[Work<S>]) -> Vec<Cold> {
        let mut cold: Vec<Cold> = Vec::new();
        for job in jobs {
            job.cold_states(&self.ctx.warm, &mut cold);
        }
        // Two starts of one key: the first is read, the other decision reads its own.
        let mut seen = HashSet::new();
        cold.retain(|c| seen.insert(c.key.clone()));
        cold
    }
}
