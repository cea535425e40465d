//! The store conformance suite against the in-memory store, one test per case, and proof
//! that every case fails a store with the bug it is there to catch.
//!
//! The broken stores are one wrapper around [`MemoryStore`], [`Broken`], with one [`Bug`]
//! each. Every bug triggers on every call it concerns, so each rejection is deterministic
//! (the randomized cases run with explicit sizes and seeds for the same reason). One more
//! wrapper, [`Bug::Lenient`], takes only the liberties the contract allows and must pass
//! everything.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use factum::conformance::{self, RandomConsistency, TailingReader};
use factum::store::PartitionLock;
use factum::store::StoreLayer;
use factum::{
    AppendCondition, AppendError, AppendRequest, Appended, Codec, EventStore, MemoryStore,
    NewEvent, Position, Query, QueryItem, ReadOptions, Snapshot, StoreError, StoredEvent, Tag,
};
use factum::{PartitionLocks, SnapshotStore};
use futures::{Stream, TryStreamExt, stream};
use tokio::sync::Mutex;

factum::conformance_tests!(|| async { MemoryStore::new() });

mod listening {
    factum::listener_conformance_tests!(|| async { factum::MemoryStore::new() });
}

/// `run_all` on an `Arc` of the store: the blanket implementation passes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_an_arc() {
    conformance::run_all(|| async { std::sync::Arc::new(MemoryStore::new()) }).await;
}

/// The suite again through [`AnyStore`](factum::AnyStore), the store an application
/// picks at run time: it passes as the store inside it.
mod any_store {
    factum::conformance_tests!(|| async { factum::AnyStore::new(factum::MemoryStore::new()) });

    mod listening {
        factum::listener_conformance_tests!(|| async {
            factum::AnyStore::new(factum::MemoryStore::new())
        });
    }
}

/// A store that re-formats JSON, returns tags sorted and deduplicated and numbers its
/// positions with gaps conforms: the suite assumes no more than the contract says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_on_a_lenient_store() {
    conformance::run_all(|| async { Broken::new(Bug::Lenient) }).await;
}

// --- Broken stores the suite must reject -------------------------------------------------

