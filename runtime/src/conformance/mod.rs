//! The conformance suite every [`EventStore`] runs against itself (feature `conformance`).
//!
//! Each case is an `async fn` that takes a **fresh, empty** store and panics, naming
//! itself, when the store breaks the contract of [`EventStore`]:
//!
//! | case | what it checks |
//! | --- | --- |
//! | [`empty_store`] | an empty store has no head and reads nothing |
//! | [`query_matching`] | types OR within an item, tags AND, items OR; reads in position order |
//! | [`read_options`] | `from` (inclusive), backwards, `limit`, [`ReadOptions::last`] |
//! | [`append_condition_without_position`] | a condition without position fails on any match |
//! | [`append_condition_with_position`] | a condition fails only on a match after its position |
//! | [`condition_matching_nothing`] | a condition whose query matches no stored event never fails |
//! | [`empty_condition_refused`] | a condition on [`Query::none`] is [`AppendError::EmptyCondition`], alone or in a batch |
//! | [`multi_event_appends`] | one append is atomic and its events are adjacent in the log |
//! | [`positions_monotonic`] | positions are unique and increasing; [`EventStore::head`] follows |
//! | [`empty_append_rejected`] | an append of no event is [`AppendError::Empty`] |
//! | [`round_trip`] | type, version, tags, payload bytes, codec and metadata come back equal |
//! | [`unreadable_values_refused`] | a decision emitting what its codec cannot read back (NaN, ±∞ in JSON; nesting past the reader's limit) gets a typed encode error naming the field, through the engine and a serial lane; nothing is appended |
//! | [`exact_floats`] | 2,000 `f64` (and `f32`) values, one an event, come back bit for bit in JSON and MessagePack payloads and snapshots |
//! | [`imported_times`] | a caller-set `recorded_at` comes back, to the microsecond, from every append path; the store's own clock is kept to the microsecond too |
//! | [`repeated_tags_stored_once`] | a tag given twice on an event comes back once |
//! | [`limits_refused`] | an event past a [limit](crate::store::limits) is [`AppendError::Unstorable`], alone or in a batch, whose other requests commit |
//! | [`idempotency_keys`] | a recorded idempotency key makes a later append a duplicate that writes nothing |
//! | [`recorded_keys`] | a store records, looks up and reports an idempotency key's part before its first `U+001F`; events keep the whole key |
//! | [`batch_appends`] | each request of a batch is checked alone, in order; failures do not stop the others |
//! | [`snapshots`] | saved snapshots load back equal; a later save replaces |
//! | [`concurrent_overlapping_conditions`] | of racing appends on one condition, exactly one wins |
//! | [`concurrent_disjoint_conditions`] | racing appends on unrelated conditions all succeed |
//! | [`random_consistency`] | many random writers; every success honours its condition |
//! | [`tailing_reader_sees_every_event`] | a reader tailing concurrent writers sees each event once, in order |
//! | [`batch_dependencies`] | a request building on earlier ones of its batch is exempt from their events, and fails with them |
//! | [`idempotency_lookup`] | each recorded idempotency key gives the positions of its append, in the order asked |
//! | [`partition_locks`] | one holder per partition key, waiters get it on release or drop; stores without locks pass |
//! | [`contended_decisions`] | 8 × 500 decisions race through the engine for 300 seats: none overbooked, every acknowledged one in the log |
//!
//! The contract in detail, beyond the trait's documentation:
//! - positions are strictly increasing but may have gaps, so the suite never assumes
//!   particular numbers; every position is greater than `Position(0)`;
//! - the condition is checked against the events stored **before** the append, never
//!   against the events being appended;
//! - [`AppendError::Conflict`] names the **first** (lowest) conflicting position and the
//!   type of the event there;
//! - the events of one append get increasing positions in the order given, and no other
//!   event lies between them;
//! - a JSON payload comes back as the same JSON value (a store may re-format it, as a JSON
//!   column does), every number in it exactly (a float stays a float, bit for bit, `-0.0`
//!   included), any other payload byte for byte; tags come back as the same set, each
//!   tag once however often it was given (order is not part of the contract; factum's
//!   stores keep the order of first occurrence);
//! - an event's [`NewEvent::recorded_at`], when set, is its
//!   [`StoredEvent::recorded_at`], rounded down to the microsecond
//!   ([`whole_micros`](crate::model::whole_micros)); otherwise the store's clock at the
//!   append. Times order nothing: positions follow the commits;
//! - readers never see a position commit after a higher one they already saw: a reader
//!   that polls forward from just after the last position it saw misses nothing, even
//!   when the store hands out positions before its transactions commit (as a PostgreSQL
//!   sequence does).
//!
//! The concurrent cases spawn tokio tasks (`tokio::spawn`), so they must run inside a
//! tokio runtime, and they only prove something on a multi-thread one; the contention
//! case also needs its timer (the engine's retries sleep).
//!
//! # Running it
//!
//! The simplest way is [`conformance_tests!`](crate::conformance_tests), which expands to
//! one `#[test]` per case, each on its own two-worker tokio runtime. It takes a factory: an
//! expression callable as `make()` that returns a future of a fresh, empty store. The
//! caller does not need to depend on tokio.
//!
//! ```
//! // tests/conformance.rs of an adapter crate (here: the in-memory store)
//! factum::conformance_tests!(|| async { factum::MemoryStore::new() });
//! # fn main() {}
//! ```
//!
//! To run everything in one test, or to run inside your own runtime, use [`run_all`];
//! to size the randomized checks (a slow store, a CI budget), call
//! [`random_consistency_with`] and [`tailing_reader_sees_every_event_with`] yourself.
//!
//! # Reproducing a failure
//!
//! The randomized cases ([`random_consistency`], [`tailing_reader_sees_every_event`]) draw
//! every choice (queries, conditions, batch sizes, pauses) from a seed, and their failure
//! messages name it, along with the writer and the append that went wrong. To run them
//! with another seed, or to replay a failure, set the environment variable
//! `FACTUM_CONFORMANCE_SEED` ([`SEED_VARIABLE`]) to a `u64`, decimal or `0x`-hexadecimal:
//!
//! ```text
//! FACTUM_CONFORMANCE_SEED=0xfac700 cargo test --test conformance
//! ```
//!
//! It sets the seed of the default sizes ([`RandomConsistency::default`],
//! [`TailingReader::default`]); sizes built with an explicit seed keep theirs. A seed fixes
//! the choices, not the order in which the runtime interleaves the tasks, so a race may
//! take a few runs to recur.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use futures::{FutureExt, TryStreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Barrier;
use uuid::Uuid;

use crate::store::{AppendError, AppendRequest, Appended, EventStore, ReadOptions, Snapshot};

mod contention;
mod coordination;
mod floats;
mod guarded;
mod history;
mod limits;
mod listening;
mod normalising;
mod recorded_keys;
mod unreadable;

use crate::model::{
    AppendCondition, Codec, Metadata, NewEvent, Payload, Position, Query, QueryItem, StoredEvent,
    Tag,
};
pub use contention::{Contention, contended_decisions, contended_decisions_with};
pub use coordination::{batch_dependencies, idempotency_lookup, partition_locks};
pub use floats::exact_floats;
pub use guarded::Guarded;
pub use history::imported_times;
pub use limits::limits_refused;
pub use listening::{checkpoints, dead_letters, head_signal, subscription};
pub use normalising::{empty_condition_refused, repeated_tags_stored_once};
pub use recorded_keys::recorded_keys;
pub use unreadable::unreadable_values_refused;

/// Expands to one `#[test]` per conformance case, run against the stores `make()` gives.
///
/// `make` is any expression callable with no argument that returns a future of a fresh,
/// empty store (`S: EventStore + Clone + 'static`), such as `|| async { MyStore::new() }`
/// or the path of an `async fn`. It is called once per case, inside the case's runtime,
/// so it may connect to a database or create a temporary file.
///
/// Each test builds its own multi-thread tokio runtime with two workers, so the calling
/// crate needs no tokio dependency. Invoke the macro once per module: the tests are named
/// after the cases (`query_matching`, `round_trip`, ...).
///
/// ```
/// mod memory {
///     factum::conformance_tests!(|| async { factum::MemoryStore::new() });
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr $(,)?) => {
        $crate::conformance_tests!(@cases ($make)
            empty_store
            query_matching
            read_options
            append_condition_without_position
            append_condition_with_position
            condition_matching_nothing
            empty_condition_refused
            multi_event_appends
            positions_monotonic
            empty_append_rejected
            round_trip
            exact_floats
            unreadable_values_refused
            imported_times
            repeated_tags_stored_once
            limits_refused
            idempotency_keys
            recorded_keys
            batch_appends
            batch_dependencies
            idempotency_lookup
            partition_locks
            snapshots
            concurrent_overlapping_conditions
            concurrent_disjoint_conditions
            random_consistency
            tailing_reader_sees_every_event
            contended_decisions
        );
    };
    (@cases ($make:expr) $($case:ident)*) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::__block_on(async {
                    let store = ($make)().await;
                    $crate::conformance::$case(store).await;
                });
            }
        )*
    };
}

/// Expands to one `#[test]` per case of the listener storage contract
/// ([`ListenerStore`](crate::listen::ListenerStore)): [`checkpoints`], [`dead_letters`],
/// [`head_signal`] and [`subscription`], for stores that run listeners. Takes the same
/// factory as [`conformance_tests!`](crate::conformance_tests).
///
/// ```
/// factum::listener_conformance_tests!(|| async { factum::MemoryStore::new() });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! listener_conformance_tests {
    ($make:expr $(,)?) => {
        $crate::conformance_tests!(@cases ($make)
            checkpoints
            dead_letters
            head_signal
            subscription
        );
    };
}

