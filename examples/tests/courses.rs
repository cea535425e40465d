//! Every rule and every error of the course domain, with the given/when/then harness.

use factum::prelude::*;
use factum::testing::{given, given_nothing};
use factum_examples::courses::{
    ChangeCourseCapacity, Course, CourseError, DefineCourse, MAX_COURSES_PER_STUDENT, Student,
    SubscribeStudent, Subscription, events,
};

fn defined(course: &str, capacity: u32) -> events::Event {
    events::CourseDefined {
        course: course.into(),
        capacity,
    }
    .into()
}

fn changed(course: &str, capacity: u32) -> events::Event {
    events::CourseCapacityChanged {
        course: course.into(),
        capacity,
    }
    .into()
}

fn subscribed(course: &str, student: &str) -> events::Event {
    events::StudentSubscribed {
        course: course.into(),
        student: student.into(),
    }
    .into()
}

fn subscribe(course: &str, student: &str) -> SubscribeStudent {
    SubscribeStudent {
        course: course.into(),
        student: student.into(),
    }
}

fn change(course: &str, capacity: u32) -> ChangeCourseCapacity {
    ChangeCourseCapacity {
        course: course.into(),
        capacity,
    }
}

// DefineCourse

#[test]
fn a_new_course_is_defined() {
    given_nothing()
        .when(DefineCourse {
            course: "rust-101".into(),
            capacity: 30,
        })
        .then([events::CourseDefined {
            course: "rust-101".into(),
            capacity: 30,
        }]);
}

#[test]
fn a_course_is_defined_once() {
    given([defined("rust-101", 30)])
        .when(DefineCourse {
            course: "rust-101".into(),
            capacity: 10,
        })
        .then_error(CourseError::CourseAlreadyExists {
            course: "rust-101".into(),
        });
}

#[test]
fn another_course_does_not_stop_a_definition() {
    given([defined("go-101", 30)])
        .when(DefineCourse {
            course: "rust-101".into(),
            capacity: 10,
        })
        .then([events::CourseDefined {
            course: "rust-101".into(),
            capacity: 10,
        }]);
}

// ChangeCourseCapacity

#[test]
fn a_course_capacity_changes() {
    given([defined("rust-101", 30)])
        .when(change("rust-101", 40))
        .then([events::CourseCapacityChanged {
            course: "rust-101".into(),
            capacity: 40,
        }]);
}

#[test]
fn a_capacity_cannot_change_on_a_missing_course() {
    given([defined("go-101", 30)])
        .when(change("rust-101", 40))
        .then_error(CourseError::CourseNotFound {
            course: "rust-101".into(),
        });
}

#[test]
fn a_capacity_cannot_drop_below_the_subscriptions() {
    given([
        defined("rust-101", 3),
        subscribed("rust-101", "ada"),
        subscribed("rust-101", "bob"),
    ])
    .when(change("rust-101", 1))
    .then_error(CourseError::CapacityBelowSubscriptions {
        course: "rust-101".into(),
        capacity: 1,
        subscriptions: 2,
    });
}

#[test]
fn a_capacity_may_drop_to_exactly_the_subscriptions() {
    given([
        defined("rust-101", 3),
        subscribed("rust-101", "ada"),
        subscribed("rust-101", "bob"),
    ])
    .when(change("rust-101", 2))
    .then([events::CourseCapacityChanged {
        course: "rust-101".into(),
        capacity: 2,
    }]);
}

#[test]
fn the_same_capacity_changes_nothing() {
    given([defined("rust-101", 3), changed("rust-101", 5)])
        .when(change("rust-101", 5))
        .then_nothing();
}

// SubscribeStudent

#[test]
fn a_student_subscribes_to_a_course() {
    given([defined("rust-101", 2)])
        .when(subscribe("rust-101", "ada"))
        .then([subscribed("rust-101", "ada")]);
}

#[test]
fn a_student_cannot_subscribe_to_a_missing_course() {
    given([defined("go-101", 2)])
        .when(subscribe("rust-101", "ada"))
        .then_error(CourseError::CourseNotFound {
            course: "rust-101".into(),
        });
}

#[test]
fn a_full_course_takes_no_more_students() {
    given([
        defined("rust-101", 2),
        subscribed("rust-101", "ada"),
        subscribed("rust-101", "bob"),
    ])
    .when(subscribe("rust-101", "eve"))
    .then_error(CourseError::CourseFull {
        course: "rust-101".into(),
        capacity: 2,
    });
}

#[test]
fn a_lowered_capacity_fills_a_course_sooner() {
    given([
        defined("rust-101", 5),
        subscribed("rust-101", "ada"),
        changed("rust-101", 1),
    ])
    .when(subscribe("rust-101", "bob"))
    .then_error(CourseError::CourseFull {
        course: "rust-101".into(),
        capacity: 1,
    });
}

#[test]
fn a_raised_capacity_makes_room() {
    given([
        defined("rust-101", 1),
        subscribed("rust-101", "ada"),
        changed("rust-101", 2),
    ])
    .when(subscribe("rust-101", "bob"))
    .then([subscribed("rust-101", "bob")]);
}