/// What a [`Broken`] store gets wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bug {
    /// Positions start at 0 (an index used as a position).
    ZeroBasedPositions,
    /// Two events share each position (positions are `ceil(p / 2)`).
    ReusesPositions,
    /// An append returns its positions newest first.
    ReversedBatchPositions,
    /// `head` is the first position of the newest append, not its last.
    StaleHead,
    /// The tags of a query item match when the event carries any of them, not all.
    TagsOr,
    /// Reads ignore `limit`.
    IgnoresLimit,
    /// Reads ignore `backwards`.
    IgnoresBackwards,
    /// `from` is exclusive (`position > from`, or `<` backwards).
    FromExclusive,
    /// Reads ignore `from`.
    IgnoresFrom,
    /// The first read to reach an event leaves it out unless it is the newest event that
    /// read found; later reads show it. So does a store that reads by position while a
    /// transaction holding a lower position has not committed yet.
    HidesUnseen,
    /// Appends ignore their condition.
    IgnoresConditions,
    /// A conflict names the last conflicting event instead of the first.
    ConflictNamesLast,
    /// A condition's position is ignored: any match conflicts.
    ConditionIgnoresAfter,
    /// A match at the condition's position conflicts too.
    ConditionAfterInclusive,
    /// A condition on a query of no items matches everything (an empty `OR`).
    NoneMatchesAll,
    /// A condition on a query of no items is dropped: the append commits unguarded.
    AcceptsEmptyCondition,
    /// Every tag comes back twice (a read joining a tag table row per tag).
    RepeatsTags,
    /// Conditions compare types only (a store that indexes no tags).
    ConditionIgnoresTags,
    /// Conditions are checked against a snapshot that misses the newest append (a check
    /// outside the appending transaction).
    StaleConditionSnapshot,
    /// An append of no event succeeds, writing nothing.
    AcceptsEmpty,
    /// A batch is appended one event at a time, each under the condition.
    SplitsBatches,
    /// Non-ASCII characters of payloads come back as `?` (a Latin-1 connection).
    MangledUnicode,
    /// JSON payloads lose the sign of zero: `-0.0` comes back as `0.0` (PostgreSQL's
    /// `jsonb`, whose `numeric` has no negative zero).
    PositiveZeros,
    /// The causation id is not read back.
    LosesCausation,
    /// Tags are kept one value per key (a map keyed by tag key).
    OneValuePerTagKey,
    /// Idempotency keys are not recorded (stripped before the append).
    IgnoresIdempotency,
    /// Records an idempotency key whole, fingerprint included, so another fingerprint
    /// makes a new key (its separator is stored as `U+001E` and read back as `U+001F`).
    RecordsWholeKeys,
    /// A batch stops at its first failing request: the rest fail with the same error.
    BatchStopsAtFailure,
    /// Snapshots are never kept.
    LosesSnapshots,
    /// Every tenth append is acknowledged with the positions it would have had, but
    /// never written (a commit lost after the reply).
    LosesEveryTenthAppend,
    /// Batches ignore [`AppendRequest::builds_on`]: no exemption, no dependency failure.
    IgnoresBuildsOn,
    /// A request building on any earlier request of its batch is taken to build on all
    /// of them.
    BuildsOnEverything,
    /// `find_idempotency_keys` finds no key (a look-up in the wrong table).
    FindsNoKeys,
    /// `find_idempotency_keys` answers in reverse order.
    LookupReversed,
    /// `lock_partition` returns a lock that excludes nothing.
    LockExcludesNothing,
    /// A caller-set `recorded_at` is dropped: every event is recorded now.
    IgnoresRecordedAt,
    /// A caller-set `recorded_at` is cut to the microsecond toward 1970 (so a time
    /// before it moves forward), not down.
    TruncatesTowardEpoch,
    /// No bug: JSON comes back pretty-printed with sorted keys, tags sorted and
    /// deduplicated, positions multiplied by 10, and no partition locks (`Ok(None)`).
    /// All allowed.
    Lenient,
}

/// A [`MemoryStore`] with a [`Bug`].
#[derive(Clone)]
struct Broken {
    inner: MemoryStore,
    bug: Bug,
    state: Arc<Mutex<State>>,
}

/// Inner positions the bugs remember.
#[derive(Default)]
struct State {
    /// The positions of the newest append.
    latest: Vec<Position>,
    /// Appends so far ([`Bug::LosesEveryTenthAppend`]).
    appends: u64,
    /// Every position a read has reached ([`Bug::HidesUnseen`]).
    seen: HashSet<Position>,
}

impl Broken {
    fn new(bug: Bug) -> Self {
        Broken {
            inner: MemoryStore::new(),
            bug,
            state: Arc::default(),
        }
    }

    /// The position callers see for an inner one.
    fn outer(&self, p: Position) -> Position {
        match self.bug {
            Bug::ZeroBasedPositions => Position(p.0 - 1),
            Bug::ReusesPositions => Position(p.0.div_ceil(2)),
            Bug::Lenient => Position(p.0 * 10),
            _ => p,
        }
    }

    /// The inner `after` of a condition for an outer one.
    fn inner_after(&self, q: Position) -> Position {
        match self.bug {
            Bug::ZeroBasedPositions => q.next(),
            Bug::Lenient => Position(q.0 / 10),
            _ => q,
        }
    }

    /// The inner `from` of a read for an outer one.
    fn inner_from(&self, q: Position, backwards: bool) -> Position {
        match self.bug {
            Bug::ZeroBasedPositions => q.next(),
            Bug::Lenient if backwards => Position(q.0 / 10),
            Bug::Lenient => Position(q.0.div_ceil(10)),
            _ => q,
        }
    }

    fn query_in(&self, query: &Query) -> Query {
        if self.bug != Bug::TagsOr {
            return query.clone();
        }
        let items = query.items().iter().flat_map(|item| {
            if item.tags.len() <= 1 {
                return vec![item.clone()];
            }
            item.tags
                .iter()
                .map(|tag| QueryItem::types(item.types.clone()).with_tags([tag.clone()]))
                .collect()
        });
        items.collect()
    }

