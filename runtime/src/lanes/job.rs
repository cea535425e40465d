use std::time::SystemTime;

use futures::future::BoxFuture;
use tokio::sync::oneshot;

use super::warm::{Cold, Entry, WarmStates};
use std::sync::atomic::Ordering;

use crate::decide::Counters;
use crate::decide::{
    Context, Decide, DecideError, Engine, LoadError, Member, MemberKey, Outcome, StateSet,
};
use crate::model::idempotency::IdempotencyKey;
use crate::model::{AppendCondition, DecodeError, EventSet, Position, Query, StoredEvent, Tag};
use crate::store::{AppendRequest, EventStore, ReadOptions, StoreError, Unstorable};

pub(crate) type Reply<D> =
    oneshot::Sender<Result<Outcome<<D as Decide>::Event>, DecideError<<D as Decide>::Error>>>;

/// What a lane keeps while it forms one batch.
pub(crate) struct LaneCtx<S> {
    pub(crate) engine: Engine<S>,
    pub(crate) warm: WarmStates,
    /// The type and tags of the events of each request of the batch so far.
    pub(crate) batch: Vec<Vec<(String, Vec<Tag>)>>,
}

/// Where deciding a queued decision left it.
pub(crate) enum Step {
    /// Joins the batch: its request, and the keys of the warm states it used.
    Append {
        request: AppendRequest,
        members: Vec<MemberKey>,
        /// Members that folded one of its events with a handler reading the stored event:
        /// they hold a provisional position or time, so they are not kept warm.
        provisional: Vec<MemberKey>,
    },
    /// Already answered (failed without touching the store).
    Answered,
    /// Refused by the domain, or decided that nothing needs to happen, on states holding
    /// the events of the batch's requests `after`: answered once they committed (and,
    /// for a refusal with an idempotency key, once no duplicate turned out to have
    /// committed meanwhile); decided again if one of them failed.
    Held(Held),
    /// Cannot be decided in this batch (it needs a state that holds events not yet
    /// committed, or one that a batch request touched without folding); first in the
    /// next.
    Defer,
}

/// A refusal or no-op waiting for its batch to settle: what it was decided on.
pub(crate) struct Held {
    /// The batch requests whose events it was decided after.
    pub(crate) after: Vec<usize>,
    /// The warm states it was decided on.
    pub(crate) members: Vec<MemberKey>,
    /// Their query, and the position they were complete to: an event of the query
    /// past it from outside the batch means it was decided on a stale view.
    pub(crate) query: Query,
    pub(crate) position: Option<Position>,
}

/// A queued decision of any type, as a lane sees it.
pub(crate) trait Job<S>: Send {
    /// The idempotency key the store records for it (see [`IdempotencyKey::recorded`]).
    fn idempotency_key(&self) -> Option<&str>;
    /// Adds to `cold` the states it will decide on that the lane holds nothing for, so
    /// the lane reads them all in one go.
    fn cold_states(&self, warm: &WarmStates, cold: &mut Vec<Cold>);
    fn decide<'a>(&'a mut self, lane: &'a mut LaneCtx<S>) -> BoxFuture<'a, Step>;
    fn committed(self: Box<Self>, positions: Vec<Position>);
    /// Its append conflicted: the job back, if its retry policy allows another attempt.
    fn conflicted(
        self: Box<Self>,
        position: Position,
        event_type: String,
    ) -> Option<Box<dyn Job<S>>>;
    fn failed(self: Box<Self>, error: StoreError);
    /// The store refused an event it emitted as past a limit: nothing of it was appended,
    /// and deciding it again cannot succeed.
    fn unstorable(self: Box<Self>, error: Unstorable);
    fn stopped(self: Box<Self>);
    /// Its `decide` or a fold panicked: nothing of it was appended.
    fn panicked(self: Box<Self>);
    /// Whether what it holds ([`Step::Held`]) is a refusal.
    fn holds_refusal(&self) -> bool;
    /// Answers with what it holds, counting it in `counters`.
    fn release(self: Box<Self>, counters: &Counters);
    /// Forgets what it holds, to be decided again.
    fn reset(&mut self);
    /// Whether it is a hot-key hand-over barrier (released only once nothing it waits
    /// for is left in the lane).
    fn is_barrier(&self) -> bool {
        false
    }
    fn replay<'a>(
        self: Box<Self>,
        engine: &'a Engine<S>,
        positions: Vec<Position>,
    ) -> BoxFuture<'a, ()>;
}

