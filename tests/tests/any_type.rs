//! A state over every event carrying its id tags, whatever the type (`#[any]`): types of
//! other modules and types no code here declares reach it, and any of them appended
//! concurrently invalidates a decision on it, on the memory store and on SQLite.

use factum::DecideError;
use factum::StateId;
use factum::catalog::{Catalog, Warning};
use factum::decide::Member;
use factum::prelude::*;
use factum_tests::races::{AllReadFirst, interfering};

#[factum::events]
pub mod courses {
    pub struct CourseDefined {
        #[tag]
        pub course: String,
        pub capacity: u32,
    }

    pub struct StudentSubscribed {
        #[tag]
        pub course: String,
        #[tag]
        pub student: String,
    }

    /// Not about a course at all.
    pub struct StudentRegistered {
        #[tag]
        pub student: String,
    }
}

/// Another module: the course state has no handler for its types.
#[factum::events]
pub mod billing {
    pub struct InvoiceSent {
        #[tag]
        pub course: String,
        pub amount: u64,
    }
}

/// Everything that happened to one course: its typed events, and every other event
/// tagged with it.
#[derive(State, Debug, Default)]
pub struct CourseLog {
    #[id]
    pub course: String,
    pub capacity: u32,
    pub students: Vec<String>,
    /// The types the `#[any]` handler got, in order.
    pub other: Vec<String>,
    /// Decoded from `billing::InvoiceSent` inside the `#[any]` handler.
    pub invoices: u32,
    pub billed: u64,
    /// Read as raw JSON from events of a type no code here declares.
    pub notes: Vec<String>,
    /// Every position it folded, to tell which events reached it.
    pub seen: Vec<Position>,
}

#[factum::fold]
impl CourseLog {
    fn defined(&mut self, e: &courses::CourseDefined, stored: &StoredEvent) {
        self.seen.push(stored.position);
        self.capacity = e.capacity;
    }

    fn subscribed(&mut self, e: &courses::StudentSubscribed, stored: &StoredEvent) {
        self.seen.push(stored.position);
        self.students.push(e.student.clone());
    }

    #[any]
    fn other(&mut self, stored: &StoredEvent) {
        self.seen.push(stored.position);
        self.other.push(stored.event_type.clone());
        if stored.event_type == <billing::InvoiceSent as factum::Event>::TYPE {
            if let Ok(invoice) = stored.decode::<billing::InvoiceSent>() {
                self.invoices += 1;
                self.billed += invoice.amount;
            }
        } else if let Ok(json) = stored.payload.decode_value()
            && let Some(note) = json.get("note").and_then(|n| n.as_str())
        {
            self.notes.push(note.to_owned());
        }
    }
}

/// A course that was billed takes no more students.
#[derive(Decision, Clone)]
pub struct Subscribe {
    pub course: String,
    pub student: String,
}

impl Decide for Subscribe {
    type State = CourseLog;
    type Event = courses::Event;
    type Error = String;
    fn state(&self) -> CourseLog {
        CourseLog::new(&self.course)
    }
    fn decide(&self, log: &CourseLog) -> Result<Vec<courses::Event>, String> {
        if log.invoices > 0 {
            return Err(format!("{} is billed", self.course));
        }
        if log.students.len() as u32 >= log.capacity {
            return Err(format!("{} is full", self.course));
        }
        Ok(vec![
            courses::StudentSubscribed {
                course: self.course.clone(),
                student: self.student.clone(),
            }
            .into(),
        ])
    }
}

/// [`Subscribe`] without retries: a conflict is its answer.
#[derive(Decision)]
#[decision(retries = 0)]
pub struct SubscribeOnce {
    pub course: String,
    pub student: String,
}

impl Decide for SubscribeOnce {
    type State = CourseLog;
    type Event = courses::Event;
    type Error = String;
    fn state(&self) -> CourseLog {
        CourseLog::new(&self.course)
    }
    fn decide(&self, log: &CourseLog) -> Result<Vec<courses::Event>, String> {
        subscribe(&self.course, &self.student).decide(log)
    }
}

/// Bills a course once, for the students it has.
#[derive(Decision, Clone)]
pub struct Bill {
    pub course: String,
}

impl Decide for Bill {
    type State = CourseLog;
    type Event = billing::Event;
    type Error = String;
    fn state(&self) -> CourseLog {
        CourseLog::new(&self.course)
    }
    fn decide(&self, log: &CourseLog) -> Result<Vec<billing::Event>, String> {
        if log.invoices > 0 {
            return Err(format!("{} is already billed", self.course));
        }
        Ok(vec![
            billing::InvoiceSent {
                course: self.course.clone(),
                amount: 100 * log.students.len() as u64,
            }
            .into(),
        ])
    }
}