    fn condition_in(&self, condition: AppendCondition) -> Option<AppendCondition> {
        let mut query = self.query_in(&condition.query);
        let mut after = condition.after.map(|q| self.inner_after(q));
        match self.bug {
            Bug::IgnoresConditions => return None,
            Bug::ConditionIgnoresAfter => after = None,
            Bug::ConditionAfterInclusive => after = after.map(|p| Position(p.0.saturating_sub(1))),
            Bug::NoneMatchesAll if query.is_none() => query = Query::all(),
            Bug::AcceptsEmptyCondition if query.is_none() => return None,
            Bug::ConditionIgnoresTags => {
                query = query
                    .items()
                    .iter()
                    .map(|i| QueryItem::types(i.types.clone()))
                    .collect();
            }
            _ => {}
        }
        Some(AppendCondition::new(query, after))
    }

    fn event_out(&self, mut e: StoredEvent) -> StoredEvent {
        e.position = self.outer(e.position);
        match self.bug {
            Bug::MangledUnicode => {
                let text: String = String::from_utf8_lossy(&e.payload.bytes)
                    .chars()
                    .map(|c| if c.is_ascii() { c } else { '?' })
                    .collect();
                e.payload.bytes = text.into_bytes();
            }
            Bug::PositiveZeros if e.payload.codec == Codec::Json => {
                let text = String::from_utf8_lossy(&e.payload.bytes).replace("-0.0", "0.0");
                e.payload.bytes = text.into_bytes();
            }
            Bug::LosesCausation => e.metadata.causation_id = None,
            Bug::RecordsWholeKeys => {
                if let Some(key) = &mut e.metadata.idempotency_key {
                    *key = key.replace('\u{1e}', "\u{1f}");
                }
            }
            Bug::RepeatsTags => {
                e.tags = e.tags.iter().flat_map(|t| [t.clone(), t.clone()]).collect()
            }
            Bug::OneValuePerTagKey => {
                let by_key: BTreeMap<String, Tag> =
                    e.tags.drain(..).map(|t| (t.key.clone(), t)).collect();
                e.tags = by_key.into_values().collect();
            }
            Bug::Lenient => {
                // Only JSON may be re-formatted; other codecs come back byte for byte.
                if e.payload.codec == Codec::Json {
                    let value: serde_json::Value =
                        serde_json::from_slice(&e.payload.bytes).unwrap();
                    e.payload.bytes = serde_json::to_vec_pretty(&value).unwrap();
                }
                e.tags.sort();
                e.tags.dedup();
            }
            _ => {}
        }
        e
    }

    async fn read_all(
        &self,
        query: &Query,
        mut options: ReadOptions,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let query = self.query_in(query);
        match self.bug {
            Bug::IgnoresLimit => options.limit = None,
            Bug::IgnoresBackwards => options.backwards = false,
            Bug::IgnoresFrom => options.from = None,
            Bug::FromExclusive if options.backwards => {
                options.from = options.from.map(|p| Position(p.0.saturating_sub(1)));
            }
            Bug::FromExclusive => options.from = options.from.map(Position::next),
            _ => {}
        }
        options.from = options.from.map(|q| self.inner_from(q, options.backwards));
        let found: Vec<StoredEvent> = if self.bug == Bug::HidesUnseen {
            let limit = options.limit.take();
            let found: Vec<StoredEvent> = self.inner.read(&query, options).try_collect().await?;
            let newest = found.iter().map(|e| e.position).max();
            let mut state = self.state.lock().await;
            found
                .into_iter()
                .filter(|e| !state.seen.insert(e.position) || Some(e.position) == newest)
                .take(limit.unwrap_or(usize::MAX))
                .collect()
        } else {
            self.inner.read(&query, options).try_collect().await?
        };
        Ok(found.into_iter().map(|e| self.event_out(e)).collect())
    }

