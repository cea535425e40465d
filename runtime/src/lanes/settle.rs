//! What a lane does once a batch is decided: answers from the log for duplicates, the
//! results of the append for deciders, and a check against the log for held answers.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::FutureExt;

use super::job::Held;
use super::lane::{Lane, Work};
use crate::decide::{Engine, LoadError, MemberKey};
use crate::model::{Position, Query};
use crate::store::{AppendError, Appended, EventStore, ReadOptions, StoreError, missing_result};
use crate::telemetry;

impl<S: EventStore + Clone + 'static> Lane<S> {
    /// Answers from the log the decisions whose idempotency key already committed (per
    /// `found`, the lookup of their keys in order); returns the others.
    pub(super) async fn replay_duplicates(
        &mut self,
        jobs: Vec<Work<S>>,
        found: Result<Vec<Option<Vec<Position>>>, StoreError>,
    ) -> Vec<Work<S>> {
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
                        job.failed(StoreError::Batch(shared.clone()));
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

    pub(super) async fn settle(
        &mut self,
        deciders: Vec<(Work<S>, Vec<MemberKey>)>,
        results: Vec<Result<Appended, AppendError>>,
        failed: &mut [bool],
        again: &mut Vec<Work<S>>,
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
            let result = results.next().unwrap_or_else(|| Err(missing_result()));
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
                    conflicted(job, position, event_type, again);
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
    pub(super) async fn release_held(
        &mut self,
        held: Vec<(Work<S>, Held)>,
        failed: &[bool],
        written: &[Position],
        again: &mut Vec<Work<S>>,
    ) {
        let engine = self.ctx.engine.clone();
        let counters = engine.counters();
        let mut standing: Vec<(Work<S>, Held)> = Vec::new();
        for (mut job, waiting) in held {
            if waiting
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
        let (mut jobs, helds): (Vec<Work<S>>, Vec<Held>) = standing.into_iter().unzip();
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
                let shared = Arc::new(match e {
                    LoadError::Store(e) => e,
                    LoadError::Decode(e) => StoreError::Corrupt(e),
                });
                for job in jobs.drain(..) {
                    job.failed(StoreError::Batch(shared.clone()));
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
                    conflicted(job, position, event_type, again);
                }
                None if job.holds_refusal() && job.idempotency_key().is_some() => {
                    keyed_refusals.push(job)
                }
                None => job.release(counters),
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
pub(super) fn keys_of<S>(jobs: &[Work<S>]) -> Vec<String> {
    jobs.iter()
        .filter_map(|j| j.idempotency_key().map(str::to_owned))
        .collect()
}

/// Answers `job` with the first outcome of its idempotency key (or, when that was
/// committed with other content, `IdempotencyKeyReused`); a panic while decoding it (user
/// code: upcasters, serde) costs only this decision (its caller gets `LaneFailed`).
async fn replay_guarded<S: EventStore + Clone + 'static>(
    job: Work<S>,
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

/// Counts `job`'s conflict, and queues it to be decided again if its retries allow.
fn conflicted<S>(job: Work<S>, position: Position, event_type: String, again: &mut Vec<Work<S>>) {
    let decision = job.decision();
    telemetry::conflict(decision);
    if let Some(job) = job.conflicted(position, event_type) {
        telemetry::retry(decision);
        again.push(job);
    }
}
