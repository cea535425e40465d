//! Many decisions racing for the seats of one course, through the engine, against the
//! real store: never more subscriptions than seats, and every committed decision's event
//! is in the log.

#![allow(missing_docs)]

mod common;

use std::collections::HashMap;

use factum::prelude::*;
use factum::{DecideError, Position};

const TASKS: usize = 8;
const DECISIONS_PER_TASK: usize = 500;
/// Seats: below the 4000 decisions, so that the course fills up under contention and the
/// rest are told it is full (kept moderate: every decision reads all subscriptions).
const CAPACITY: u32 = 600;

#[factum::events]
pub mod courses {
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

#[derive(Debug, PartialEq, Eq)]
pub enum CourseError {
    CourseFull,
}

impl std::fmt::Display for CourseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the course is full")
    }
}

#[derive(State, Clone, Debug, Default)]
pub struct Course {
    #[id]
    pub course: String,
    pub capacity: u32,
    pub subscribed: u32,
}

#[factum::fold]
impl Course {
    fn defined(&mut self, e: &courses::CourseDefined) {
        self.capacity = e.capacity;
    }

    fn subscribed(&mut self, _: &courses::StudentSubscribed) {
        self.subscribed += 1;
    }
}

#[derive(Decision, Clone, Debug)]
#[decision(partition = course, retries = 10000, min_delay_ms = 1, max_delay_ms = 20)]
pub struct Subscribe {
    pub course: String,
    pub student: String,
}

impl Decide for Subscribe {
    type State = Course;
    type Event = courses::StudentSubscribed;
    type Error = CourseError;

    fn state(&self) -> Course {
        Course::new(&self.course)
    }

    fn decide(&self, course: &Course) -> Result<Vec<courses::StudentSubscribed>, CourseError> {
        if course.subscribed >= course.capacity {
            return Err(CourseError::CourseFull);
        }
        Ok(vec![courses::StudentSubscribed {
            course: self.course.clone(),
            student: self.student.clone(),
        }])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_subscriptions_never_overbook_one_course() {
    let (store, _guard) = common::store("stress").await;
    let engine = Engine::new(store.clone());
    let defined = courses::CourseDefined {
        course: "rust".into(),
        capacity: CAPACITY,
    };
    let encoded =
        NewEvent::encode(&defined, Codec::Json).unwrap_or_else(|e| panic!("encoding failed: {e}"));
    store
        .append(vec![encoded], None)
        .await
        .unwrap_or_else(|e| panic!("defining the course failed: {e}"));

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let mut committed: Vec<(String, Vec<Position>)> = Vec::new();
            let mut full = 0usize;
            for d in 0..DECISIONS_PER_TASK {
                let student = format!("s{t}-{d}");
                let decision = Subscribe {
                    course: "rust".into(),
                    student: student.clone(),
                };
                match engine.decide(&decision).await {
                    Ok(outcome) => committed.push((student, outcome.positions)),
                    Err(DecideError::Domain(CourseError::CourseFull)) => full += 1,
                    Err(e) => panic!("task {t}, decision {d} failed: {e}"),
                }
            }
            (committed, full)
        }));
    }
    let mut committed = Vec::new();
    let mut full = 0;
    for task in tasks {
        let (c, f) = task.await.unwrap_or_else(|e| panic!("a task failed: {e}"));
        committed.extend(c);
        full += f;
    }

    let log = common::read_all(&store).await;
    let subscriptions: HashMap<Position, String> = log
        .iter()
        .filter(|e| e.event_type == "StudentSubscribed")
        .map(|e| {
            let student = e
                .tags
                .iter()
                .find(|t| t.key == "student")
                .map(|t| t.value.clone())
                .unwrap_or_else(|| panic!("a subscription at {} has no student", e.position));
            (e.position, student)
        })
        .collect();
    assert_eq!(
        subscriptions.len(),
        committed.len(),
        "one subscription in the log per committed decision"
    );
    for (student, positions) in &committed {
        assert_eq!(positions.len(), 1, "one event per decision");
        assert_eq!(
            subscriptions.get(&positions[0]),
            Some(student),
            "the log holds {student}'s subscription at {}",
            positions[0]
        );
    }
    assert!(
        committed.len() <= CAPACITY as usize,
        "{} subscriptions for {CAPACITY} seats",
        committed.len()
    );
    assert_eq!(committed.len() + full, TASKS * DECISIONS_PER_TASK);
    if full > 0 {
        assert_eq!(
            committed.len(),
            CAPACITY as usize,
            "decisions were told the course is full, but seats are left"
        );
    }
    eprintln!(
        "{} committed, {full} full, {} conflicts retried",
        committed.len(),
        engine.stats().conflicts
    );
}
