use std::collections::{HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};

use super::Drain;
use super::job::{Held, Job, LaneCtx, Step};
use super::warm::{Cold, Entry, WarmStates};
use crate::decide::{Engine, MemberKey};
use crate::model::{Position, Query};
use crate::store::{AppendError, AppendRequest, Appended, EventStore, ReadOptions, StoreError};

/// Most states read together when a batch warms up (one query of that many items).
const WARM_UP_CHUNK: usize = 64;

pub(crate) type Queued<S> = Box<dyn Job<S>>;

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

/// A batch failure shared by every decision of the batch.
#[derive(Debug, thiserror::Error)]
#[error("the batch this decision was committed in failed")]
struct BatchFailed(#[source] Arc<StoreError>);

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
            let jobs: Vec<Queued<S>> = carry.drain(..take).collect();
            let mut again = Vec::new();
            let batch = AssertUnwindSafe(self.batch(jobs, &mut again)).catch_unwind();
            if batch.await.is_err() {
                // Store code panicked mid-batch: its decisions were dropped unanswered
                // (their callers get `LaneFailed`); what the warm states hold is unknown.
                tracing::error!(
                    lane = self.id,
                    "a batch panicked; its decisions are lost to their callers"
                );
                self.ctx.warm.clear();
                self.ctx.batch.clear();
            }
            for job in again.into_iter().rev() {
                carry.push_front(job);
            }
        }
        // Whatever is left is answered, never dropped: a rejecting shutdown, or a
        // dispatcher gone.
        self.queue.close();
        while let Some(job) = carry.pop_front() {
            job.stopped();
        }
        while let Some(job) = self.queue.recv().await {
            job.stopped();
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
    async fn batch(&mut self, jobs: Vec<Queued<S>>, again: &mut Vec<Queued<S>>) {
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
        let mut deciders: Vec<(Queued<S>, Vec<MemberKey>)> = Vec::new();
        let mut provisional: Vec<MemberKey> = Vec::new();
        let mut held: Vec<(Queued<S>, Held)> = Vec::new();
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
        written.sort_unstable();
        self.release_held(held, &failed, &written, again).await;
    }

    /// The states `jobs` will decide on that the lane does not hold warm, each once.
    fn cold_states(&self, jobs: &[Queued<S>]) -> Vec<Cold> {
        let mut cold: Vec<Cold> = Vec::new();
        for job in jobs {
            job.cold_states(&self.ctx.warm, &mut cold);
        }
        // Two starts of one key: the first is read, the other decision reads its own.
        let mut seen = HashSet::new();
        cold.retain(|c| seen.insert(c.key.clone()));
        cold
    }

    /// Answers from the log the decisions whose idempotency key already committed (per
    /// `found`, the lookup of their keys in order); returns the others.
    async fn replay_duplicates(
        &mut self,
        jobs: Vec<Queued<S>>,
        found: Result<Vec<Option<Vec<Position>>>, StoreError>,
    ) -> Vec<Queued<S>> {
        let engine = self.ctx.engine.clone();
        let found = match found {
            Ok(found) => found,
            Err(e) => {
                // Without the lookup a keyed decision could commit twice: it fails, and
                // the others go on.
                let shared = Arc::new(e);
                let mut kept = Vec::with_capacity(jobs.len());
                for job in jobs {
                    if job.idempotency_key().is_some() {
                        job.failed(StoreError::backend(BatchFailed(shared.clone())));
                    } else {
                        kept.push(job);
                    }
                }
                return kept;
            }
        };
        let mut found = found.into_iter();
        let mut kept = Vec::with_capacity(jobs.len());
        for job in jobs {
            let hit = match job.idempotency_key() {
                Some(_) => found.next().flatten(),
                None => None,
            };
            match hit {
                Some(positions) => replay_guarded(job, &engine, positions).await,
                None => kept.push(job),
            }
        }
        kept
    }

    async fn settle(
        &mut self,
        deciders: Vec<(Queued<S>, Vec<MemberKey>)>,
        results: Vec<Result<Appended, AppendError>>,
        failed: &mut [bool],
        again: &mut Vec<Queued<S>>,
    ) {
        let engine = self.ctx.engine.clone();
        let counters = engine.counters();
        // States touched by a failed request hold events that were never written.
        let mut spoiled: HashSet<MemberKey> = HashSet::new();
        for (index, (_, members)) in deciders.iter().enumerate() {
            if !matches!(results.get(index), Some(Ok(_))) {
                spoiled.extend(members.iter().cloned());
            }
        }
        let mut results = results.into_iter();
        for (index, (job, members)) in deciders.into_iter().enumerate() {
            let result = results
                .next()
                .unwrap_or(Err(AppendError::Store(StoreError::backend(MissingResult))));
            if result.is_err() {
                failed[index] = true;
            }
            match result {
                Ok(appended) => {
                    if let Some(last) = appended.last() {
                        for key in members.iter().filter(|k| !spoiled.contains(*k)) {
                            self.ctx.warm.validate(key, index, last);
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
                        again.push(job);
                    }
                }
                // It was decided after a request that failed: decide it again.
                Err(AppendError::Dependency { .. }) => again.push(job),
                Err(AppendError::Duplicate { positions, .. }) => {
                    replay_guarded(job, &engine, positions).await
                }
                Err(AppendError::Unstorable(e)) => job.unstorable(e),
                Err(AppendError::Store(e)) => job.failed(e),
                Err(e) => job.failed(StoreError::backend(e)),
            }
        }
        for key in &spoiled {
            self.ctx.warm.evict(key);
        }
    }

    /// Answers the refusals and no-ops held until the batch settled. Those decided on
    /// events of a request that failed, or on warm states that an event from outside
    /// the batch (`written` holds the batch's own positions) made stale, are decided
    /// again: nothing guards an answer that appends nothing but this check.
    async fn release_held(
        &mut self,
        held: Vec<(Queued<S>, Held)>,
        failed: &[bool],
        written: &[Position],
        again: &mut Vec<Queued<S>>,
    ) {
        let engine = self.ctx.engine.clone();
        let counters = engine.counters();
        let mut standing: Vec<(Queued<S>, Held)> = Vec::new();
        let mut barriers = Vec::new();
        for (mut job, waiting) in held {
            if job.is_barrier() {
                barriers.push(job);
            } else if waiting
                .after
                .iter()
                .any(|&i| failed.get(i).copied().unwrap_or(true))
            {
                job.reset();
                again.push(job);
            } else {
                standing.push((job, waiting));
            }
        }

        // One read for all of them: anything of their queries past where their states
        // were complete that this batch did not write?
        let (mut jobs, helds): (Vec<Queued<S>>, Vec<Held>) = standing.into_iter().unzip();
        let mut stale: Vec<Option<(Position, String)>> = vec![None; helds.len()];
        let query = helds
            .iter()
            .fold(Query::none(), |q, h| q.union(h.query.clone()));
        if !query.is_none() {
            let from = helds
                .iter()
                .map(|h| h.position.map_or(Position(1), Position::next))
                .min()
                .unwrap_or(Position(1));
            let checked = engine
                .fold_events(&query, ReadOptions::from(from), |event| {
                    if written.binary_search(&event.position).is_err() {
                        for (h, seen) in helds.iter().zip(stale.iter_mut()) {
                            if seen.is_none()
                                && Some(event.position) > h.position
                                && h.query.matches_event(event)
                            {
                                *seen = Some((event.position, event.event_type.clone()));
                            }
                        }
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = checked {
                let shared = Arc::new(StoreError::backend(e));
                for job in jobs.drain(..) {
                    job.failed(StoreError::backend(BatchFailed(shared.clone())));
                }
            }
        }
        let mut keyed_refusals = Vec::new();
        for ((mut job, waiting), seen) in jobs.into_iter().zip(helds).zip(stale) {
            match seen {
                Some((position, event_type)) => {
                    // Decided on states another writer had moved past: read them afresh.
                    for key in &waiting.members {
                        self.ctx.warm.evict(key);
                    }
                    counters.conflicts.fetch_add(1, Ordering::Relaxed);
                    job.reset();
                    if let Some(job) = job.conflicted(position, event_type) {
                        again.push(job);
                    }
                }
                None if job.holds_refusal() && job.idempotency_key().is_some() => {
                    keyed_refusals.push(job)
                }
                None => job.release(counters),
            }
        }
        // A barrier waits for what this batch sends back to be decided again.
        for barrier in barriers {
            if again.is_empty() {
                barrier.release(counters);
            } else {
                again.push(barrier);
            }
        }
        if keyed_refusals.is_empty() {
            return;
        }
        // A duplicate may have committed since the lookup (in another process), and then
        // the state refused what the first request did: the first outcome is the answer.
        let keys = keys_of(&keyed_refusals);
        let mut found = engine
            .store()
            .find_idempotency_keys(&keys)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %crate::ErrorChain(&e), "cannot recheck idempotency keys of refused decisions");
                Vec::new()
            });
        found.resize(keys.len(), None);
        for (job, hit) in keyed_refusals.into_iter().zip(found) {
            match hit {
                Some(positions) => replay_guarded(job, &engine, positions).await,
                None => job.release(counters),
            }
        }
    }
}

/// The idempotency keys of `jobs` that have one, in order.
fn keys_of<S>(jobs: &[Queued<S>]) -> Vec<String> {
    jobs.iter()
        .filter_map(|j| j.idempotency_key().map(str::to_owned))
        .collect()
}

/// Answers `job` with the first outcome of its idempotency key (or, when that was
/// committed with other content, `IdempotencyKeyReused`); a panic while decoding it (user
/// code: upcasters, serde) costs only this decision (its caller gets `LaneFailed`).
async fn replay_guarded<S: EventStore + Clone + 'static>(
    job: Queued<S>,
    engine: &Engine<S>,
    positions: Vec<Position>,
) {
    if AssertUnwindSafe(job.replay(engine, positions))
        .catch_unwind()
        .await
        .is_err()
    {
        tracing::error!("decoding a replayed outcome panicked");
    }
}

