//! Versioned events: payloads stored with an older schema version are upcast, step by
//! step, to the current Rust type before a state folds them — with JSON and MessagePack
//! payloads alike — and every version that cannot be brought up is an error naming the
//! event's position and type.

use factum::model::DecodeReason;
use factum::model::Payload;
use factum::prelude::*;
use factum::{Codec, DecideError, Metadata};
use serde_json::{Value, json};

#[factum::events]
pub mod school {
    /// v1 stored `student_id`; v2 renamed it to `student`; v3 added `note`, which old
    /// events did not have (the upcaster fills in an empty one).
    #[event(version = 3)]
    #[upcast(from = 1, with = super::rename_student_id)]
    #[upcast(from = 2, with = super::add_empty_note)]
    pub struct StudentSubscribed {
        #[tag]
        pub course: String,
        #[tag]
        pub student: String,
        pub note: String,
    }

    /// v2 added `capacity`, with a serde default for events stored before; its upcaster
    /// changes nothing, the default does the work.
    #[event(version = 2)]
    #[upcast(from = 1, with = super::unchanged)]
    pub struct CourseDefined {
        #[tag]
        pub course: String,
        #[serde(default = "super::default_capacity")]
        pub capacity: u32,
    }

    /// Version 2 with no upcaster: a stored v1 cannot be read.
    #[event(version = 2)]
    pub struct CourseRenamed {
        #[tag]
        pub course: String,
        pub title: String,
    }
}

fn rename_student_id(mut payload: Value) -> Value {
    if let Some(fields) = payload.as_object_mut()
        && let Some(student) = fields.remove("student_id")
    {
        fields.insert("student".to_owned(), student);
    }
    payload
}

fn add_empty_note(mut payload: Value) -> Value {
    if let Some(fields) = payload.as_object_mut() {
        fields.entry("note").or_insert_with(|| json!(""));
    }
    payload
}

fn unchanged(payload: Value) -> Value {
    payload
}

fn default_capacity() -> u32 {
    30
}

#[derive(State, Debug, Default, PartialEq)]
pub struct Course {
    #[id]
    pub course: String,
    pub capacity: u32,
    pub students: Vec<(String, String)>,
    pub title: String,
}

#[factum::fold]
impl Course {
    fn defined(&mut self, e: &school::CourseDefined) {
        self.capacity = e.capacity;
    }
    fn subscribed(&mut self, e: &school::StudentSubscribed) {
        self.students.push((e.student.clone(), e.note.clone()));
    }
    fn renamed(&mut self, e: &school::CourseRenamed) {
        self.title.clone_from(&e.title);
    }
}

/// A raw stored event of `event_type` at `version`, as an older application wrote it.
fn old(event_type: &str, version: u32, course: &str, payload: Value, codec: Codec) -> NewEvent {
    let payload = match codec {
        Codec::MessagePack => Payload {
            codec,
            bytes: rmp_named(&payload),
        },
        _ => codec.encode(event_type, &payload).unwrap(),
    };
    let mut tags = vec![Tag::new("course", course)];
    if let Some(student) = payload_student(&payload) {
        tags.push(Tag::new("student", student));
    }
    NewEvent {
        event_type: event_type.to_owned(),
        version,
        tags,
        payload,
        metadata: Metadata::new(),
        recorded_at: None,
    }
}

fn rmp_named(value: &Value) -> Vec<u8> {
    Codec::MessagePack.encode("test", value).unwrap().bytes
}

