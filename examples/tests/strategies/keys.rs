//! Idempotency keys belong to one decision type and one content: the same key on another
//! decision type is another request, and the same key on other content is a mistake the
//! caller is told about — never a replay of someone else's outcome. Under every strategy,
//! on every store, and when the two contents race.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use factum::lanes::{Dispatcher, Drain, Strategy};
use factum::prelude::*;
use factum::store::StoreLayer;
use factum::{Context, StoreError};
use futures::TryStreamExt;
use tokio::sync::Barrier;

use crate::STRATEGIES;

#[factum::events]
pub mod desk {
    #[group(Ticket)]
    pub struct TicketOpened {
        #[tag]
        pub ticket: String,
        pub title: String,
    }
    #[group(Ticket)]
    pub struct NoteAdded {
        #[tag]
        pub ticket: String,
        pub text: String,
    }
}

#[derive(State, Debug, Default)]
pub struct Ticket {
    #[id]
    pub ticket: String,
    pub open: bool,
}

#[factum::fold]
impl Ticket {
    fn opened(&mut self, _: &desk::TicketOpened) {
        self.open = true;
    }
}

/// Opens a ticket once: a second opening is refused by the state.
#[derive(Decision, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[decision(partition = ticket, idempotency = request)]
pub struct OpenTicket {
    pub ticket: String,
    pub title: String,
    pub request: String,
}

impl Decide for OpenTicket {
    type State = Ticket;
    type Event = desk::TicketOpened;
    type Error = String;
    fn state(&self) -> Ticket {
        Ticket::new(self.ticket.clone())
    }
    fn decide(&self, ticket: &Ticket) -> Result<Vec<desk::TicketOpened>, String> {
        if ticket.open {
            return Err(format!("ticket {} is already open", self.ticket));
        }
        Ok(vec![desk::TicketOpened {
            ticket: self.ticket.clone(),
            title: self.title.clone(),
        }])
    }
}

/// Adds a note to an open ticket; its events are of a type `OpenTicket` cannot decode.
#[derive(Decision, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[decision(partition = ticket, idempotency = request)]
pub struct AddNote {
    pub ticket: String,
    pub text: String,
    pub request: String,
}

impl Decide for AddNote {
    type State = Ticket;
    type Event = desk::NoteAdded;
    type Error = String;
    fn state(&self) -> Ticket {
        Ticket::new(self.ticket.clone())
    }
    fn decide(&self, ticket: &Ticket) -> Result<Vec<desk::NoteAdded>, String> {
        if !ticket.open {
            return Err(format!("ticket {} is not open", self.ticket));
        }
        Ok(vec![desk::NoteAdded {
            ticket: self.ticket.clone(),
            text: self.text.clone(),
        }])
    }
}

fn open(ticket: &str, title: &str, request: &str) -> OpenTicket {
    OpenTicket {
        ticket: ticket.into(),
        title: title.into(),
        request: request.into(),
    }
}

fn note(ticket: &str, text: &str, request: &str) -> AddNote {
    AddNote {
        ticket: ticket.into(),
        text: text.into(),
        request: request.into(),
    }
}

/// Whether `error` says the key was used before with other content, naming `key` and
/// the positions of the first commit.
fn is_reused<E: std::fmt::Debug>(
    error: &DecideError<E>,
    decision: &str,
    key: &str,
    first: &[Position],
) -> bool {
    matches!(
        error,
        DecideError::IdempotencyKeyReused { decision: d, key: k, positions }
            if *d == decision && k == key && positions == first
    )
}

async fn log<S: EventStore>(store: &S) -> Vec<StoredEvent> {
    store
        .read(&Query::all(), ReadOptions::forward())
        .try_collect()
        .await
        .expect("read the log")
}