/// A store returned fewer results than requests.
#[derive(Debug, thiserror::Error)]
#[error("the store returned no result for this request of the batch")]
struct MissingResult;

/// Reads `cold` states (those a batch needs and its lane does not hold warm) in one read
/// per [`WARM_UP_CHUNK`] states instead of one per decision, and returns each with the
/// position it is complete to: the read's last, or `floor` (everything up to it was
/// committed or read before the read began) if higher. A failed read leaves its states
/// out: each decision then reads its own.
async fn warm_up<S: EventStore>(
    engine: &Engine<S>,
    mut cold: Vec<Cold>,
    floor: Option<Position>,
    lane: usize,
) -> Vec<(Cold, Option<Position>)> {
    let mut warmed = Vec::with_capacity(cold.len());
    while !cold.is_empty() {
        let mut chunk: Vec<Cold> = cold.drain(..cold.len().min(WARM_UP_CHUNK)).collect();
        let query = chunk
            .iter()
            .fold(Query::none(), |q, c| q.union(c.state.member_query()));
        let mut last = None;
        let mut read = 0u64;
        let mut panicked = false;
        let folded = engine
            .fold_events(&query, ReadOptions::forward(), |event| {
                for cold in chunk.iter_mut() {
                    let member = &mut cold.state;
                    // A fold that panics leaves the chunk out; the decision needing it
                    // then reads it under its own guard and is answered `Panicked`.
                    match std::panic::catch_unwind(AssertUnwindSafe(|| member.fold_member(event))) {
                        Ok(folded) => folded?,
                        Err(_) => {
                            panicked = true;
                            return Ok(());
                        }
                    }
                }
                last = Some(event.position);
                read += 1;
                Ok(())
            })
            .await;
        if panicked {
            tracing::error!(lane, "a fold panicked while warming up states");
            continue;
        }
        engine
            .counters()
            .events_read
            .fetch_add(read, Ordering::Relaxed);
        match folded {
            Ok(()) => {
                let valid = last.max(floor);
                warmed.extend(chunk.into_iter().map(|cold| (cold, valid)));
            }
            Err(e) => {
                tracing::debug!(lane, error = %crate::ErrorChain(&e), "cannot warm up states, each decision reads its own")
            }
        }
    }
    warmed
}