/// Runs `future` to completion on a new multi-thread tokio runtime with two workers.
///
/// Used by [`conformance_tests!`](crate::conformance_tests); not a public API.
#[doc(hidden)]
pub fn __block_on<F: Future<Output = ()>>(future: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("store conformance: cannot build a tokio runtime: {e}"));
    runtime.block_on(future);
}

/// Runs every case, each against a fresh store from `make`, and panics at the first
/// failing case with a message naming it.
///
/// Must run inside a tokio runtime with its timer enabled (the engine's retries sleep),
/// preferably a multi-thread one (see the [module documentation](self)).
///
/// ```
/// # tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(async {
/// factum::conformance::run_all(|| async { factum::MemoryStore::new() }).await;
/// # });
/// ```
pub async fn run_all<S, F, Fut>(make: F)
where
    S: EventStore + Clone + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    empty_store(make().await).await;
    query_matching(make().await).await;
    read_options(make().await).await;
    append_condition_without_position(make().await).await;
    append_condition_with_position(make().await).await;
    condition_matching_nothing(make().await).await;
    empty_condition_refused(make().await).await;
    multi_event_appends(make().await).await;
    positions_monotonic(make().await).await;
    empty_append_rejected(make().await).await;
    round_trip(make().await).await;
    exact_floats(make().await).await;
    unreadable_values_refused(make().await).await;
    imported_times(make().await).await;
    repeated_tags_stored_once(make().await).await;
    limits_refused(make().await).await;
    idempotency_keys(make().await).await;
    recorded_keys(make().await).await;
    batch_appends(make().await).await;
    batch_dependencies(make().await).await;
    idempotency_lookup(make().await).await;
    partition_locks(make().await).await;
    snapshots(make().await).await;
    concurrent_overlapping_conditions(make().await).await;
    concurrent_disjoint_conditions(make().await).await;
    random_consistency(make().await).await;
    tailing_reader_sees_every_event(make().await).await;
    contended_decisions(make().await).await;
}

/// An empty store has no head, reads nothing forwards or backwards, and accepts a
/// conditional append (nothing can conflict).
pub async fn empty_store<S: EventStore + Clone + 'static>(store: S) {
    named("empty_store", async move {
        assert_eq!(head(&store).await, None, "the head of an empty store");
        for options in [
            ReadOptions::forward(),
            ReadOptions::last(1),
            ReadOptions::last(10),
        ] {
            let events = read(&store, &Query::all(), options).await;
            assert!(
                events.is_empty(),
                "an empty store returned {} events for {options:?}",
                events.len()
            );
        }
        let appended = append(
            &store,
            vec![event("Opened", &[("account", "1")])],
            Some(AppendCondition::new(Query::all(), None)),
        )
        .await;
        assert_eq!(
            appended.positions.len(),
            1,
            "positions of a one-event append"
        );
        assert!(
            appended.positions[0] > Position(0),
            "positions start above 0, got {}",
            appended.positions[0]
        );
        assert_eq!(
            head(&store).await,
            appended.last(),
            "the head after the first append"
        );
    })
    .await;
}

/// Query semantics: an item matches any of its types (none = any type) and all of its
/// tags; a query matches any of its items; reads return exactly the matching events, each
/// once, in position order (reverse order backwards).
pub async fn query_matching<S: EventStore + Clone + 'static>(store: S) {
    named("query_matching", async move {
        let log = Fixture::append_one_by_one(
            &store,
            vec![
                event("A", &[("x", "1")]),
                event("B", &[("x", "1"), ("y", "1")]),
                event("C", &[("y", "1")]),
                event("A", &[("x", "2"), ("y", "1")]),
                event("B", &[]),
                event("C", &[("x", "1"), ("y", "2")]),
                event("A", &[("y", "1"), ("x", "1")]),
            ],
        )
        .await;
        let cases: Vec<(&str, Query, Vec<usize>)> = vec![
            ("types A,B", types(&["A", "B"]), vec![0, 1, 3, 4, 6]),
            ("type A", types(&["A"]), vec![0, 3, 6]),
            ("tag x:1, any type", tags(&[("x", "1")]), vec![0, 1, 5, 6]),
            (
                "tags x:1 and y:1",
                tags(&[("x", "1"), ("y", "1")]),
                vec![1, 6],
            ),
            (
                "tags y:1 and x:1",
                tags(&[("y", "1"), ("x", "1")]),
                vec![1, 6],
            ),
            ("tags x:1 and y:2", tags(&[("x", "1"), ("y", "2")]), vec![5]),
            (
                "type A with tag x:1",
                typed_tags(&["A"], &[("x", "1")]),
                vec![0, 6],
            ),
            (
                "types A,C with tag y:1",
                typed_tags(&["A", "C"], &[("y", "1")]),
                vec![2, 3, 6],
            ),
            (
                "type C or tag x:2",
                types(&["C"]).union(tags(&[("x", "2")])),
                vec![2, 3, 5],
            ),
            (
                "type A or tag x:1 (overlapping items)",
                types(&["A"]).union(tags(&[("x", "1")])),
                vec![0, 1, 3, 5, 6],
            ),
            (
                "A with x:1 or B with y:1",
                typed_tags(&["A"], &[("x", "1")]).union(typed_tags(&["B"], &[("y", "1")])),
                vec![0, 1, 6],
            ),
            ("Query::all", Query::all(), (0..7).collect()),
            (
                "unknown type or any",
                types(&["Z"]).union(Query::all()),
                (0..7).collect(),
            ),
            ("Query::none", Query::none(), vec![]),
            ("unknown type", types(&["Z"]), vec![]),
            ("unknown tag value", tags(&[("x", "3")]), vec![]),
            ("tag key and value swapped", tags(&[("1", "x")]), vec![]),
            (
                "type B with tag y:2",
                typed_tags(&["B"], &[("y", "2")]),
                vec![],
            ),
        ];
        for (what, query, mut expected) in cases {
            expected.sort_unstable();
            let forward = read(&store, &query, ReadOptions::forward()).await;
            log.assert_events(
                &forward,
                &expected,
                &format!("forward read of {what} ({query})"),
            );
            let backward = ReadOptions {
                backwards: true,
                ..ReadOptions::default()
            };
            let backward_events = read(&store, &query, backward).await;
            expected.reverse();
            log.assert_events(
                &backward_events,
                &expected,
                &format!("backward read of {what} ({query})"),
            );
        }
    })
    .await;
}

/// Read options: `from` is inclusive in both directions (and may name a position that
/// holds no matching event), backwards gives newest first, `limit` bounds the count, and
/// [`ReadOptions::last`] gives the newest matching events only.
pub async fn read_options<S: EventStore + Clone + 'static>(store: S) {
    named("read_options", async move {
        let log = Fixture::append_one_by_one(
            &store,
            ["A", "B", "A", "A", "B", "A", "B", "A"]
                .iter()
                .map(|t| event(t, &[("stream", "1")]))
                .collect(),
        )
        .await;
        let p = |i: usize| log.positions[i];
        let a = types(&["A"]);
        let opts = |from: Option<Position>, backwards: bool, limit: Option<usize>| ReadOptions {
            from,
            backwards,
            limit,
        };
        let cases: Vec<(&str, Query, ReadOptions, Vec<usize>)> = vec![
            (
                "forward",
                a.clone(),
                ReadOptions::forward(),
                vec![0, 2, 3, 5, 7],
            ),
            (
                "from a match",
                a.clone(),
                ReadOptions::from(p(2)),
                vec![2, 3, 5, 7],
            ),
            (
                "from a non-match",
                a.clone(),
                ReadOptions::from(p(4)),
                vec![5, 7],
            ),
            (
                "from past the head",
                a.clone(),
                ReadOptions::from(p(7).next()),
                vec![],
            ),
            (
                "backwards",
                a.clone(),
                opts(None, true, None),
                vec![7, 5, 3, 2, 0],
            ),
            (
                "backwards from a match",
                a.clone(),
                opts(Some(p(5)), true, None),
                vec![5, 3, 2, 0],
            ),
            (
                "backwards from a non-match",
                a.clone(),
                opts(Some(p(4)), true, None),
                vec![3, 2, 0],
            ),
            (
                "backwards from the first",
                a.clone(),
                opts(Some(p(0)), true, None),
                vec![0],
            ),
            (
                "backwards from past the head",
                a.clone(),
                opts(Some(p(7).next()), true, None),
                vec![7, 5, 3, 2, 0],
            ),
            ("limit 2", a.clone(), opts(None, false, Some(2)), vec![0, 2]),
            (
                "from and limit",
                a.clone(),
                opts(Some(p(3)), false, Some(2)),
                vec![3, 5],
            ),
            (
                "backwards from and limit",
                a.clone(),
                opts(Some(p(6)), true, Some(2)),
                vec![5, 3],
            ),
            ("limit 0", a.clone(), opts(None, false, Some(0)), vec![]),
            (
                "limit above the count",
                a.clone(),
                opts(None, false, Some(100)),
                vec![0, 2, 3, 5, 7],
            ),
            ("last(1)", a.clone(), ReadOptions::last(1), vec![7]),
            ("last(3)", a.clone(), ReadOptions::last(3), vec![7, 5, 3]),
            (
                "last(1) of type B",
                types(&["B"]),
                ReadOptions::last(1),
                vec![6],
            ),
            (
                "last(1) of everything",
                Query::all(),
                ReadOptions::last(1),
                vec![7],
            ),
            (
                "last(1) of nothing",
                Query::none(),
                ReadOptions::last(1),
                vec![],
            ),
            (
                "last(1) of an unknown type",
                types(&["Z"]),
                ReadOptions::last(1),
                vec![],
            ),
        ];
        for (what, query, options, expected) in cases {
            let events = read(&store, &query, options).await;
            log.assert_events(
                &events,
                &expected,
                &format!("{what}: {query} with {options:?}"),
            );
        }
    })
    .await;
}

