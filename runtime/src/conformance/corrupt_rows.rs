//! The contract of consumers behind a row the store cannot read back as an event (a
//! [`StoreError::Corrupt`](crate::store::StoreError::Corrupt) of the read), for the
//! adapters that can spoil a row of their own storage. Unreadable *values*, which a codec
//! refuses before anything is stored, are another case:
//! [`unreadable_values_refused`](super::unreadable_values_refused).
//!
//! Each case appends five events of type [`GOOD`] to a fresh store, has the harness
//! [spoil](CorruptRowHarness::set_codec) the third (its row names the codec
//! [`UNKNOWN_CODEC`]), and runs a consumer over them: a listener that records the positions
//! it handles, or the harness's exactly-once sink of a projection named [`NAME`] that
//! records the positions it applies. An adapter writes that projection for its sink and a
//! [`CorruptRowHarness`] around a fresh store; then
//! [`corrupt_row_conformance_tests!`](crate::corrupt_row_conformance_tests) runs every
//! case:
//!
//! | case | what it checks |
//! | --- | --- |
//! | [`listener_goes_past`] | a listener that dead-letters and continues handles the rows around it, and its dead letter is the row's; a replay keeps it, a rebuild meets it again |
//! | [`listener_stops_before`] | a listener that dead-letters and stops stops just before it, in a catch-up and in a live run, every time; repaired, the row is handled and its letter goes |
//! | [`sink_goes_past`] | an exactly-once sink that continues applies the rows around it, with the row's dead letter; a replay keeps the letter |
//! | [`sink_stops_before`] | an exactly-once sink that stops applies and checkpoints only the rows before it, with the row's dead letter |

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::support::{event, lock, named};
use crate::decide::RetryPolicy;
use crate::listen::{
    DeadLetter, HandlerError, Listener, ListenerStore, OnFailure, Progress, Sink, Subscription,
    SubscriptionError, SubscriptionOptions,
};
use crate::model::{Position, Query, StoredEvent};
use crate::store::EventStore;

/// The name of the harness's projection, under which its checkpoint and dead letters are
/// kept.
pub const NAME: &str = "applied";

/// The type of every event the cases append.
pub const GOOD: &str = "Good";

/// The codec the cases spoil a row with: one no store knows.
pub const UNKNOWN_CODEC: &str = "zstd";

/// The codec of the cases' events, which repairs a spoiled row.
const REPAIRED: &str = "json";

/// How many events the cases append; the third is the one corrupted.
const EVENTS: usize = 5;

/// How long a live run may take to stop at the row before the case calls it stuck.
const PROMPTLY: Duration = Duration::from_secs(10);

/// A fresh store, a way to spoil one of its rows and repair it, and an exactly-once sink
/// on it, for the cases.
pub trait CorruptRowHarness {
    /// The store the events, checkpoints and dead letters are kept in.
    type Store: ListenerStore + Clone + 'static;
    /// The exactly-once sink of the harness's projection.
    type Sink: Sink + 'static;

    /// The store, empty when the case begins.
    fn store(&self) -> &Self::Store;

    /// A new exactly-once sink on [`store`](CorruptRowHarness::store) of a projection
    /// named [`NAME`] over every event ([`Query::all`]) that records the position of each
    /// event it applies, in a table whose primary key is the position.
    fn sink(&self) -> impl Future<Output = Self::Sink>;

    /// The positions the projection has applied, committed work only, in order.
    fn applied(&self) -> impl Future<Output = Vec<u64>>;

    /// Rewrites the name of the codec stored in the row of the event at `position` to
    /// `codec`, keeping everything else, as a bug or a hand edit might have: the cases
    /// spoil a row with [`UNKNOWN_CODEC`] and repair it with `"json"`, the codec its event
    /// was appended in.
    fn set_codec(&self, position: Position, codec: &str) -> impl Future<Output = ()>;
}

