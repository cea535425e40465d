//! A state over a whole event set: the event-sourced aggregate, which folds every event
//! of its group (whatever the type) carrying its id tag, in one handler with a `match`.

use factum::prelude::*;
use factum::{DecideError, StateId};

#[factum::events]
pub mod courses {
    #[group(Course)]
    pub struct CourseDefined {
        #[tag]
        pub course: String,
        pub capacity: u32,
    }

    #[group(Course)]
    pub struct CapacityChanged {
        #[tag]
        pub course: String,
        pub capacity: u32,
    }

    #[group(Course)]
    pub struct StudentSubscribed {
        #[tag]
        pub course: String,
        #[tag]
        pub student: String,
    }

    /// Carries the tag, but outside the group: folded by its own handler.
    pub struct CourseArchived {
        #[tag]
        pub course: String,
    }

    /// Not about a course at all.
    pub struct StudentRegistered {
        #[tag]
        pub student: String,
    }
}

use courses::CourseEvent;

#[derive(State, Debug, Default)]
pub struct Course {
    #[id]
    pub course: String,
    pub capacity: u32,
    pub students: Vec<String>,
    pub archived: bool,
    /// The positions it folded, to tell which events reached it.
    pub seen: Vec<Position>,
}

#[factum::fold]
impl Course {
    fn apply(&mut self, event: &CourseEvent, stored: &StoredEvent) {
        self.seen.push(stored.position);
        match event {
            CourseEvent::CourseDefined(e) => self.capacity = e.capacity,
            CourseEvent::CapacityChanged(e) => self.capacity = e.capacity,
            CourseEvent::StudentSubscribed(e) => self.students.push(e.student.clone()),
        }
    }

    fn archived(&mut self, _: &courses::CourseArchived) {
        self.archived = true;
    }
}

#[derive(Decision)]
pub struct Subscribe {
    pub course: String,
    pub student: String,
}

impl Decide for Subscribe {
    type State = Course;
    type Event = CourseEvent;
    type Error = String;
    fn state(&self) -> Course {
        Course::new(&self.course)
    }
    fn decide(&self, course: &Course) -> Result<Vec<CourseEvent>, String> {
        if course.archived {
            return Err(format!("{} is archived", self.course));
        }
        if course.students.len() as u32 >= course.capacity {
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

fn encode<E: factum::Event>(event: E) -> NewEvent {
    NewEvent::encode(&event, Codec::Json).unwrap()
}

fn defined(course: &str, capacity: u32) -> NewEvent {
    encode(courses::CourseDefined {
        course: course.into(),
        capacity,
    })
}

fn subscribe(course: &str, student: &str) -> Subscribe {
    Subscribe {
        course: course.into(),
        student: student.into(),
    }
}

#[test]
fn the_state_queries_every_type_of_the_set_and_its_own_handlers() {
    assert_eq!(
        <Course as State>::TYPES,
        &[
            "CourseDefined",
            "CapacityChanged",
            "StudentSubscribed",
            "CourseArchived"
        ]
    );
    // Only the set's handler reads the stored event.
    assert_eq!(
        <Course as State>::READS_STORED,
        <CourseEvent as EventSet>::TYPES
    );
    assert_eq!(Course::ID_KEYS, &["course"]);
    assert_eq!(
        State::query(&Course::new("c1")).to_string(),
        "CourseDefined,CapacityChanged,StudentSubscribed,CourseArchived[course:c1]"
    );
}

#[tokio::test]
async fn it_folds_every_event_of_the_set_with_its_tag_and_ignores_the_rest() {
    let engine = Engine::new(MemoryStore::new());
    let events = vec![
        defined("c1", 1), // 1
        defined("c2", 9), // 2: another course
        encode(courses::StudentRegistered {
            student: "ada".into(),
        }), // 3: no course tag
        encode(courses::CapacityChanged {
            course: "c1".into(),
            capacity: 2,
        }), // 4
        encode(courses::StudentSubscribed {
            course: "c1".into(),
            student: "ada".into(),
        }), // 5
        encode(courses::StudentSubscribed {
            course: "c2".into(),
            student: "bob".into(),
        }), // 6
    ];
    engine.store().append(events, None).await.unwrap();

    let (c1, _) = engine.load(Course::new("c1")).await.unwrap();
    assert_eq!(c1.seen, [Position(1), Position(4), Position(5)]);
    assert_eq!(
        (c1.capacity, c1.students.as_slice()),
        (2, &["ada".to_owned()][..])
    );
    assert!(!c1.archived);
    let (c2, _) = engine.load(Course::new("c2")).await.unwrap();
    assert_eq!(c2.seen, [Position(2), Position(6)]);

    // A decision on the aggregate: one seat left in c1, then none.
    let outcome = engine.decide(&subscribe("c1", "cy")).await.unwrap();
    assert_eq!(outcome.positions, [Position(7)]);
    let full = engine.decide(&subscribe("c1", "dee")).await.unwrap_err();
    assert!(
        matches!(full, DecideError::Domain(ref e) if e == "c1 is full"),
        "{full}"
    );

    // The type folded by its own handler reaches the same state.
    engine
        .store()
        .append(
            vec![encode(courses::CourseArchived {
                course: "c2".into(),
            })],
            None,
        )
        .await
        .unwrap();
    let archived = engine.decide(&subscribe("c2", "eve")).await.unwrap_err();
    assert_eq!(archived.to_string(), "c2 is archived");
}

#[tokio::test]
async fn a_new_event_of_any_type_in_the_set_invalidates_a_decision_on_the_aggregate() {
    let store = MemoryStore::new();
    store.append(vec![defined("c1", 1)], None).await.unwrap();
    // Read as a decision would, then another type of the set commits in between.
    let state = Course::new("c1");
    let query = State::query(&state);
    let read_at = Position(1);
    store
        .append(
            vec![encode(courses::CapacityChanged {
                course: "c1".into(),
                capacity: 0,
            })],
            None,
        )
        .await
        .unwrap();
    let late = store
        .append(
            vec![encode(courses::StudentSubscribed {
                course: "c1".into(),
                student: "ada".into(),
            })],
            Some(factum::AppendCondition::new(query, Some(read_at))),
        )
        .await;
    assert!(
        late.is_err(),
        "the capacity change is in the aggregate's query: {late:?}"
    );
}

#[tokio::test]
async fn the_aggregate_decides_the_same_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = factum_sqlite::open(dir.path().join("courses.db"))
        .await
        .unwrap();
    let engine = Engine::new(store);
    let events = vec![
        defined("c1", 2),
        defined("c2", 1),
        encode(courses::CapacityChanged {
            course: "c1".into(),
            capacity: 1,
        }),
    ];
    engine.store().append(events, None).await.unwrap();

    engine.decide(&subscribe("c1", "ada")).await.unwrap();
    let full = engine.decide(&subscribe("c1", "bob")).await.unwrap_err();
    assert_eq!(full.to_string(), "c1 is full");
    let (c1, _) = engine.load(Course::new("c1")).await.unwrap();
    assert_eq!(c1.seen, [Position(1), Position(3), Position(4)]);
    assert_eq!(c1.students, ["ada"]);
}
