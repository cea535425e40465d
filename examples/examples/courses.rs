//! Course subscriptions on the in-memory store: define courses, subscribe students, and
//! watch every rule say no once; then a race for the last seats of a course.
//!
//! Run with `cargo run -p factum-examples --example courses`.

use std::process::ExitCode;
use std::time::Duration;

use factum::prelude::*;
use factum_examples::courses::{
    ChangeCourseCapacity, Course, CourseError, DefineCourse, MAX_COURSES_PER_STUDENT,
    SubscribeStudent,
};
use factum_examples::latency::Latency;

/// The in-memory store, with appends that take a millisecond to arrive, so the race
/// below is a real one.
type Store = Latency<MemoryStore>;

/// Runs one decision and prints what happened in one line. A failure other than a
/// domain error (the store, a conflict after the last retry) ends the program.
async fn run<D>(engine: &Engine<Store>, label: &str, decision: &D)
where
    D: Decide<Error = CourseError>,
{
    match engine.decide(decision).await {
        Ok(outcome) if outcome.events.is_empty() => println!("  ok    {label}: nothing to do"),
        Ok(outcome) => {
            let at: Vec<String> = outcome.positions.iter().map(ToString::to_string).collect();
            println!("  ok    {label}: committed at {}", at.join(", "));
        }
        Err(DecideError::Domain(e)) => println!("  no    {label}: {e}"),
        Err(e) => {
            eprintln!("error: {label}: {e}");
            std::process::exit(1);
        }
    }
}

/// Folds a course's current state from the log.
async fn course(engine: &Engine<Store>, id: &str) -> Course {
    use futures::TryStreamExt;
    let mut course = Course::new(id);
    let query = factum::State::query(&course);
    let events: Vec<StoredEvent> = engine
        .store()
        .read(&query, ReadOptions::forward())
        .try_collect()
        .await
        .expect("reading the course");
    for event in &events {
        factum::State::apply(&mut course, event).expect("folding the course");
    }
    course
}

fn subscribe(course: &str, student: &str) -> SubscribeStudent {
    SubscribeStudent {
        course: course.into(),
        student: student.into(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    if let Some(code) = factum::catalog::cli::run(
        &factum_examples::courses::catalog(),
        std::env::args().skip(1),
    ) {
        return code;
    }
    let engine = Engine::new(Latency::new(MemoryStore::new(), Duration::from_millis(1)));

    println!("== courses");
    for (course, capacity) in [
        ("rust-101", 2),
        ("go-101", 10),
        ("sql-101", 10),
        ("ml-101", 10),
        ("os-101", 10),
        ("db-201", 10),
    ] {
        let label = format!("define {course} with {capacity} seats");
        run(
            &engine,
            &label,
            &DefineCourse {
                course: course.into(),
                capacity,
            },
        )
        .await;
    }
    run(
        &engine,
        "define rust-101 again",
        &DefineCourse {
            course: "rust-101".into(),
            capacity: 5,
        },
    )
    .await;

    println!("== subscriptions");
    run(&engine, "ada -> rust-101", &subscribe("rust-101", "ada")).await;
    run(
        &engine,
        "ada -> rust-101 again",
        &subscribe("rust-101", "ada"),
    )
    .await;
    run(&engine, "bob -> rust-101", &subscribe("rust-101", "bob")).await;
    run(&engine, "eve -> rust-101", &subscribe("rust-101", "eve")).await;
    run(
        &engine,
        "eve -> haskell-101",
        &subscribe("haskell-101", "eve"),
    )
    .await;
    for course in ["go-101", "sql-101", "ml-101", "os-101"] {
        run(
            &engine,
            &format!("ada -> {course}"),
            &subscribe(course, "ada"),
        )
        .await;
    }
    run(
        &engine,
        &format!("ada -> db-201 (a {}th course)", MAX_COURSES_PER_STUDENT + 1),
        &subscribe("db-201", "ada"),
    )
    .await;

    println!("== capacity");
    run(
        &engine,
        "shrink rust-101 to 1 seat",
        &ChangeCourseCapacity {
            course: "rust-101".into(),
            capacity: 1,
        },
    )
    .await;
    run(
        &engine,
        "grow rust-101 to 3 seats",
        &ChangeCourseCapacity {
            course: "rust-101".into(),
            capacity: 3,
        },
    )
    .await;
    run(
        &engine,
        "set rust-101 to 3 seats again",
        &ChangeCourseCapacity {
            course: "rust-101".into(),
            capacity: 3,
        },
    )
    .await;
    run(
        &engine,
        "grow haskell-101",
        &ChangeCourseCapacity {
            course: "haskell-101".into(),
            capacity: 3,
        },
    )
    .await;
    run(&engine, "eve -> rust-101", &subscribe("rust-101", "eve")).await;

    println!("== a race: 20 students for the 5 seats of cs-301, all at once");
    run(
        &engine,
        "define cs-301 with 5 seats",
        &DefineCourse {
            course: "cs-301".into(),
            capacity: 5,
        },
    )
    .await;
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let engine = engine.clone();
            tokio::spawn(async move {
                engine
                    .decide(&subscribe("cs-301", &format!("s{n:02}")))
                    .await
            })
        })
        .collect();
    let (mut taken, mut full, mut lost, mut retries) = (0, 0, 0, 0);
    for task in tasks {
        match task.await.expect("a subscription task panicked") {
            Ok(outcome) => {
                taken += 1;
                retries += outcome.attempts - 1;
            }
            Err(DecideError::Domain(CourseError::CourseFull { .. })) => full += 1,
            Err(e) => {
                println!("  FAIL  {e}");
                lost += 1;
            }
        }
    }
    let cs301 = course(&engine, "cs-301").await;
    let conflicts = engine.stats().conflicts;
    println!("  {taken} subscribed, {full} told the course is full, {lost} lost");
    println!(
        "  {conflicts} appends conflicted; the 5 who got a seat needed {retries} retries between them"
    );
    println!(
        "  cs-301 folded from the log: {} of {} seats taken",
        cs301.subscriptions, cs301.capacity
    );

    if taken != 5 || lost != 0 || cs301.subscriptions != 5 {
        eprintln!("error: cs-301 should have exactly 5 subscriptions and no lost request");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