    /// The append with the bug, in inner positions.
    async fn append_inner(
        &self,
        state: &State,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended, AppendError> {
        match self.bug {
            Bug::SplitsBatches => {
                if events.is_empty() {
                    return Err(AppendError::Empty);
                }
                let mut positions = Vec::new();
                for event in events {
                    let appended = self.inner.append(vec![event], condition.clone()).await?;
                    positions.extend(appended.positions);
                }
                Ok(Appended { positions })
            }
            Bug::StaleConditionSnapshot => {
                if let Some(condition) = &condition {
                    let options = ReadOptions {
                        from: condition.after.map(Position::next),
                        ..ReadOptions::forward()
                    };
                    let found: Vec<StoredEvent> = self
                        .inner
                        .read(&condition.query, options)
                        .try_collect()
                        .await?;
                    if let Some(e) = found.iter().find(|e| !state.latest.contains(&e.position)) {
                        return Err(AppendError::Conflict {
                            position: e.position,
                            event_type: e.event_type.clone(),
                        });
                    }
                }
                self.inner.append(events, None).await
            }
            Bug::ConflictNamesLast => {
                let result = self.inner.append(events, condition.clone()).await;
                let (Err(AppendError::Conflict { .. }), Some(condition)) = (&result, condition)
                else {
                    return result;
                };
                let options = ReadOptions {
                    from: condition.after.map(Position::next),
                    ..ReadOptions::forward()
                };
                let found: Vec<StoredEvent> = self
                    .inner
                    .read(&condition.query, options)
                    .try_collect()
                    .await?;
                let last = found.last().expect("a conflict has a matching event");
                Err(AppendError::Conflict {
                    position: last.position,
                    event_type: last.event_type.clone(),
                })
            }
            _ => self.inner.append(events, condition).await,
        }
    }
}

impl Broken {
    /// A batch whose requests build on each other: appended by the inner store in one
    /// go (with the position bugs applied around it), as only it can exempt the events
    /// of a batch's earlier requests.
    async fn append_dependent_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        let batch = batch
            .into_iter()
            .enumerate()
            .map(|(index, mut request)| {
                request.condition = request.condition.and_then(|c| self.condition_in(c));
                match self.bug {
                    Bug::IgnoresBuildsOn => request.builds_on.clear(),
                    Bug::BuildsOnEverything if !request.builds_on.is_empty() => {
                        request.builds_on = (0..index).collect();
                    }
                    _ => {}
                }
                request
            })
            .collect();
        let mut state = self.state.lock().await;
        let results = self.inner.append_batch(batch).await?;
        if let Some(Ok(last)) = results.iter().rev().find(|r| r.is_ok()) {
            state.latest.clone_from(&last.positions);
        }
        Ok(results
            .into_iter()
            .map(|result| match result {
                Ok(appended) => Ok(Appended {
                    positions: appended.positions.iter().map(|p| self.outer(*p)).collect(),
                }),
                Err(AppendError::Conflict {
                    position,
                    event_type,
                }) => Err(AppendError::Conflict {
                    position: self.outer(position),
                    event_type,
                }),
                Err(AppendError::Duplicate { key, positions }) => Err(AppendError::Duplicate {
                    key,
                    positions: positions.into_iter().map(|p| self.outer(p)).collect(),
                }),
                Err(other) => Err(other),
            })
            .collect())
    }
}

impl StoreLayer for Broken {
    type Inner = MemoryStore;

    fn inner(&self) -> &MemoryStore {
        &self.inner
    }

