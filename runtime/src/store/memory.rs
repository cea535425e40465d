use std::collections::{BTreeSet, HashMap};
use std::ops::ControlFlow;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use futures::{Stream, stream};

use super::{
    AppendError, AppendRequest, Appended, EventStore, KeyedLocks, PartitionLock, PartitionLocks,
    ReadOptions, Snapshot, SnapshotStore, StoreError, exempt_positions, prepare_append,
};
use crate::model::idempotency::recorded_key;
use crate::model::{AppendCondition, NewEvent, Position, Query, QueryItem, StoredEvent, Tag};

/// An in-memory event store for unit tests, examples and the test harness.
///
/// Cloning it gives another handle on the same log. Reads and condition checks use a tag
/// index and a type index, so a query touches only the events that could match.
#[derive(Clone, Default)]
pub struct MemoryStore {
    log: Arc<RwLock<Log>>,
    /// Checkpoints, dead letters and the commit signal of listeners.
    pub(crate) listening: Arc<super::MemoryListening>,
    locks: KeyedLocks,
}

#[derive(Default)]
struct Log {
    events: Vec<StoredEvent>,
    by_tag: HashMap<Tag, Vec<usize>>,
    by_type: HashMap<String, Vec<usize>>,
    idempotency: HashMap<String, Vec<Position>>,
    snapshots: HashMap<String, Snapshot>,
}

impl Log {
    /// Indexes (in the log vector) of the events matching `item` at or after `start`.
    fn candidates(&self, item: &QueryItem, start: usize) -> Vec<usize> {
        let after = |list: &Vec<usize>| -> Vec<usize> {
            let from = list.partition_point(|&i| i < start);
            list[from..].to_vec()
        };
        // The rarest tag narrows the search most; otherwise the types; otherwise everything.
        let narrowest_tag = item
            .tags
            .iter()
            .map(|t| self.by_tag.get(t).map_or(0, Vec::len))
            .enumerate()
            .min_by_key(|&(_, n)| n)
            .map(|(i, _)| &item.tags[i]);
        let base: Vec<usize> = if let Some(tag) = narrowest_tag {
            self.by_tag.get(tag).map(after).unwrap_or_default()
        } else if !item.types.is_empty() {
            let mut all: Vec<usize> = item
                .types
                .iter()
                .filter_map(|t| self.by_type.get(t))
                .flat_map(after)
                .collect();
            // Several types (or one named twice) interleave: restore order, drop repeats.
            all.sort_unstable();
            all.dedup();
            all
        } else {
            (start..self.events.len()).collect()
        };
        base.into_iter()
            .filter(|&i| {
                let e = &self.events[i];
                item.matches(&e.event_type, &e.tags)
            })
            .collect()
    }

    /// Indexes of the events matching `query` at or after `start`, ascending, each once.
    fn matching(&self, query: &Query, start: usize) -> Vec<usize> {
        match query.items() {
            [] => Vec::new(),
            // One item's candidates are already ascending and distinct.
            [item] => self.candidates(item, start),
            items => {
                let mut all: Vec<usize> = items
                    .iter()
                    .flat_map(|item| self.candidates(item, start))
                    .collect();
                all.sort_unstable();
                all.dedup();
                all
            }
        }
    }

    fn push(&mut self, event: NewEvent, recorded_at: SystemTime) -> Position {
        let index = self.events.len();
        let position = Position(index as u64 + 1);
        // Whole microseconds, as the durable stores keep them: one scenario reads back the
        // same times on every store.
        let clock = crate::model::whole_micros(recorded_at);
        let stored = StoredEvent::record_at(event, position, clock);
        for tag in &stored.tags {
            let list = self.by_tag.entry(tag.clone()).or_default();
            // `prepare_append` leaves each tag once; an index listing an event twice would
            // make reads return it twice, so guard anyway.
            if list.last() != Some(&index) {
                list.push(index);
            }
        }
        self.by_type
            .entry(stored.event_type.clone())
            .or_default()
            .push(index);
        self.events.push(stored);
        position
    }

    /// Indexes of the events a read with `options` returns, in the order it returns them.
    fn picked(&self, query: &Query, options: ReadOptions) -> Vec<usize> {
        let limit = options.limit.unwrap_or(usize::MAX);
        let index = |p: Position| usize::try_from(p.0).unwrap_or(usize::MAX);
        // Position p is at index p - 1: a forward read searches from there, a backward
        // one below index p.
        let (start, end) = match options.from {
            None => (0, usize::MAX),
            Some(from) if options.backwards => (0, index(from)),
            Some(from) => (index(from).saturating_sub(1), usize::MAX),
        };
        let mut matching = self.matching(query, start);
        matching.truncate(matching.partition_point(|&i| i < end));
        if options.backwards {
            matching.reverse();
        }
        matching.truncate(limit);
        matching
    }