/// A condition without position fails when any matching event exists at all, succeeds
/// when none does (even if the appended events match it), names the first conflicting
/// event, and a failed append writes nothing.
pub async fn append_condition_without_position<S: EventStore + Clone + 'static>(store: S) {
    named("append_condition_without_position", async move {
        let seat = typed_tags(&["SeatBooked"], &[("seat", "1A")]);
        let first = append(
            &store,
            vec![event("SeatBooked", &[("seat", "1A")])],
            Some(AppendCondition::new(seat.clone(), None)),
        )
        .await;
        let first = first.positions[0];

        expect_conflict(
            &store,
            vec![event("SeatBooked", &[("seat", "1A")])],
            AppendCondition::new(seat.clone(), None),
            first,
            "SeatBooked",
            "the same seat booked twice",
        )
        .await;

        // An unrelated event (same type, other seat) does not conflict.
        append(
            &store,
            vec![event("SeatBooked", &[("seat", "2B")])],
            Some(AppendCondition::new(
                typed_tags(&["SeatBooked"], &[("seat", "2B")]),
                None,
            )),
        )
        .await;
        // Nor does one of another type on the same seat.
        let released = append(
            &store,
            vec![event("SeatReleased", &[("seat", "3C")])],
            Some(AppendCondition::new(
                typed_tags(&["SeatBooked"], &[("seat", "3C")]),
                None,
            )),
        )
        .await;

        // Two items: the conflict is the first event matching either of them.
        expect_conflict(
            &store,
            vec![event("SeatBooked", &[("seat", "3C")])],
            AppendCondition::new(
                types(&["SeatReleased"]).union(tags(&[("seat", "3C")])),
                None,
            ),
            released.positions[0],
            "SeatReleased",
            "a condition of two items",
        )
        .await;

        // Several matching events: the error names the first one.
        expect_conflict(
            &store,
            vec![event("SeatBooked", &[("seat", "9Z")])],
            AppendCondition::new(types(&["SeatBooked"]), None),
            first,
            "SeatBooked",
            "several matching events (the first must be named)",
        )
        .await;
    })
    .await;
}

/// A condition with a position fails only when a matching event exists after that
/// position; matching events at or before it do not count. The error names the first
/// conflicting event after the position, and a failed append writes nothing.
pub async fn append_condition_with_position<S: EventStore + Clone + 'static>(store: S) {
    named("append_condition_with_position", async move {
        let log = Fixture::append_one_by_one(
            &store,
            vec![
                event("A", &[("x", "1")]),
                event("B", &[("x", "1")]),
                event("A", &[("x", "2")]),
            ],
        )
        .await;
        let p = |i: usize| log.positions[i];
        let a_x1 = typed_tags(&["A"], &[("x", "1")]);

        // p0 is the only A x:1 and it is not after p0.
        let third = append(
            &store,
            vec![event("A", &[("x", "1")])],
            Some(AppendCondition::new(a_x1.clone(), Some(p(0)))),
        )
        .await;
        let third = third.positions[0];

        expect_conflict(
            &store,
            vec![event("A", &[("x", "1")])],
            AppendCondition::new(a_x1.clone(), Some(p(0))),
            third,
            "A",
            "a match after the condition's position",
        )
        .await;

        append(
            &store,
            vec![event("B", &[("y", "1")])],
            Some(AppendCondition::new(a_x1.clone(), Some(third))),
        )
        .await;

        expect_conflict(
            &store,
            vec![event("C", &[])],
            AppendCondition::new(tags(&[("x", "1")]), Some(p(0))),
            p(1),
            "B",
            "the first match after the position",
        )
        .await;

        expect_conflict(
            &store,
            vec![event("C", &[])],
            AppendCondition::new(types(&["A"]), Some(p(1))),
            p(2),
            "A",
            "a match after a non-matching position",
        )
        .await;

        expect_conflict(
            &store,
            vec![event("C", &[])],
            AppendCondition::new(types(&["A"]), Some(Position(0))),
            p(0),
            "A",
            "a condition after Position(0)",
        )
        .await;

        let before_head = head(&store).await;
        let Some(last) = before_head else {
            panic!("the store has events but no head");
        };
        append(
            &store,
            vec![event("C", &[])],
            Some(AppendCondition::new(Query::all(), Some(last))),
        )
        .await;
        let new_head = head(&store)
            .await
            .unwrap_or_else(|| panic!("no head after an append"));
        expect_conflict(
            &store,
            vec![event("C", &[])],
            AppendCondition::new(Query::all(), Some(last)),
            new_head,
            "C",
            "Query::all after the old head",
        )
        .await;

        // A position past the head (a reader cannot have seen one, but it must not fail).
        append(
            &store,
            vec![event("A", &[("x", "1")])],
            Some(AppendCondition::new(
                a_x1,
                Some(Position(new_head.0 + 1000)),
            )),
        )
        .await;
    })
    .await;
}

/// A condition whose query matches no stored event never conflicts, with or without a
/// position: unknown types, unknown tags, and a type and tag that exist only on
/// different events. (A query that can match nothing at all, [`Query::none`], is no
/// condition: see [`empty_condition_refused`].)
pub async fn condition_matching_nothing<S: EventStore + Clone + 'static>(store: S) {
    named("condition_matching_nothing", async move {
        Fixture::append_one_by_one(
            &store,
            vec![
                event("A", &[("x", "1")]),
                event("B", &[("y", "1")]),
                event("A", &[]),
            ],
        )
        .await;
        let queries = [
            ("an unknown type", types(&["Z"])),
            ("an unknown tag", tags(&[("x", "404")])),
            (
                "a known type and a known tag never together",
                typed_tags(&["A"], &[("y", "1")]),
            ),
            ("two tags never together", tags(&[("x", "1"), ("y", "1")])),
        ];
        let head = head(&store).await;
        for (what, query) in queries {
            for after in [None, Some(Position(0)), head] {
                // The appended event matches none of the queries either.
                let result = store
                    .append(
                        vec![event("Other", &[("other", "1")])],
                        Some(AppendCondition::new(query.clone(), after)),
                    )
                    .await;
                if let Err(e) = result {
                    panic!("a condition on {what} ({query}, after {after:?}) failed: {e}");
                }
            }
        }
    })
    .await;
}

/// The events of one append get increasing positions in the order given with no other
/// event between them, also while other tasks append; the condition is checked against
/// stored events only, never the ones being appended; a failing append of several events
/// writes none of them.
pub async fn multi_event_appends<S: EventStore + Clone + 'static>(store: S) {
    named("multi_event_appends", async move {
        let batch = vec![
            event("A", &[("t", "1")]),
            event("B", &[("t", "1")]),
            event("C", &[("t", "2")]),
        ];
        let ids: Vec<Uuid> = batch.iter().map(|e| e.metadata.id).collect();
        let appended = append(&store, batch, None).await;
        assert_eq!(
            appended.positions.len(),
            3,
            "one position per event of a batch"
        );
        assert_strictly_increasing(&appended.positions, "positions of one batch");
        let all = read(&store, &Query::all(), ReadOptions::forward()).await;
        assert_eq!(
            all.iter().map(|e| e.metadata.id).collect::<Vec<_>>(),
            ids,
            "the log after one batch holds its events in the order given"
        );
        assert_eq!(
            all.iter().map(|e| e.position).collect::<Vec<_>>(),
            appended.positions,
            "the log holds the batch at the positions the append returned"
        );

        // The batch's own events match the condition: it still succeeds.
        let d = types(&["D"]);
        let own = append(
            &store,
            vec![event("D", &[]), event("D", &[])],
            Some(AppendCondition::new(d.clone(), None)),
        )
        .await;
        assert_eq!(
            own.positions.len(),
            2,
            "positions of a batch matching its own condition"
        );

        // A failing batch writes none of its events.
        expect_conflict(
            &store,
            vec![event("E", &[]), event("E", &[]), event("D", &[])],
            AppendCondition::new(d, None),
            own.positions[0],
            "D",
            "a conflicting batch of three",
        )
        .await;
        let e = read(&store, &types(&["E"]), ReadOptions::forward()).await;
        assert!(
            e.is_empty(),
            "a failed batch wrote {} of its events",
            e.len()
        );

        // Batches appended concurrently never interleave.
        let writers = 4;
        let batches = 15;
        let size = 4;
        let barrier = Arc::new(Barrier::new(writers));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let store = store.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let mut written = Vec::new();
                for b in 0..batches {
                    let events: Vec<NewEvent> = (0..size)
                        .map(|i| {
                            event(
                                "Batched",
                                &[("writer", &w.to_string()), ("i", &i.to_string())],
                            )
                        })
                        .collect();
                    let ids: Vec<Uuid> = events.iter().map(|e| e.metadata.id).collect();
                    let appended = store.append(events, None).await.unwrap_or_else(|e| {
                        panic!("writer {w}, batch {b}: an unconditional append failed: {e}")
                    });
                    written.push((ids, appended.positions));
                    tokio::task::yield_now().await;
                }
                written
            }));
        }
        let mut all_batches = Vec::new();
        for task in tasks {
            all_batches.extend(join(task).await);
        }
        let whole_after = read(&store, &Query::all(), ReadOptions::forward()).await;
        let index: HashMap<Position, usize> = whole_after
            .iter()
            .enumerate()
            .map(|(i, e)| (e.position, i))
            .collect();
        for (ids, positions) in &all_batches {
            assert_eq!(
                positions.len(),
                size,
                "one position per event of a concurrent batch"
            );
            let Some(&start) = index.get(&positions[0]) else {
                panic!(
                    "position {} of a concurrent batch is not in the log",
                    positions[0]
                );
            };
            for (k, (id, position)) in ids.iter().zip(positions).enumerate() {
                let stored = whole_after.get(start + k).unwrap_or_else(|| {
                    panic!(
                        "a concurrent batch at {} runs past the end of the log",
                        positions[0]
                    )
                });
                assert_eq!(
                    (stored.position, stored.metadata.id),
                    (*position, *id),
                    "event {k} of the concurrent batch starting at {}: another event lies \
                     between the batch's events, or the order differs",
                    positions[0]
                );
            }
        }
        assert_eq!(
            whole_after.len(),
            all.len() + own.positions.len() + writers * batches * size,
            "the log holds every event appended and nothing else"
        );
    })
    .await;
}