    fn read<'a>(
        &'a self,
        query: &'a Query,
        options: ReadOptions,
    ) -> impl Stream<Item = Result<StoredEvent, StoreError>> + Send + 'a {
        stream::once(self.read_all(query, options))
            .map_ok(|events| stream::iter(events.into_iter().map(Ok)))
            .try_flatten()
    }

    async fn append(
        &self,
        events: Vec<NewEvent>,
        condition: Option<AppendCondition>,
    ) -> Result<Appended, AppendError> {
        if events.is_empty() && self.bug == Bug::AcceptsEmpty {
            return Ok(Appended {
                positions: Vec::new(),
            });
        }
        if self.bug == Bug::LosesEveryTenthAppend && !events.is_empty() {
            let mut state = self.state.lock().await;
            state.appends += 1;
            if state.appends % 10 == 0 {
                let head = self.inner.head().await?.map_or(0, |p| p.0);
                return Ok(Appended {
                    positions: (1..=events.len() as u64)
                        .map(|i| self.outer(Position(head + i)))
                        .collect(),
                });
            }
        }
        let mut events = events;
        if self.bug == Bug::IgnoresIdempotency {
            for event in &mut events {
                event.metadata.idempotency_key = None;
            }
        }
        if self.bug == Bug::RecordsWholeKeys {
            for event in &mut events {
                if let Some(key) = &mut event.metadata.idempotency_key {
                    *key = key.replace('\u{1f}', "\u{1e}");
                }
            }
        }
        for event in &mut events {
            match self.bug {
                Bug::IgnoresRecordedAt => event.recorded_at = None,
                Bug::TruncatesTowardEpoch => {
                    event.recorded_at = event.recorded_at.map(toward_epoch)
                }
                _ => {}
            }
        }
        let condition = condition.and_then(|c| self.condition_in(c));
        // Appends are serialised, as the inner store's are anyway.
        let mut state = self.state.lock().await;
        match self.append_inner(&state, events, condition).await {
            Ok(appended) => {
                state.latest.clone_from(&appended.positions);
                let mut positions: Vec<Position> =
                    appended.positions.iter().map(|p| self.outer(*p)).collect();
                if self.bug == Bug::ReversedBatchPositions {
                    positions.reverse();
                }
                Ok(Appended { positions })
            }
            Err(AppendError::Conflict {
                position,
                event_type,
            }) => Err(AppendError::Conflict {
                position: self.outer(position),
                event_type,
            }),
            Err(AppendError::Duplicate { key, positions }) => Err(AppendError::Duplicate {
                key,
                positions: positions.into_iter().map(|p| self.outer(p)).collect(),
            }),
            Err(other) => Err(other),
        }
    }

    async fn append_batch(
        &self,
        batch: Vec<AppendRequest>,
    ) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        if batch.iter().any(|r| !r.builds_on.is_empty()) {
            return self.append_dependent_batch(batch).await;
        }
        let mut results = Vec::new();
        let mut failed: Option<String> = None;
        for request in batch {
            if let Some(reason) = &failed {
                results.push(Err(AppendError::Store(StoreError::backend(
                    std::io::Error::other(reason.clone()),
                ))));
                continue;
            }
            let result = StoreLayer::append(self, request.events, request.condition).await;
            if self.bug == Bug::BatchStopsAtFailure
                && let Err(e) = &result
            {
                failed = Some(e.to_string());
            }
            results.push(result);
        }
        Ok(results)
    }

    async fn find_idempotency_keys(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<Position>>>, StoreError> {
        let mut found: Vec<Option<Vec<Position>>> = self
            .inner
            .find_idempotency_keys(keys)
            .await?
            .into_iter()
            .map(|f| f.map(|positions| positions.into_iter().map(|p| self.outer(p)).collect()))
            .collect();
        match self.bug {
            Bug::FindsNoKeys => found.iter_mut().for_each(|f| *f = None),
            Bug::LookupReversed => found.reverse(),
            _ => {}
        }
        Ok(found)
    }

    async fn lock_partition(&self, key: &str) -> Result<Option<PartitionLock>, StoreError> {
        match self.bug {
            Bug::LockExcludesNothing => Ok(Some(PartitionLock::new(|| async {}))),
            Bug::Lenient => Ok(None),
            _ => self.inner.lock_partition(key).await,
        }
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        if self.bug == Bug::LosesSnapshots {
            return Ok(());
        }
        self.inner.save_snapshot(snapshot).await
    }

    async fn head(&self) -> Result<Option<Position>, StoreError> {
        if self.bug == Bug::StaleHead {
            let state = self.state.lock().await;
            return Ok(state.latest.first().map(|p| self.outer(*p)));
        }
        Ok(self.inner.head().await?.map(|p| self.outer(p)))
    }
}

