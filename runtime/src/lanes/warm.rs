use std::any::Any;
use std::collections::HashMap;

use crate::decide::MemberKey;
use crate::model::Position;

/// A state a lane keeps between decisions.
pub(crate) struct Entry {
    pub(crate) state: Box<dyn Any + Send>,
    /// It holds every event of its query up to here (`None`: there was none).
    pub(crate) valid: Option<Position>,
    /// Requests of the batch being formed whose events it folded before they committed.
    pub(crate) pending: Vec<usize>,
    used: u64,
}

impl Entry {
    pub(crate) fn new(
        state: Box<dyn Any + Send>,
        valid: Option<Position>,
        pending: Vec<usize>,
    ) -> Self {
        Entry {
            state,
            valid,
            pending,
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

    pub(crate) fn take(&mut self, key: &MemberKey) -> Option<Entry> {
        self.entries.remove(key)
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

    /// After a commit that wrote up to `last`: the state holds every event of its query
    /// up to there (its condition held, and it folded its own events).
    pub(crate) fn validate(&mut self, key: &MemberKey, last: Position) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.valid = entry.valid.max(Some(last));
        }
    }

    /// The batch is settled: nothing is pending any more.
    pub(crate) fn settle(&mut self) {
        for entry in self.entries.values_mut() {
            entry.pending.clear();
        }
    }

    /// Drops the least recently used quarter, so eviction costs O(1) per insert on
    /// average.
    fn shrink(&mut self) {
        let mut ages: Vec<u64> = self.entries.values().map(|e| e.used).collect();
        let cut = ages.len() / 4;
        ages.select_nth_unstable(cut);
        let threshold = ages[cut];
        self.entries.retain(|_, e| e.used > threshold);
    }
}
