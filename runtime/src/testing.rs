//! The given/when/then harness: state a history, run one decision, and assert what it
//! emitted or the error it returned.
//!
//! [`given`] and [`given_nothing`] run on a fresh in-memory store; [`given_on`] and
//! [`Harness::on`] on any [`EventStore`] (SQLite, PostgreSQL, ...), which then holds the
//! history and what the decision committed.
//!
//! Two forms, the same assertions:
//! - **sync**, for plain `#[test]` functions: `.when(decision).then(..)` runs the scenario
//!   on a small tokio runtime of its own. Inside a tokio runtime (`#[tokio::test]`) it
//!   cannot block, and panics saying to use the async form. A pooled store opened on
//!   another runtime opens new connections on this one; one whose connections are driven
//!   by a runtime that is alive but idle (a current-thread runtime nobody polls) would
//!   wait for it forever: use the async form on that runtime instead.
//! - **async**, for `#[tokio::test]`: `.when(decision).run().await.then(..)`.
//!
//! ```
//! # use factum::prelude::*;
//! # #[factum::events]
//! # pub mod bank {
//! #     pub struct Opened { #[tag] pub account: String }
//! # }
//! # #[derive(State, Default)]
//! # pub struct Account { #[id] pub account: String, pub open: bool }
//! # #[factum::fold]
//! # impl Account { fn opened(&mut self, _: &bank::Opened) { self.open = true } }
//! # #[derive(Decision)]
//! # pub struct Open { pub account: String }
//! # impl Decide for Open {
//! #     type State = Account;
//! #     type Event = bank::Event;
//! #     type Error = String;
//! #     fn state(&self) -> Account { Account::new(self.account.clone()) }
//! #     fn decide(&self, a: &Account) -> Result<Vec<bank::Event>, String> {
//! #         if a.open { return Err("already open".into()) }
//! #         Ok(vec![bank::Opened { account: self.account.clone() }.into()])
//! #     }
//! # }
//! use factum::testing::{Harness, given, given_nothing};
//!
//! // In a plain #[test]:
//! given_nothing()
//!     .when(Open { account: "a".into() })
//!     .then([bank::Opened { account: "a".into() }]);
//! given([bank::Opened { account: "a".into() }])
//!     .when(Open { account: "a".into() })
//!     .then_error("already open".to_string());
//!
//! // In a #[tokio::test] (here a runtime of our own), on any store:
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let store = factum::MemoryStore::new(); // or a SqliteStore, a PostgresStore, ...
//! Harness::on(store)
//!     .given([bank::Opened { account: "a".into() }])
//!     .when(Open { account: "a".into() })
//!     .run()
//!     .await
//!     .then_error("already open".to_string());
//! # });
//! ```
//!
//! A history may be recorded in the past, for rules that depend on an event's age:
//! [`Given::at`] gives the events after it their [`NewEvent::recorded_at`], which every
//! store keeps (to the microsecond).

use std::fmt::Debug;
use std::time::SystemTime;

use futures::TryStreamExt;

use crate::decide::{Decide, DecideError, Engine, Outcome};
use crate::model::{Codec, EventSet, NewEvent, Position, Query, StoredEvent};
use crate::store::{EventStore, MemoryStore, ReadOptions};

/// A history of events to decide against, on the store `S`.
#[must_use = "call .when(decision) to run a decision"]
pub struct Given<S = MemoryStore> {
    store: S,
    /// Each event, its time already set when [`Given::at`] gave one.
    history: Vec<NewEvent>,
    at: Option<SystemTime>,
}

/// Starts a scenario on a fresh in-memory store with `events` as the history.
pub fn given<E: EventSet>(events: impl IntoIterator<Item = E>) -> Given {
    given_nothing().and(events)
}

/// Starts a scenario on a fresh in-memory store with an empty history.
pub fn given_nothing() -> Given {
    Harness::on(MemoryStore::new()).given_nothing()
}

/// Starts a scenario on `store` with `events` as the history (appended to what the store
/// holds, before the decision runs). See [`Harness::on`].
pub fn given_on<S: EventStore + Clone, E: EventSet>(
    store: S,
    events: impl IntoIterator<Item = E>,
) -> Given<S> {
    Harness::on(store).given(events)
}

/// Scenarios on a store of the caller's choice: a durable one (SQLite, PostgreSQL) proves
/// the decision and its history survive the store's encoding, and a store shared by
/// several scenarios shows what they committed together.
///
/// The decision folds everything the store holds that its states match, so give each
/// scenario a fresh store (a new file, a new schema) unless it is meant to see the rest.
pub struct Harness<S> {
    store: S,
}