    /// Checks and writes one append under the caller's write lock. Events at `exempt`
    /// (ascending) never violate the condition: a batch's earlier requests this one builds
    /// on.
    fn append(
        &mut self,
        mut events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
        exempt: &[Position],
        recorded_at: SystemTime,
    ) -> Result<Appended, AppendError> {
        prepare_append(&mut events, condition.as_ref())?;
        let keys: BTreeSet<&str> = events
            .iter()
            .filter_map(|e| e.metadata.idempotency_key.as_deref())
            .map(recorded_key)
            .collect();
        if let Some((key, positions)) = keys.iter().find_map(|k| self.idempotency.get_key_value(*k))
        {
            return Err(AppendError::Duplicate {
                key: key.clone(),
                positions: positions.clone(),
            });
        }
        let keys: Vec<String> = keys.into_iter().map(str::to_owned).collect();
        if let Some(condition) = condition {
            let start = condition
                .after
                .map_or(0, |p| usize::try_from(p.0).unwrap_or(usize::MAX));
            if let Some(i) = self
                .matching(&condition.query, start)
                .into_iter()
                .find(|&i| exempt.binary_search(&self.events[i].position).is_err())
            {
                let event = &self.events[i];
                return Err(AppendError::Conflict {
                    position: event.position,
                    event_type: event.event_type.clone(),
                });
            }
        }
        let positions: Vec<Position> = events
            .into_iter()
            .map(|e| self.push(e, recorded_at))
            .collect();
        for key in keys {
            self.idempotency.insert(key, positions.clone());
        }
        Ok(Appended { positions })
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// How many events the store holds.
    pub fn len(&self) -> usize {
        self.log
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .events
            .len()
    }

    /// Whether the store holds no event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read_now(&self, query: &Query, options: ReadOptions) -> Vec<StoredEvent> {
        let log = self.log.read().unwrap_or_else(PoisonError::into_inner);
        log.picked(query, options)
            .into_iter()
            .map(|i| log.events[i].clone())
            .collect()
    }

    /// Appends like [`EventStore::append`], but records the events as of `recorded_at`
    /// instead of now, except those that carry a time of their own
    /// ([`NewEvent::recorded_at`], which every store keeps: the portable way to record
    /// an event in the past).
    pub fn append_recorded_at(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
        recorded_at: SystemTime,
    ) -> Result<Appended, AppendError> {
        self.append_now(events, condition, recorded_at)
    }

    fn append_now(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
        recorded_at: SystemTime,
    ) -> Result<Appended, AppendError> {
        let appended = self
            .log
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .append(events, condition, &[], recorded_at)?;
        self.listening.committed(appended.last());
        Ok(appended)
    }
}

impl EventStore for MemoryStore {
    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        stream::iter(self.read_now(query, options).into_iter().map(Ok))
    }

    /// Visits the events in place, under the read lock: appends wait meanwhile, so
    /// `visit` should be quick (a fold is).
    fn visit_in_place(
        &self,
        query: &Query,
        options: ReadOptions,
        visit: &mut dyn FnMut(&StoredEvent) -> ControlFlow<()>,
    ) -> bool {
        let log = self.log.read().unwrap_or_else(PoisonError::into_inner);
        for i in log.picked(query, options) {
            if visit(&log.events[i]).is_break() {
                break;
            }
        }
        true
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended, AppendError> {
        self.append_now(events, condition, SystemTime::now())
    }

    async fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        let now = SystemTime::now();
        let mut log = self.log.write().unwrap_or_else(PoisonError::into_inner);
        let mut results: Vec<Result<Appended, AppendError>> = Vec::with_capacity(batch.len());
        for (index, request) in batch.into_iter().enumerate() {
            let result = match exempt_positions(index, &request.builds_on, &results) {
                Ok(exempt) => log.append(request.events, request.condition, &exempt, now),
                Err(e) => Err(e),
            };
            results.push(result);
        }
        drop(log);
        let newest = results
            .iter()
            .filter_map(|r| r.as_ref().ok().and_then(Appended::last))
            .max();
        self.listening.committed(newest);
        Ok(results)
    }

    async fn find_idempotency_keys(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<Position>>>, StoreError> {
        let log = self.log.read().unwrap_or_else(PoisonError::into_inner);
        Ok(keys
            .iter()
            .map(|k| log.idempotency.get(recorded_key(k)).cloned())
            .collect())
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        let log = self.log.read().unwrap_or_else(PoisonError::into_inner);
        Ok(log.events.last().map(|e| e.position))
    }
}

impl PartitionLocks for MemoryStore {
    /// In-process locks: a memory store lives in one process.
    async fn lock_partition(&self, key: &str) -> Result<Option<PartitionLock>, StoreError> {
        Ok(Some(self.locks.lock(key).await))
    }
}

impl SnapshotStore for MemoryStore {
    async fn load_snapshot(&self, key: &str) -> Result<Option<Snapshot>, StoreError> {
        let log = self.log.read().unwrap_or_else(PoisonError::into_inner);
        Ok(log.snapshots.get(key).cloned())
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let mut log = self.log.write().unwrap_or_else(PoisonError::into_inner);
        log.snapshots.insert(snapshot.key.clone(), snapshot);
        Ok(())
    }
}