#[test]
fn a_student_subscribes_to_a_course_once() {
    given([defined("rust-101", 5), subscribed("rust-101", "ada")])
        .when(subscribe("rust-101", "ada"))
        .then_error(CourseError::AlreadySubscribed {
            student: "ada".into(),
            course: "rust-101".into(),
        });
}

#[test]
fn a_student_in_the_most_courses_cannot_take_another() {
    let courses = ["c1", "c2", "c3", "c4", "c5"];
    assert_eq!(courses.len() as u32, MAX_COURSES_PER_STUDENT);
    given(courses.map(|c| defined(c, 10)))
        .and(courses.map(|c| subscribed(c, "ada")))
        .and([defined("c6", 10)])
        .when(subscribe("c6", "ada"))
        .then_error(CourseError::TooManyCourses {
            student: "ada".into(),
            max: MAX_COURSES_PER_STUDENT,
        });
}

#[test]
fn a_student_below_the_limit_takes_another_course() {
    let courses = ["c1", "c2", "c3", "c4"];
    given(courses.map(|c| defined(c, 10)))
        .and(courses.map(|c| subscribed(c, "ada")))
        .and([defined("c5", 10)])
        .when(subscribe("c5", "ada"))
        .then([subscribed("c5", "ada")]);
}

#[test]
fn other_students_and_courses_are_outside_the_boundary() {
    // Other students fill other courses, and ada's limit counts only her courses: none
    // of those events is in the decision's states.
    given([
        defined("rust-101", 1),
        defined("go-101", 1),
        subscribed("go-101", "bob"),
        subscribed("c1", "eve"),
        subscribed("c2", "eve"),
        subscribed("c3", "eve"),
        subscribed("c4", "eve"),
        subscribed("c5", "eve"),
    ])
    .when(subscribe("rust-101", "ada"))
    .then([subscribed("rust-101", "ada")]);
}

// The consistency boundary, as data.

#[test]
fn the_subscription_is_validated_against_course_student_and_pair() {
    let decision = subscribe("rust-101", "ada");
    let query = SubscribeStudent::validation_query(&decision.state());
    assert_eq!(
        query.to_string(),
        "CourseDefined,CourseCapacityChanged,StudentSubscribed[course:rust-101] \
         | StudentSubscribed[student:ada] \
         | StudentSubscribed[course:rust-101,student:ada]"
    );
    assert_eq!(SubscribeStudent::META.partition, Some("course"));
    assert_eq!(
        decision.partition_key().as_deref(),
        Some("rust-101"),
        "the partition key is the course"
    );
}

#[test]
fn each_state_folds_only_the_events_of_its_ids() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let engine = Engine::new(MemoryStore::new());
        for course in ["rust-101", "go-101"] {
            let define = DefineCourse {
                course: course.into(),
                capacity: 3,
            };
            engine.decide(&define).await.unwrap();
        }
        engine.decide(&subscribe("rust-101", "ada")).await.unwrap();
        engine.decide(&subscribe("go-101", "ada")).await.unwrap();
        engine.decide(&subscribe("rust-101", "bob")).await.unwrap();
        engine.decide(&change("rust-101", 4)).await.unwrap();

        let log: Vec<StoredEvent> = futures::TryStreamExt::try_collect(
            engine.store().read(&Query::all(), ReadOptions::forward()),
        )
        .await
        .unwrap();
        let mut states = (
            Course::new("rust-101"),
            Student::new("ada"),
            Subscription::new("go-101", "bob"),
        );
        for event in &log {
            states.fold(event).unwrap();
        }
        assert_eq!(
            states.0,
            Course {
                course: "rust-101".into(),
                exists: true,
                capacity: 4,
                subscriptions: 2,
            }
        );
        assert_eq!(states.1.courses, 2, "ada is in rust-101 and go-101");
        assert!(!states.2.subscribed, "bob is not in go-101");
    });
}

// Error messages, as users read them.

#[test]
fn error_messages_name_the_course_and_student() {
    let cases = [
        (
            CourseError::CourseAlreadyExists {
                course: "rust-101".into(),
            },
            "course rust-101 already exists",
        ),
        (
            CourseError::CourseNotFound {
                course: "rust-101".into(),
            },
            "course rust-101 does not exist",
        ),
        (
            CourseError::CapacityBelowSubscriptions {
                course: "rust-101".into(),
                capacity: 1,
                subscriptions: 2,
            },
            "course rust-101 cannot shrink to capacity 1: 2 students are subscribed",
        ),
        (
            CourseError::CourseFull {
                course: "rust-101".into(),
                capacity: 2,
            },
            "course rust-101 is full (2 seats taken)",
        ),
        (
            CourseError::AlreadySubscribed {
                student: "ada".into(),
                course: "rust-101".into(),
            },
            "student ada is already subscribed to course rust-101",
        ),
        (
            CourseError::TooManyCourses {
                student: "ada".into(),
                max: 5,
            },
            "student ada is already subscribed to 5 courses, the most allowed",
        ),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
    }
}
