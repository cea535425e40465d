//! The states one queued decision takes out of its lane's warm cache, and the reads that
//! bring them up to date before it is decided on them.

use std::sync::atomic::Ordering;

use super::warm::{Entry, WarmStates};
use crate::decide::{Engine, LoadError, Member, MemberKey, StateSet};
use crate::model::{DecodeError, NewEvent, Position, Query, StoredEvent, Tag};
use crate::store::{EventStore, ReadOptions, StoreError};

/// What a lane knows of one member while deciding.
struct Slot {
    key: MemberKey,
    query: Query,
    /// Read (or warm): holds every event of its query up to `valid`.
    known: bool,
    valid: Option<Position>,
    /// Requests of the batch being formed whose events it folded.
    pending: Vec<usize>,
    /// Holds an event with a provisional position or time (see
    /// [`Step::Append`](super::job::Step::Append)).
    provisional: bool,
    /// The state it was folded from, when it came warm (see [`Entry::start`]).
    start: Option<Box<dyn Member>>,
}

/// How bringing the states up to one position ended.
pub(super) enum Aligned {
    /// Every state holds every event of its query up to here (`None`: there was none).
    At(Option<Position>),
    /// A state holds events of the batch not committed yet and missed one from outside:
    /// decide it in the next batch.
    Defer,
    /// A read that folds failed: the states may hold half of what it read,
    /// [discard](Taken::discard) them.
    Failed(LoadError),
    /// The check that a state missed nothing failed: nothing was folded, the states may
    /// be kept.
    Unchecked(StoreError),
}

/// The states of one decision, taken out of the warm cache. Dropped, it puts them back
/// for the decisions behind it, each with what the lane knows of it, unless it was
/// [discarded](Taken::discard) or a panic is unwinding (what they hold is then unknown).
pub(super) struct Taken<'w, T: StateSet> {
    set: Option<T>,
    slots: Vec<Slot>,
    warm: &'w mut WarmStates,
    /// When kept: the batch request whose events they just folded, and the members that
    /// folded one with a handler reading the stored event.
    folded: Option<(usize, Vec<MemberKey>)>,
}