pub(crate) struct Pending<D: Decide> {
    decision: D,
    context: Context,
    key: Option<IdempotencyKey>,
    reply: Option<Reply<D>>,
    events: Vec<D::Event>,
    held: Option<Answer<D::Error>>,
    attempts: u32,
}

/// The answer a decision holds until the batch it was decided in settles.
enum Answer<E> {
    Refused(E),
    Nothing,
}

impl<D: Decide> Pending<D> {
    pub(crate) fn new(decision: D, context: Context, reply: Reply<D>) -> Self {
        Pending {
            key: decision.idempotency(),
            decision,
            context,
            reply: Some(reply),
            events: Vec::new(),
            held: None,
            attempts: 1,
        }
    }

    fn answer(&mut self, result: Result<Outcome<D::Event>, DecideError<D::Error>>) {
        if let Some(reply) = self.reply.take() {
            // The caller may have given up waiting; the decision ran all the same.
            let _ = reply.send(result);
        }
    }
}

/// What a lane knows of one member while deciding.
struct Slot {
    key: MemberKey,
    query: Query,
    /// Read (or warm): holds every event of its query up to `valid`.
    known: bool,
    valid: Option<Position>,
    pending: Vec<usize>,
    /// Holds an event with a provisional position or time (see [`Step::Append`]).
    provisional: bool,
    /// The state it was folded from, when it came warm (see [`Entry::start`]).
    start: Option<Box<dyn Member>>,
}

fn held(slots: &[Slot], query: Query, position: Option<Position>, after: Vec<usize>) -> Held {
    Held {
        after,
        members: slots.iter().map(|s| s.key.clone()).collect(),
        query,
        position,
    }
}

/// Puts the members back into the warm cache, each with its slot's bookkeeping (and
/// `also_pending` added when its events were just folded) and the start it was folded
/// from. One without a start (its twin came out different: a `state()` that is not a
/// pure function of the command) is not kept.
fn keep<T: StateSet>(
    set: T,
    slots: Vec<Slot>,
    warm: &mut WarmStates,
    also_pending: Option<usize>,
    provisional: &[MemberKey],
) {
    let mut slots = slots.into_iter();
    set.into_members(&mut |key, state| {
        let Some(slot) = slots.next() else {
            return;
        };
        if !slot.known {
            return;
        }
        // A member read fresh next to another of the same key (a set naming one id
        // twice, or one warm from another start the batch refers to) must not replace
        // the one with the history; if its decision appends, that one misses events.
        if warm.contains(&key) {
            if also_pending.is_some() {
                warm.spoil(&key);
            }
            return;
        }
        let Some(start) = slot.start else {
            return;
        };
        let mut pending = slot.pending;
        pending.extend(also_pending);
        let mut entry = Entry::new(state, start, slot.valid, pending);
        entry.provisional = slot.provisional || provisional.contains(&key);
        warm.put(key, entry);
    });
}