/// Positions are unique and strictly increasing across many appends; [`EventStore::head`]
/// is always the last position written; a full read returns every event in that order.
pub async fn positions_monotonic<S: EventStore + Clone + 'static>(store: S) {
    named("positions_monotonic", async move {
        let mut written: Vec<(Position, Uuid)> = Vec::new();
        for n in 0..40 {
            let events: Vec<NewEvent> = (0..(n % 3 + 1))
                .map(|i| event(["A", "B", "C"][(n + i) % 3], &[("n", &n.to_string())]))
                .collect();
            let ids: Vec<Uuid> = events.iter().map(|e| e.metadata.id).collect();
            let condition = (n % 2 == 0).then(|| {
                AppendCondition::new(tags(&[("n", &n.to_string())]), written.last().map(|w| w.0))
            });
            let appended = append(&store, events, condition).await;
            assert_eq!(
                appended.positions.len(),
                ids.len(),
                "one position per event"
            );
            if let Some((previous, _)) = written.last() {
                assert!(
                    appended.positions[0] > *previous,
                    "append {n} got position {} after {previous} was written",
                    appended.positions[0]
                );
            }
            assert_strictly_increasing(&appended.positions, "positions of one append");
            written.extend(appended.positions.iter().copied().zip(ids));
            assert_eq!(
                head(&store).await,
                appended.last(),
                "the head after append {n} is its last position"
            );
        }
        let all = read(&store, &Query::all(), ReadOptions::forward()).await;
        assert_eq!(
            all.iter()
                .map(|e| (e.position, e.metadata.id))
                .collect::<Vec<_>>(),
            written,
            "a full read returns every event at the position its append returned, in order"
        );
    })
    .await;
}

/// An append of no event fails with [`AppendError::Empty`], with or without a condition,
/// and writes nothing.
pub async fn empty_append_rejected<S: EventStore + Clone + 'static>(store: S) {
    named("empty_append_rejected", async move {
        let result = store.append(Vec::new(), None).await;
        assert!(
            matches!(result, Err(AppendError::Empty)),
            "an empty append on an empty store returned {result:?}"
        );
        assert_eq!(head(&store).await, None, "an empty append wrote something");

        let result = store
            .append(Vec::new(), Some(AppendCondition::new(Query::all(), None)))
            .await;
        assert!(
            matches!(result, Err(AppendError::Empty)),
            "an empty append with a condition that holds returned {result:?}"
        );
        assert_eq!(
            head(&store).await,
            None,
            "an empty conditional append wrote something"
        );

        let first = append(&store, vec![event("A", &[])], None).await;
        let before = read(&store, &Query::all(), ReadOptions::forward()).await;
        let result = store
            .append(
                Vec::new(),
                Some(AppendCondition::new(types(&["Z"]), first.last())),
            )
            .await;
        assert!(
            matches!(result, Err(AppendError::Empty)),
            "an empty append on a non-empty store returned {result:?}"
        );
        assert_unchanged(&store, &before, "after an empty append").await;
    })
    .await;
}

/// Stored events come back as they were appended: type, version, tags (as a set: order
/// carries no meaning for queries, and [`repeated_tags_stored_once`] checks repeats), payload and codec (a JSON payload as the same
/// JSON value, so a store may keep it in a JSON column; any other codec byte for byte),
/// metadata (id, correlation and causation ids, idempotency key); `recorded_at` is set to
/// about the time of the append.
pub async fn round_trip<S: EventStore + Clone + 'static>(store: S) {
    named("round_trip", async move {
        let full = NewEvent {
            event_type: "shop.CouponIssued".to_owned(),
            version: 3,
            tags: vec![Tag::new("coupon", "SPRING24"), Tag::new("shop", "main")],
            payload: encode(
                "shop.CouponIssued",
                &serde_json::json!({ "coupon": "SPRING24", "uses": 5, "note": "üñí ✓ \"quoted\" nul:\u{0}" }),
            ),
            metadata: Metadata {
                id: Uuid::now_v7(),
                correlation_id: Some(Uuid::now_v7()),
                causation_id: Some(Uuid::now_v7()),
                idempotency_key: Some("issue-coupon:SPRING24".to_owned()),
            },
            recorded_at: None,
        };
        let bare = NewEvent {
            event_type: "shop.CartCleared".to_owned(),
            version: 1,
            tags: Vec::new(),
            // A binary payload: it must come back byte for byte.
            payload: Codec::MessagePack
                .encode(
                    "shop.CartCleared",
                    &serde_json::json!({ "cart": "c-9", "items": [1, 2] }),
                )
                .unwrap_or_else(|e| panic!("store conformance: cannot encode MessagePack: {e}")),
            metadata: Metadata::new(),
            recorded_at: None,
        };
        let odd_tags = NewEvent {
            event_type: "user.UsernameChanged".to_owned(),
            version: 2,
            tags: vec![
                Tag::new("username", "zoe"),
                Tag::new("username", "adam"),
                Tag::new("user", "42"),
                Tag::new("user", "42"),
                Tag::new("note", "a:b c/d"),
                Tag::new("empty", ""),
                // What SQL array literals and string escapes treat specially.
                Tag::new("quo\"te", "back\\slash"),
                Tag::new("list", "{a,b}"),
                Tag::new("null", "NULL"),
                Tag::new("spaced", " x "),
            ],
            payload: encode(
                "user.UsernameChanged",
                &serde_json::json!([1, [2.5, null], {"k": "v"}]),
            ),
            metadata: Metadata {
                idempotency_key: Some("rename:42:zoe".to_owned()),
                ..Metadata::new()
            },
            recorded_at: None,
        };
        // Valid JSON that a JSON column would re-format: the value must survive.
        let raw = NewEvent {
            event_type: "raw.Bytes".to_owned(),
            version: 7,
            tags: vec![Tag::new("raw", "1")],
            payload: Payload {
                codec: Codec::Json,
                bytes: b"{ \"b\" :1,\n  \"a\":  [ 1.50 ] }".to_vec(),
            },
            metadata: Metadata {
                correlation_id: Some(Uuid::now_v7()),
                ..Metadata::new()
            },
            recorded_at: None,
        };
        let started = SystemTime::now();
        let first = append(&store, vec![full.clone(), bare.clone()], None).await;
        let second = append(
            &store,
            vec![odd_tags.clone(), raw.clone()],
            Some(AppendCondition::new(types(&["raw.Bytes"]), None)),
        )
        .await;
        let finished = SystemTime::now();
        let expected = [full, bare, odd_tags, raw];
        let positions: Vec<Position> = first
            .positions
            .iter()
            .chain(&second.positions)
            .copied()
            .collect();

        let stored = read(&store, &Query::all(), ReadOptions::forward()).await;
        assert_eq!(
            stored.len(),
            expected.len(),
            "the number of events read back"
        );
        // Clock differences between the application and a database server are tolerated.
        let slack = Duration::from_secs(300);
        for ((stored, new), position) in stored.iter().zip(&expected).zip(&positions) {
            let what = &new.event_type;
            assert_eq!(stored.position, *position, "the position of {what}");
            assert_eq!(
                stored.event_type, new.event_type,
                "the type of the event at {position}"
            );
            assert_eq!(stored.version, new.version, "the version of {what}");
            assert_eq!(
                tag_set(&stored.tags),
                tag_set(&new.tags),
                "the tags of {what}"
            );
            assert_eq!(
                stored.payload.codec, new.payload.codec,
                "the payload codec of {what}"
            );
            assert_same_payload(&stored.payload, &new.payload, what);
            assert_eq!(stored.metadata, new.metadata, "the metadata of {what}");
            assert!(
                stored.recorded_at + slack >= started && stored.recorded_at <= finished + slack,
                "recorded_at of {what} ({:?}) is not about the time of the append ({:?})",
                stored.recorded_at,
                started
            );
        }

        // A tag carried twice still yields the event once.
        let by_user = read(&store, &tags(&[("user", "42")]), ReadOptions::forward()).await;
        assert_eq!(
            by_user.iter().map(|e| e.position).collect::<Vec<_>>(),
            vec![positions[2]],
            "a read by a tag the event carries twice"
        );
        for value in ["zoe", "adam"] {
            let found = read(
                &store,
                &tags(&[("username", value)]),
                ReadOptions::forward(),
            )
            .await;
            assert_eq!(
                found.iter().map(|e| e.position).collect::<Vec<_>>(),
                vec![positions[2]],
                "a read by tag username:{value} (two tags of one key)"
            );
        }
        let empty_value = read(&store, &tags(&[("empty", "")]), ReadOptions::forward()).await;
        assert_eq!(empty_value.len(), 1, "a read by a tag with an empty value");
        for (key, value) in [
            ("quo\"te", "back\\slash"),
            ("list", "{a,b}"),
            ("null", "NULL"),
            ("spaced", " x "),
        ] {
            let found = read(&store, &tags(&[(key, value)]), ReadOptions::forward()).await;
            assert_eq!(
                found.iter().map(|e| e.position).collect::<Vec<_>>(),
                vec![positions[2]],
                "a read by tag {key:?}:{value:?}"
            );
        }
        let colon = read(
            &store,
            &tags(&[("note", "a:b c/d")]),
            ReadOptions::forward(),
        )
        .await;
        assert_eq!(
            colon.len(),
            1,
            "a read by a tag value holding ':', ' ' and '/'"
        );
        let split = read(
            &store,
            &tags(&[("note:a", "b c/d")]),
            ReadOptions::forward(),
        )
        .await;
        assert!(
            split.is_empty(),
            "tag key and value must not be compared as one joined string"
        );
    })
    .await;
}