impl<'w, T: StateSet> Taken<'w, T> {
    /// Takes, for each member of `set` (the state a decision just built), the warm state
    /// folded from an equal start, swapped into the set; a member with none is read
    /// fresh. `twin` builds the set again: each member read fresh is filed, if it is
    /// kept, under its unfolded twin.
    pub(super) fn take(mut set: T, warm: &'w mut WarmStates, twin: impl FnOnce() -> T) -> Self {
        let mut slots: Vec<Slot> = Vec::new();
        set.visit_members(&mut |member: &mut dyn Member| {
            let key = member.member_key();
            let query = member.member_query();
            // Only a warm state folded from the state this decision built may stand in.
            let cached = warm
                .take_for(&key, member)
                .and_then(|mut entry| member.swap_with(&mut *entry.state).then_some(entry));
            slots.push(match cached {
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
            });
        });
        // Twins are built before anything is folded into the fresh states.
        if slots.iter().any(|s| s.start.is_none()) {
            let mut twins: Vec<Option<Box<dyn Member>>> = Vec::new();
            twin().into_members(&mut |_, twin| twins.push(Some(twin)));
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
        Taken {
            set: Some(set),
            slots,
            warm,
            folded: None,
        }
    }

    /// The states, as the decision sees them.
    pub(super) fn set(&self) -> &T {
        // Only `discard` and `drop` take the set, and both consume the guard.
        self.set
            .as_ref()
            .expect("a taken set is there until the guard goes")
    }

    /// Whether one of them holds a provisional position or time: not to be decided on
    /// until its batch settled.
    pub(super) fn any_provisional(&self) -> bool {
        self.slots.iter().any(|s| s.provisional)
    }

    /// The union of their queries: what the decision read.
    pub(super) fn query(&self) -> Query {
        self.slots
            .iter()
            .fold(Query::none(), |q, s| q.union(s.query.clone()))
    }

    /// Their keys, in order.
    pub(super) fn keys(&self) -> Vec<MemberKey> {
        self.slots.iter().map(|s| s.key.clone()).collect()
    }

    /// Drops the states instead of keeping them: a read or a fold failed half-way.
    pub(super) fn discard(mut self) {
        self.set = None;
    }

    /// Brings every state up to one common position: fresh ones read from the start,
    /// warm ones behind the others caught up from where they are.
    pub(super) async fn align<S: EventStore>(&mut self, engine: &Engine<S>) -> Aligned {
        loop {
            let slots = &self.slots;
            let target = slots
                .iter()
                .filter(|s| s.known)
                .map(|s| s.valid)
                .max()
                .flatten();
            let fresh: Vec<bool> = slots.iter().map(|s| !s.known).collect();
            let stale: Vec<bool> = slots.iter().map(|s| s.known && s.valid < target).collect();
            if !fresh.iter().chain(&stale).any(|f| *f) {
                return Aligned::At(slots.iter().map(|s| s.valid).max().flatten());
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
                match self.missed_nothing(engine, &held).await {
                    Ok(true) => {
                        self.mark(&held, |slot| slot.valid = target);
                        continue;
                    }
                    Ok(false) => return Aligned::Defer,
                    Err(e) => return Aligned::Unchecked(e),
                }
            }
            let behind = slots
                .iter()
                .filter(|s| s.known && s.valid < target)
                .map(|s| s.valid.map_or(Position(1), Position::next))
                .min();
            for (group, from) in [(fresh, None), (stale, behind)] {
                if !group.iter().any(|g| *g) {
                    continue;
                }
                match self.catch_up(engine, &group, from).await {
                    // Everything up to `target` was visible before the read began.
                    Ok(last) => self.mark(&group, |slot| {
                        slot.known = true;
                        slot.valid = slot.valid.max(last).max(target);
                    }),
                    Err(e) => return Aligned::Failed(e),
                }
            }
        }
    }

    fn mark(&mut self, marked: &[bool], mut update: impl FnMut(&mut Slot)) {
        for (slot, _) in self.slots.iter_mut().zip(marked).filter(|(_, m)| **m) {
            update(slot);
        }
    }

    /// Folds the events of the marked members' queries from `from` into them, each only
    /// past its own `valid` when it is known. Returns the last position read.
    async fn catch_up<S: EventStore>(
        &mut self,
        engine: &Engine<S>,
        group: &[bool],
        from: Option<Position>,
    ) -> Result<Option<Position>, LoadError> {
        let Some(set) = self.set.as_mut() else {
            return Ok(None);
        };
        let slots = &self.slots;
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
            .fetch_add(read, Ordering::Relaxed);
        Ok(last)
    }

    /// Whether no event of the marked members' queries follows their `valid` positions: a
    /// read of one event at most.
    async fn missed_nothing<S: EventStore>(
        &self,
        engine: &Engine<S>,
        marked: &[bool],
    ) -> Result<bool, StoreError> {
        let mut query = Query::none();
        let mut from: Option<Position> = None;
        for (slot, _) in self.slots.iter().zip(marked).filter(|(_, m)| **m) {
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

    /// The earlier requests of the batch (`batch` holds the type and tags of each one's
    /// events) whose events `query` covers: the decision builds on them, which is sound
    /// only if every state they touch folded them. `None` when one did not: that state is
    /// marked to be read again, and the decision waits for the next batch.
    pub(super) fn builds_on(
        &mut self,
        batch: &[Vec<(String, Vec<Tag>)>],
        query: &Query,
    ) -> Option<Vec<usize>> {
        let mut builds_on = Vec::new();
        for (index, events) in batch.iter().enumerate() {
            let touching: Vec<&(String, Vec<Tag>)> = events
                .iter()
                .filter(|(t, tags)| query.matches(t, tags))
                .collect();
            if touching.is_empty() {
                continue;
            }
            let mut unfolded = false;
            for slot in self.slots.iter_mut() {
                if !slot.pending.contains(&index)
                    && touching.iter().any(|(t, tags)| slot.query.matches(t, tags))
                {
                    // It lacks events that are about to commit: read it again next time.
                    slot.known = false;
                    unfolded = true;
                }
            }
            if unfolded {
                return None;
            }
            builds_on.push(index);
        }
        Some(builds_on)
    }

    /// Folds the decision's own events, as batch request `index` after position `after`,
    /// so the decisions queued behind it see them; their positions and times are
    /// provisional until the batch commits. Returns the members that folded one with a
    /// handler reading the stored event. Kept from now on, the states are filed as
    /// holding request `index`; after an error they hold part of the events:
    /// [discard](Taken::discard) them.
    pub(super) fn fold_own(
        &mut self,
        events: &[NewEvent],
        after: Option<Position>,
        index: usize,
    ) -> Result<Vec<MemberKey>, DecodeError> {
        let Some(set) = self.set.as_mut() else {
            return Ok(Vec::new());
        };
        let base = after.map_or(0, |p| p.0) + 1 + index as u64;
        let now = std::time::SystemTime::now();
        let mut provisional = Vec::new();
        for (offset, event) in events.iter().enumerate() {
            let stored = StoredEvent::record_at(event.clone(), Position(base + offset as u64), now);
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
                return Err(e);
            }
        }
        self.folded = Some((index, provisional.clone()));
        Ok(provisional)
    }
}

impl<T: StateSet> Drop for Taken<'_, T> {
    fn drop(&mut self) {
        let Some(set) = self.set.take() else {
            return;
        };
        if std::thread::panicking() {
            return;
        }
        let (also_pending, provisional) = match self.folded.take() {
            Some((index, provisional)) => (Some(index), provisional),
            None => (None, Vec::new()),
        };
        keep(
            set,
            std::mem::take(&mut self.slots),
            self.warm,
            also_pending,
            &provisional,
        );
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