fn encode<E: factum::Event>(event: E) -> NewEvent {
    NewEvent::encode(&event, Codec::Json).unwrap()
}

fn defined(course: &str, capacity: u32) -> NewEvent {
    encode(courses::CourseDefined {
        course: course.into(),
        capacity,
    })
}

fn subscribed(course: &str, student: &str) -> NewEvent {
    encode(courses::StudentSubscribed {
        course: course.into(),
        student: student.into(),
    })
}

/// An event of a type no code here declares (another service's, or a retired one).
fn legacy_note(tags: Vec<Tag>, note: &str) -> NewEvent {
    NewEvent {
        event_type: "LegacyNote".into(),
        version: 1,
        tags,
        payload: Codec::Json
            .encode("LegacyNote", &serde_json::json!({ "note": note }))
            .unwrap(),
        metadata: Default::default(),
        recorded_at: None,
    }
}

fn subscribe(course: &str, student: &str) -> Subscribe {
    Subscribe {
        course: course.into(),
        student: student.into(),
    }
}

#[test]
fn its_query_names_no_type_and_is_restricted_to_its_ids() {
    const { assert!(<CourseLog as State>::ANY_TYPE) };
    assert_eq!(
        <CourseLog as State>::TYPES,
        ["CourseDefined", "StudentSubscribed"]
    );
    assert_eq!(CourseLog::ID_KEYS, ["course"]);
    let log = CourseLog::new("c1");
    assert_eq!(State::query(&log).to_string(), "*[course:c1]");
    assert!(State::query(&log).matches("AnythingAtAll", &[Tag::new("course", "c1")]));
    assert!(!State::query(&log).matches("CourseDefined", &[Tag::new("course", "c2")]));

    // The `#[any]` handler reads the stored event, so a serial lane must treat every type
    // it takes as holding provisional positions; the typed handlers here read it too.
    for t in [
        "LegacyNote",
        "InvoiceSent",
        "CourseDefined",
        "StudentSubscribed",
    ] {
        assert!(Member::reads_stored(&log, t), "{t}");
    }
}

async fn folds_every_type_with_its_tag(engine: Engine<impl EventStore + Clone + 'static>) {
    let c1 = || vec![Tag::new("course", "c1")];
    let events = vec![
        defined("c1", 2),        // 1
        defined("c2", 9),        // 2: another course
        subscribed("c1", "ada"), // 3
        encode(billing::InvoiceSent {
            course: "c2".into(),
            amount: 7,
        }), // 4: another course
        legacy_note(c1(), "moved to room 4"), // 5: a type no code declares
        encode(courses::StudentRegistered {
            student: "ada".into(),
        }), // 6: no course tag
        legacy_note(vec![Tag::new("course", "c2")], "not c1"), // 7
        legacy_note(vec![Tag::new("student", "ada")], "no course"), // 8
    ];
    engine.store().append(events, None).await.unwrap();

    let (log, _) = engine.load(CourseLog::new("c1")).await.unwrap();
    assert_eq!(log.seen, [Position(1), Position(3), Position(5)]);
    assert_eq!(
        (log.capacity, log.students.as_slice()),
        (2, &["ada".to_owned()][..])
    );
    assert_eq!(log.other, ["LegacyNote"]);
    assert_eq!(log.notes, ["moved to room 4"]);

    // A decision on it, then an event of another module, decoded in the `#[any]` handler.
    let outcome = engine.decide(&subscribe("c1", "bob")).await.unwrap();
    assert_eq!(
        (outcome.positions.as_slice(), outcome.attempts),
        (&[Position(9)][..], 1)
    );
    let billed = engine
        .decide(&Bill {
            course: "c1".into(),
        })
        .await
        .unwrap();
    assert_eq!(billed.positions, [Position(10)]);
    let (log, _) = engine.load(CourseLog::new("c1")).await.unwrap();
    assert_eq!(log.billed, 200);
    assert_eq!(log.other, ["LegacyNote", "InvoiceSent"]);
    assert_eq!(
        log.seen,
        [
            Position(1),
            Position(3),
            Position(5),
            Position(9),
            Position(10)
        ]
    );
    let late = engine.decide(&subscribe("c1", "cy")).await.unwrap_err();
    assert_eq!(late.to_string(), "c1 is billed");

    let (c2, _) = engine.load(CourseLog::new("c2")).await.unwrap();
    assert_eq!(c2.seen, [Position(2), Position(4), Position(7)]);
    assert_eq!(
        (c2.billed, c2.notes.as_slice()),
        (7, &["not c1".to_owned()][..])
    );
}

