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
//! | [`round_trip`](fn@round_trip) | type, version, tags, payload bytes, codec and metadata come back equal |
//! | [`unreadable_values_refused`] | a decision emitting what its codec cannot read back (NaN, ±∞ in JSON; nesting past the reader's limit) gets a typed encode error naming the field, through the engine and a serial lane; nothing is appended |
//! | [`exact_floats`] | 2,000 `f64` (and `f32`) values, one an event, come back bit for bit in JSON and MessagePack payloads and snapshots |
//! | [`imported_times`] | a caller-set `recorded_at` comes back, to the microsecond, from every append path; the store's own clock is kept to the microsecond too |
//! | [`repeated_tags_stored_once`] | a tag given twice on an event comes back once |
//! | [`limits_refused`] | an event past a [limit](crate::store::limits) is [`AppendError::Unstorable`], alone or in a batch, whose other requests commit |
//! | [`idempotency_keys`] | a recorded idempotency key makes a later append a duplicate that writes nothing |
//! | [`recorded_keys`](fn@recorded_keys) | a store records, looks up and reports an idempotency key's part before its first `U+001F`; events keep the whole key |
//! | [`batch_appends`] | each request of a batch is checked alone, in order; failures do not stop the others |
//! | [`snapshots`](fn@snapshots) | saved snapshots load back equal; a later save replaces |
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
//! Adapters whose projection sinks are exactly once run the cases of [`sink`] too,
//! through [`projection_sink_conformance_tests!`](crate::projection_sink_conformance_tests);
//! adapters that can spoil a row of their own storage run those of [`corrupt_rows`]
//! (listeners and sinks behind a row they cannot read), through
//! [`corrupt_row_conformance_tests!`](crate::corrupt_row_conformance_tests).
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
//!
//! [`ReadOptions::last`]: crate::store::ReadOptions::last
//! [`Query::none`]: crate::model::Query::none
//! [`AppendError::EmptyCondition`]: crate::store::AppendError::EmptyCondition
//! [`AppendError::Empty`]: crate::store::AppendError::Empty
//! [`AppendError::Unstorable`]: crate::store::AppendError::Unstorable
//! [`AppendError::Conflict`]: crate::store::AppendError::Conflict
//! [`NewEvent::recorded_at`]: crate::model::NewEvent::recorded_at
//! [`StoredEvent::recorded_at`]: crate::model::StoredEvent::recorded_at

use std::future::Future;

use crate::store::EventStore;

mod appends;
mod batches;
mod concurrency;
mod conditions;
mod contention;
mod coordination;
pub mod corrupt_rows;
mod floats;
mod guarded;
mod history;
mod idempotency;
mod limits;
mod listening;
mod locks;
mod normalising;
mod random;
mod reads;
mod recorded_keys;
mod round_trip;
pub mod sink;
mod snapshots;
mod support;
mod tailing;
mod unreadable;

pub use appends::{empty_append_rejected, multi_event_appends, positions_monotonic};
pub use batches::batch_appends;
pub use concurrency::{concurrent_disjoint_conditions, concurrent_overlapping_conditions};
pub use conditions::{
    append_condition_with_position, append_condition_without_position, condition_matching_nothing,
};
pub use contention::{Contention, contended_decisions, contended_decisions_with};
pub use coordination::{batch_dependencies, idempotency_lookup};
pub use floats::exact_floats;
pub use guarded::Guarded;
pub use history::imported_times;
pub use idempotency::idempotency_keys;
pub use limits::limits_refused;
pub use listening::{checkpoints, dead_letters, head_signal, subscription};
pub use locks::partition_locks;
pub use normalising::{empty_condition_refused, repeated_tags_stored_once};
pub use random::{RandomConsistency, SEED_VARIABLE, random_consistency, random_consistency_with};
pub use reads::{empty_store, query_matching, read_options};
pub use recorded_keys::recorded_keys;
pub use round_trip::round_trip;
pub use snapshots::snapshots;
pub use tailing::{
    TailingReader, tailing_reader_sees_every_event, tailing_reader_sees_every_event_with,
};
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
        $crate::conformance_tests!(@cases_in [$crate::conformance] ($make) $($case)*);
    };
    // The cases of another module of the suite, as `projection_sink_conformance_tests!`
    // runs; one case at a time, as the module's path repeats once per case.
    (@cases_in [$($module:tt)*] ($make:expr) $case:ident $($rest:ident)*) => {
        #[test]
        fn $case() {
            $crate::conformance::__block_on(async {
                let made = ($make)().await;
                $($module)*::$case(made).await;
            });
        }
        $crate::conformance_tests!(@cases_in [$($module)*] ($make) $($rest)*);
    };
    (@cases_in [$($module:tt)*] ($make:expr)) => {};
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
