//! The engine: one decision at a time, read, decide, append under its condition, retry.

mod load;
mod replay;
mod stats;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::Instrument;

pub(crate) use stats::Counters;
pub use stats::EngineStats;

use super::prepare::prepare_events;
use super::{Context, Decide, DecideError, Outcome, answered};
use crate::model::idempotency::IdempotencyKey;
use crate::model::{AppendCondition, Codec, Position};
use crate::store::{AppendError, EventStore, StoreError};
use crate::telemetry;

/// Runs decisions against a store: read once, fold, decide, append under the condition
/// that nothing the decision relied on changed, retry on conflict per its policy.
///
/// Cloning an engine is cheap when the store is (a handle); clones share the counters
/// of [`Engine::stats`].
#[derive(Clone, Debug)]
pub struct Engine<S> {
    store: S,
    codec: Codec,
    stats: Arc<Counters>,
}

enum Attempt<D: Decide> {
    Done(Outcome<D::Event>),
    Conflict {
        position: Position,
        event_type: String,
    },
    /// Its idempotency key was recorded by an earlier append, at these positions.
    Duplicate(Vec<Position>),
}

impl<S: EventStore> Engine<S> {
    /// An engine over `store`, encoding payloads as JSON.
    pub fn new(store: S) -> Self {
        Engine {
            store,
            codec: Codec::default(),
            stats: Arc::default(),
        }
    }

    /// The engine with another payload codec for new events.
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The codec it encodes new events with.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The store it runs against.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Decides and commits `decision`, retrying on conflict per its retry policy.
    ///
    /// A domain error comes back untouched as [`DecideError::Domain`]; a conflict that
    /// outlasts the policy is [`DecideError::Conflict`]. Runs on tokio, with its timer
    /// enabled (as `#[tokio::main]` does), which the backoff between retries needs.
    pub async fn decide<D: Decide>(
        &self,
        decision: &D,
    ) -> Result<Outcome<D::Event>, DecideError<D::Error>> {
        self.decide_with(decision, &Context::default()).await
    }

    /// Like [`Engine::decide`], recording the correlation and causation ids of `context`
    /// in the metadata of every event the decision appends.
    ///
    /// A decision whose idempotency key was already committed is not decided again: it
    /// returns the first commit's outcome (`replayed`), read back from the store. So does
    /// one that lost a race with a concurrent duplicate, whether its append found the key
    /// taken or its decision was refused by a state that already holds the first commit.
    /// Keys are scoped by the decision's type; one committed by a decision of this type
    /// with other content (another fingerprint) is
    /// [`DecideError::IdempotencyKeyReused`], and appends nothing.
    pub async fn decide_with<D: Decide>(
        &self,
        decision: &D,
        context: &Context,
    ) -> Result<Outcome<D::Event>, DecideError<D::Error>> {
        let span = tracing::debug_span!("decide", decision = D::META.name);
        let started = Instant::now();
        let result = self.optimistic(decision, context).instrument(span).await;
        telemetry::answered(D::META.name, answered(&result), started);
        result
    }

    /// Like [`Engine::decide_with`], holding the store's lock on the decision's partition
    /// key ([`PartitionLocks::lock_partition`](crate::store::PartitionLocks::lock_partition)) around each read, decide and append, so that
    /// decisions on one key run one at a time across every process sharing the store. A
    /// decision without a partition key, or a store without such locks, runs as
    /// [`Engine::decide_with`] does.
    pub async fn decide_locked<D: Decide>(
        &self,
        decision: &D,
        context: &Context,
    ) -> Result<Outcome<D::Event>, DecideError<D::Error>> {
        let span = tracing::debug_span!("decide_locked", decision = D::META.name);
        let started = Instant::now();
        let result = async {
            let Some(key) = decision.partition_key() else {
                return self.optimistic(decision, context).await;
            };
            let Some(lock) = self.store.lock_partition(&key).await? else {
                tracing::debug!("the store has no partition locks, deciding optimistically");
                return self.optimistic(decision, context).await;
            };
            let result = self.optimistic(decision, context).await;
            lock.release().await;
            result
        }
        .instrument(span)
        .await;
        telemetry::answered(D::META.name, answered(&result), started);
        result
    }

