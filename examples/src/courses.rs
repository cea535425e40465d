//! Course subscriptions: the classic example of dynamic consistency boundaries.
//!
//! A student subscribes to a course only if the course exists and has a free seat, the
//! student is not subscribed to it yet, and the student is in fewer than
//! [`MAX_COURSES_PER_STUDENT`] courses. With aggregates, that rule spans two of them (the
//! course and the student) and needs a saga or one huge aggregate. Here
//! [`SubscribeStudent`] simply reads three small states — the [`Course`], the
//! [`Student`] and their [`Subscription`] — from one read, and appends only if none of
//! the events behind them changed meanwhile. Two students subscribing to different
//! courses never conflict; two students racing for the last seat of one course do, and
//! the loser retries and is told the course is full.
//!
//! ```
//! use factum::prelude::*;
//! use factum_examples::courses::{DefineCourse, SubscribeStudent, CourseError};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let engine = Engine::new(MemoryStore::new());
//! engine.decide(&DefineCourse { course: "rust-101".into(), capacity: 1 }).await.unwrap();
//! engine.decide(&SubscribeStudent { course: "rust-101".into(), student: "ada".into() }).await.unwrap();
//! let full = engine.decide(&SubscribeStudent { course: "rust-101".into(), student: "bob".into() }).await;
//! assert_eq!(
//!     full.unwrap_err().into_domain(),
//!     Some(CourseError::CourseFull { course: "rust-101".into(), capacity: 1 }),
//! );
//! # });
//! ```

use factum::prelude::*;

/// How many courses one student may be subscribed to at once.
pub const MAX_COURSES_PER_STUDENT: u32 = 5;

/// The events of the course domain.
#[factum::events]
pub mod events {
    /// A course was defined with a number of seats.
    #[group(Course)]
    pub struct CourseDefined {
        /// The course id.
        #[tag]
        pub course: String,
        /// How many students it takes.
        pub capacity: u32,
    }

    /// A course's number of seats changed.
    #[group(Course)]
    pub struct CourseCapacityChanged {
        /// The course id.
        #[tag]
        pub course: String,
        /// The new number of seats.
        pub capacity: u32,
    }

    /// A student took a seat in a course: tagged with both, so both the course's and
    /// the student's states see it. An integration event: the timetable service builds
    /// each student's schedule from it.
    #[group(Course, Student)]
    #[event(public)]
    pub struct StudentSubscribed {
        /// The course id.
        #[tag]
        pub course: String,
        /// The student id.
        #[tag]
        pub student: String,
    }
}

/// Why a course decision said no.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CourseError {
    /// [`DefineCourse`] for a course that was already defined.
    #[error("course {course} already exists")]
    CourseAlreadyExists {
        /// The course id.
        course: String,
    },
    /// A decision about a course that was never defined.
    #[error("course {course} does not exist")]
    CourseNotFound {
        /// The course id.
        course: String,
    },
    /// [`ChangeCourseCapacity`] below the number of students already subscribed.
    #[error(
        "course {course} cannot shrink to capacity {capacity}: {subscriptions} students are subscribed"
    )]
    CapacityBelowSubscriptions {
        /// The course id.
        course: String,
        /// The capacity asked for.
        capacity: u32,
        /// The students subscribed.
        subscriptions: u32,
    },
    /// [`SubscribeStudent`] to a course whose seats are all taken.
    #[error("course {course} is full ({capacity} seats taken)")]
    CourseFull {
        /// The course id.
        course: String,
        /// Its number of seats.
        capacity: u32,
    },
    /// [`SubscribeStudent`] twice to the same course.
    #[error("student {student} is already subscribed to course {course}")]
    AlreadySubscribed {
        /// The student id.
        student: String,
        /// The course id.
        course: String,
    },
    /// [`SubscribeStudent`] for a student who reached [`MAX_COURSES_PER_STUDENT`].
    #[error("student {student} is already subscribed to {max} courses, the most allowed")]
    TooManyCourses {
        /// The student id.
        student: String,
        /// The limit.
        max: u32,
    },
}

/// A course as the decisions see it: whether it exists, its seats, and how many are
/// taken.
#[derive(State, Clone, Debug, Default, PartialEq, Eq)]
pub struct Course {
    /// The course id.
    #[id]
    pub course: String,
    /// Whether it was defined.
    pub exists: bool,
    /// Its number of seats.
    pub capacity: u32,
    /// Seats taken.
    pub subscriptions: u32,
}

#[factum::fold]
impl Course {
    fn defined(&mut self, e: &events::CourseDefined) {
        self.exists = true;
        self.capacity = e.capacity;
    }

    fn capacity_changed(&mut self, e: &events::CourseCapacityChanged) {
        self.capacity = e.capacity;
    }

    fn subscribed(&mut self, _: &events::StudentSubscribed) {
        self.subscriptions += 1;
    }
}

/// A student as the decisions see it: how many courses they are subscribed to.
#[derive(State, Clone, Debug, Default, PartialEq, Eq)]
pub struct Student {
    /// The student id.
    #[id]
    pub student: String,
    /// Courses subscribed to.
    pub courses: u32,
}

