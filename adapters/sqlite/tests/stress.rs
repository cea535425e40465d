//! Stress: 8 tasks × 500 decisions contending on one course's capacity, through
//! `factum::Engine`, against a real SQLite file with full durability. Every acknowledged
//! decision's event is in the log, and the course is never overbooked.

use std::collections::HashSet;
use std::sync::Arc;

use factum::prelude::*;
use factum::{DecideError, Outcome};
use futures::TryStreamExt;
use tokio::sync::Barrier;

const TASKS: usize = 8;
const DECISIONS_PER_TASK: usize = 500;
/// Below the number of decisions, so some succeed and the rest find the course full.
const CAPACITY: u32 = 300;

/// The course domain's events.
#[factum::events]
mod events {
    #[group(Course)]
    pub struct CourseDefined {
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
}

/// A course: its seats and how many are taken.
#[derive(State, Clone, Debug, Default)]
struct Course {
    #[id]
    course: String,
    capacity: u32,
    subscribed: u32,
}

#[factum::fold]
impl Course {
    fn defined(&mut self, e: &events::CourseDefined) {
        self.capacity = e.capacity;
    }

    fn subscribed(&mut self, _: &events::StudentSubscribed) {
        self.subscribed += 1;
    }
}

/// Why a subscription was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
enum CourseError {
    CourseFull { capacity: u32 },
}

impl std::fmt::Display for CourseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CourseError::CourseFull { capacity } => write!(f, "the course is full ({capacity})"),
        }
    }
}

/// Retries: enough that a decision outlasts any run of lost races; short delays, since
/// the winner of each race commits within a disk sync.
#[derive(Decision, Clone, Debug)]
#[decision(partition = course, retries = 10000, min_delay_ms = 1, max_delay_ms = 2)]
struct Subscribe {
    course: String,
    student: String,
}

impl Decide for Subscribe {
    type State = Course;
    type Event = events::StudentSubscribed;
    type Error = CourseError;

    fn state(&self) -> Course {
        Course::new(&self.course)
    }

    fn decide(&self, course: &Course) -> Result<Vec<events::StudentSubscribed>, CourseError> {
        if course.subscribed >= course.capacity {
            return Err(CourseError::CourseFull {
                capacity: course.capacity,
            });
        }
        Ok(vec![events::StudentSubscribed {
            course: self.course.clone(),
            student: self.student.clone(),
        }])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contended_course_is_never_overbooked_and_every_ack_is_in_the_log() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = factum_sqlite::open(dir.path().join("courses.db"))
        .await
        .expect("a new store");
    let engine = Engine::new(store.clone());
    let defined = events::CourseDefined {
        course: "rust-101".into(),
        capacity: CAPACITY,
    };
    store
        .append(
            vec![NewEvent::encode(&defined, Codec::Json).expect("an encodable event")],
            None,
        )
        .await
        .expect("the course");

    let started = std::time::Instant::now();
    let barrier = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let engine = engine.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let mut outcomes = Vec::with_capacity(DECISIONS_PER_TASK);
                for n in 0..DECISIONS_PER_TASK {
                    let student = format!("s{task}-{n}");
                    let decision = Subscribe {
                        course: "rust-101".into(),
                        student: student.clone(),
                    };
                    outcomes.push((student, engine.decide(&decision).await));
                }
                outcomes
            })
        })
        .collect();

    let mut acknowledged: Vec<(String, Outcome<events::StudentSubscribed>)> = Vec::new();
    let mut full = 0usize;
    for task in tasks {
        for (student, outcome) in task.await.expect("a task") {
            match outcome {
                Ok(outcome) => acknowledged.push((student, outcome)),
                Err(DecideError::Domain(CourseError::CourseFull { capacity })) => {
                    assert_eq!(capacity, CAPACITY);
                    full += 1;
                }
                Err(other) => panic!("the decision for {student} failed: {other}"),
            }
        }
    }
    eprintln!(
        "{} decisions in {:?}: {} committed, {} full, {:?}",
        TASKS * DECISIONS_PER_TASK,
        started.elapsed(),
        acknowledged.len(),
        full,
        engine.stats()
    );

    // The log, as a fresh read sees it.
    let query = Query::item(QueryItem::of::<events::StudentSubscribed>());
    let subscribed: Vec<StoredEvent> = store
        .read(&query, ReadOptions::forward())
        .try_collect()
        .await
        .expect("a read of the subscriptions");
    let in_log: Vec<(Position, String)> = subscribed
        .iter()
        .map(|e| {
            let event: events::StudentSubscribed = e.decode().expect("a decodable event");
            (e.position, event.student)
        })
        .collect();

    assert_eq!(
        in_log.len(),
        acknowledged.len(),
        "the log holds exactly one subscription per acknowledged decision"
    );
    assert!(
        in_log.len() <= CAPACITY as usize,
        "overbooked: {} subscriptions for {CAPACITY} seats",
        in_log.len()
    );
    if full > 0 {
        assert_eq!(
            in_log.len(),
            CAPACITY as usize,
            "a decision was told the course is full, so every seat is taken"
        );
    }
    assert_eq!(
        acknowledged.len() + full,
        TASKS * DECISIONS_PER_TASK,
        "every decision was answered"
    );
    let students: HashSet<&str> = in_log.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(students.len(), in_log.len(), "no student subscribed twice");
    for (student, outcome) in &acknowledged {
        assert_eq!(outcome.positions.len(), 1, "one event per subscription");
        let position = outcome.positions[0];
        let Ok(found) = in_log.binary_search_by_key(&position, |(p, _)| *p) else {
            panic!("{student}'s acknowledged subscription at {position} is not in the log");
        };
        assert_eq!(
            &in_log[found].1, student,
            "the event at {position} is another student's"
        );
    }
}