/// Folds the events of `query` from `from` into the members marked in `group`, each
/// only past its own `valid` when it is known. Returns the last position read.
async fn catch_up<S: EventStore, T: StateSet>(
    engine: &Engine<S>,
    set: &mut T,
    slots: &[Slot],
    group: &[bool],
    from: Option<Position>,
) -> Result<Option<Position>, LoadError> {
    let query = slots
        .iter()
        .zip(group)
        .filter(|(_, in_group)| **in_group)
        .fold(Query::none(), |q, (s, _)| q.union(s.query.clone()));
    let options = from.map_or_else(ReadOptions::forward, ReadOptions::from);
    let mut last = None;
    let mut read = 0u64;
    engine
        .fold_events(&query, options, |event| {
            let mut failed: Option<DecodeError> = None;
            let mut index = 0;
            set.visit_members(&mut |member: &mut dyn Member| {
                let slot = &slots[index];
                let wanted = group[index] && (!slot.known || Some(event.position) > slot.valid);
                index += 1;
                if wanted
                    && failed.is_none()
                    && let Err(e) = member.fold_member(event)
                {
                    failed = Some(e);
                }
            });
            last = Some(event.position);
            read += 1;
            failed.map_or(Ok(()), Err)
        })
        .await?;
    engine
        .counters()
        .events_read
        .fetch_add(read, std::sync::atomic::Ordering::Relaxed);
    Ok(last)
}

/// Whether no event of the marked members' queries follows their `valid` positions: a
/// read of one event at most.
async fn missed_nothing<S: EventStore>(
    engine: &Engine<S>,
    slots: &[Slot],
    marked: &[bool],
) -> Result<bool, StoreError> {
    let mut query = Query::none();
    let mut from: Option<Position> = None;
    for (slot, _) in slots.iter().zip(marked).filter(|(_, m)| **m) {
        query = query.union(slot.query.clone());
        let next = slot.valid.map_or(Position(1), Position::next);
        from = Some(from.map_or(next, |f| f.min(next)));
    }
    let options = ReadOptions {
        from,
        backwards: false,
        limit: Some(1),
    };
    let mut events = std::pin::pin!(engine.store().read(&query, options));
    Ok(futures::TryStreamExt::try_next(&mut events)
        .await?
        .is_none())
}

impl<S: EventStore + Clone + 'static, D: Decide> Job<S> for Pending<D> {
    fn idempotency_key(&self) -> Option<&str> {
        self.key.as_ref().map(IdempotencyKey::recorded)
    }

    fn cold_states(&self, warm: &WarmStates, cold: &mut Vec<Cold>) {
        let mut wanted: Vec<Option<(MemberKey, Box<dyn Member>)>> = Vec::new();
        // Only keys the lane holds nothing under: a warm state from another start may be
        // what the next decision in the batch needs, and `decide_in` drops it when not.
        self.decision.state().into_members(&mut |key, member| {
            wanted.push((!warm.contains(&key)).then_some((key, member)));
        });
        if wanted.iter().all(Option::is_none) {
            return;
        }
        // The unfolded twin of each, built again: `state()` is the only way to a copy, and
        // one that comes out different is no start to file the state under.
        let mut wanted = wanted.into_iter();
        self.decision.state().into_members(&mut |_, start| {
            if let Some(Some((key, state))) = wanted.next()
                && state.same_start(&*start)
            {
                cold.push(Cold { key, state, start });
            }
        });
    }

    fn decide<'a>(&'a mut self, lane: &'a mut LaneCtx<S>) -> BoxFuture<'a, Step> {
        Box::pin(self.decide_in(lane))
    }

    fn committed(mut self: Box<Self>, positions: Vec<Position>) {
        let events = std::mem::take(&mut self.events);
        let attempts = self.attempts;
        self.answer(Ok(Outcome {
            events,
            positions,
            attempts,
            replayed: false,
        }));
    }

    fn conflicted(
        mut self: Box<Self>,
        position: Position,
        event_type: String,
    ) -> Option<Box<dyn Job<S>>> {
        if self.attempts > D::META.retry.max_retries {
            let attempts = self.attempts;
            self.answer(Err(DecideError::Conflict {
                decision: D::META.name,
                attempts,
                position,
                event_type,
            }));
            return None;
        }
        self.attempts += 1;
        self.events.clear();
        Some(self)
    }

    fn failed(mut self: Box<Self>, error: StoreError) {
        self.answer(Err(DecideError::Store(error)));
    }

    fn unstorable(mut self: Box<Self>, error: Unstorable) {
        self.answer(Err(DecideError::Unstorable {
            decision: D::META.name,
            error,
        }));
    }

    fn stopped(mut self: Box<Self>) {
        self.answer(Err(DecideError::Stopped {
            decision: D::META.name,
        }));
    }

    fn panicked(mut self: Box<Self>) {
        self.answer(Err(DecideError::Panicked {
            decision: D::META.name,
        }));
    }

    fn holds_refusal(&self) -> bool {
        matches!(self.held, Some(Answer::Refused(_)))
    }

    fn release(mut self: Box<Self>, counters: &Counters) {
        match self.held.take() {
            Some(Answer::Refused(error)) => {
                counters.rejected.fetch_add(1, Ordering::Relaxed);
                self.answer(Err(DecideError::Domain(error)))
            }
            Some(Answer::Nothing) => {
                counters.committed.fetch_add(1, Ordering::Relaxed);
                let attempts = self.attempts;
                self.answer(Ok(Outcome {
                    events: Vec::new(),
                    positions: Vec::new(),
                    attempts,
                    replayed: false,
                }));
            }
            None => {}
        }
    }

    fn reset(&mut self) {
        self.held = None;
        self.events.clear();
    }

    fn replay<'a>(
        mut self: Box<Self>,
        engine: &'a Engine<S>,
        positions: Vec<Position>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let result = engine.replay::<D>(self.key.as_ref(), positions).await;
            self.answer(result);
        })
    }
}

