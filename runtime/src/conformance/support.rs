//! What the cases share: naming a failing case, building events and queries, reading,
//! appending and checking, and joining tasks.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures::{FutureExt, TryStreamExt};
use uuid::Uuid;

use super::random::SEED_VARIABLE;
use crate::model::{
    AppendCondition, Codec, Metadata, NewEvent, Payload, Position, Query, QueryItem, StoredEvent,
    Tag,
};
use crate::store::{AppendError, Appended, EventStore, ReadOptions};

/// An event of `event_type` carrying the idempotency key `key`.
pub(super) fn keyed(event_type: &str, key: &str) -> NewEvent {
    let mut e = event(event_type, &[("k", key)]);
    e.metadata.idempotency_key = Some(key.to_owned());
    e
}

/// Runs a case body; a panic inside is re-raised with the case's name.
pub(super) async fn named<F: Future<Output = ()>>(case: &'static str, body: F) {
    if let Err(panic) = AssertUnwindSafe(body).catch_unwind().await {
        panic!(
            "store conformance case `{case}` failed: {}",
            panic_message(&*panic)
        );
    }
}

/// Runs the body of a randomized case; a panic inside is re-raised with the case's name
/// and the seed, and how to replay it.
pub(super) async fn named_seeded<F: Future<Output = ()>>(case: &'static str, seed: u64, body: F) {
    if let Err(panic) = AssertUnwindSafe(body).catch_unwind().await {
        panic!(
            "store conformance case `{case}` failed (seed {seed:#x}; replay its random choices \
             with {SEED_VARIABLE}={seed:#x}): {}",
            panic_message(&*panic)
        );
    }
}

/// A panic in a case holding the lock must not hide its own message behind a poison error.
pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)")
}

/// Events appended one per append, with the positions they got.
pub(super) struct Fixture {
    pub(super) events: Vec<NewEvent>,
    pub(super) positions: Vec<Position>,
}

impl Fixture {
    pub(super) async fn append_one_by_one<S: EventStore>(
        store: &S,
        events: Vec<NewEvent>,
    ) -> Fixture {
        let mut positions = Vec::new();
        for e in &events {
            let appended = append(store, vec![e.clone()], None).await;
            positions.extend(appended.positions);
        }
        assert_eq!(positions.len(), events.len(), "one position per event");
        assert_strictly_increasing(&positions, "positions of successive appends");
        Fixture { events, positions }
    }

    /// Asserts that `read` holds exactly the fixture events `expected` (indexes), in order.
    pub(super) fn assert_events(&self, read: &[StoredEvent], expected: &[usize], what: &str) {
        let got: Vec<Position> = read.iter().map(|e| e.position).collect();
        let want: Vec<Position> = expected.iter().map(|&i| self.positions[i]).collect();
        assert_eq!(
            got, want,
            "{what}: positions read (log positions {:?})",
            self.positions
        );
        for (stored, &i) in read.iter().zip(expected) {
            let new = &self.events[i];
            assert_eq!(
                (&stored.event_type, stored.metadata.id),
                (&new.event_type, new.metadata.id),
                "{what}: the event at {} is not the one appended there",
                stored.position
            );
        }
    }
}

pub(super) fn encode(event_type: &str, value: &serde_json::Value) -> Payload {
    Codec::Json
        .encode(event_type, value)
        .unwrap_or_else(|e| panic!("store conformance: cannot encode a JSON value: {e}"))
}

/// The tags as a sorted set.
pub(super) fn tag_set(tags: &[Tag]) -> Vec<Tag> {
    let mut tags = tags.to_vec();
    tags.sort();
    tags.dedup();
    tags
}

/// JSON payloads are equal as JSON values; others byte for byte.
pub(super) fn assert_same_payload(stored: &Payload, new: &Payload, what: &str) {
    if new.codec == Codec::Json {
        let value = |p: &Payload| {
            serde_json::from_slice::<serde_json::Value>(&p.bytes)
                .unwrap_or_else(|e| panic!("the payload of {what} is not JSON: {e}"))
        };
        assert_eq!(value(stored), value(new), "the JSON payload of {what}");
    } else {
        assert_eq!(stored.bytes, new.bytes, "the payload bytes of {what}");
    }
}

/// A version-1 event with a small JSON payload and fresh metadata.
pub(super) fn event(event_type: &str, tags: &[(&str, &str)]) -> NewEvent {
    let tags: Vec<Tag> = tags.iter().map(|(k, v)| Tag::new(*k, *v)).collect();
    let body = serde_json::json!({
        "type": event_type,
        "tags": tags.iter().map(Tag::to_string).collect::<Vec<_>>(),
    });
    NewEvent {
        event_type: event_type.to_owned(),
        version: 1,
        tags,
        payload: encode(event_type, &body),
        metadata: Metadata::new(),
        recorded_at: None,
    }
}

