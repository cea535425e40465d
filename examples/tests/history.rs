//! On the durable stores (SQLite, PostgreSQL, each test with a fresh file or schema):
//! a history imported with its original times decides an age rule through the engine,
//! the given/when/then harness runs inside `#[tokio::test]`, and a globally hot state
//! (invoice numbers: a state without ids that its own decision writes) commits every
//! one of 20 concurrent decisions with the default retry policy, gapless.
#![allow(missing_docs)]

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use factum::prelude::*;
use factum::testing::{Harness, given_on};
use factum::{DecideError, EventStore, MemoryStore, Query, ReadOptions};
use futures::TryStreamExt;

const DAY: Duration = Duration::from_secs(86_400);

#[factum::events]
pub mod library {
    /// A book went out to a member.
    pub struct Borrowed {
        #[tag]
        pub book: String,
        pub member: String,
    }
    /// The member was reminded to bring it back.
    pub struct Reminded {
        #[tag]
        pub book: String,
    }
    /// An invoice got the next number of the one global series.
    pub struct InvoiceIssued {
        #[tag]
        pub invoice: String,
        pub number: u64,
    }
}

/// Since when a book is out: an age rule's state, folded from when each loan was
/// recorded.
#[derive(State, Default)]
pub struct Loan {
    #[id]
    pub book: String,
    pub since: Option<SystemTime>,
}

#[factum::fold]
impl Loan {
    fn borrowed(&mut self, _: &library::Borrowed, stored: &StoredEvent) {
        self.since = Some(stored.recorded_at);
    }
}

/// Reminds the member once the book is out for 14 days or more.
#[derive(Decision)]
pub struct Remind {
    pub book: String,
    /// The decision is pure: the time comes with the command.
    pub now: SystemTime,
}

impl Decide for Remind {
    type State = Loan;
    type Event = library::Event;
    type Error = String;

    fn state(&self) -> Loan {
        Loan::new(&self.book)
    }

    fn decide(&self, loan: &Loan) -> Result<Vec<library::Event>, String> {
        let Some(since) = loan.since else {
            return Err(format!("{} is not out", self.book));
        };
        let days = self
            .now
            .duration_since(since)
            .map_or(0, |d| d.as_secs() / DAY.as_secs());
        if days < 14 {
            return Err(format!("{} is out for {days} days only", self.book));
        }
        Ok(vec![
            library::Reminded {
                book: self.book.clone(),
            }
            .into(),
        ])
    }
}

/// The last invoice number: one state for the whole store (no `#[id]`).
#[derive(State, Default)]
#[state(constructor = false)]
pub struct InvoiceNumbers {
    pub last: u64,
}

#[factum::fold]
impl InvoiceNumbers {
    fn issued(&mut self, e: &library::InvoiceIssued) {
        self.last = e.number;
    }
}

/// Issues an invoice with the next number: every two of them conflict.
#[derive(Decision)]
pub struct IssueInvoice {
    pub invoice: String,
}

impl Decide for IssueInvoice {
    type State = InvoiceNumbers;
    type Event = library::InvoiceIssued;
    type Error = String;

    fn state(&self) -> InvoiceNumbers {
        InvoiceNumbers::default()
    }

    fn decide(&self, numbers: &InvoiceNumbers) -> Result<Vec<library::InvoiceIssued>, String> {
        Ok(vec![library::InvoiceIssued {
            invoice: self.invoice.clone(),
            number: numbers.last + 1,
        }])
    }
}

fn borrowed(book: &str) -> library::Borrowed {
    library::Borrowed {
        book: book.into(),
        member: "ann".into(),
    }
}

/// A legacy log, as a system being migrated holds it: loans of 20 and 3 days ago, with
/// sub-microsecond times the stores cannot keep.
fn legacy_log(now: SystemTime) -> Vec<StoredEvent> {
    let legacy = MemoryStore::new();
    for (book, age) in [("dune", 20 * DAY), ("emma", 3 * DAY)] {
        let event = library::Event::from(borrowed(book))
            .to_new_event(factum::Codec::Json)
            .unwrap()
            .with_recorded_at(now - age - Duration::from_nanos(789));
        legacy.append_recorded_at(vec![event], None, now).unwrap();
    }
    futures::executor::block_on(
        legacy
            .read(&Query::all(), ReadOptions::forward())
            .try_collect(),
    )
    .unwrap()
}

/// Copies the legacy log into `store`, keeping every time, and decides on it.
async fn imported_history_decides_on_its_own_times(store: impl EventStore + Clone) {
    let now = SystemTime::now();
    let log = legacy_log(now);
    let imported: Vec<NewEvent> = log
        .iter()
        .cloned()
        .map(StoredEvent::into_new_event)
        .collect();
    store.append(imported, None).await.unwrap();
    let stored: Vec<StoredEvent> = store
        .read(&Query::all(), ReadOptions::forward())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        stored.iter().map(|e| e.recorded_at).collect::<Vec<_>>(),
        log.iter().map(|e| e.recorded_at).collect::<Vec<_>>(),
        "the imported times, to the microsecond"
    );

    let engine = Engine::new(store);
    let reminded = engine
        .decide(&Remind {
            book: "dune".into(),
            now,
        })
        .await
        .unwrap();
    assert_eq!(
        reminded.events,
        vec![library::Event::from(library::Reminded {
            book: "dune".into()
        })]
    );
    let early = engine
        .decide(&Remind {
            book: "emma".into(),
            now,
        })
        .await;
    assert!(
        matches!(&early, Err(DecideError::Domain(e)) if e == "emma is out for 3 days only"),
        "{early:?}"
    );
}