/// Runs a case that must fail and returns its panic message.
fn failure_of(case: impl Future<Output = ()>) -> String {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let panic = catch_unwind(AssertUnwindSafe(|| runtime.block_on(case)))
        .expect_err("the conformance case accepted a broken store");
    panic.downcast_ref::<String>().cloned().unwrap_or_default()
}

/// Asserts that `run` fails as case `case`, with a message containing `fragment`, and
/// returns the message.
fn assert_rejects(case: &str, bug: Bug, fragment: &str, run: impl Future<Output = ()>) -> String {
    let message = failure_of(run);
    assert!(
        message.contains(&format!("store conformance case `{case}` failed")),
        "the failure on {bug:?} does not name the case `{case}`: {message}"
    );
    assert!(
        message.contains(fragment),
        "the failure of `{case}` on {bug:?} does not mention {fragment:?}: {message}"
    );
    message
}

#[test]
fn empty_store_rejects_positions_from_zero() {
    let bug = Bug::ZeroBasedPositions;
    assert_rejects(
        "empty_store",
        bug,
        "positions start above 0, got #0",
        conformance::empty_store(Broken::new(bug)),
    );
}

#[test]
fn query_matching_rejects_tags_matched_with_or() {
    let bug = Bug::TagsOr;
    assert_rejects(
        "query_matching",
        bug,
        "forward read of tags x:1 and y:1",
        conformance::query_matching(Broken::new(bug)),
    );
}

#[test]
fn read_options_rejects_ignored_limit_backwards_and_from() {
    for (bug, fragment) in [
        (Bug::IgnoresLimit, "limit 2:"),
        (Bug::IgnoresBackwards, "backwards:"),
        (Bug::FromExclusive, "from a match:"),
        (Bug::IgnoresFrom, "from a match:"),
    ] {
        assert_rejects(
            "read_options",
            bug,
            fragment,
            conformance::read_options(Broken::new(bug)),
        );
    }
}

#[test]
fn append_condition_without_position_rejects_ignored_conditions_and_wrong_conflicts() {
    for (bug, fragment) in [
        (
            Bug::IgnoresConditions,
            "the same seat booked twice: the append",
        ),
        (
            Bug::ConflictNamesLast,
            "several matching events (the first must be named)",
        ),
    ] {
        assert_rejects(
            "append_condition_without_position",
            bug,
            fragment,
            conformance::append_condition_without_position(Broken::new(bug)),
        );
    }
}

#[test]
fn append_condition_with_position_rejects_a_mishandled_position() {
    for (bug, fragment) in [
        (
            Bug::IgnoresConditions,
            "a match after the condition's position",
        ),
        (Bug::ConditionIgnoresAfter, "append condition failed"),
        (Bug::ConditionAfterInclusive, "append condition failed"),
    ] {
        assert_rejects(
            "append_condition_with_position",
            bug,
            fragment,
            conformance::append_condition_with_position(Broken::new(bug)),
        );
    }
}

#[test]
fn empty_condition_refused_rejects_an_empty_query_matching_all_or_dropped() {
    for bug in [Bug::NoneMatchesAll, Bug::AcceptsEmptyCondition] {
        assert_rejects(
            "empty_condition_refused",
            bug,
            "an append on an empty store under a condition on Query::none returned Ok",
            conformance::empty_condition_refused(Broken::new(bug)),
        );
    }
}

#[test]
fn condition_matching_nothing_rejects_ignored_tags() {
    let bug = Bug::ConditionIgnoresTags;
    assert_rejects(
        "condition_matching_nothing",
        bug,
        "a condition on an unknown tag",
        conformance::condition_matching_nothing(Broken::new(bug)),
    );
}

#[test]
fn repeated_tags_stored_once_rejects_tags_read_back_twice() {
    let bug = Bug::RepeatsTags;
    assert_rejects(
        "repeated_tags_stored_once",
        bug,
        "each must come back once",
        conformance::repeated_tags_stored_once(Broken::new(bug)),
    );
}