fn payload_student(payload: &Payload) -> Option<String> {
    let value = payload.decode_value().ok()?;
    value
        .get("student")
        .or_else(|| value.get("student_id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

async fn load(store: &MemoryStore, course: &str) -> Result<Course, factum::LoadError> {
    let engine = Engine::new(store.clone());
    Ok(engine.load(Course::new(course.to_owned())).await?.0)
}

#[tokio::test]
async fn every_stored_version_folds_as_the_current_one() {
    for codec in [Codec::Json, Codec::MessagePack] {
        let store = MemoryStore::new();
        let events = vec![
            old("CourseDefined", 1, "c1", json!({ "course": "c1" }), codec),
            old(
                "StudentSubscribed",
                1,
                "c1",
                json!({ "course": "c1", "student_id": "ada" }),
                codec,
            ),
            old(
                "StudentSubscribed",
                2,
                "c1",
                json!({ "course": "c1", "student": "bob" }),
                codec,
            ),
            old(
                "StudentSubscribed",
                3,
                "c1",
                json!({ "course": "c1", "student": "cy", "note": "late" }),
                codec,
            ),
        ];
        store.append(events, None).await.unwrap();
        let course = load(&store, "c1").await.unwrap();
        assert_eq!(
            course.capacity, 30,
            "{codec:?}: the default of the added field"
        );
        assert_eq!(
            course.students,
            vec![
                ("ada".to_owned(), String::new()),
                ("bob".to_owned(), String::new()),
                ("cy".to_owned(), "late".to_owned()),
            ],
            "{codec:?}: v1 renamed and given a note, v2 given a note, v3 as stored"
        );
    }
}

#[tokio::test]
async fn a_current_event_written_by_this_application_round_trips() {
    let store = MemoryStore::new();
    let event = school::StudentSubscribed {
        course: "c1".into(),
        student: "dee".into(),
        note: "front row".into(),
    };
    store
        .append(vec![NewEvent::encode(&event, Codec::Json).unwrap()], None)
        .await
        .unwrap();
    let stored: Vec<StoredEvent> =
        futures::TryStreamExt::try_collect(store.read(&Query::all(), ReadOptions::forward()))
            .await
            .unwrap();
    assert_eq!(
        stored[0].version, 3,
        "new events are stored at the current version"
    );
    assert_eq!(
        stored[0].decode::<school::StudentSubscribed>().unwrap(),
        event
    );
}

#[tokio::test]
async fn versions_that_cannot_be_brought_up_name_the_event() {
    // Newer than the application: written by a later release.
    let store = MemoryStore::new();
    store
        .append(
            vec![old("StudentSubscribed", 4, "c1", json!({}), Codec::Json)],
            None,
        )
        .await
        .unwrap();
    let err = load(&store, "c1").await.unwrap_err();
    let factum::LoadError::Decode(e) = err else {
        panic!("expected a decode error, got {err:?}");
    };
    assert_eq!(
        (e.position, e.event_type.as_str(), e.version),
        (Position(1), "StudentSubscribed", 4)
    );
    assert_eq!(
        e.reason,
        DecodeReason::Version {
            stored: 4,
            known: 3
        }
    );

    // Older, with no upcaster to bring it up.
    let store = MemoryStore::new();
    store
        .append(
            vec![
                old(
                    "CourseDefined",
                    2,
                    "c1",
                    json!({ "course": "c1", "capacity": 3 }),
                    Codec::Json,
                ),
                old(
                    "CourseRenamed",
                    1,
                    "c1",
                    json!({ "course": "c1", "name": "Rust" }),
                    Codec::Json,
                ),
            ],
            None,
        )
        .await
        .unwrap();
    let err = load(&store, "c1").await.unwrap_err();
    let factum::LoadError::Decode(e) = err else {
        panic!("expected a decode error, got {err:?}");
    };
    assert_eq!(
        (e.position, e.event_type.as_str()),
        (Position(2), "CourseRenamed")
    );
    assert_eq!(
        e.reason,
        DecodeReason::Version {
            stored: 1,
            known: 2
        }
    );

    // Upcast, but still not the current shape: a payload error that says so.
    let store = MemoryStore::new();
    store
        .append(
            vec![old(
                "StudentSubscribed",
                1,
                "c1",
                json!({ "course": "c1", "pupil": "x" }),
                Codec::Json,
            )],
            None,
        )
        .await
        .unwrap();
    let err = load(&store, "c1").await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("StudentSubscribed")
            && message.contains("#1")
            && message.contains("after upcasting from v1 to v3")
            && message.contains("student"),
        "the error must name the event, its position, the upcast and the missing field: {message}"
    );
}

/// A decision over upcast events decides on the current shape.
#[tokio::test]
async fn decisions_fold_upcast_events() {
    #[derive(Decision)]
    struct Subscribe {
        course: String,
        student: String,
    }
    impl Decide for Subscribe {
        type State = Course;
        type Event = school::Event;
        type Error = String;
        fn state(&self) -> Course {
            Course::new(self.course.clone())
        }
        fn decide(&self, course: &Course) -> Result<Vec<school::Event>, String> {
            if course.students.iter().any(|(s, _)| *s == self.student) {
                return Err(format!("{} is already subscribed", self.student));
            }
            Ok(vec![
                school::StudentSubscribed {
                    course: self.course.clone(),
                    student: self.student.clone(),
                    note: String::new(),
                }
                .into(),
            ])
        }
    }
    let store = MemoryStore::new();
    store
        .append(
            vec![old(
                "StudentSubscribed",
                1,
                "c1",
                json!({ "course": "c1", "student_id": "ada" }),
                Codec::Json,
            )],
            None,
        )
        .await
        .unwrap();
    let engine = Engine::new(store);
    let again = Subscribe {
        course: "c1".into(),
        student: "ada".into(),
    };
    let err = engine.decide(&again).await.unwrap_err();
    assert!(
        matches!(err, DecideError::Domain(ref m) if m == "ada is already subscribed"),
        "{err:?}"
    );
    let other = Subscribe {
        course: "c1".into(),
        student: "bob".into(),
    };
    assert_eq!(
        engine.decide(&other).await.unwrap().positions,
        vec![Position(2)]
    );
}