impl<D: Decide> Pending<D> {
    async fn decide_in<S: EventStore + Clone + 'static>(&mut self, lane: &mut LaneCtx<S>) -> Step {
        let mut set = self.decision.state();
        let mut slots: Vec<Slot> = Vec::new();
        let warm = &mut lane.warm;
        set.visit_members(&mut |member: &mut dyn Member| {
            let key = member.member_key();
            let query = member.member_query();
            // Only a warm state folded from the state this decision built may stand in.
            let cached = warm
                .take_for(&key, member)
                .and_then(|mut entry| member.swap_with(&mut *entry.state).then_some(entry));
            let slot = match cached {
                Some(entry) => Slot {
                    key,
                    query,
                    known: true,
                    valid: entry.valid,
                    pending: entry.pending,
                    provisional: entry.provisional,
                    start: Some(entry.start),
                },
                None => Slot {
                    key,
                    query,
                    known: false,
                    valid: None,
                    pending: Vec::new(),
                    provisional: false,
                    start: None,
                },
            };
            slots.push(slot);
        });

        // Each state read fresh gets its unfolded twin now, before anything is folded
        // into it: what it is kept warm under if it is kept.
        if slots.iter().any(|s| s.start.is_none()) {
            let mut twins: Vec<Option<Box<dyn Member>>> = Vec::new();
            self.decision
                .state()
                .into_members(&mut |_, twin| twins.push(Some(twin)));
            let mut index = 0;
            set.visit_members(&mut |member: &mut dyn Member| {
                let slot = &mut slots[index];
                if slot.start.is_none()
                    && let Some(twin) = twins.get_mut(index).and_then(Option::take)
                    && member.same_start(&*twin)
                {
                    slot.start = Some(twin);
                }
                index += 1;
            });
        }

        // A state holding a provisional position or time must not be decided on.
        if slots.iter().any(|s| s.provisional) {
            keep(set, slots, &mut lane.warm, None, &[]);
            return Step::Defer;
        }

