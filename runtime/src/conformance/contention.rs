//! The contention case: many decisions racing for the seats of one course, through the
//! [`Engine`], against the store under test.
//!
//! Its small course domain implements factum's traits by hand rather than through the
//! macros: the macros register what they derive in the application's catalog, and this
//! domain belongs to no application.

use std::collections::HashSet;
use std::sync::Arc;

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Barrier;

use super::support::{AbortOnDrop, named};
use crate::catalog::EventInfo;
use crate::decide::{
    Decide, DecideError, Decision, DecisionMeta, Engine, Exclusions, Outcome, RetryPolicy, State,
    StateId,
};
use crate::model::{
    Codec, DecodeError, DecodeReason, EncodeError, Event, EventSet, NewEvent, Position, Query,
    QueryItem, StoredEvent, Tag,
};
use crate::store::{EventStore, ReadOptions};

const COURSE: &str = "rust-101";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct CourseDefined {
    course: String,
    capacity: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct StudentSubscribed {
    course: String,
    student: String,
}

/// `Event` and `EventSet` for one struct, as `#[factum::events]` would derive them.
macro_rules! event {
    ($ty:ident, $name:literal, [$($key:literal => $field:ident),*]) => {
        impl Event for $ty {
            const TYPE: &'static str = $name;
            const VERSION: u32 = 1;
            const TAG_KEYS: &'static [&'static str] = &[$($key),*];
        }

        impl EventSet for $ty {
            const TYPES: &'static [&'static str] = &[$name];

            fn event_type(&self) -> &'static str {
                $name
            }

            fn tags(&self) -> Vec<Tag> {
                vec![$(Tag::new($key, self.$field.clone())),*]
            }

            fn to_new_event(&self, codec: Codec) -> Result<NewEvent, EncodeError> {
                NewEvent::encode(self, codec)
            }

            fn from_stored(event: &StoredEvent) -> Result<Self, DecodeError> {
                event.decode()
            }

            fn infos() -> Vec<EventInfo> {
                vec![EventInfo {
                    name: $name,
                    version: 1,
                    tag_keys: &[$($key),*],
                    groups: &[],
                    public: false,
                    module: module_path!(),
                }]
            }
        }
    };
}

event!(CourseDefined, "conformance.CourseDefined", ["course" => course]);
event!(StudentSubscribed, "conformance.StudentSubscribed", ["course" => course, "student" => student]);

/// A course: its seats and how many are taken.
#[derive(Debug, Default)]
struct Course {
    course: String,
    capacity: u32,
    subscribed: u32,
}

impl StateId for Course {
    const NAME: &'static str = "conformance.Course";
    const ID_KEYS: &'static [&'static str] = &["course"];

    fn ids(&self) -> Vec<Tag> {
        vec![Tag::new("course", self.course.clone())]
    }

    fn has_ids(&self, tags: &[Tag]) -> bool {
        tags.iter().any(|t| t.is("course", &self.course))
    }
}

impl State for Course {
    const TYPES: &'static [&'static str] = &[CourseDefined::TYPE, StudentSubscribed::TYPE];

    fn apply(&mut self, event: &StoredEvent) -> Result<(), DecodeError> {
        match event.event_type.as_str() {
            CourseDefined::TYPE => self.capacity = event.decode::<CourseDefined>()?.capacity,
            StudentSubscribed::TYPE => {
                event.decode::<StudentSubscribed>()?;
                self.subscribed += 1;
            }
            _ => {
                return Err(event.error(DecodeReason::UnknownType {
                    expected: Self::TYPES.to_vec(),
                }));
            }
        }
        Ok(())
    }
}

/// The course is full.
#[derive(Debug, PartialEq, Eq)]
struct CourseFull;

impl std::fmt::Display for CourseFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the course is full")
    }
}

struct Subscribe {
    student: String,
}

impl Decision for Subscribe {
    const META: DecisionMeta = DecisionMeta {
        name: "conformance.Subscribe",
        partition: Some("course"),
        partition_tag: None,
        idempotency: None,
        exclude: Exclusions::NONE,
        emits: None,
        // Enough retries to outlast any run of lost races; short delays, as the winner
        // of each race commits within one round trip or disk sync.
        retry: RetryPolicy {
            max_retries: 100_000,
            min_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(2),
        },
    };

    fn partition_key(&self) -> Option<String> {
        Some(COURSE.to_owned())
    }

    fn idempotency_key(&self) -> Option<String> {
        None
    }
}

impl Decide for Subscribe {
    type State = Course;
    type Event = StudentSubscribed;
    type Error = CourseFull;

    fn state(&self) -> Course {
        Course {
            course: COURSE.to_owned(),
            ..Course::default()
        }
    }