/// An event of `event_type` carrying the idempotency key `key`.
fn keyed(event_type: &str, key: &str) -> NewEvent {
    let mut e = event(event_type, &[("k", key)]);
    e.metadata.idempotency_key = Some(key.to_owned());
    e
}

/// Idempotency keys are unique per store: an append whose events carry a key recorded by
/// an earlier append writes nothing and fails with [`AppendError::Duplicate`] naming the
/// first append's positions, even when its condition would hold or fail; events without a
/// key never clash; an append rejected for any reason records no key.
pub async fn idempotency_keys<S: EventStore + Clone + 'static>(store: S) {
    named("idempotency_keys", async move {
        let first = append(&store, vec![keyed("A", "req-1"), keyed("B", "req-1")], None).await;
        append(&store, vec![event("A", &[]), event("A", &[])], None).await;
        append(&store, vec![event("A", &[])], None).await;
        let before = read(&store, &Query::all(), ReadOptions::forward()).await;

        let conditions = [
            None,
            Some(AppendCondition::new(types(&["Z"]), None)),
            Some(AppendCondition::new(types(&["A"]), None)),
        ];
        for condition in conditions {
            let described = format!("{condition:?}");
            match store.append(vec![keyed("C", "req-1")], condition).await {
                Err(AppendError::Duplicate { key, positions }) => {
                    assert_eq!(key, "req-1", "the key a duplicate names ({described})");
                    assert_eq!(
                        positions, first.positions,
                        "a duplicate names the positions of the first append with its key ({described})"
                    );
                }
                other => panic!(
                    "a second append with key req-1 and condition {described} must be a duplicate, got {other:?}"
                ),
            }
            assert_unchanged(&store, &before, "after a duplicate append").await;
        }

        // One duplicated key among fresh ones: nothing is written, the fresh keys stay free.
        let mixed = vec![keyed("C", "req-2"), keyed("C", "req-1")];
        let result = store.append(mixed, None).await;
        assert!(
            matches!(&result, Err(AppendError::Duplicate { key, .. }) if key == "req-1"),
            "an append carrying a used key among fresh ones must be a duplicate, got {result:?}"
        );
        assert_unchanged(&store, &before, "after a partly duplicate append").await;

        // A conflicting append records nothing: its key stays free.
        let result = store
            .append(
                vec![keyed("C", "req-3")],
                Some(AppendCondition::new(types(&["A"]), None)),
            )
            .await;
        assert!(
            matches!(result, Err(AppendError::Conflict { .. })),
            "a fresh key on a failing condition must be a conflict, got {result:?}"
        );
        let third = append(&store, vec![keyed("C", "req-3"), keyed("C", "req-2")], None).await;
        match store.append(vec![keyed("D", "req-2")], None).await {
            Err(AppendError::Duplicate { positions, .. }) => assert_eq!(
                positions, third.positions,
                "two keys recorded by one append both name it"
            ),
            other => panic!("key req-2 was recorded, expected a duplicate, got {other:?}"),
        }
        // Keys are compared exactly.
        append(&store, vec![keyed("D", "REQ-1")], None).await;
        append(&store, vec![keyed("D", "req-1 ")], None).await;
    })
    .await;
}

/// A batch appends its requests in order, each checked against its own condition as if
/// appended alone right after the earlier ones: a later request sees the events of the
/// earlier ones, a failing request writes nothing and the others still commit, positions
/// increase across the batch; idempotency keys clash within a batch too.
pub async fn batch_appends<S: EventStore + Clone + 'static>(store: S) {
    named("batch_appends", async move {
        let existing = append(&store, vec![event("Seat", &[("course", "c1")])], None).await;
        let after = existing.last();
        let results = store
            .append_batch(vec![
                // Holds: nothing about c2 yet.
                AppendRequest::new(
                    vec![
                        event("Seat", &[("course", "c2")]),
                        event("Seat", &[("course", "c2")]),
                    ],
                    Some(AppendCondition::new(tags(&[("course", "c2")]), after)),
                ),
                // Fails: the request before wrote c2 after `after`.
                AppendRequest::new(
                    vec![event("Seat", &[("course", "c2")])],
                    Some(AppendCondition::new(tags(&[("course", "c2")]), after)),
                ),
                // Empty: rejected alone.
                AppendRequest::new(Vec::new(), None),
                // Holds: c3 is untouched.
                AppendRequest::new(
                    vec![keyed("Seat", "batch-key")],
                    Some(AppendCondition::new(tags(&[("course", "c3")]), after)),
                ),
                // Duplicate of the request before.
                AppendRequest::new(vec![keyed("Seat", "batch-key")], None),
                // Fails on the event stored before the batch.
                AppendRequest::new(
                    vec![event("Seat", &[("course", "c1")])],
                    Some(AppendCondition::new(tags(&[("course", "c1")]), None)),
                ),
            ])
            .await
            .unwrap_or_else(|e| panic!("a batch append failed as a whole: {e}"));
        assert_eq!(results.len(), 6, "one result per request of the batch");
        let ok = |i: usize| -> Appended {
            match &results[i] {
                Ok(a) => a.clone(),
                Err(e) => panic!("request {i} of the batch should commit, got {e}"),
            }
        };
        let first = ok(0);
        let fourth = ok(3);
        assert_eq!(first.positions.len(), 2, "positions of request 0");
        match &results[1] {
            Err(AppendError::Conflict {
                position,
                event_type,
            }) => assert_eq!(
                (*position, event_type.as_str()),
                (first.positions[0], "Seat"),
                "request 1 must conflict with the first event of request 0"
            ),
            other => panic!("request 1 must conflict with request 0's events, got {other:?}"),
        }
        assert!(
            matches!(results[2], Err(AppendError::Empty)),
            "an empty request in a batch is rejected alone, got {:?}",
            results[2]
        );
        match &results[4] {
            Err(AppendError::Duplicate { key, positions }) => {
                assert_eq!(key, "batch-key", "the duplicate's key");
                assert_eq!(
                    positions, &fourth.positions,
                    "the duplicate names request 3's positions"
                );
            }
            other => {
                panic!("request 4 repeats request 3's key, expected a duplicate, got {other:?}")
            }
        }
        match &results[5] {
            Err(AppendError::Conflict { position, .. }) => assert_eq!(
                Some(*position),
                after,
                "request 5 must conflict with the event stored before the batch"
            ),
            other => panic!("request 5 must conflict, got {other:?}"),
        }
        let mut all: Vec<Position> = existing.positions.clone();
        all.extend(&first.positions);
        all.extend(&fourth.positions);
        assert_strictly_increasing(&all, "positions across a batch");
        let log = read(&store, &Query::all(), ReadOptions::forward()).await;
        assert_eq!(
            log.iter().map(|e| e.position).collect::<Vec<_>>(),
            all,
            "the log after the batch holds exactly the committed requests"
        );
        assert_eq!(
            head(&store).await,
            all.last().copied(),
            "the head after a batch"
        );

        // Batches of nothing and of only failing requests write nothing.
        let none = store
            .append_batch(Vec::new())
            .await
            .unwrap_or_else(|e| panic!("an empty batch failed: {e}"));
        assert!(none.is_empty(), "an empty batch has no results");
        let failing = store
            .append_batch(vec![AppendRequest::new(
                vec![event("Seat", &[("course", "c1")])],
                Some(AppendCondition::new(tags(&[("course", "c1")]), None)),
            )])
            .await
            .unwrap_or_else(|e| panic!("a batch failed as a whole: {e}"));
        assert!(
            matches!(failing[..], [Err(AppendError::Conflict { .. })]),
            "a batch of one failing request: {failing:?}"
        );
        assert_unchanged(&store, &log, "after a batch of one failing request").await;
    })
    .await;
}

