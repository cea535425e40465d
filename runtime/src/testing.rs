//! The given/when/then harness: state a history, run one decision on the in-memory
//! store, and assert what it emitted or the error it returned.
//!
//! It is synchronous (it runs its own small tokio runtime), so call it from plain
//! `#[test]` functions, not from inside an async runtime.
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
//! use factum::testing::{given, given_nothing};
//!
//! given_nothing()
//!     .when(Open { account: "a".into() })
//!     .then([bank::Opened { account: "a".into() }]);
//! given([bank::Opened { account: "a".into() }])
//!     .when(Open { account: "a".into() })
//!     .then_error("already open".to_string());
//! ```

use std::fmt::Debug;
use std::time::SystemTime;

use futures::TryStreamExt;

use crate::decide::{Decide, DecideError, Engine, Outcome};
use crate::model::{Codec, EventSet, NewEvent, Position, Query, StoredEvent};
use crate::store::{EventStore, MemoryStore, ReadOptions};

/// A history of events to decide against.
#[must_use = "call .when(decision) to run a decision"]
pub struct Given {
    /// Each event, and the time to record it at (`None`: when the scenario runs).
    history: Vec<(NewEvent, Option<SystemTime>)>,
    at: Option<SystemTime>,
}

/// Starts a scenario with `events` as the history.
pub fn given<E: EventSet>(events: impl IntoIterator<Item = E>) -> Given {
    given_nothing().and(events)
}

/// Starts a scenario with an empty history.
pub fn given_nothing() -> Given {
    Given {
        history: Vec::new(),
        at: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("the test harness could not start a tokio runtime: {e}"),
    }
}

impl Given {
    /// Records the events given after this call as of `time` (their `recorded_at`), for
    /// rules that depend on an event's age. Without it, events are recorded when the
    /// scenario runs.
    pub fn at(mut self, time: SystemTime) -> Given {
        self.at = Some(time);
        self
    }

    /// Adds `events`, of any event set, to the history.
    pub fn and<E: EventSet>(mut self, events: impl IntoIterator<Item = E>) -> Given {
        for event in events {
            match event.to_new_event(Codec::default()) {
                Ok(e) => self.history.push((e, self.at)),
                Err(e) => panic!("given: {e}"),
            }
        }
        self
    }

    /// Runs `decision` against the history on a fresh in-memory store.
    pub fn when<D: Decide>(self, decision: D) -> Then<D> {
        let store = MemoryStore::new();
        let rt = runtime();
        let result = rt.block_on(async {
            for (event, at) in self.history {
                let at = at.unwrap_or_else(SystemTime::now);
                if let Err(e) = store.append_recorded_at(vec![event], None, at) {
                    panic!("given: the history could not be appended: {e}");
                }
            }
            Engine::new(store.clone()).decide(&decision).await
        });
        Then {
            result,
            store,
            decision: std::marker::PhantomData,
        }
    }
}

/// The result of a decision in a scenario, to assert on.
#[must_use = "assert the result with .then(..) or .then_error(..)"]
pub struct Then<D: Decide> {
    result: Result<Outcome<D::Event>, DecideError<D::Error>>,
    store: MemoryStore,
    decision: std::marker::PhantomData<D>,
}

impl<D: Decide> Then<D> {
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
        let stored = read_back::<D::Event>(&self.store, &outcome);
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
    pub fn store(&self) -> &MemoryStore {
        &self.store
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

fn read_back<E: EventSet>(store: &MemoryStore, outcome: &Outcome<E>) -> Vec<E> {
    let Some(&first) = outcome.positions.first() else {
        return Vec::new();
    };
    let all = Query::all();
    // The in-memory store's read stream is ready at once: no runtime needed to drain it.
    let stored: Vec<_> = match futures::executor::block_on(
        store
            .read(&all, ReadOptions::from(first))
            .try_collect::<Vec<_>>(),
    ) {
        Ok(events) => events,
        Err(e) => panic!("reading back the committed events failed: {e}"),
    };
    stored
        .iter()
        .map(|e| {
            E::from_stored(e)
                .unwrap_or_else(|err| panic!("the committed event does not decode: {err}"))
        })
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