        // Bring every member up to one common position: fresh ones read from the
        // start, warm ones behind the others caught up from where they are.
        loop {
            let target = slots
                .iter()
                .filter(|s| s.known)
                .map(|s| s.valid)
                .max()
                .flatten();
            let fresh: Vec<bool> = slots.iter().map(|s| !s.known).collect();
            let stale: Vec<bool> = slots.iter().map(|s| s.known && s.valid < target).collect();
            let any_fresh = fresh.iter().any(|f| *f);
            let any_stale = stale.iter().any(|f| *f);
            if !any_fresh && !any_stale {
                break;
            }
            // A state holding events not committed yet cannot fold events of the log
            // under them; it can only be confirmed to have missed nothing (the usual
            // case: the others were read at a newer position for unrelated events).
            let held: Vec<bool> = slots
                .iter()
                .zip(&stale)
                .map(|(s, st)| *st && !s.pending.is_empty())
                .collect();
            if held.iter().any(|h| *h) {
                match missed_nothing(&lane.engine, &slots, &held).await {
                    Ok(true) => {
                        for (slot, _) in slots.iter_mut().zip(&held).filter(|(_, h)| **h) {
                            slot.valid = target;
                        }
                        continue;
                    }
                    Ok(false) => {
                        keep(set, slots, &mut lane.warm, None, &[]);
                        return Step::Defer;
                    }
                    Err(e) => {
                        keep(set, slots, &mut lane.warm, None, &[]);
                        self.answer(Err(DecideError::Store(e)));
                        return Step::Answered;
                    }
                }
            }
            for (group, from) in [
                (fresh, None),
                (
                    stale,
                    slots
                        .iter()
                        .filter(|s| s.known && s.valid < target)
                        .map(|s| s.valid.map_or(Position(1), Position::next))
                        .min(),
                ),
            ] {
                if !group.iter().any(|g| *g) {
                    continue;
                }
                match catch_up(&lane.engine, &mut set, &slots, &group, from).await {
                    // Everything up to `target` was visible before the read began.
                    Ok(last) => {
                        for (slot, _) in slots.iter_mut().zip(&group).filter(|(_, g)| **g) {
                            slot.known = true;
                            slot.valid = slot.valid.max(last).max(target);
                        }
                    }
                    Err(e) => {
                        // Half-folded states are dropped, not kept warm.
                        self.answer(Err(e.into()));
                        return Step::Answered;
                    }
                }
            }
        }
        let after = slots.iter().map(|s| s.valid).max().flatten();

        // Earlier requests of the batch whose events this decision's query covers: it
        // builds on them, which is sound only if every member they touch folded them.
        let query = slots
            .iter()
            .fold(Query::none(), |q, s| q.union(s.query.clone()));
        let mut builds_on = Vec::new();
        for (index, events) in lane.batch.iter().enumerate() {
            let touching: Vec<&(String, Vec<Tag>)> = events
                .iter()
                .filter(|(t, tags)| query.matches(t, tags))
                .collect();
            if touching.is_empty() {
                continue;
            }
            let mut unfolded = false;
            for slot in slots.iter_mut() {
                if !slot.pending.contains(&index)
                    && touching.iter().any(|(t, tags)| slot.query.matches(t, tags))
                {
                    // It lacks events that are about to commit: read it again next time.
                    slot.known = false;
                    unfolded = true;
                }
            }
            if unfolded {
                keep(set, slots, &mut lane.warm, None, &[]);
                return Step::Defer;
            }
            builds_on.push(index);
        }

        let events = match self.decision.decide(&set) {
            Ok(events) => events,
            Err(error) => {
                let held = held(&slots, query, after, builds_on);
                keep(set, slots, &mut lane.warm, None, &[]);
                self.held = Some(Answer::Refused(error));
                return Step::Held(held);
            }
        };
        if events.is_empty() {
            let held = held(&slots, query, after, builds_on);
            keep(set, slots, &mut lane.warm, None, &[]);
            self.held = Some(Answer::Nothing);
            return Step::Held(held);
        }
        if let Some(allowed) = D::META.emits
            && let Some(bad) = events.iter().find(|e| !allowed.contains(&e.event_type()))
        {
            let event_type = bad.event_type();
            keep(set, slots, &mut lane.warm, None, &[]);
            self.answer(Err(DecideError::UndeclaredEmit {
                decision: D::META.name,
                event_type,
            }));
            return Step::Answered;
        }
        let mut new_events = Vec::with_capacity(events.len());
        for event in &events {
            match event.to_new_event(lane.engine.codec()) {
                Ok(mut new_event) => {
                    let metadata = &mut new_event.metadata;
                    metadata.idempotency_key =
                        self.key.as_ref().map(|k| k.metadata_key().to_owned());
                    metadata.correlation_id = self.context.correlation_id;
                    metadata.causation_id = self.context.causation_id;
                    new_events.push(new_event);
                }
                Err(e) => {
                    keep(set, slots, &mut lane.warm, None, &[]);
                    self.answer(Err(e.into()));
                    return Step::Answered;
                }
            }
        }