/// Snapshots: none under an unknown key; one saved comes back equal (key, query,
/// position, payload and codec, bytes exactly); a later save under the same key replaces
/// it; keys are independent.
pub async fn snapshots<S: EventStore + Clone + 'static>(store: S) {
    named("snapshots", async move {
        let load = |key: &'static str| {
            let store = store.clone();
            async move {
                store
                    .load_snapshot(key)
                    .await
                    .unwrap_or_else(|e| panic!("loading snapshot {key} failed: {e}"))
            }
        };
        assert_eq!(
            load("Course|course:c1").await,
            None,
            "a snapshot never saved"
        );
        let first = Snapshot {
            key: "Course|course:c1".to_owned(),
            query: "types Seat with course:c1".to_owned(),
            position: Position(7),
            payload: Payload {
                codec: Codec::Json,
                bytes: b"{\"seats\":3}".to_vec(),
            },
        };
        let save = |snapshot: Snapshot| {
            let store = store.clone();
            async move {
                store
                    .save_snapshot(snapshot)
                    .await
                    .unwrap_or_else(|e| panic!("saving a snapshot failed: {e}"))
            }
        };
        save(first.clone()).await;
        assert_eq!(
            load("Course|course:c1").await,
            Some(first.clone()),
            "a saved snapshot"
        );
        assert_eq!(load("Course|course:c2").await, None, "another key");
        let binary = Snapshot {
            key: "Course|course:c2".to_owned(),
            query: "q".to_owned(),
            position: Position(9),
            payload: Payload {
                codec: Codec::MessagePack,
                bytes: vec![0x81, 0xa1, b'a', 0xcc, 0xff, 0x00],
            },
        };
        save(binary.clone()).await;
        let replaced = Snapshot {
            position: Position(12),
            payload: Payload {
                codec: Codec::Json,
                bytes: b"{\"seats\":4}".to_vec(),
            },
            ..first.clone()
        };
        save(replaced.clone()).await;
        assert_eq!(
            load("Course|course:c1").await,
            Some(replaced),
            "a replaced snapshot"
        );
        assert_eq!(
            load("Course|course:c2").await,
            Some(binary),
            "a binary snapshot"
        );
    })
    .await;
}

/// Racing appends on the same condition: every task reads the same result, then all
/// append with the same condition at once; exactly one succeeds and the others get a
/// conflict naming the winner's event. Run twice: on no matching event, then after one.
pub async fn concurrent_overlapping_conditions<S: EventStore + Clone + 'static>(store: S) {
    named("concurrent_overlapping_conditions", async move {
        let racers = 8;
        let query = typed_tags(&["SeatBooked", "SeatReleased"], &[("seat", "1A")]);
        append(&store, vec![event("SeatBooked", &[("seat", "2B")])], None).await;
        for round in 0..2 {
            let barrier = Arc::new(Barrier::new(racers));
            let mut tasks = Vec::new();
            for racer in 0..racers {
                let store = store.clone();
                let barrier = barrier.clone();
                let query = query.clone();
                tasks.push(tokio::spawn(async move {
                    let seen = read(&store, &query, ReadOptions::last(1)).await;
                    let after = seen.first().map(|e| e.position);
                    barrier.wait().await;
                    let racer = racer.to_string();
                    let result = store
                        .append(
                            vec![event("SeatBooked", &[("seat", "1A"), ("racer", &racer)])],
                            Some(AppendCondition::new(query, after)),
                        )
                        .await;
                    (after, result)
                }));
            }
            let mut results = Vec::new();
            for task in tasks {
                results.push(join(task).await);
            }
            let afters: HashSet<Option<Position>> = results.iter().map(|r| r.0).collect();
            assert_eq!(
                afters.len(),
                1,
                "round {round}: the racers read different results"
            );
            let winners: Vec<Position> = results
                .iter()
                .filter_map(|(_, r)| r.as_ref().ok().map(|a| a.positions[0]))
                .collect();
            assert_eq!(
                winners.len(),
                1,
                "round {round}: {} of {racers} racing appends on one condition succeeded",
                winners.len()
            );
            for (_, result) in &results {
                match result {
                    Ok(_) => {}
                    Err(AppendError::Conflict {
                        position,
                        event_type,
                    }) => {
                        assert_eq!(
                            (*position, event_type.as_str()),
                            (winners[0], "SeatBooked"),
                            "round {round}: a loser's conflict must name the winner's event"
                        );
                    }
                    Err(other) => panic!("round {round}: a racing append failed with {other}"),
                }
            }
            let booked = read(&store, &query, ReadOptions::forward()).await;
            assert_eq!(
                booked.len(),
                round + 1,
                "round {round}: events matching the raced condition"
            );
            assert_eq!(
                head(&store).await,
                Some(winners[0]),
                "round {round}: the head"
            );
        }
    })
    .await;
}

/// Racing appends on unrelated conditions (each task its own tag, all sharing another tag
/// no condition names) all succeed.
pub async fn concurrent_disjoint_conditions<S: EventStore + Clone + 'static>(store: S) {
    named("concurrent_disjoint_conditions", async move {
        let writers = 8;
        let appends = 10;
        let barrier = Arc::new(Barrier::new(writers));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let store = store.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let account = format!("acc-{w}");
                let query = typed_tags(&["Deposited", "Withdrawn"], &[("account", &account)]);
                barrier.wait().await;
                let mut positions = Vec::new();
                for n in 0..appends {
                    let seen = read(&store, &query, ReadOptions::last(1)).await;
                    let after = seen.first().map(|e| e.position);
                    tokio::task::yield_now().await;
                    let appended = store
                        .append(
                            vec![event(
                                "Deposited",
                                &[("account", &account), ("bank", "main")],
                            )],
                            Some(AppendCondition::new(query.clone(), after)),
                        )
                        .await
                        .unwrap_or_else(|e| {
                            panic!("writer {w}, append {n}: an unrelated append failed: {e}")
                        });
                    positions.extend(appended.positions);
                }
                (query, positions)
            }));
        }
        let mut all = HashSet::new();
        for task in tasks {
            let (query, positions) = join(task).await;
            assert_strictly_increasing(&positions, "one writer's positions");
            let read_back: Vec<Position> = read(&store, &query, ReadOptions::forward())
                .await
                .iter()
                .map(|e| e.position)
                .collect();
            assert_eq!(read_back, positions, "the events of {query}");
            all.extend(positions);
        }
        assert_eq!(
            all.len(),
            writers * appends,
            "distinct positions over all writers"
        );
        let bank = read(&store, &tags(&[("bank", "main")]), ReadOptions::forward()).await;
        assert_eq!(bank.len(), writers * appends, "events in the log");
    })
    .await;
}

/// The environment variable that sets the seed of the randomized cases' default sizes:
/// a `u64`, decimal or `0x`-hexadecimal (see [Reproducing a failure](self#reproducing-a-failure)).
pub const SEED_VARIABLE: &str = "FACTUM_CONFORMANCE_SEED";

/// The seed of the default sizes when [`SEED_VARIABLE`] is not set.
const DEFAULT_SEED: u64 = 0x00FA_C700;

/// The seed from [`SEED_VARIABLE`], or [`DEFAULT_SEED`] when it is unset or empty.
///
/// Panics on a value that is not a seed: a typo must not silently run the default.
fn default_seed() -> u64 {
    let value = match std::env::var(SEED_VARIABLE) {
        Ok(value) => value,
        Err(std::env::VarError::NotPresent) => return DEFAULT_SEED,
        Err(e) => panic!("store conformance: {SEED_VARIABLE} is not readable: {e}"),
    };
    let value = value.trim();
    if value.is_empty() {
        return DEFAULT_SEED;
    }
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => value.replace('_', "").parse(),
    };
    parsed.unwrap_or_else(|_| {
        panic!(
            "store conformance: {SEED_VARIABLE}={value:?} is not a seed (a u64, decimal or \
             0x-hexadecimal)"
        )
    })
}

/// Sizes of [`random_consistency_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomConsistency {
    /// Concurrent writer tasks.
    pub writers: usize,
    /// Append attempts per writer.
    pub appends_per_writer: usize,
    /// Seed of the random choices; writer `i` uses `seed + i`. Failure messages name it.
    /// The interleaving of the writers is up to the runtime, so runs differ anyway.
    pub seed: u64,
}

impl Default for RandomConsistency {
    /// 8 writers of 50 appends each; the seed from [`SEED_VARIABLE`] if it is set, else a
    /// fixed one.
    fn default() -> Self {
        RandomConsistency {
            writers: 8,
            appends_per_writer: 50,
            seed: default_seed(),
        }
    }
}

/// [`random_consistency_with`] with the default sizes (8 writers × 50 appends).
pub async fn random_consistency<S: EventStore + Clone + 'static>(store: S) {
    random_consistency_with(store, RandomConsistency::default()).await;
}