    async fn optimistic<D: Decide>(
        &self,
        decision: &D,
        context: &Context,
    ) -> Result<Outcome<D::Event>, DecideError<D::Error>> {
        let key = decision.idempotency();
        if let Some(key) = &key
            && let Some(positions) = self.committed_key(key.recorded()).await?
        {
            return self.replay::<D>(Some(key), positions).await;
        }
        let mut delays = D::META.retry.delays();
        let mut attempts = 1;
        loop {
            let attempt = self
                .attempt(decision, key.as_ref(), context, attempts)
                .instrument(tracing::debug_span!("attempt", attempt = attempts));
            match attempt.await {
                Ok(Attempt::Done(outcome)) => return Ok(outcome),
                Ok(Attempt::Duplicate(positions)) => {
                    return self.replay::<D>(key.as_ref(), positions).await;
                }
                Ok(Attempt::Conflict {
                    position,
                    event_type,
                }) => match delays.next() {
                    Some(delay) => {
                        telemetry::retry(D::META.name);
                        tracing::debug!(attempts, %position, %event_type, ?delay, "conflict, retrying");
                        tokio::time::sleep(delay).await;
                        attempts += 1;
                    }
                    None => {
                        tracing::warn!(attempts, %position, %event_type, "still conflicting after the last retry, giving up");
                        return Err(DecideError::Conflict {
                            decision: D::META.name,
                            attempts,
                            position,
                            event_type,
                        });
                    }
                },
                // A concurrent duplicate may have committed between the key check and
                // the read: the state then refuses what the first request did. One with
                // other content under the key is reported as such, not as the refusal.
                Err(DecideError::Domain(e)) => {
                    if let Some(key) = &key
                        && let Some(positions) = self.committed_key(key.recorded()).await?
                    {
                        return self.replay::<D>(Some(key), positions).await;
                    }
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(DecideError::Domain(e));
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn attempt<D: Decide>(
        &self,
        decision: &D,
        key: Option<&IdempotencyKey>,
        context: &Context,
        attempts: u32,
    ) -> Result<Attempt<D>, DecideError<D::Error>> {
        let (state, last_read) = self.load(decision.state()).await?;
        // A refusal is counted by the caller, once it knows it is not a duplicate's.
        let events = decision.decide(&state).map_err(DecideError::Domain)?;
        if events.is_empty() {
            self.stats.committed.fetch_add(1, Ordering::Relaxed);
            return Ok(Attempt::Done(Outcome {
                events,
                positions: Vec::new(),
                attempts,
                replayed: false,
            }));
        }
        let new_events = prepare_events::<D>(&events, key, context, self.codec)?;
        // No condition when the validation query is empty: a decision reading no state (or
        // whose exclusions remove every type it reads) relied on no event.
        let condition = AppendCondition::guarding(D::validation_query(&state), last_read);
        match self.store.append(new_events, condition).await {
            Ok(appended) => {
                self.stats.committed.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(attempts, positions = ?appended.positions, "committed");
                Ok(Attempt::Done(Outcome {
                    events,
                    positions: appended.positions,
                    attempts,
                    replayed: false,
                }))
            }
            Err(AppendError::Conflict {
                position,
                event_type,
            }) => {
                self.stats.conflicts.fetch_add(1, Ordering::Relaxed);
                telemetry::conflict(D::META.name);
                Ok(Attempt::Conflict {
                    position,
                    event_type,
                })
            }
            Err(AppendError::Duplicate { positions, .. }) => Ok(Attempt::Duplicate(positions)),
            Err(AppendError::Unstorable(error)) => Err(DecideError::Unstorable {
                decision: D::META.name,
                error,
            }),
            Err(AppendError::Store(e)) => Err(e.into()),
            // Empty decisions return before appending, so a store saying "empty" is broken.
            Err(e) => Err(StoreError::backend(e).into()),
        }
    }
}