    fn decide(&self, course: &Course) -> Result<Vec<StudentSubscribed>, CourseFull> {
        if course.subscribed >= course.capacity {
            return Err(CourseFull);
        }
        Ok(vec![StudentSubscribed {
            course: COURSE.to_owned(),
            student: self.student.clone(),
        }])
    }
}

/// How hard [`contended_decisions_with`] pushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Contention {
    /// Concurrent tasks, each deciding one subscription after another.
    pub tasks: usize,
    /// Decisions per task.
    pub decisions_per_task: usize,
    /// The course's seats; below `tasks × decisions_per_task`, so the course fills up
    /// under contention and the rest are told it is full.
    pub capacity: u32,
}

impl Default for Contention {
    /// 8 tasks × 500 decisions for 300 seats. Every decision folds every subscription,
    /// so the seats are kept moderate for debug builds.
    fn default() -> Self {
        Contention {
            tasks: 8,
            decisions_per_task: 500,
            capacity: 300,
        }
    }
}

/// [`contended_decisions_with`] at the default sizes.
pub async fn contended_decisions<S: EventStore + Clone + 'static>(store: S) {
    contended_decisions_with(store, Contention::default()).await;
}

/// Many decisions contend for the seats of one course through the engine, each retrying
/// on conflict: every decision is answered (committed, or told the course is full), the
/// log holds exactly one subscription per acknowledged decision, at the position the
/// decision was given, never more than the seats, and every seat once any decision was
/// told the course is full.
pub async fn contended_decisions_with<S: EventStore + Clone + 'static>(
    store: S,
    sizes: Contention,
) {
    named("contended_decisions", async move {
        let engine = Engine::new(store.clone());
        let defined = CourseDefined {
            course: COURSE.to_owned(),
            capacity: sizes.capacity,
        };
        let event = NewEvent::encode(&defined, Codec::Json)
            .unwrap_or_else(|e| panic!("the course does not encode: {e}"));
        store
            .append(vec![event], None)
            .await
            .unwrap_or_else(|e| panic!("defining the course failed: {e}"));

        let barrier = Arc::new(Barrier::new(sizes.tasks));
        let tasks: Vec<_> = (0..sizes.tasks)
            .map(|task| {
                let engine = engine.clone();
                let barrier = barrier.clone();
                AbortOnDrop(tokio::spawn(async move {
                    barrier.wait().await;
                    let mut outcomes = Vec::with_capacity(sizes.decisions_per_task);
                    for n in 0..sizes.decisions_per_task {
                        let decision = Subscribe {
                            student: format!("s{task}-{n}"),
                        };
                        let outcome = engine.decide(&decision).await;
                        outcomes.push((decision.student, outcome));
                    }
                    outcomes
                }))
            })
            .collect();

        let mut acknowledged: Vec<(String, Outcome<StudentSubscribed>)> = Vec::new();
        let mut full = 0;
        for task in tasks {
            for (student, outcome) in task.join().await {
                match outcome {
                    Ok(outcome) => acknowledged.push((student, outcome)),
                    Err(DecideError::Domain(CourseFull)) => full += 1,
                    Err(other) => panic!("the decision for {student} failed: {other}"),
                }
            }
        }
        assert_eq!(
            acknowledged.len() + full,
            sizes.tasks * sizes.decisions_per_task,
            "every decision is answered"
        );

        let query = Query::item(QueryItem::of::<StudentSubscribed>());
        let subscribed: Vec<StoredEvent> = store
            .read(&query, ReadOptions::forward())
            .try_collect()
            .await
            .unwrap_or_else(|e| panic!("reading the subscriptions failed: {e}"));
        let in_log: Vec<(Position, String)> = subscribed
            .iter()
            .map(|e| {
                let event: StudentSubscribed = e
                    .decode()
                    .unwrap_or_else(|err| panic!("a subscription does not decode: {err}"));
                (e.position, event.student)
            })
            .collect();
        let seats = sizes.capacity as usize;
        assert!(
            in_log.len() <= seats,
            "overbooked: {} subscriptions for {seats} seats",
            in_log.len()
        );
        assert_eq!(
            in_log.len(),
            acknowledged.len(),
            "the log must hold exactly one subscription per acknowledged decision"
        );
        if full > 0 {
            assert_eq!(
                in_log.len(),
                seats,
                "a decision was told the course is full, so every seat must be taken"
            );
        }
        let students: HashSet<&str> = in_log.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(students.len(), in_log.len(), "a student subscribed twice");
        for (student, outcome) in &acknowledged {
            let [position] = outcome.positions[..] else {
                panic!("{student}'s subscription appended {:?}", outcome.positions);
            };
            let Ok(found) = in_log.binary_search_by_key(&position, |(p, _)| *p) else {
                panic!("{student}'s acknowledged subscription at {position} is not in the log");
            };
            assert_eq!(
                &in_log[found].1, student,
                "the event at {position} belongs to another student"
            );
        }
    })
    .await;
}
