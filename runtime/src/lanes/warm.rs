use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;

use crate::decide::{Engine, Member, MemberKey};
use crate::model::{Position, Query};
use crate::store::{EventStore, ReadOptions};

/// A state a lane does not hold warm (for the state `Decide::state` built), to read.
pub(crate) struct Cold {
    pub(crate) key: MemberKey,
    /// Folded in place by the read.
    pub(crate) state: Box<dyn Member>,
    /// The same state as built, kept unfolded: what the warm copy was folded from.
    pub(crate) start: Box<dyn Member>,
}

/// A state a lane keeps between decisions.
pub(crate) struct Entry {
    pub(crate) state: Box<dyn Member>,
    /// The state it was folded from, as `Decide::state` built it: it stands in only for a
    /// state built equal to it (a command's clock or limit changes what the fold yields).
    pub(crate) start: Box<dyn Member>,
    /// It holds every event of its query up to here (`None`: there was none).
    pub(crate) valid: Option<Position>,
    /// Requests of the batch being formed whose events it folded before they committed.
    pub(crate) pending: Vec<usize>,
    /// It folded one of those events with a handler that reads the stored event, so it
    /// holds a provisional position or time until the batch settles (then it goes).
    pub(crate) provisional: bool,
    /// A decision of the batch appended events of its query that it did not fold (it
    /// decided on its own copy, built from another start): it goes once the batch settles.
    spoiled: bool,
    used: u64,
}

impl Entry {
    pub(crate) fn new(
        state: Box<dyn Member>,
        start: Box<dyn Member>,
        valid: Option<Position>,
        pending: Vec<usize>,
    ) -> Self {
        Entry {
            state,
            start,
            valid,
            pending,
            provisional: false,
            spoiled: false,
            used: 0,
        }
    }
}

/// The warm states of one lane, least recently used evicted first.
pub(crate) struct WarmStates {
    entries: HashMap<MemberKey, Entry>,
    capacity: usize,
    clock: u64,
}

impl WarmStates {
    pub(crate) fn new(capacity: usize) -> Self {
        WarmStates {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            clock: 0,
        }
    }

    /// Takes the warm state under `key` for `built`, the state a decision's
    /// `Decide::state` just built, if it was folded from an equal start. One folded from
    /// another start stays while the batch being formed refers to it, and goes otherwise:
    /// the newer start is the likelier to come again.
    pub(crate) fn take_for(&mut self, key: &MemberKey, built: &dyn Member) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        if built.same_start(&*entry.start) {
            return Some(entry);
        }
        if !entry.pending.is_empty() {
            self.entries.insert(key.clone(), entry);
        }
        None
    }

    pub(crate) fn put(&mut self, key: MemberKey, mut entry: Entry) {
        self.clock += 1;
        entry.used = self.clock;
        self.entries.insert(key, entry);
        if self.entries.len() > self.capacity {
            self.shrink();
        }
    }

    pub(crate) fn evict(&mut self, key: &MemberKey) {
        self.entries.remove(key);
    }

    /// After request `index` of the batch committed up to `last`: the state that folded
    /// its events holds every event of its query up to there (its condition held). Only
    /// that state: one read fresh meanwhile under the same key did not fold them.
    pub(crate) fn validate(&mut self, key: &MemberKey, index: usize, last: Position) {
        if let Some(entry) = self.entries.get_mut(key)
            && entry.pending.contains(&index)
        {
            entry.valid = entry.valid.max(Some(last));
        }
    }

    /// The newest position any state is known complete to: a read that starts now sees
    /// everything up to it (it was committed or read before).
    pub(crate) fn highest(&self) -> Option<Position> {
        self.entries.values().filter_map(|e| e.valid).max()
    }

    pub(crate) fn contains(&self, key: &MemberKey) -> bool {
        self.entries.contains_key(key)
    }

    /// Drops every state (after a panic: what was half-done is unknown).
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// Marks the state under `key` as missing events a request of the batch appends.
    pub(crate) fn spoil(&mut self, key: &MemberKey) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.spoiled = true;
        }
    }

    /// The batch is settled: nothing is pending any more, and what it spoiled goes.
    pub(crate) fn settle(&mut self) {
        self.entries.retain(|_, entry| !entry.spoiled);
        for entry in self.entries.values_mut() {
            entry.pending.clear();
        }
    }

    /// Drops the least recently used quarter, so eviction costs O(1) per insert on
    /// average. States holding events of the batch being formed stay: the batch's
    /// bookkeeping refers to them.
    fn shrink(&mut self) {
        let mut ages: Vec<u64> = self
            .entries
            .values()
            .filter(|e| e.pending.is_empty())
            .map(|e| e.used)
            .collect();
        if ages.is_empty() {
            return;
        }
        let cut = ages.len() / 4;
        ages.select_nth_unstable(cut);
        let threshold = ages[cut];
        self.entries
            .retain(|_, e| e.used > threshold || !e.pending.is_empty());
    }
}

/// Most states read together when a batch warms up (one query of that many items).
const WARM_UP_CHUNK: usize = 64;
/// Reads `cold` states (those a batch needs and its lane does not hold warm) in one read
/// per [`WARM_UP_CHUNK`] states instead of one per decision, and returns each with the
/// position it is complete to: the read's last, or `floor` (everything up to it was
/// committed or read before the read began) if higher. A failed read leaves its states
/// out: each decision then reads its own.
pub(super) async fn warm_up<S: EventStore>(
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
