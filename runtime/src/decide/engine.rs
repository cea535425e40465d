use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::TryStreamExt;
use tracing::Instrument;
use uuid::Uuid;

use super::{Decide, DecideError, LoadError, StateSet};
use crate::model::idempotency::IdempotencyKey;
use crate::model::{
    AppendCondition, Codec, DecodeError, EventSet, Payload, Position, Query, StoredEvent,
};
use crate::store::{AppendError, EventStore, ReadOptions, Snapshot, StoreError};

/// What a committed decision did.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome<E> {
    /// The events it appended (empty when it decided nothing needed to happen).
    pub events: Vec<E>,
    /// Their positions, one per event.
    pub positions: Vec<Position>,
    /// How many read-decide-append attempts it took (1 without conflicts; 0 when
    /// replayed).
    pub attempts: u32,
    /// Whether this is the outcome of an earlier commit with the same idempotency key,
    /// returned without deciding again (and without appending anything).
    pub replayed: bool,
}

/// Where a decision comes from, recorded in the metadata of the events it appends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The id of the request or flow the decision belongs to.
    pub correlation_id: Option<Uuid>,
    /// The id of the event or command that caused it.
    pub causation_id: Option<Uuid>,
}

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

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) committed: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) conflicts: AtomicU64,
    pub(crate) events_read: AtomicU64,
    pub(crate) snapshots_restored: AtomicU64,
    pub(crate) snapshots_saved: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) batches: AtomicU64,
}

/// What an engine (and its clones) did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Decisions that committed (including those that decided nothing needs to happen).
    pub committed: u64,
    /// Decisions the domain rejected.
    pub rejected: u64,
    /// Appends refused by their condition, each followed by a retry or a
    /// [`DecideError::Conflict`]. Rejected decisions may have had conflicts too.
    pub conflicts: u64,
    /// Events read from the store to fold states (by decisions and [`Engine::load`]).
    pub events_read: u64,
    /// States restored from a snapshot instead of folded from the start.
    pub snapshots_restored: u64,
    /// Snapshots saved.
    pub snapshots_saved: u64,
    /// Decisions answered with the first outcome of their idempotency key.
    pub replayed: u64,
    /// Store transactions serial lanes committed (each holding one or more decisions).
    pub batches: u64,
}

impl EngineStats {
    /// What happened between `earlier` (an older reading of the same engine) and this
    /// reading.
    pub fn since(&self, earlier: &EngineStats) -> EngineStats {
        EngineStats {
            committed: self.committed.saturating_sub(earlier.committed),
            rejected: self.rejected.saturating_sub(earlier.rejected),
            conflicts: self.conflicts.saturating_sub(earlier.conflicts),
            events_read: self.events_read.saturating_sub(earlier.events_read),
            snapshots_restored: self
                .snapshots_restored
                .saturating_sub(earlier.snapshots_restored),
            snapshots_saved: self.snapshots_saved.saturating_sub(earlier.snapshots_saved),
            replayed: self.replayed.saturating_sub(earlier.replayed),
            batches: self.batches.saturating_sub(earlier.batches),
        }
    }
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

    /// Counts of committed and rejected decisions and of conflicts so far.
    pub fn stats(&self) -> EngineStats {
        EngineStats {
            committed: self.stats.committed.load(Ordering::Relaxed),
            rejected: self.stats.rejected.load(Ordering::Relaxed),
            conflicts: self.stats.conflicts.load(Ordering::Relaxed),
            events_read: self.stats.events_read.load(Ordering::Relaxed),
            snapshots_restored: self.stats.snapshots_restored.load(Ordering::Relaxed),
            snapshots_saved: self.stats.snapshots_saved.load(Ordering::Relaxed),
            replayed: self.stats.replayed.load(Ordering::Relaxed),
            batches: self.stats.batches.load(Ordering::Relaxed),
        }
    }

    /// Folds `states` from the store: one read of their union query, each event into
    /// every state whose query it matches. Returns the states and the position they
    /// reflect: every event of their queries up to it has been folded (`None` when
    /// nothing matched). The read side of a decision, also useful on its own to show a
    /// state.
    ///
    /// States that keep snapshots (`#[state(snapshot_every = N)]`) start from their
    /// snapshot when it is for the same query and still decodes, and the read starts
    /// after the oldest snapshot; a stale or undecodable snapshot is ignored (and soon
    /// replaced, as is one the store fails to load). A state that has folded `N` events
    /// past its snapshot gets a fresh one; a failure to save is logged, never fatal (a
    /// snapshot is only a cache). In a set that also holds a state without snapshots, the
    /// read starts at the beginning for that state's sake.
    pub async fn load<T: StateSet>(
        &self,
        mut states: T,
    ) -> Result<(T, Option<Position>), LoadError> {
        let query = states.read_query();
        if query.is_none() {
            return Ok((states, None));
        }
        if T::SNAPSHOTS {
            return self.load_with_snapshots(states, &query).await;
        }
        let mut last_read = None;
        let mut read = 0;
        self.fold_events(&query, ReadOptions::forward(), |event| {
            states.fold(event)?;
            last_read = Some(event.position);
            read += 1;
            Ok(())
        })
        .await?;
        self.stats.events_read.fetch_add(read, Ordering::Relaxed);
        Ok((states, last_read))
    }