#[factum::fold]
impl Student {
    fn subscribed(&mut self, _: &events::StudentSubscribed) {
        self.courses += 1;
    }
}

/// One student in one course: identified by both ids, so it sees only the
/// subscriptions carrying both tags.
#[derive(State, Clone, Debug, Default, PartialEq, Eq)]
pub struct Subscription {
    /// The course id.
    #[id]
    pub course: String,
    /// The student id.
    #[id]
    pub student: String,
    /// Whether the student is subscribed to the course.
    pub subscribed: bool,
}

#[factum::fold]
impl Subscription {
    fn subscribed(&mut self, _: &events::StudentSubscribed) {
        self.subscribed = true;
    }
}

/// Defines a new course with `capacity` seats.
#[derive(Decision, Clone, Debug)]
#[decision(partition = course)]
pub struct DefineCourse {
    /// The course id.
    pub course: String,
    /// Its number of seats.
    pub capacity: u32,
}

impl Decide for DefineCourse {
    type State = Course;
    type Event = events::CourseDefined;
    type Error = CourseError;

    fn state(&self) -> Course {
        Course::new(&self.course)
    }

    fn decide(&self, course: &Course) -> Result<Vec<events::CourseDefined>, CourseError> {
        if course.exists {
            return Err(CourseError::CourseAlreadyExists {
                course: self.course.clone(),
            });
        }
        Ok(vec![events::CourseDefined {
            course: self.course.clone(),
            capacity: self.capacity,
        }])
    }
}

/// Changes a course's number of seats; it cannot drop below the seats taken.
///
/// Setting the capacity it already has emits nothing.
#[derive(Decision, Clone, Debug)]
#[decision(partition = course, emits = [events::CourseCapacityChanged])]
pub struct ChangeCourseCapacity {
    /// The course id.
    pub course: String,
    /// The new number of seats.
    pub capacity: u32,
}

impl Decide for ChangeCourseCapacity {
    type State = Course;
    type Event = events::CourseEvent;
    type Error = CourseError;

    fn state(&self) -> Course {
        Course::new(&self.course)
    }

    fn decide(&self, course: &Course) -> Result<Vec<events::CourseEvent>, CourseError> {
        if !course.exists {
            return Err(CourseError::CourseNotFound {
                course: self.course.clone(),
            });
        }
        if self.capacity < course.subscriptions {
            return Err(CourseError::CapacityBelowSubscriptions {
                course: self.course.clone(),
                capacity: self.capacity,
                subscriptions: course.subscriptions,
            });
        }
        if self.capacity == course.capacity {
            return Ok(vec![]);
        }
        Ok(vec![
            events::CourseCapacityChanged {
                course: self.course.clone(),
                capacity: self.capacity,
            }
            .into(),
        ])
    }
}

/// Subscribes a student to a course: one decision across the course, the student and
/// their subscription, with no aggregate holding them together. `emits` narrows its
/// event set to what it really appends, so the analysis does not count the course
/// events among its conflicts.
#[derive(Decision, Clone, Debug)]
#[decision(partition = course, retries = 20, emits = [events::StudentSubscribed])]
pub struct SubscribeStudent {
    /// The course id.
    pub course: String,
    /// The student id.
    pub student: String,
}

impl Decide for SubscribeStudent {
    type State = (Course, Student, Subscription);
    type Event = events::Event;
    type Error = CourseError;

    fn state(&self) -> Self::State {
        (
            Course::new(&self.course),
            Student::new(&self.student),
            Subscription::new(&self.course, &self.student),
        )
    }

    fn decide(
        &self,
        (course, student, subscription): &Self::State,
    ) -> Result<Vec<events::Event>, CourseError> {
        if !course.exists {
            return Err(CourseError::CourseNotFound {
                course: self.course.clone(),
            });
        }
        if subscription.subscribed {
            return Err(CourseError::AlreadySubscribed {
                student: self.student.clone(),
                course: self.course.clone(),
            });
        }
        if course.subscriptions >= course.capacity {
            return Err(CourseError::CourseFull {
                course: self.course.clone(),
                capacity: course.capacity,
            });
        }
        if student.courses >= MAX_COURSES_PER_STUDENT {
            return Err(CourseError::TooManyCourses {
                student: self.student.clone(),
                max: MAX_COURSES_PER_STUDENT,
            });
        }
        Ok(vec![
            events::StudentSubscribed {
                course: self.course.clone(),
                student: self.student.clone(),
            }
            .into(),
        ])
    }
}

/// Every event type, state and decision of the course domain:
/// `cargo run -p factum-examples --example courses -- describe` prints it, and
/// `docs/model/courses.md` shows it as a graph.
pub fn catalog() -> factum::Catalog {
    factum::Catalog::new()
        .events::<events::Event>()
        .state::<Course>()
        .state::<Student>()
        .state::<Subscription>()
        .decision::<DefineCourse>()
        .decision::<ChangeCourseCapacity>()
        .decision::<SubscribeStudent>()
}