/// The DCB guarantee under random concurrent load.
///
/// Writer tasks each repeat: pick a random query over a few types and tags, read it (or,
/// now and then, pretend to have read nothing), append one to three random events on the
/// condition (that query, the last position read). Afterwards, for the final log:
/// - positions are unique and increasing, and [`EventStore::head`] is the last;
/// - the log holds exactly the events of the successful appends, each batch adjacent and
///   in order at the positions its append returned;
/// - for every successful append, **no event matching its condition's query lies after the
///   condition's position and before the append's first position**
///   ([`AppendCondition::is_violated_by`] holds for none of them);
/// - every conflict names an event that is in the log at that position, with that type,
///   and that violates the condition.
///
/// Failure messages name the seed, and the writer and attempt concerned.
pub async fn random_consistency_with<S: EventStore + Clone + 'static>(
    store: S,
    sizes: RandomConsistency,
) {
    named_seeded("random_consistency", sizes.seed, async move {
        let barrier = Arc::new(Barrier::new(sizes.writers));
        let mut tasks = Vec::new();
        for w in 0..sizes.writers {
            let store = store.clone();
            let barrier = barrier.clone();
            let seed = sizes.seed.wrapping_add(w as u64);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                random_writer(&store, w, seed, sizes.appends_per_writer).await
            }));
        }
        let mut successes = Vec::new();
        let mut conflicts = Vec::new();
        for task in tasks {
            let (s, c) = join(task).await;
            successes.extend(s);
            conflicts.extend(c);
        }

        let log = read(&store, &Query::all(), ReadOptions::forward()).await;
        let positions: Vec<Position> = log.iter().map(|e| e.position).collect();
        assert_strictly_increasing(&positions, "positions of the final log");
        assert_eq!(
            head(&store).await,
            positions.last().copied(),
            "the head of the final log"
        );
        let index: BTreeMap<Position, usize> =
            positions.iter().enumerate().map(|(i, p)| (*p, i)).collect();

        let written: usize = successes.iter().map(|s| s.ids.len()).sum();
        assert_eq!(
            log.len(),
            written,
            "the log holds {} events but the successful appends wrote {written}",
            log.len()
        );
        for success in &successes {
            let first = success.positions[0];
            let who = format!("writer {}, attempt {}", success.writer, success.attempt);
            let Some(&start) = index.get(&first) else {
                panic!("{who}: position {first} of a successful append is not in the log");
            };
            for (k, (id, position)) in success.ids.iter().zip(&success.positions).enumerate() {
                let stored = &log.get(start + k).unwrap_or_else(|| {
                    panic!("{who}: the append at {first} runs past the end of the log")
                });
                assert_eq!(
                    (stored.position, stored.metadata.id),
                    (*position, *id),
                    "{who}: event {k} of the append at {first}: not where the append said, or \
                     another event lies between"
                );
            }
            let condition = &success.condition;
            let violation = log[..start]
                .iter()
                .find(|e| condition.is_violated_by(e.position, &e.event_type, &e.tags));
            if let Some(e) = violation {
                panic!(
                    "DCB violated: the append at {first} ({who}) succeeded on condition ({}, \
                     after {:?}) but {} at {} matches that query and was written after that \
                     position",
                    condition.query, condition.after, e.event_type, e.position
                );
            }
        }
        for conflict in &conflicts {
            let who = format!("writer {}, attempt {}", conflict.writer, conflict.attempt);
            let Some(&i) = index.get(&conflict.position) else {
                panic!(
                    "{who}: a conflict names {} but the log has no event there",
                    conflict.position
                );
            };
            let e = &log[i];
            assert_eq!(
                e.event_type, conflict.event_type,
                "{who}: the type a conflict names for the event at {}",
                conflict.position
            );
            let condition = &conflict.condition;
            assert!(
                condition.is_violated_by(e.position, &e.event_type, &e.tags),
                "{who}: a conflict on ({}, after {:?}) names {} at {}, which does not violate it",
                condition.query,
                condition.after,
                e.event_type,
                e.position
            );
        }
    })
    .await;
}

/// Sizes of [`tailing_reader_sees_every_event_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TailingReader {
    /// Concurrent writer tasks.
    pub writers: usize,
    /// Append attempts per writer, of one to three events each.
    pub appends_per_writer: usize,
    /// Seed of the random choices: writer `i` uses `seed + i`, the reader
    /// `seed + writers`. Failure messages name it. The interleaving of the tasks is up to
    /// the runtime, so runs differ anyway.
    pub seed: u64,
}

impl Default for TailingReader {
    /// 4 writers of 50 appends each; the seed from [`SEED_VARIABLE`] if it is set, else a
    /// fixed one.
    fn default() -> Self {
        TailingReader {
            writers: 4,
            appends_per_writer: 50,
            seed: default_seed(),
        }
    }
}

/// [`tailing_reader_sees_every_event_with`] with the default sizes (4 writers × 50
/// appends).
pub async fn tailing_reader_sees_every_event<S: EventStore + Clone + 'static>(store: S) {
    tailing_reader_sees_every_event_with(store, TailingReader::default()).await;
}

/// A reader that tails the log while writers append sees every event exactly once, in
/// position order.
///
/// Writer tasks each append one to three events at a time: without a condition, on a
/// condition only their own events match (which must hold), or on a random condition
/// (which may conflict), and let the scheduler run others a random few times in between.
/// Meanwhile a reader task polls the log forward from just after the last position it saw
/// (a random `limit` now and then), until the writers are done and one more read returns
/// nothing new. Then:
/// - every read returned positions above all the reader had seen: **a reader never sees a
///   position commit after a higher one it already saw**, so a store that hands out
///   positions before commit must hold back the higher ones until the lower ones commit
///   or are abandoned;
/// - the reader's sequence is the final log (same positions, same event ids): no event
///   skipped, none seen twice;
/// - the final log holds every event of every successful append, at the position the
///   append returned, and nothing else.
///
/// The writers never read, so every first sight of an event is the reader's. Failure
/// messages name the seed, and the writer and append concerned.
pub async fn tailing_reader_sees_every_event_with<S: EventStore + Clone + 'static>(
    store: S,
    sizes: TailingReader,
) {
    let seed = sizes.seed;
    named_seeded("tailing_reader_sees_every_event", seed, async move {
        let barrier = Arc::new(Barrier::new(sizes.writers + 1));
        let done = Arc::new(AtomicBool::new(false));
        let reader = AbortOnDrop(tokio::spawn({
            let store = store.clone();
            let barrier = barrier.clone();
            let done = done.clone();
            let max_events = sizes.writers * sizes.appends_per_writer * 3;
            let seed = seed.wrapping_add(sizes.writers as u64);
            async move {
                barrier.wait().await;
                tail(&store, seed, &done, max_events).await
            }
        }));
        let mut tasks = Vec::new();
        for w in 0..sizes.writers {
            let store = store.clone();
            let barrier = barrier.clone();
            let seed = seed.wrapping_add(w as u64);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                tailing_writer(&store, w, seed, sizes.appends_per_writer).await
            }));
        }
        let mut written = Vec::new();
        for task in tasks {
            written.extend(join(task).await);
        }
        // Every append has returned: whatever the reader reads from now on must include
        // every event still unseen.
        done.store(true, Ordering::SeqCst);
        let seen = reader.join().await;

        let log = read(&store, &Query::all(), ReadOptions::forward()).await;
        let positions: Vec<Position> = log.iter().map(|e| e.position).collect();
        assert_strictly_increasing(&positions, "positions of the final log");
        let by_position: HashMap<Position, &StoredEvent> =
            log.iter().map(|e| (e.position, e)).collect();
        for batch in &written {
            for (id, position) in batch.ids.iter().zip(&batch.positions) {
                match by_position.get(position) {
                    Some(e) if e.metadata.id == *id => {}
                    Some(e) => panic!(
                        "writer {}, append {}: the final log holds another event ({} {}) at {}, \
                         where the append put {id}",
                        batch.writer, batch.append, e.event_type, e.metadata.id, position
                    ),
                    None => panic!(
                        "writer {}, append {}: the final log has no event at {position}, where \
                         the append put {id}",
                        batch.writer, batch.append
                    ),
                }
            }
        }
        let total: usize = written.iter().map(|b| b.ids.len()).sum();
        assert_eq!(
            log.len(),
            total,
            "the final log holds {} events but the successful appends wrote {total}",
            log.len()
        );

        let expected: Vec<(Position, Uuid)> =
            log.iter().map(|e| (e.position, e.metadata.id)).collect();
        if seen != expected {
            let seen_set: HashSet<(Position, Uuid)> = seen.iter().copied().collect();
            let log_set: HashSet<(Position, Uuid)> = expected.iter().copied().collect();
            let missed: Vec<String> = log
                .iter()
                .filter(|e| !seen_set.contains(&(e.position, e.metadata.id)))
                .map(|e| format!("{} at {}", e.event_type, e.position))
                .collect();
            let extra: Vec<String> = seen
                .iter()
                .filter(|s| !log_set.contains(s))
                .map(|(p, id)| format!("{id} at {p}"))
                .collect();
            panic!(
                "the tailing reader's sequence is not the final log: it read {} events, the log \
                 holds {}; it skipped {} ({}) and saw {} the log does not hold ({})",
                seen.len(),
                expected.len(),
                missed.len(),
                first_few(&missed),
                extra.len(),
                first_few(&extra),
            );
        }
    })
    .await;
}

/// A successful append of [`tailing_writer`].
struct Batch {
    writer: usize,
    append: usize,
    ids: Vec<Uuid>,
    positions: Vec<Position>,
}

/// Appends `appends` random batches, never reading, and returns the successful ones.
async fn tailing_writer<S: EventStore>(
    store: &S,
    writer: usize,
    seed: u64,
    appends: usize,
) -> Vec<Batch> {
    let mut rng = StdRng::seed_from_u64(seed);
    let me = writer.to_string();
    let own = tags(&[("writer", &me)]);
    let mut last_own: Option<Position> = None;
    let mut written = Vec::new();
    for append in 0..appends {
        let events: Vec<NewEvent> = (0..rng.random_range(1..=3))
            .map(|_| {
                let t = TYPES[rng.random_range(0..TYPES.len())];
                let mut tags: Vec<(&str, &str)> = (0..rng.random_range(0..=1))
                    .map(|_| TAGS[rng.random_range(0..TAGS.len())])
                    .collect();
                tags.push(("writer", &me));
                event(t, &tags)
            })
            .collect();
        let ids: Vec<Uuid> = events.iter().map(|e| e.metadata.id).collect();
        let (condition, must_hold) = match rng.random_range(0..3) {
            0 => (None, true),
            1 => (Some(AppendCondition::new(own.clone(), last_own)), true),
            _ => (
                Some(AppendCondition::new(random_query(&mut rng), last_own)),
                false,
            ),
        };
        let described = condition
            .as_ref()
            .map(|c| format!("condition ({}, after {:?})", c.query, c.after))
            .unwrap_or_else(|| "no condition".to_owned());
        match store.append(events, condition).await {
            Ok(appended) => {
                assert_eq!(
                    appended.positions.len(),
                    ids.len(),
                    "writer {writer}, append {append}: one position per event"
                );
                assert_strictly_increasing(
                    &appended.positions,
                    &format!("writer {writer}, append {append}: positions of one append"),
                );
                last_own = appended.last();
                written.push(Batch {
                    writer,
                    append,
                    ids,
                    positions: appended.positions,
                });
            }
            Err(AppendError::Conflict { .. }) if !must_hold => {}
            Err(e) => {
                panic!("writer {writer}, append {append}: an append on {described} failed: {e}")
            }
        }
        pause(&mut rng).await;
    }
    written
}