impl<S: EventStore + Clone> Harness<S> {
    /// A harness running its scenarios on `store`.
    pub fn on(store: S) -> Self {
        Harness { store }
    }

    /// Starts a scenario with `events` as the history.
    pub fn given<E: EventSet>(self, events: impl IntoIterator<Item = E>) -> Given<S> {
        self.given_nothing().and(events)
    }

    /// Starts a scenario with no history of its own.
    pub fn given_nothing(self) -> Given<S> {
        Given {
            store: self.store,
            history: Vec::new(),
            at: None,
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    // IO too: a pooled store (PostgreSQL) opens connections on the caller's runtime.
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("the test harness could not start a tokio runtime: {e}"),
    }
}

impl<S: EventStore + Clone> Given<S> {
    /// Records the events given after this call as of `time` (their
    /// [`NewEvent::recorded_at`], kept to the microsecond), for rules that depend on an
    /// event's age. Without it, events are recorded when the scenario runs.
    pub fn at(mut self, time: SystemTime) -> Given<S> {
        self.at = Some(time);
        self
    }

    /// Adds `events`, of any event set, to the history.
    #[track_caller]
    pub fn and<E: EventSet>(mut self, events: impl IntoIterator<Item = E>) -> Given<S> {
        for event in events {
            match event.to_new_event(Codec::default()) {
                Ok(e) => self.history.push(match self.at {
                    Some(at) => e.with_recorded_at(at),
                    None => e,
                }),
                Err(e) => panic!("given: {e}"),
            }
        }
        self
    }

    /// The scenario of `decision` against the history: run it with
    /// [`When::run`]`.await`, or assert on it directly with the sync forms
    /// ([`When::then`], [`When::then_error`], ...) outside a tokio runtime.
    pub fn when<D: Decide>(self, decision: D) -> When<S, D> {
        When {
            given: self,
            decision,
        }
    }
}

/// A decision and the history it runs against, not run yet.
#[must_use = "run it with .run().await, or assert with .then(..) / .then_error(..)"]
pub struct When<S, D> {
    given: Given<S>,
    decision: D,
}

impl<S: EventStore + Clone, D: Decide> When<S, D> {
    /// Appends the history (in one append), runs the decision through an [`Engine`] on
    /// the store, and reads back what it committed: the result to assert on.
    ///
    /// Panics if the history cannot be appended or the committed events cannot be read
    /// back (the store failed, not the decision).
    pub async fn run(self) -> Then<D, S> {
        let When { given, decision } = self;
        let store = given.store;
        if !given.history.is_empty()
            && let Err(e) = store.append(given.history, None).await
        {
            panic!("given: the history could not be appended: {e}");
        }
        let result = Engine::new(store.clone()).decide(&decision).await;
        let stored = match &result {
            Ok(outcome) => read_back(&store, &outcome.positions).await,
            Err(_) => Vec::new(),
        };
        Then {
            result,
            stored,
            store,
        }
    }

    /// The store the scenario runs on: a handle (cloned, it sees what the scenario
    /// appends once it ran), to inspect the log after an assertion.
    pub fn store(&self) -> &S {
        &self.given.store
    }

    /// Runs the scenario to completion on a runtime of its own: the sync forms.
    #[track_caller]
    fn run_blocking(self, form: &str) -> Then<D, S> {
        if tokio::runtime::Handle::try_current().is_ok() {
            panic!(
                "{}: `.{form}` blocks until the scenario has run, which it cannot do inside a \
                 tokio runtime (a #[tokio::test] or an async fn): write \
                 `.run().await.{form}` there instead",
                D::META.name
            );
        }
        runtime().block_on(self.run())
    }

    /// Runs the scenario (sync form) and asserts it committed exactly `expected`; see
    /// [`Then::then`].
    #[track_caller]
    pub fn then<E: EventSet>(self, expected: impl IntoIterator<Item = E>) -> Outcome<D::Event> {
        self.run_blocking("then(..)").then(expected)
    }

    /// Runs the scenario (sync form) and asserts it emitted nothing and succeeded; see
    /// [`Then::then_nothing`].
    #[track_caller]
    pub fn then_nothing(self) {
        self.run_blocking("then_nothing()").then_nothing()
    }

    /// Runs the scenario (sync form) and asserts it failed with the domain error
    /// `expected`; see [`Then::then_error`].
    #[track_caller]
    pub fn then_error(self, expected: D::Error)
    where
        D::Error: PartialEq,
    {
        self.run_blocking("then_error(..)").then_error(expected)
    }