/// A listener that dead-letters the corrupt row and continues handles every other event,
/// checkpoints past it and keeps one dead letter for it; replaying that letter, still
/// unreadable, keeps it and fails nothing else; a rebuild meets the row again, handling
/// the others and keeping one letter.
pub async fn listener_goes_past<H: CorruptRowHarness>(harness: H) {
    named("corrupt_rows::listener_goes_past", async move {
        let store = harness.store();
        let (all, bad) = corrupted(&harness).await;
        let others = without(&all, bad);
        let seen = Arc::default();
        let mut sub = Subscription::listener(store.clone(), recording("recorder", &seen))
            .with_options(options(OnFailure::DeadLetterAndContinue));
        let progress = done(sub.catch_up().await, "a catch-up past the row");
        assert_eq!(*lock(&seen), others, "the positions handled");
        assert_eq!((progress.handled, progress.dead_lettered), (4, 1));
        assert_eq!(progress.position, all[EVENTS - 1]);
        assert_eq!(checkpoint(store, "recorder").await, Some(all[EVENTS - 1]));
        assert_one_letter(&letters(store, "recorder").await, bad);

        // Replaying a still-unreadable letter keeps it and fails nothing else.
        let replay = done(sub.replay_dead_letters().await, "a replay");
        assert_eq!((replay.handled, replay.dead_lettered), (0, 1));
        assert_one_letter(&letters(store, "recorder").await, bad);

        // A rebuild meets it again: one letter, the other events handled.
        lock(&seen).clear();
        let rebuilt = done(sub.rebuild().await, "a rebuild");
        assert_eq!(*lock(&seen), others, "the positions handled by the rebuild");
        assert_eq!(rebuilt.position, all[EVENTS - 1]);
        assert_one_letter(&letters(store, "recorder").await, bad);
    })
    .await;
}

/// A listener that dead-letters the corrupt row and stops stops just before it, naming
/// its position, type and codec, with the checkpoint on the event before it and one dead
/// letter; a live run stops there too, at once, rather than loop on the row, and again
/// when run again. Repaired, the row is handled, the rest after it, and its letter goes.
pub async fn listener_stops_before<H: CorruptRowHarness>(harness: H) {
    named("corrupt_rows::listener_stops_before", async move {
        let store = harness.store();
        let (all, bad) = corrupted(&harness).await;
        let seen = Arc::default();
        let mut sub = Subscription::listener(store.clone(), recording("stopper", &seen))
            .with_options(options(OnFailure::DeadLetterAndStop));
        for _ in 0..2 {
            let run = tokio::time::timeout(PROMPTLY, sub.run(futures::future::pending::<()>()))
                .await
                .unwrap_or_else(|_| panic!("a live run did not stop on its own at {bad}"));
            match run {
                Err(SubscriptionError::Failed {
                    position,
                    event_type,
                    error,
                    ..
                }) => {
                    assert_eq!((position, event_type.as_str()), (bad, GOOD));
                    assert!(error.contains(UNKNOWN_CODEC), "{error}");
                }
                other => panic!("expected a stop at {bad}, got {other:?}"),
            }
            assert_eq!(*lock(&seen), all[..2], "the positions handled");
            assert_eq!(checkpoint(store, "stopper").await, Some(all[1]));
            assert_one_letter(&letters(store, "stopper").await, bad);
        }

        // Repaired, the row is handled and its letter goes.
        harness.set_codec(bad, REPAIRED).await;
        done(sub.catch_up().await, "a catch-up after the repair");
        assert_eq!(*lock(&seen), all, "the positions handled");
        assert!(letters(store, "stopper").await.is_empty());
    })
    .await;
}

/// The harness's exactly-once sink, dead-lettering and continuing, applies every other
/// event and checkpoints past the row, its dead letter committed with them; replaying the
/// letter, still unreadable, keeps it.
pub async fn sink_goes_past<H: CorruptRowHarness>(harness: H) {
    named("corrupt_rows::sink_goes_past", async move {
        let store = harness.store();
        let (all, bad) = corrupted(&harness).await;
        let (mut sub, result) =
            sink_caught_up(&harness, bad, OnFailure::DeadLetterAndContinue).await;
        let progress = done(result, "a catch-up past the row");
        assert_eq!(progress.position, all[EVENTS - 1]);
        assert_eq!(harness.applied().await, numbers(&without(&all, bad)));
        let replay = done(sub.replay_dead_letters().await, "a replay");
        assert_eq!((replay.handled, replay.dead_lettered), (0, 1));
        assert_one_letter(&letters(store, NAME).await, bad);
    })
    .await;
}

/// The harness's exactly-once sink, dead-lettering and stopping, stops at the row with
/// the events before it applied and checkpointed, and the row's dead letter.
pub async fn sink_stops_before<H: CorruptRowHarness>(harness: H) {
    named("corrupt_rows::sink_stops_before", async move {
        let (all, bad) = corrupted(&harness).await;
        let (_, result) = sink_caught_up(&harness, bad, OnFailure::DeadLetterAndStop).await;
        assert!(
            matches!(&result, Err(SubscriptionError::Failed { position, .. }) if *position == bad),
            "a stop at {bad}: {result:?}"
        );
        assert_eq!(harness.applied().await, numbers(&all[..2]));
        assert_eq!(checkpoint(harness.store(), NAME).await, Some(all[1]));
    })
    .await;
}