pub(super) fn types(types: &[&str]) -> Query {
    Query::item(QueryItem::types(types.iter().copied()))
}

pub(super) fn tags(tags: &[(&str, &str)]) -> Query {
    typed_tags(&[], tags)
}

pub(super) fn typed_tags(types: &[&str], tags: &[(&str, &str)]) -> Query {
    Query::item(
        QueryItem::types(types.iter().copied())
            .with_tags(tags.iter().map(|(k, v)| Tag::new(*k, *v))),
    )
}

pub(super) async fn read<S: EventStore>(
    store: &S,
    query: &Query,
    options: ReadOptions,
) -> Vec<StoredEvent> {
    store
        .read(query, options)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("reading {query} with {options:?} failed: {e}"))
}

pub(super) async fn head<S: EventStore>(store: &S) -> Option<Position> {
    store
        .head()
        .await
        .unwrap_or_else(|e| panic!("head() failed: {e}"))
}

/// Appends and expects success.
pub(super) async fn append<S: EventStore>(
    store: &S,
    events: Vec<NewEvent>,
    condition: Option<AppendCondition>,
) -> Appended {
    let count = events.len();
    let described = condition
        .as_ref()
        .map(|c| format!("condition ({}, after {:?})", c.query, c.after))
        .unwrap_or_else(|| "no condition".to_owned());
    let appended = store
        .append(events, condition)
        .await
        .unwrap_or_else(|e| panic!("an append of {count} events with {described} failed: {e}"));
    assert_eq!(
        appended.positions.len(),
        count,
        "one position per appended event"
    );
    appended
}

/// Appends `events` on `condition`, expects a conflict naming `position` and `event_type`,
/// and checks that the failed append wrote nothing.
pub(super) async fn expect_conflict<S: EventStore>(
    store: &S,
    events: Vec<NewEvent>,
    condition: AppendCondition,
    position: Position,
    event_type: &str,
    what: &str,
) {
    let before = read(store, &Query::all(), ReadOptions::forward()).await;
    let described = format!(
        "condition ({}, after {:?})",
        condition.query, condition.after
    );
    match store.append(events, Some(condition)).await {
        Err(AppendError::Conflict {
            position: p,
            event_type: t,
        }) => assert_eq!(
            (p, t.as_str()),
            (position, event_type),
            "{what}: on {described}, the conflict must name the first conflicting event"
        ),
        Ok(appended) => panic!(
            "{what}: the append on {described} should conflict with {event_type} at {position} \
             but wrote {:?}",
            appended.positions
        ),
        Err(other) => panic!("{what}: on {described}, expected a conflict, got {other}"),
    }
    assert_unchanged(store, &before, &format!("{what} (a failed append)")).await;
}

/// Asserts the log and head are still `before`.
pub(super) async fn assert_unchanged<S: EventStore>(store: &S, before: &[StoredEvent], what: &str) {
    let now = read(store, &Query::all(), ReadOptions::forward()).await;
    let ids = |events: &[StoredEvent]| -> Vec<(Position, Uuid)> {
        events.iter().map(|e| (e.position, e.metadata.id)).collect()
    };
    assert_eq!(ids(&now), ids(before), "{what}: the log changed");
    assert_eq!(
        head(store).await,
        before.last().map(|e| e.position),
        "{what}: the head is not the last event of the log"
    );
}

/// The first five of `items`, comma-separated, with `...` when there are more.
pub(super) fn first_few(items: &[String]) -> String {
    let mut listed = items[..items.len().min(5)].join(", ");
    if items.len() > 5 {
        listed.push_str(", ...");
    }
    listed
}

pub(super) fn assert_strictly_increasing(positions: &[Position], what: &str) {
    if let Some(pair) = positions.windows(2).find(|w| w[0] >= w[1]) {
        panic!(
            "{what} are not strictly increasing: {} then {}",
            pair[0], pair[1]
        );
    }
}

pub(super) async fn join<T>(task: tokio::task::JoinHandle<T>) -> T {
    join_mut(task).await
}

async fn join_mut<T>(task: impl Future<Output = Result<T, tokio::task::JoinError>>) -> T {
    match task.await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("a task of the case did not finish: {e}"),
    }
}

/// A task aborted when the case ends before joining it (a failing writer, say), so a
/// polling task never outlives its case.
pub(super) struct AbortOnDrop<T>(pub(super) tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    pub(super) async fn join(mut self) -> T {
        join_mut(&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