    /// Runs the scenario (sync form) and returns the raw result.
    #[track_caller]
    pub fn result(self) -> Result<Outcome<D::Event>, DecideError<D::Error>> {
        self.run_blocking("result()").result()
    }
}

/// The result of a decision in a scenario, to assert on.
#[must_use = "assert the result with .then(..) or .then_error(..)"]
pub struct Then<D: Decide, S = MemoryStore> {
    result: Result<Outcome<D::Event>, DecideError<D::Error>>,
    /// The committed events, read back from the store after the decision.
    stored: Vec<StoredEvent>,
    store: S,
}

impl<D: Decide, S> Then<D, S> {
    /// Asserts the decision committed exactly `expected`, in order, and that the store
    /// holds them (read back and decoded). Panics with a diff otherwise.
    ///
    /// `expected` may be of any event set — event structs, a group or the module's enum —
    /// as long as its types belong to the decision's event set.
    #[track_caller]
    pub fn then<E: EventSet>(self, expected: impl IntoIterator<Item = E>) -> Outcome<D::Event> {
        let expected: Vec<D::Event> = expected.into_iter().map(|e| convert(&e)).collect();
        let outcome = match self.result {
            Ok(outcome) => outcome,
            Err(e) => panic!(
                "{}: expected events\n{expected:#?}\nbut the decision failed: {e}\n({e:?})",
                D::META.name
            ),
        };
        if outcome.events != expected {
            panic!(
                "{}: the emitted events differ (- expected, + actual)\n{}",
                D::META.name,
                diff(&expected, &outcome.events)
            );
        }
        let stored: Vec<D::Event> = self
            .stored
            .iter()
            .map(|e| {
                D::Event::from_stored(e)
                    .unwrap_or_else(|err| panic!("the committed event does not decode: {err}"))
            })
            .collect();
        if stored != expected {
            panic!(
                "{}: the store holds other events than the decision returned (- expected, + stored)\n{}",
                D::META.name,
                diff(&expected, &stored)
            );
        }
        outcome
    }

    /// Asserts the decision emitted nothing and succeeded.
    #[track_caller]
    pub fn then_nothing(self) {
        let _ = self.then(Vec::<D::Event>::new());
    }

    /// Asserts the decision failed with the domain error `expected`.
    #[track_caller]
    pub fn then_error(self, expected: D::Error)
    where
        D::Error: PartialEq,
    {
        match self.result {
            Err(DecideError::Domain(actual)) if actual == expected => {}
            Err(DecideError::Domain(actual)) => panic!(
                "{}: the domain error differs (- expected, + actual)\n{}",
                D::META.name,
                diff(&expected, &actual)
            ),
            Err(other) => panic!(
                "{}: expected the domain error {expected:?} but got: {other}",
                D::META.name
            ),
            Ok(outcome) => panic!(
                "{}: expected the domain error {expected:?} but it committed\n{:#?}",
                D::META.name,
                outcome.events
            ),
        }
    }

    /// The store the decision ran against, to inspect what it holds.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The events the decision committed, as the store holds them (with their positions
    /// and times); empty when it failed.
    pub fn stored(&self) -> &[StoredEvent] {
        &self.stored
    }

    /// The raw result, for assertions the other methods do not cover.
    pub fn result(self) -> Result<Outcome<D::Event>, DecideError<D::Error>> {
        self.result
    }
}

/// `event` as a value of the set `T`, through its stored form, so events of any set can
/// be compared with a decision's.
#[track_caller]
fn convert<E: EventSet, T: EventSet>(event: &E) -> T {
    let stored = match event.to_new_event(Codec::default()) {
        Ok(e) => StoredEvent::record(e, Position(0)),
        Err(e) => panic!("expected event: {e}"),
    };
    match T::from_stored(&stored) {
        Ok(e) => e,
        Err(e) => panic!(
            "the expected event {event:?} does not convert to the decision's event set {:?}: {e}",
            T::TYPES
        ),
    }
}

/// The events at `positions`, read back from `store`.
async fn read_back<S: EventStore>(store: &S, positions: &[Position]) -> Vec<StoredEvent> {
    let Some(&first) = positions.first() else {
        return Vec::new();
    };
    let all = Query::all();
    let stored: Vec<StoredEvent> = match store
        .read(&all, ReadOptions::from(first))
        .try_collect()
        .await
    {
        Ok(events) => events,
        Err(e) => panic!("reading back the committed events failed: {e}"),
    };
    // A store shared with other writers may hold their events in between and after.
    stored
        .into_iter()
        .filter(|e| positions.contains(&e.position))
        .collect()
}

fn diff<T: Debug + ?Sized>(expected: &T, actual: &T) -> String {
    let expected = format!("{expected:#?}\n");
    let actual = format!("{actual:#?}\n");
    similar::TextDiff::from_lines(&expected, &actual)
        .unified_diff()
        .context_radius(3)
        .to_string()
}