/// Polls the log forward from just after the last position seen until `done` was set
/// before a read that returns nothing; returns what it saw, in order.
async fn tail<S: EventStore>(
    store: &S,
    seed: u64,
    done: &AtomicBool,
    max_events: usize,
) -> Vec<(Position, Uuid)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen: Vec<(Position, Uuid)> = Vec::new();
    let mut reads_after_done = 0usize;
    for n in 0.. {
        // Read the flag first: if the writers were done before this read began, the read
        // must return every event the reader has not seen.
        let finished = done.load(Ordering::SeqCst);
        let limit = (rng.random_range(0..4) == 0).then(|| rng.random_range(1..=5));
        let options = ReadOptions {
            from: seen.last().map(|(p, _)| p.next()),
            backwards: false,
            limit,
        };
        let events = read(store, &Query::all(), options).await;
        if let Some(limit) = limit {
            assert!(
                events.len() <= limit,
                "reader, read {n} ({options:?}): {} events returned",
                events.len()
            );
        }
        for e in &events {
            if let Some(&(last, _)) = seen.last() {
                assert!(
                    e.position > last,
                    "reader, read {n} ({options:?}): got {} at {} after it had seen {last}: a \
                     reader must never see a position below one it already saw",
                    e.event_type,
                    e.position
                );
            }
            seen.push((e.position, e.metadata.id));
        }
        if finished {
            if events.is_empty() {
                return seen;
            }
            reads_after_done += 1;
            assert!(
                reads_after_done <= max_events + 1,
                "reader, read {n}: still new events {reads_after_done} reads after the writers \
                 finished, more than they can have written"
            );
        }
        pause(&mut rng).await;
    }
    unreachable!("the reader polls until it returns")
}

/// Lets the scheduler run other tasks zero to three times.
async fn pause(rng: &mut StdRng) {
    for _ in 0..rng.random_range(0..=3) {
        tokio::task::yield_now().await;
    }
}

// ---------------------------------------------------------------------------------------
// The random writer.

const TYPES: [&str; 3] = ["A", "B", "C"];
const TAGS: [(&str, &str); 4] = [("k", "1"), ("k", "2"), ("l", "1"), ("l", "2")];

struct Success {
    writer: usize,
    attempt: usize,
    condition: AppendCondition,
    ids: Vec<Uuid>,
    positions: Vec<Position>,
}

struct Conflict {
    writer: usize,
    attempt: usize,
    condition: AppendCondition,
    position: Position,
    event_type: String,
}

async fn random_writer<S: EventStore>(
    store: &S,
    writer: usize,
    seed: u64,
    attempts: usize,
) -> (Vec<Success>, Vec<Conflict>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut successes = Vec::new();
    let mut conflicts = Vec::new();
    for attempt in 0..attempts {
        let query = random_query(&mut rng);
        let after = match rng.random_range(0..10) {
            0 => None,
            1..=4 => read(store, &query, ReadOptions::last(1))
                .await
                .first()
                .map(|e| e.position),
            _ => read(store, &query, ReadOptions::forward())
                .await
                .last()
                .map(|e| e.position),
        };
        tokio::task::yield_now().await;
        let events: Vec<NewEvent> = (0..rng.random_range(1..=3))
            .map(|_| {
                let t = TYPES[rng.random_range(0..TYPES.len())];
                let tags: Vec<(&str, &str)> = (0..rng.random_range(0..=2))
                    .map(|_| TAGS[rng.random_range(0..TAGS.len())])
                    .collect();
                event(t, &tags)
            })
            .collect();
        let ids: Vec<Uuid> = events.iter().map(|e| e.metadata.id).collect();
        let condition = AppendCondition::new(query, after);
        match store.append(events, Some(condition.clone())).await {
            Ok(appended) => {
                assert_eq!(
                    appended.positions.len(),
                    ids.len(),
                    "writer {writer}, attempt {attempt}: one position per event"
                );
                assert_strictly_increasing(
                    &appended.positions,
                    &format!("writer {writer}, attempt {attempt}: positions of one append"),
                );
                successes.push(Success {
                    writer,
                    attempt,
                    condition,
                    ids,
                    positions: appended.positions,
                });
            }
            Err(AppendError::Conflict {
                position,
                event_type,
            }) => conflicts.push(Conflict {
                writer,
                attempt,
                condition,
                position,
                event_type,
            }),
            Err(other) => panic!(
                "writer {writer}, attempt {attempt}: an append on ({}, after {:?}) failed with \
                 {other}",
                condition.query, condition.after
            ),
        }
    }
    (successes, conflicts)
}

fn random_query(rng: &mut StdRng) -> Query {
    if rng.random_range(0..20) == 0 {
        // Matches no event written here (a condition cannot be `Query::none()`).
        return types(&["Never"]);
    }
    (0..rng.random_range(1..=2))
        .map(|_| {
            let types: Vec<&str> = (0..rng.random_range(0..=2))
                .map(|_| TYPES[rng.random_range(0..TYPES.len())])
                .collect();
            let tags: Vec<Tag> = (0..rng.random_range(0..=2))
                .map(|_| {
                    let (k, v) = TAGS[rng.random_range(0..TAGS.len())];
                    Tag::new(k, v)
                })
                .collect();
            QueryItem::types(types).with_tags(tags)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// Runs a case body; a panic inside is re-raised with the case's name.
async fn named<F: Future<Output = ()>>(case: &'static str, body: F) {
    if let Err(panic) = AssertUnwindSafe(body).catch_unwind().await {
        panic!(
            "store conformance case `{case}` failed: {}",
            panic_message(&*panic)
        );
    }
}

/// Runs the body of a randomized case; a panic inside is re-raised with the case's name
/// and the seed, and how to replay it.
async fn named_seeded<F: Future<Output = ()>>(case: &'static str, seed: u64, body: F) {
    if let Err(panic) = AssertUnwindSafe(body).catch_unwind().await {
        panic!(
            "store conformance case `{case}` failed (seed {seed:#x}; replay its random choices \
             with {SEED_VARIABLE}={seed:#x}): {}",
            panic_message(&*panic)
        );
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)")
}

/// Events appended one per append, with the positions they got.
struct Fixture {
    events: Vec<NewEvent>,
    positions: Vec<Position>,
}

impl Fixture {
    async fn append_one_by_one<S: EventStore>(store: &S, events: Vec<NewEvent>) -> Fixture {
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
    fn assert_events(&self, read: &[StoredEvent], expected: &[usize], what: &str) {
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

fn encode(event_type: &str, value: &serde_json::Value) -> Payload {
    Codec::Json
        .encode(event_type, value)
        .unwrap_or_else(|e| panic!("store conformance: cannot encode a JSON value: {e}"))
}

/// The tags as a sorted set.
fn tag_set(tags: &[Tag]) -> Vec<Tag> {
    let mut tags = tags.to_vec();
    tags.sort();
    tags.dedup();
    tags
}

/// JSON payloads are equal as JSON values; others byte for byte.
fn assert_same_payload(stored: &Payload, new: &Payload, what: &str) {
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
fn event(event_type: &str, tags: &[(&str, &str)]) -> NewEvent {
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

fn types(types: &[&str]) -> Query {
    Query::item(QueryItem::types(types.iter().copied()))
}

fn tags(tags: &[(&str, &str)]) -> Query {
    typed_tags(&[], tags)
}

fn typed_tags(types: &[&str], tags: &[(&str, &str)]) -> Query {
    Query::item(
        QueryItem::types(types.iter().copied())
            .with_tags(tags.iter().map(|(k, v)| Tag::new(*k, *v))),
    )
}

async fn read<S: EventStore>(store: &S, query: &Query, options: ReadOptions) -> Vec<StoredEvent> {
    store
        .read(query, options)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("reading {query} with {options:?} failed: {e}"))
}

async fn head<S: EventStore>(store: &S) -> Option<Position> {
    store
        .head()
        .await
        .unwrap_or_else(|e| panic!("head() failed: {e}"))
}

/// Appends and expects success.
async fn append<S: EventStore>(
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
async fn expect_conflict<S: EventStore>(
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
async fn assert_unchanged<S: EventStore>(store: &S, before: &[StoredEvent], what: &str) {
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
fn first_few(items: &[String]) -> String {
    let mut listed = items[..items.len().min(5)].join(", ");
    if items.len() > 5 {
        listed.push_str(", ...");
    }
    listed
}

fn assert_strictly_increasing(positions: &[Position], what: &str) {
    if let Some(pair) = positions.windows(2).find(|w| w[0] >= w[1]) {
        panic!(
            "{what} are not strictly increasing: {} then {}",
            pair[0], pair[1]
        );
    }
}

async fn join<T>(task: tokio::task::JoinHandle<T>) -> T {
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
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> T {
        join_mut(&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