#[test]
fn multi_event_appends_rejects_split_batches() {
    let bug = Bug::SplitsBatches;
    assert_rejects(
        "multi_event_appends",
        bug,
        "an append of 2 events with condition (D, after None) failed",
        conformance::multi_event_appends(Broken::new(bug)),
    );
}

#[test]
fn idempotency_keys_rejects_unrecorded_keys() {
    let bug = Bug::IgnoresIdempotency;
    assert_rejects(
        "idempotency_keys",
        bug,
        "a second append with key req-1 and condition None must be a duplicate",
        conformance::idempotency_keys(Broken::new(bug)),
    );
}

#[test]
fn recorded_keys_rejects_a_store_recording_whole_keys() {
    let bug = Bug::RecordsWholeKeys;
    assert_rejects(
        "recorded_keys",
        bug,
        "expected a duplicate of \"Pay:r-1\"",
        conformance::recorded_keys(Broken::new(bug)),
    );
}

#[test]
fn batch_appends_rejects_a_batch_that_stops_at_a_failure() {
    let bug = Bug::BatchStopsAtFailure;
    assert_rejects(
        "batch_appends",
        bug,
        "request 3 of the batch should commit",
        conformance::batch_appends(Broken::new(bug)),
    );
}

#[test]
fn snapshots_rejects_a_store_that_keeps_none() {
    let bug = Bug::LosesSnapshots;
    assert_rejects(
        "snapshots",
        bug,
        "a saved snapshot",
        conformance::snapshots(Broken::new(bug)),
    );
}

#[test]
fn contended_decisions_rejects_lost_appends() {
    let bug = Bug::LosesEveryTenthAppend;
    let sizes = conformance::Contention {
        tasks: 4,
        decisions_per_task: 25,
        capacity: 40,
    };
    assert_rejects(
        "contended_decisions",
        bug,
        "the log must hold exactly one subscription per acknowledged decision",
        conformance::contended_decisions_with(Broken::new(bug), sizes),
    );
}

#[test]
fn positions_monotonic_rejects_reused_reversed_positions_and_a_stale_head() {
    for (bug, fragment) in [
        (Bug::ReusesPositions, "append 1 got position #1 after #1"),
        (
            Bug::ReversedBatchPositions,
            "positions of one append are not strictly increasing",
        ),
        (Bug::StaleHead, "the head after append 1"),
    ] {
        assert_rejects(
            "positions_monotonic",
            bug,
            fragment,
            conformance::positions_monotonic(Broken::new(bug)),
        );
    }
}

#[test]
fn empty_append_rejected_rejects_an_accepted_empty_append() {
    let bug = Bug::AcceptsEmpty;
    assert_rejects(
        "empty_append_rejected",
        bug,
        "an empty append on an empty store returned Ok",
        conformance::empty_append_rejected(Broken::new(bug)),
    );
}

/// `time` cut to the microsecond toward the Unix epoch.
fn toward_epoch(time: std::time::SystemTime) -> std::time::SystemTime {
    use std::time::{Duration, UNIX_EPOCH};
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => UNIX_EPOCH + Duration::from_micros(after.as_micros() as u64),
        Err(before) => UNIX_EPOCH - Duration::from_micros(before.duration().as_micros() as u64),
    }
}

#[test]
fn imported_times_rejects_lost_and_misrounded_times() {
    for (bug, fragment) in [
        (Bug::IgnoresRecordedAt, "the recorded_at of the event at"),
        (Bug::TruncatesTowardEpoch, "rounded down to the microsecond"),
    ] {
        assert_rejects(
            "imported_times",
            bug,
            fragment,
            conformance::imported_times(Broken::new(bug)),
        );
    }
}

#[test]
fn round_trip_rejects_changed_payloads_metadata_and_tags() {
    for (bug, fragment) in [
        (Bug::MangledUnicode, "the JSON payload of shop.CouponIssued"),
        (Bug::LosesCausation, "the metadata of shop.CouponIssued"),
        (Bug::OneValuePerTagKey, "the tags of user.UsernameChanged"),
    ] {
        assert_rejects(
            "round_trip",
            bug,
            fragment,
            conformance::round_trip(Broken::new(bug)),
        );
    }
}