#[tokio::test]
async fn it_folds_every_type_carrying_its_tag_and_ignores_the_rest() {
    folds_every_type_with_its_tag(Engine::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn it_folds_every_type_carrying_its_tag_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = factum_sqlite::open(dir.path().join("any.db"))
        .await
        .unwrap();
    folds_every_type_with_its_tag(Engine::new(store)).await;
}

/// A decision on the log, while an event of a type nothing here declares is appended
/// between its read and its append: with its course's tag the append conflicts and the
/// retry decides on it; with another course's tag the first attempt commits.
async fn an_unknown_type_with_the_tag_invalidates(
    store: impl EventStore + Clone + 'static,
    other: impl EventStore + Clone + 'static,
) {
    let engine = Engine::new(interfering(store, 1, || {
        legacy_note(vec![Tag::new("course", "c1")], "room changed")
    }));
    engine
        .store()
        .inner
        .append(vec![defined("c1", 5)], None)
        .await
        .unwrap();
    let outcome = engine.decide(&subscribe("c1", "ada")).await.unwrap();
    assert_eq!(outcome.attempts, 2, "the note is in the log's query");
    assert_eq!(outcome.positions, [Position(3)]);
    assert_eq!(engine.stats().conflicts, 1);
    let (log, _) = engine.load(CourseLog::new("c1")).await.unwrap();
    assert_eq!(log.notes, ["room changed"]);
    assert_eq!(log.seen, [Position(1), Position(2), Position(3)]);

    // The same interleaving without retries is a conflict, nothing appended.
    let engine = Engine::new(interfering(other, 1, || {
        legacy_note(vec![Tag::new("course", "c1")], "again")
    }));
    engine
        .store()
        .inner
        .append(vec![defined("c1", 5)], None)
        .await
        .unwrap();
    let once = SubscribeOnce {
        course: "c1".into(),
        student: "ada".into(),
    };
    let err = engine.decide(&once).await.unwrap_err();
    assert!(matches!(err, DecideError::Conflict { .. }), "{err:?}");
    assert_eq!(
        engine.store().inner.head().await.unwrap(),
        Some(Position(2))
    );

    // Another course's note does not touch c1's query.
    let store = engine.store().inner.clone();
    let engine = Engine::new(interfering(store, 1, || {
        legacy_note(vec![Tag::new("course", "c2")], "elsewhere")
    }));
    let outcome = engine.decide(&subscribe("c1", "ada")).await.unwrap();
    assert_eq!(
        (outcome.attempts, outcome.positions.as_slice()),
        (1, &[Position(4)][..])
    );
}

#[tokio::test]
async fn an_unknown_type_appended_concurrently_invalidates_the_decision() {
    an_unknown_type_with_the_tag_invalidates(MemoryStore::new(), MemoryStore::new()).await;
}

#[tokio::test]
async fn an_unknown_type_appended_concurrently_invalidates_the_decision_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let one = factum_sqlite::open(dir.path().join("one.db"))
        .await
        .unwrap();
    let two = factum_sqlite::open(dir.path().join("two.db"))
        .await
        .unwrap();
    an_unknown_type_with_the_tag_invalidates(one, two).await;
}

