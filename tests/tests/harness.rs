//! The given/when/then harness: passing scenarios, and failures that explain themselves
//! with a diff.

use factum::prelude::*;
use factum::testing::{given, given_nothing};

#[factum::events]
pub mod lib {
    pub struct Borrowed {
        #[tag]
        pub book: String,
        pub member: String,
    }
    pub struct Returned {
        #[tag]
        pub book: String,
    }
}

#[derive(State, Default)]
pub struct Book {
    #[id]
    pub book: String,
    pub out: bool,
}

#[factum::fold]
impl Book {
    fn borrowed(&mut self, _: &lib::Borrowed) {
        self.out = true;
    }
    fn returned(&mut self, _: &lib::Returned) {
        self.out = false;
    }
}

#[derive(Decision)]
pub struct Borrow {
    pub book: String,
    pub member: String,
}

impl Decide for Borrow {
    type State = Book;
    type Event = lib::Event;
    type Error = String;

    fn state(&self) -> Book {
        Book::new(&self.book)
    }

    fn decide(&self, book: &Book) -> Result<Vec<lib::Event>, String> {
        if book.out {
            return Err(format!("{} is out", self.book));
        }
        Ok(vec![
            lib::Borrowed {
                book: self.book.clone(),
                member: self.member.clone(),
            }
            .into(),
        ])
    }
}

fn borrow(member: &str) -> Borrow {
    Borrow {
        book: "dune".into(),
        member: member.into(),
    }
}

fn borrowed(member: &str) -> lib::Borrowed {
    lib::Borrowed {
        book: "dune".into(),
        member: member.into(),
    }
}

#[test]
fn history_of_several_sets_then_events() {
    let outcome = given([borrowed("ann")])
        .and([lib::Returned {
            book: "dune".into(),
        }])
        .when(borrow("bob"))
        .then([borrowed("bob")]);
    assert_eq!(outcome.positions, vec![Position(3)]);
}

#[test]
fn then_error_matches_the_domain_error() {
    given([borrowed("ann")])
        .when(borrow("bob"))
        .then_error("dune is out".to_string());
}

#[test]
fn other_books_are_outside_the_query() {
    given([lib::Borrowed {
        book: "emma".into(),
        member: "ann".into(),
    }])
    .when(borrow("bob"))
    .then([borrowed("bob")]);
}

#[test]
#[should_panic(expected = "Borrow: the emitted events differ (- expected, + actual)")]
fn wrong_events_fail_with_a_diff() {
    given_nothing().when(borrow("bob")).then([borrowed("ann")]);
}

#[test]
fn the_diff_names_the_differing_field() {
    let panic = std::panic::catch_unwind(|| {
        given_nothing().when(borrow("bob")).then([borrowed("ann")]);
    })
    .unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("-            member: \"ann\","),
        "{message}"
    );
    assert!(
        message.contains("+            member: \"bob\","),
        "{message}"
    );
}

#[test]
#[should_panic(expected = "but the decision failed: dune is out")]
fn expecting_events_on_a_rejection_fails() {
    given([borrowed("ann")])
        .when(borrow("bob"))
        .then([borrowed("bob")]);
}

#[test]
#[should_panic(expected = "expected the domain error \"dune is lost\" but it committed")]
fn expecting_an_error_on_success_fails() {
    given_nothing()
        .when(borrow("bob"))
        .then_error("dune is lost".to_string());
}

#[test]
#[should_panic(expected = "the domain error differs (- expected, + actual)")]
fn a_different_error_fails_with_a_diff() {
    given([borrowed("ann")])
        .when(borrow("bob"))
        .then_error("dune is lost".to_string());
}

/// A rule that depends on an event's age: a reminder only after 14 days out.
#[derive(State, Default)]
pub struct Loan {
    #[id]
    pub book: String,
    pub since: Option<std::time::SystemTime>,
}

#[factum::fold]
impl Loan {
    fn borrowed(&mut self, _: &lib::Borrowed, stored: &StoredEvent) {
        self.since = Some(stored.recorded_at);
    }
    fn returned(&mut self, _: &lib::Returned) {
        self.since = None;
    }
}

#[derive(Decision)]
pub struct Remind {
    pub book: String,
    /// The decision is pure: the time comes with the command.
    pub now: std::time::SystemTime,
}