#[test]
fn exact_floats_rejects_a_lost_sign_of_zero() {
    let bug = Bug::PositiveZeros;
    assert_rejects(
        "exact_floats",
        bug,
        "json -0.0/-0.0 came back as 0.0/0.0",
        conformance::exact_floats(Broken::new(bug)),
    );
}

#[test]
fn concurrent_overlapping_conditions_rejects_unguarded_appends() {
    for bug in [Bug::IgnoresConditions, Bug::StaleConditionSnapshot] {
        assert_rejects(
            "concurrent_overlapping_conditions",
            bug,
            "racing appends on one condition succeeded",
            conformance::concurrent_overlapping_conditions(Broken::new(bug)),
        );
    }
}

#[test]
fn concurrent_disjoint_conditions_rejects_conditions_without_tags() {
    let bug = Bug::ConditionIgnoresTags;
    assert_rejects(
        "concurrent_disjoint_conditions",
        bug,
        "an unrelated append failed",
        conformance::concurrent_disjoint_conditions(Broken::new(bug)),
    );
}

#[test]
fn random_consistency_rejects_ignored_conditions_naming_the_seed() {
    // One writer: no interleaving, so the seed alone decides the run.
    let bug = Bug::IgnoresConditions;
    let sizes = RandomConsistency {
        writers: 1,
        appends_per_writer: 60,
        seed: 7,
    };
    let message = assert_rejects(
        "random_consistency",
        bug,
        "(seed 0x7; replay its random choices with FACTUM_CONFORMANCE_SEED=0x7): DCB violated",
        conformance::random_consistency_with(Broken::new(bug), sizes),
    );
    assert!(message.contains("(writer 0, attempt "), "{message}");
}

#[test]
fn tailing_reader_sees_every_event_rejects_skipped_and_repeated_events() {
    let sizes = TailingReader {
        writers: 2,
        appends_per_writer: 20,
        seed: 11,
    };
    // The writers never read, so the reader is the first to reach every event: each
    // multi-event batch makes it skip one.
    assert_rejects(
        "tailing_reader_sees_every_event",
        Bug::HidesUnseen,
        "the tailing reader's sequence is not the final log",
        conformance::tailing_reader_sees_every_event_with(Broken::new(Bug::HidesUnseen), sizes),
    );
    assert_rejects(
        "tailing_reader_sees_every_event",
        Bug::IgnoresFrom,
        "a reader must never see a position below one it already saw",
        conformance::tailing_reader_sees_every_event_with(Broken::new(Bug::IgnoresFrom), sizes),
    );
}

#[test]
fn batch_dependencies_rejects_ignored_and_overreaching_dependencies() {
    for (bug, fragment) in [
        (Bug::IgnoresBuildsOn, "request 1 of the batch should commit"),
        (
            Bug::BuildsOnEverything,
            "request 2 must conflict (it builds on request 1 only, not on request 0)",
        ),
    ] {
        assert_rejects(
            "batch_dependencies",
            bug,
            fragment,
            conformance::batch_dependencies(Broken::new(bug)),
        );
    }
}

#[test]
fn idempotency_lookup_rejects_missing_and_reordered_answers() {
    for (bug, fragment) in [
        (
            Bug::FindsNoKeys,
            "the positions recorded for key \"lookup-3\"",
        ),
        (
            Bug::LookupReversed,
            "the positions recorded for key \"lookup-3\"",
        ),
    ] {
        assert_rejects(
            "idempotency_lookup",
            bug,
            fragment,
            conformance::idempotency_lookup(Broken::new(bug)),
        );
    }
}

#[test]
fn partition_locks_rejects_a_lock_that_excludes_nothing() {
    let bug = Bug::LockExcludesNothing;
    assert_rejects(
        "partition_locks",
        bug,
        "two tasks held the lock on one key at once",
        conformance::partition_locks(Broken::new(bug)),
    );
}

/// A store without partition locks (`Ok(None)`) passes the lock case: it has nothing to
/// check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_locks_accepts_a_store_without_locks() {
    conformance::partition_locks(Broken::new(Bug::Lenient)).await;
}