        // Fold its own events now, so the decisions queued behind it see them. Their
        // positions are provisional until the batch commits.
        let index = lane.batch.len();
        let base = after.map_or(0, |p| p.0) + 1 + index as u64;
        let now = SystemTime::now();
        let mut provisional = Vec::new();
        for (offset, new_event) in new_events.iter().enumerate() {
            let stored =
                StoredEvent::record_at(new_event.clone(), Position(base + offset as u64), now);
            let mut failed = None;
            set.visit_members(&mut |member: &mut dyn Member| {
                if member.member_matches(&stored) && member.reads_stored(&stored.event_type) {
                    provisional.push(member.member_key());
                }
                if failed.is_none()
                    && let Err(e) = member.fold_member(&stored)
                {
                    failed = Some(e);
                }
            });
            if let Some(e) = failed {
                self.answer(Err(e.into()));
                return Step::Answered;
            }
        }
        lane.batch.push(
            new_events
                .iter()
                .map(|e| (e.event_type.clone(), e.tags.clone()))
                .collect(),
        );
        let members = slots.iter().map(|s| s.key.clone()).collect();
        keep(set, slots, &mut lane.warm, Some(index), &provisional);
        self.events = events;
        // The whole read query guards the append, exclusions included: a warm state
        // that skipped excluded events written by others would drift for good.
        // None for a decision reading no state: a condition on no event guards nothing.
        let condition = AppendCondition::guarding(query, after);
        Step::Append {
            request: AppendRequest::new(new_events, condition).building_on(builds_on),
            members,
            provisional,
        }
    }
}

/// Queued in a lane that hands a hot key over to a lane of its own: once everything
/// queued before it has committed, the new lane may start.
pub(crate) struct Barrier {
    pub(crate) signal: Option<oneshot::Sender<()>>,
}

impl<S: EventStore + Clone + 'static> Job<S> for Barrier {
    fn idempotency_key(&self) -> Option<&str> {
        None
    }

    fn cold_states(&self, _: &WarmStates, _: &mut Vec<Cold>) {}

    fn decide<'a>(&'a mut self, lane: &'a mut LaneCtx<S>) -> BoxFuture<'a, Step> {
        let held = Held {
            after: (0..lane.batch.len()).collect(),
            members: Vec::new(),
            query: Query::none(),
            position: None,
        };
        Box::pin(std::future::ready(Step::Held(held)))
    }

    fn committed(self: Box<Self>, _: Vec<Position>) {}

    fn conflicted(self: Box<Self>, _: Position, _: String) -> Option<Box<dyn Job<S>>> {
        None
    }

    fn failed(self: Box<Self>, _: StoreError) {}

    fn unstorable(self: Box<Self>, _: Unstorable) {}

    fn stopped(self: Box<Self>) {}

    fn panicked(self: Box<Self>) {}

    fn holds_refusal(&self) -> bool {
        false
    }

    fn release(mut self: Box<Self>, _: &Counters) {
        if let Some(signal) = self.signal.take() {
            let _ = signal.send(());
        }
    }

    fn reset(&mut self) {}

    fn is_barrier(&self) -> bool {
        true
    }

    fn replay<'a>(self: Box<Self>, _: &'a Engine<S>, _: Vec<Position>) -> BoxFuture<'a, ()> {
        Box::pin(std::future::ready(()))
    }
}