/// One key on two decision types: each commits its own events. One key and one type
/// with other content: a typed error, nothing appended, the first outcome intact; the
/// same content again replays it. Under `strategy`, on a fresh `store`.
async fn scoped_and_fingerprinted<S: EventStore + Clone + 'static>(store: S, strategy: Strategy) {
    let dispatcher = Dispatcher::new(Engine::new(store.clone()));
    let d = &dispatcher;
    let context = Context::default;

    let opened = d
        .decide_using(open("t1", "printer jam", "r-1"), strategy, context())
        .await
        .unwrap_or_else(|e| panic!("{strategy}: open t1: {e}"));
    assert!(!opened.replayed, "{strategy}");
    // The same key on another decision type is another request.
    let noted = d
        .decide_using(note("t1", "paper is in", "r-1"), strategy, context())
        .await
        .unwrap_or_else(|e| panic!("{strategy}: a note with another decision's key: {e}"));
    assert!(
        !noted.replayed,
        "{strategy}: another decision type's key is not this one's"
    );
    assert_eq!(
        noted.events,
        vec![desk::NoteAdded {
            ticket: "t1".into(),
            text: "paper is in".into()
        }],
        "{strategy}"
    );
    let before = log(&store).await;
    assert_eq!(before.len(), 2, "{strategy}: both committed");

    // The same key and type with other content: refused, nothing written.
    let reused = d
        .decide_using(note("t1", "it was the toner", "r-1"), strategy, context())
        .await;
    match &reused {
        Err(e) if is_reused(e, "AddNote", "r-1", &noted.positions) => {}
        other => panic!("{strategy}: a reused key with other content: {other:?}"),
    }
    let after = log(&store).await;
    assert_eq!(
        after.len(),
        before.len(),
        "{strategy}: a reused key appends nothing"
    );
    // The same content again: the first outcome, as always.
    let again = d
        .decide_using(note("t1", "paper is in", "r-1"), strategy, context())
        .await
        .unwrap_or_else(|e| panic!("{strategy}: the same note again: {e}"));
    assert!(again.replayed, "{strategy}");
    assert_eq!(
        (&again.events, &again.positions),
        (&noted.events, &noted.positions),
        "{strategy}: the first outcome is untouched"
    );
    let again = d
        .decide_using(open("t1", "printer jam", "r-1"), strategy, context())
        .await
        .unwrap_or_else(|e| panic!("{strategy}: the same opening again: {e}"));
    assert!(again.replayed, "{strategy}");
    assert_eq!(again.positions, opened.positions, "{strategy}");
    dispatcher.shutdown(Drain::Finish).await;
}

/// Tasks race one key with different contents: exactly one commits, every other one is
/// told its key was used with other content (among them those whose state then refuses
/// what the winner did). The strategies are mixed, so every path meets every other.
async fn racing_contents<S: EventStore + Clone + 'static>(store: S) {
    const TASKS: usize = 9;
    let dispatcher = Dispatcher::new(Engine::new(store.clone()));
    let barrier = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let (d, barrier) = (dispatcher.clone(), barrier.clone());
            let strategy = STRATEGIES[i % STRATEGIES.len()];
            tokio::spawn(async move {
                barrier.wait().await;
                let title = format!("title {i}");
                let answer = d
                    .decide_using(open("race", &title, "r-race"), strategy, Context::default())
                    .await;
                (strategy, title, answer)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("a racing task"));
    }
    let winners: Vec<_> = answers
        .iter()
        .filter_map(|(s, title, a)| a.as_ref().ok().map(|o| (s, title, o)))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one content commits: {answers:?}");
    let (_, title, outcome) = winners[0];
    assert!(!outcome.replayed, "the winner committed");
    for (strategy, _, answer) in &answers {
        if let Err(e) = answer {
            assert!(
                is_reused(e, "OpenTicket", "r-race", &outcome.positions),
                "{strategy}: a loser is told the key was reused: {e:?}"
            );
        }
    }
    let opened: Vec<desk::TicketOpened> = log(&store)
        .await
        .iter()
        .map(|e| desk::TicketOpened::from_stored(e).expect("an opening"))
        .collect();
    assert_eq!(
        opened,
        vec![desk::TicketOpened {
            ticket: "race".into(),
            title: title.clone()
        }],
        "the log holds the winner's event only"
    );
    dispatcher.shutdown(Drain::Finish).await;
}