/// Expands to one `#[test]` per case of consumers behind a corrupt row
/// ([`conformance::corrupt_rows`](crate::conformance::corrupt_rows)), run against the
/// harnesses `make()` gives: an expression callable with no argument that returns a future
/// of a fresh [`CorruptRowHarness`]. Like [`conformance_tests!`](crate::conformance_tests),
/// each test runs on its own two-worker tokio runtime.
#[macro_export]
macro_rules! corrupt_row_conformance_tests {
    ($make:expr $(,)?) => {
        $crate::conformance_tests!(@cases_in [$crate::conformance::corrupt_rows] ($make)
            listener_goes_past listener_stops_before sink_goes_past sink_stops_before);
    };
}

/// Appends the cases' events and corrupts the third; returns every position, and the
/// corrupted one.
async fn corrupted<H: CorruptRowHarness>(harness: &H) -> (Vec<Position>, Position) {
    let mut all = Vec::with_capacity(EVENTS);
    for _ in 0..EVENTS {
        let appended = harness
            .store()
            .append(vec![event(GOOD, &[("k", "v")])], None)
            .await
            .unwrap_or_else(|e| panic!("appending a {GOOD} event failed: {e}"));
        all.extend(appended.positions);
    }
    let bad = all[2];
    harness.set_codec(bad, UNKNOWN_CODEC).await;
    (all, bad)
}

/// A subscription of the harness's sink after its first catch-up, failing as `on_failure`
/// says, and that catch-up's result; either way the corrupt row at `bad` is a dead letter
/// by then.
async fn sink_caught_up<H: CorruptRowHarness>(
    harness: &H,
    bad: Position,
    on_failure: OnFailure,
) -> (
    Subscription<H::Store, H::Sink>,
    Result<Progress, SubscriptionError>,
) {
    let store = harness.store();
    let mut sub =
        Subscription::new(store.clone(), harness.sink().await).with_options(options(on_failure));
    let result = sub.catch_up().await;
    assert_one_letter(&letters(store, NAME).await, bad);
    (sub, result)
}

/// A listener named `name` over every event that records the positions it handles in
/// `seen`.
fn recording(name: &'static str, seen: &Arc<Mutex<Vec<Position>>>) -> Recording {
    Recording {
        name,
        seen: seen.clone(),
    }
}

struct Recording {
    name: &'static str,
    seen: Arc<Mutex<Vec<Position>>>,
}

impl Listener for Recording {
    fn name(&self) -> &str {
        self.name
    }

    fn query(&self) -> Query {
        Query::all()
    }

    async fn handle(&mut self, event: &StoredEvent) -> Result<(), HandlerError> {
        lock(&self.seen).push(event.position);
        Ok(())
    }
}

/// Batches of 2, so that the row falls inside a batch; one quick retry.
fn options(on_failure: OnFailure) -> SubscriptionOptions {
    SubscriptionOptions {
        batch: 2,
        retry: RetryPolicy {
            max_retries: 1,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        },
        on_failure,
        poll_interval: Duration::from_millis(20),
    }
}

fn assert_one_letter(letters: &[DeadLetter], bad: Position) {
    assert_eq!(letters.len(), 1, "one dead letter: {letters:?}");
    assert_eq!(letters[0].position, bad, "{letters:?}");
    assert_eq!(letters[0].event_type, GOOD, "{letters:?}");
    assert!(
        letters[0].error.contains(UNKNOWN_CODEC),
        "the reason: {letters:?}"
    );
}

fn without(all: &[Position], bad: Position) -> Vec<Position> {
    all.iter().copied().filter(|p| *p != bad).collect()
}

fn numbers(positions: &[Position]) -> Vec<u64> {
    positions.iter().map(|p| p.0).collect()
}

async fn checkpoint<S: ListenerStore>(store: &S, listener: &str) -> Option<Position> {
    store
        .load_checkpoint(listener)
        .await
        .unwrap_or_else(|e| panic!("loading the checkpoint of {listener} failed: {e}"))
}

async fn letters<S: ListenerStore>(store: &S, listener: &str) -> Vec<DeadLetter> {
    store
        .dead_letters(Some(listener))
        .await
        .unwrap_or_else(|e| panic!("reading the dead letters of {listener} failed: {e}"))
}

fn done(result: Result<Progress, SubscriptionError>, what: &str) -> Progress {
    result.unwrap_or_else(|e| panic!("{what} failed: {e}"))
}