/// Two decisions of different event sets on one course, as real tasks, both reading
/// before either appends: the invoice (a type the log folds only through `#[any]`) and
/// the subscription invalidate each other, so exactly one commits on its first attempt
/// and the other decides again on what the first wrote — never a subscription after
/// the bill.
async fn two_writers_of_different_types_meet_in_the_log(store: impl EventStore + Clone + 'static) {
    store.append(vec![defined("c1", 5)], None).await.unwrap();
    let engine = Engine::new(AllReadFirst::new(store, 2));
    let (e1, e2) = (engine.clone(), engine.clone());
    let subscribing = tokio::spawn(async move { e1.decide(&subscribe("c1", "ada")).await });
    let billing = tokio::spawn(async move {
        e2.decide(&Bill {
            course: "c1".into(),
        })
        .await
    });
    let subscribed = subscribing.await.unwrap();
    let billed = billing.await.unwrap().expect("the bill commits either way");
    assert_eq!(engine.stats().conflicts, 1, "the two meet in CourseLog");
    let (log, _) = engine.load(CourseLog::new("c1")).await.unwrap();
    match subscribed {
        // The subscription first: the bill retried and counted the student.
        Ok(s) => {
            assert_eq!((s.attempts, billed.attempts), (1, 2));
            assert_eq!((log.students.len(), log.invoices, log.billed), (1, 1, 100));
        }
        // The bill first: the subscription retried and saw the course billed.
        Err(e) => {
            assert_eq!(e.to_string(), "c1 is billed");
            assert_eq!(billed.attempts, 1);
            assert_eq!((log.students.len(), log.invoices, log.billed), (0, 1, 0));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_of_different_types_conflict_through_the_log() {
    two_writers_of_different_types_meet_in_the_log(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_of_different_types_conflict_through_the_log_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = factum_sqlite::open(dir.path().join("race.db"))
        .await
        .unwrap();
    two_writers_of_different_types_meet_in_the_log(store).await;
}

#[test]
fn the_catalog_and_the_analysis_see_every_type_with_its_tags() {
    let catalog = Catalog::new()
        .events::<courses::Event>()
        .events::<billing::Event>()
        .decision::<Subscribe>()
        .decision::<Bill>();
    let state = catalog.state_info("CourseLog").unwrap();
    assert!(state.any_type);
    assert_eq!(state.types, ["CourseDefined", "StudentSubscribed"]);

    let analysis = catalog.analyze();
    let pairs: Vec<(&str, &str, Vec<&str>)> = analysis
        .conflicts
        .iter()
        .map(|c| (c.writer, c.reader, c.types.clone()))
        .collect();
    // `Bill` emits a type no typed handler takes; `Subscribe` reads it through `#[any]`.
    // `Subscribe` may emit any type of `courses`, but `StudentRegistered` carries no
    // course tag, so it meets no log.
    assert_eq!(
        pairs,
        [
            ("Bill", "Bill", vec!["InvoiceSent"]),
            ("Bill", "Subscribe", vec!["InvoiceSent"]),
            (
                "Subscribe",
                "Bill",
                vec!["CourseDefined", "StudentSubscribed"]
            ),
            (
                "Subscribe",
                "Subscribe",
                vec!["CourseDefined", "StudentSubscribed"]
            ),
        ]
    );
    assert!(
        !analysis
            .warnings
            .iter()
            .any(|w| matches!(w, Warning::PartitionNotValidated { .. })),
        "{:?}",
        analysis.warnings
    );
    let described = catalog.describe();
    assert!(
        described.contains("CourseDefined, StudentSubscribed, any other type"),
        "{described}"
    );
    // `Bill` validates, through the log, the invoice type it has no handler for, and not
    // the type without the course tag (nodes are numbered by name: e1 `InvoiceSent`,
    // e2 `StudentRegistered`).
    let mermaid = catalog.mermaid();
    assert!(mermaid.contains("d0 -.-> e1"), "{mermaid}");
    assert!(!mermaid.contains("d0 -.-> e2"), "{mermaid}");
}

/// [`Bill`] partitioned by course: decided in a serial lane, which keeps the log warm.
#[derive(Decision, Clone)]
#[decision(partition = course)]
pub struct BillInLane {
    pub course: String,
}

impl Decide for BillInLane {
    type State = CourseLog;
    type Event = billing::Event;
    type Error = String;
    fn state(&self) -> CourseLog {
        CourseLog::new(&self.course)
    }
    fn decide(&self, log: &CourseLog) -> Result<Vec<billing::Event>, String> {
        Bill {
            course: self.course.clone(),
        }
        .decide(log)
    }
}

/// Five bills of one course at once in its lane: the lane folds each decision's invoice
/// (a type only the `#[any]` handler takes) before deciding the next, so one commits and
/// four see the course billed, without a conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serial_lane_folds_the_types_only_the_any_handler_takes() {
    use factum::lanes::{Dispatcher, Drain, Strategy};

    let store = MemoryStore::new();
    store.append(vec![defined("c1", 5)], None).await.unwrap();
    let dispatcher = Dispatcher::new(Engine::new(store));
    assert_eq!(
        dispatcher.strategy_for::<BillInLane>(),
        Strategy::SerialLanes
    );
    let bills: Vec<_> = (0..5)
        .map(|_| {
            let dispatcher = dispatcher.clone();
            tokio::spawn(async move {
                dispatcher
                    .decide(BillInLane {
                        course: "c1".into(),
                    })
                    .await
            })
        })
        .collect();
    let mut committed = 0;
    for bill in bills {
        match bill.await.unwrap() {
            Ok(_) => committed += 1,
            Err(e) => assert_eq!(e.to_string(), "c1 is already billed"),
        }
    }
    assert_eq!(committed, 1);
    assert_eq!(dispatcher.engine().stats().conflicts, 0);
    let (log, _) = dispatcher
        .engine()
        .load(CourseLog::new("c1"))
        .await
        .unwrap();
    assert_eq!(
        (log.invoices, log.seen.as_slice()),
        (1, &[Position(1), Position(2)][..])
    );
    dispatcher.shutdown(Drain::Finish).await;
}