/// Two scenarios in the async form, one on each (fresh) store: one reminds, one is
/// refused, and the store holds the history with its time.
async fn the_harness_decides_on<S: EventStore + Clone>(first: S, second: S) {
    let now = SystemTime::now();
    let then = Harness::on(first)
        .given_nothing()
        .at(now - 20 * DAY)
        .and([borrowed("dune")])
        .when(Remind {
            book: "dune".into(),
            now,
        })
        .run()
        .await;
    let history: Vec<StoredEvent> = then
        .store()
        .read(&Query::all(), ReadOptions::forward())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        history[0].recorded_at,
        factum::model::whole_micros(now - 20 * DAY)
    );
    assert_eq!(then.stored().len(), 1, "the reminder, read back");
    then.then([library::Reminded {
        book: "dune".into(),
    }]);

    given_on(second, [borrowed("dune")])
        .when(Remind {
            book: "dune".into(),
            now,
        })
        .run()
        .await
        .then_error("dune is out for 0 days only".to_string());
}

/// 20 invoices issued at once through the engine, with the default retry policy: how
/// many gave up, and the numbers the others got.
async fn issue_concurrently(store: impl EventStore + Clone + 'static, writers: usize) {
    let engine = Engine::new(store);
    let tasks: Vec<_> = (0..writers)
        .map(|i| {
            let engine = engine.clone();
            tokio::spawn(async move {
                engine
                    .decide(&IssueInvoice {
                        invoice: format!("inv-{i}"),
                    })
                    .await
                    .map(|o| (o.attempts, o.events))
            })
        })
        .collect();
    let mut numbers = BTreeSet::new();
    let mut gave_up = Vec::new();
    let mut most_attempts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok((attempts, events)) => {
                most_attempts = most_attempts.max(attempts);
                numbers.extend(events.iter().map(|e| e.number));
            }
            Err(e) => gave_up.push(e.to_string()),
        }
    }
    assert!(
        gave_up.is_empty(),
        "{} of {writers} decisions gave up: {gave_up:#?}",
        gave_up.len()
    );
    assert_eq!(
        numbers,
        (1..=writers as u64).collect::<BTreeSet<_>>(),
        "every invoice a number of its own, without gaps (at most {most_attempts} attempts)"
    );
}

mod sqlite {
    use super::*;
    use factum_sqlite::SqliteStore;
    use tempfile::TempDir;

    /// A store in a new file, and the directory holding it (removed when dropped).
    async fn store() -> (SqliteStore, TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = factum_sqlite::open(dir.path().join("events.db"))
            .await
            .unwrap();
        (store, dir)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_imported_history_decides_an_age_rule() {
        let (store, _dir) = store().await;
        imported_history_decides_on_its_own_times(store).await;
    }

    #[tokio::test]
    async fn the_harness_runs_inside_a_tokio_test() {
        let ((first, _a), (second, _b)) = (store().await, store().await);
        the_harness_decides_on(first, second).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn twenty_concurrent_invoices_all_commit_gapless() {
        let (store, _dir) = store().await;
        issue_concurrently(store, 20).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn thirty_two_concurrent_invoices_all_commit_gapless() {
        let (store, _dir) = store().await;
        issue_concurrently(store, 32).await;
    }
}

mod postgres {
    use super::*;
    use factum_postgres::PostgresStore;

    /// Drops its schema when dropped, also when the test panics.
    pub struct DropSchema(String);

    impl Drop for DropSchema {
        fn drop(&mut self) {
            let schema = self.0.clone();
            // A thread and a runtime of its own: this may run inside the test's runtime.
            let dropped = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                runtime.block_on(async {
                    let store = PostgresStore::from_env(&schema)
                        .await
                        .map_err(|e| e.to_string())?;
                    store.drop_schema().await.map_err(|e| e.to_string())
                })
            })
            .join();
            if let Ok(Err(e)) = dropped {
                eprintln!("could not drop schema {}: {e}", self.0);
            }
        }
    }

    /// A store in a fresh schema; panics naming `DATABASE_URL` when the server is
    /// unreachable.
    async fn store() -> (PostgresStore, DropSchema) {
        let schema = format!("factum_test_history_{}", uuid::Uuid::now_v7().simple());
        let store = PostgresStore::from_env(&schema).await.unwrap_or_else(|e| {
            panic!(
                "cannot open a PostgreSQL store: {e}. These tests need a running server: set \
                 DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test) to one"
            )
        });
        (store, DropSchema(schema))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_imported_history_decides_an_age_rule() {
        let (store, _schema) = store().await;
        imported_history_decides_on_its_own_times(store).await;
    }

    #[tokio::test]
    async fn the_harness_runs_inside_a_tokio_test() {
        let ((first, _a), (second, _b)) = (store().await, store().await);
        the_harness_decides_on(first, second).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn twenty_concurrent_invoices_all_commit_gapless() {
        let (store, _schema) = store().await;
        issue_concurrently(store, 20).await;
    }

    /// The sync form in a plain `#[test]`, on a store opened on a runtime that is gone
    /// by then (its connections with it): the harness's own runtime opens new ones.
    #[test]
    fn the_sync_harness_runs_on_a_store_opened_elsewhere() {
        let opened = tokio::runtime::Runtime::new()
            .expect("a runtime")
            .block_on(store());
        let (store, _schema) = opened;
        given_on(store, [borrowed("dune")])
            .when(Remind {
                book: "dune".into(),
                now: SystemTime::now(),
            })
            .then_error("dune is out for 0 days only".to_string());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn thirty_two_concurrent_invoices_all_commit_gapless() {
        let (store, _schema) = store().await;
        issue_concurrently(store, 32).await;
    }
}