impl Decide for Remind {
    type State = Loan;
    type Event = lib::Event;
    type Error = String;

    fn state(&self) -> Loan {
        Loan::new(&self.book)
    }

    fn decide(&self, loan: &Loan) -> Result<Vec<lib::Event>, String> {
        let Some(since) = loan.since else {
            return Err(format!("{} is not out", self.book));
        };
        let days = self
            .now
            .duration_since(since)
            .map_or(0, |d| d.as_secs() / 86_400);
        if days < 14 {
            return Err(format!("{} is out for {days} days only", self.book));
        }
        Ok(vec![
            lib::Returned {
                book: self.book.clone(),
            }
            .into(),
        ])
    }
}

#[test]
fn the_history_can_be_recorded_in_the_past_for_age_dependent_rules() {
    use std::time::{Duration, SystemTime};
    let now = SystemTime::now();
    let day = Duration::from_secs(86_400);
    given_nothing()
        .at(now - 20 * day)
        .and([borrowed("ann")])
        .when(Remind {
            book: "dune".into(),
            now,
        })
        .then([lib::Returned {
            book: "dune".into(),
        }]);
    given_nothing()
        .at(now - 3 * day)
        .and([borrowed("ann")])
        .when(Remind {
            book: "dune".into(),
            now,
        })
        .then_error("dune is out for 3 days only".to_string());
    given_nothing()
        .when(Remind {
            book: "dune".into(),
            now,
        })
        .then_error("dune is not out".to_string());
}

/// The async form inside `#[tokio::test]`: the sync form panicked there ("Cannot start
/// a runtime from within a runtime") before the harness had an async form.
#[tokio::test]
async fn the_async_form_runs_inside_a_tokio_test() {
    let outcome = given([borrowed("ann")])
        .and([lib::Returned {
            book: "dune".into(),
        }])
        .when(borrow("bob"))
        .run()
        .await
        .then([borrowed("bob")]);
    assert_eq!(outcome.positions, vec![Position(3)]);
    given([borrowed("ann")])
        .when(borrow("bob"))
        .run()
        .await
        .then_error("dune is out".to_string());
    let now = std::time::SystemTime::now();
    given_nothing()
        .at(now - std::time::Duration::from_secs(20 * 86_400))
        .and([borrowed("ann")])
        .when(Remind {
            book: "dune".into(),
            now,
        })
        .run()
        .await
        .then([lib::Returned {
            book: "dune".into(),
        }]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(
    expected = "Borrow: `.then(..)` blocks until the scenario has run, which it cannot do inside a tokio runtime (a #[tokio::test] or an async fn): write `.run().await.then(..)` there instead"
)]
async fn the_sync_form_inside_a_runtime_says_to_use_the_async_one() {
    given_nothing().when(borrow("bob")).then([borrowed("bob")]);
}

/// Scenarios on a store of the caller's: it keeps the history and the commits, and a
/// second scenario on it decides on what the first committed.
#[tokio::test]
async fn scenarios_run_on_a_store_of_the_callers() {
    use factum::testing::{Harness, given_on};
    let store = factum::MemoryStore::new();
    let first = Harness::on(store.clone())
        .given_nothing()
        .when(borrow("ann"))
        .run()
        .await;
    assert_eq!(first.stored().len(), 1, "the committed event, read back");
    assert_eq!(first.stored()[0].position, Position(1));
    first.then([borrowed("ann")]);
    given_on(
        store.clone(),
        [lib::Returned {
            book: "dune".into(),
        }],
    )
    .when(borrow("bob"))
    .run()
    .await
    .then([borrowed("bob")]);
    Harness::on(store.clone())
        .given_nothing()
        .when(borrow("cem"))
        .run()
        .await
        .then_error("dune is out".to_string());
    assert_eq!(store.len(), 3);
}

/// The sync form on a store of the caller's, from a plain `#[test]`.
#[test]
fn the_sync_form_runs_on_a_store_of_the_callers() {
    let store = factum::MemoryStore::new();
    factum::testing::given_on(store.clone(), [borrowed("ann")])
        .when(borrow("bob"))
        .then_error("dune is out".to_string());
    assert_eq!(store.len(), 1);
}