    /// Hands `fold` every event of `query`: in place when the store can
    /// ([`EventStore::visit_in_place`]), from the read stream otherwise.
    pub(crate) async fn fold_events(
        &self,
        query: &Query,
        options: ReadOptions,
        mut fold: impl FnMut(&StoredEvent) -> Result<(), DecodeError>,
    ) -> Result<(), LoadError> {
        let mut failed = None;
        let in_place = self
            .store
            .visit_in_place(query, options, &mut |event| match fold(event) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            });
        if let Some(e) = failed {
            return Err(e.into());
        }
        if !in_place {
            let mut events = std::pin::pin!(self.store.read(query, options));
            while let Some(event) = events.try_next().await? {
                fold(&event)?;
            }
        }
        Ok(())
    }

    async fn load_with_snapshots<T: StateSet>(
        &self,
        mut states: T,
        query: &Query,
    ) -> Result<(T, Option<Position>), LoadError> {
        // Which states keep snapshots, under which key and for which query and start.
        let mut wanted: Vec<Option<(String, String)>> = Vec::new();
        states.visit_states(&mut |s| {
            let wants = s.policy().and_then(|_| Some((s.key(), s.query_text()?)));
            wanted.push(wants);
        });
        let mut found: Vec<Option<Snapshot>> = Vec::with_capacity(wanted.len());
        for want in &wanted {
            let snapshot = match want {
                // A snapshot is a cache: one the store cannot read is a miss, not a failure.
                Some((key, query)) => match self.store.load_snapshot(key).await {
                    Ok(found) => found.filter(|s| {
                        let same = &s.query == query;
                        if !same {
                            tracing::debug!(key, "snapshot of another query, ignored");
                        }
                        same
                    }),
                    Err(e) => {
                        tracing::warn!(key, error = %crate::ErrorChain(&e), "cannot load a snapshot, folding from the log");
                        None
                    }
                },
                None => None,
            };
            found.push(snapshot);
        }
        let mut restored = vec![Position(0); wanted.len()];
        let mut index = 0;
        states.visit_states(&mut |s| {
            if let Some(snapshot) = &found[index] {
                if snapshot.payload.codec == Codec::Json && s.restore(&snapshot.payload.bytes) {
                    restored[index] = snapshot.position;
                } else {
                    tracing::debug!(key = snapshot.key, "snapshot no longer decodes, rebuilding");
                }
            }
            index += 1;
        });
        let restored_count = restored.iter().filter(|p| p.0 > 0).count() as u64;
        self.stats
            .snapshots_restored
            .fetch_add(restored_count, Ordering::Relaxed);

        // Every state has all its events up to its snapshot: read after the oldest.
        let oldest = restored.iter().min().copied().unwrap_or(Position(0));
        let options = if oldest.0 > 0 {
            ReadOptions::from(oldest.next())
        } else {
            ReadOptions::forward()
        };
        let mut last_read = None;
        let mut read: u64 = 0;
        // Per state, the events read past its snapshot: what a new snapshot would save it.
        let mut past = vec![0u64; restored.len()];
        self.fold_events(query, options, |event| {
            states.fold_after(event, &mut restored.iter())?;
            for (count, after) in past.iter_mut().zip(&restored) {
                if event.position > *after {
                    *count += 1;
                }
            }
            last_read = Some(event.position);
            read += 1;
            Ok(())
        })
        .await?;
        self.stats.events_read.fetch_add(read, Ordering::Relaxed);
        // Each state now holds every event of its query up to the read's end, so the
        // newest snapshot position is as safe a bound as the last event read.
        let newest = restored.iter().max().copied().filter(|p| p.0 > 0);
        let reflects = last_read.max(newest);

        if let Some(position) = reflects {
            let mut fresh: Vec<Snapshot> = Vec::new();
            let mut index = 0;
            states.visit_states(&mut |s| {
                if let Some(policy) = s.policy()
                    && let Some((key, query)) = &wanted[index]
                    && past[index] >= policy.every
                    && position > restored[index]
                {
                    // Stored with the start it was folded from, not with what it holds now.
                    let key = key.clone();
                    match s.encode() {
                        Ok(bytes) => fresh.push(Snapshot {
                            key,
                            query: query.clone(),
                            position,
                            payload: Payload {
                                codec: Codec::Json,
                                bytes,
                            },
                        }),
                        Err(e) => {
                            tracing::warn!(key, error = %e, "cannot encode a snapshot")
                        }
                    }
                }
                index += 1;
            });
            for snapshot in fresh {
                let key = snapshot.key.clone();
                match self.store.save_snapshot(snapshot).await {
                    Ok(()) => {
                        self.stats.snapshots_saved.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!(key, error = %crate::ErrorChain(&e), "cannot save a snapshot")
                    }
                }
            }
        }
        Ok((states, reflects))
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
        self.optimistic(decision, context).instrument(span).await
    }

    /// Like [`Engine::decide_with`], holding the store's lock on the decision's partition
    /// key ([`EventStore::lock_partition`]) around each read, decide and append, so that
    /// decisions on one key run one at a time across every process sharing the store. A
    /// decision without a partition key, or a store without such locks, runs as
    /// [`Engine::decide_with`] does.
    pub async fn decide_locked<D: Decide>(
        &self,
        decision: &D,
        context: &Context,
    ) -> Result<Outcome<D::Event>, DecideError<D::Error>> {
        let span = tracing::debug_span!("decide_locked", decision = D::META.name);
        async {
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
        .await
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
            match self
                .attempt(decision, key.as_ref(), context, attempts)
                .await
            {
                Ok(Attempt::Done(outcome)) => return Ok(outcome),
                Ok(Attempt::Duplicate(positions)) => {
                    return self.replay::<D>(key.as_ref(), positions).await;
                }
                Ok(Attempt::Conflict {
                    position,
                    event_type,
                }) => match delays.next() {
                    Some(delay) => {
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

    /// The positions of the append that recorded idempotency key `key` (a recorded
    /// key, see [`IdempotencyKey::recorded`]), if any.
    pub(crate) async fn committed_key(
        &self,
        key: &str,
    ) -> Result<Option<Vec<Position>>, StoreError> {
        let mut found = self
            .store
            .find_idempotency_keys(std::slice::from_ref(&key.to_owned()))
            .await?;
        Ok(found.pop().flatten())
    }

    /// The outcome of the earlier commit that wrote `positions` under `key`, read back
    /// from the store; [`DecideError::IdempotencyKeyReused`] when one of its events
    /// carries `key` with another fingerprint (checked before anything is decoded).
    pub(crate) async fn replay<D: Decide>(
        &self,
        key: Option<&IdempotencyKey>,
        positions: Vec<Position>,
    ) -> Result<Outcome<D::Event>, DecideError<D::Error>> {
        let mut stored = Vec::with_capacity(positions.len());
        if let (Some(&first), Some(&last)) = (positions.first(), positions.last()) {
            let span = usize::try_from(last.0.saturating_sub(first.0) + 1).unwrap_or(usize::MAX);
            let options = ReadOptions {
                from: Some(first),
                backwards: false,
                limit: Some(span),
            };
            let all = Query::all();
            let mut stream = std::pin::pin!(self.store.read(&all, options));
            while let Some(event) = stream.try_next().await? {
                if positions.contains(&event.position) {
                    stored.push(event);
                }
            }
        }
        if let Some(key) = key {
            let reused = stored.iter().any(|event| {
                event
                    .metadata
                    .idempotency_key
                    .as_deref()
                    .is_some_and(|stored| key.other_content(stored))
            });
            if reused {
                tracing::debug!(
                    ?positions,
                    "idempotency key already committed with other content"
                );
                return Err(DecideError::IdempotencyKeyReused {
                    decision: D::META.name,
                    key: key.key().to_owned(),
                    positions,
                });
            }
        }
        let events = stored
            .iter()
            .map(D::Event::from_stored)
            .collect::<Result<Vec<_>, _>>()?;
        if events.len() != positions.len() {
            return Err(StoreError::backend(MissingEvents {
                decision: D::META.name,
                positions,
            })
            .into());
        }
        self.stats.replayed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            ?positions,
            "idempotency key already committed, replaying its outcome"
        );
        Ok(Outcome {
            events,
            positions,
            attempts: 0,
            replayed: true,
        })
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.stats
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
        if let Some(allowed) = D::META.emits
            && let Some(bad) = events.iter().find(|e| !allowed.contains(&e.event_type()))
        {
            return Err(DecideError::UndeclaredEmit {
                decision: D::META.name,
                event_type: bad.event_type(),
            });
        }
        let idempotency_key = key.map(|k| k.metadata_key().to_owned());
        let mut new_events = Vec::with_capacity(events.len());
        for event in &events {
            let mut new_event = event.to_new_event(self.codec)?;
            let metadata = &mut new_event.metadata;
            metadata.idempotency_key.clone_from(&idempotency_key);
            metadata.correlation_id = context.correlation_id;
            metadata.causation_id = context.causation_id;
            new_events.push(new_event);
        }
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

/// The events an idempotency key points to are not in the log.
#[derive(Debug, thiserror::Error)]
#[error(
    "{decision}: the events of the first commit with its idempotency key, at {positions:?}, cannot be read back"
)]
struct MissingEvents {
    decision: &'static str,
    positions: Vec<Position>,
}