/// A store whose next `misses` key look-ups find nothing, as when the first request
/// commits right after the second one looked its key up.
#[derive(Clone)]
struct LateKeys<S> {
    inner: S,
    misses: Arc<AtomicUsize>,
}

impl<S: EventStore> StoreLayer for LateKeys<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        &self.inner
    }

    async fn find_idempotency_keys(
        &self,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<Position>>>, StoreError> {
        let missed = self
            .misses
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if missed {
            return Ok(vec![None; keys.len()]);
        }
        self.inner.find_idempotency_keys(keys).await
    }
}

/// The second request's look-up missed the first commit, and its state then refused
/// what the first did: other content is told so, not given the refusal (nor the first
/// outcome); the same content gets the first outcome. Under `strategy`.
async fn refused_after_a_missed_look_up<S: EventStore + Clone + 'static>(
    store: S,
    strategy: Strategy,
) {
    let late = LateKeys {
        inner: store.clone(),
        misses: Arc::default(),
    };
    let dispatcher = Dispatcher::new(Engine::new(late.clone()));
    let first = dispatcher
        .decide_using(
            open("late", "first", "r-late"),
            strategy,
            Context::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{strategy}: the first opening: {e}"));

    late.misses.store(1, Ordering::SeqCst);
    let other = dispatcher
        .decide_using(
            open("late", "second", "r-late"),
            strategy,
            Context::default(),
        )
        .await;
    match &other {
        Err(e) if is_reused(e, "OpenTicket", "r-late", &first.positions) => {}
        other => panic!("{strategy}: other content after a missed look-up: {other:?}"),
    }
    late.misses.store(1, Ordering::SeqCst);
    let same = dispatcher
        .decide_using(
            open("late", "first", "r-late"),
            strategy,
            Context::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{strategy}: the same content after a missed look-up: {e}"));
    assert!(same.replayed, "{strategy}");
    assert_eq!(same.positions, first.positions, "{strategy}");
    assert_eq!(
        log(&store).await.len(),
        1,
        "{strategy}: one opening in the log"
    );
    dispatcher.shutdown(Drain::Finish).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_per_decision_and_content_on_the_memory_store() {
    for strategy in STRATEGIES {
        scoped_and_fingerprinted(MemoryStore::new(), strategy).await;
        refused_after_a_missed_look_up(MemoryStore::new(), strategy).await;
    }
    for _ in 0..5 {
        racing_contents(MemoryStore::new()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_per_decision_and_content_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (n, strategy) in STRATEGIES.into_iter().enumerate() {
        let store = factum_sqlite::open(dir.path().join(format!("keys-{n}.db")))
            .await
            .expect("open SQLite");
        scoped_and_fingerprinted(store, strategy).await;
        let store = factum_sqlite::open(dir.path().join(format!("late-{n}.db")))
            .await
            .expect("open SQLite");
        refused_after_a_missed_look_up(store, strategy).await;
    }
    for n in 0..5 {
        let store = factum_sqlite::open(dir.path().join(format!("race-{n}.db")))
            .await
            .expect("open SQLite");
        racing_contents(store).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_per_decision_and_content_on_postgres() {
    for strategy in STRATEGIES {
        let pg = crate::postgres::store("keys").await;
        scoped_and_fingerprinted(pg.clone(), strategy).await;
        pg.drop_schema().await.expect("drop the test schema");
        let pg = crate::postgres::store("keys_late").await;
        refused_after_a_missed_look_up(pg.clone(), strategy).await;
        pg.drop_schema().await.expect("drop the test schema");
    }
    for _ in 0..5 {
        let pg = crate::postgres::store("keys_race").await;
        racing_contents(pg.clone()).await;
        pg.drop_schema().await.expect("drop the test schema");
    }
}
