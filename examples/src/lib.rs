//! Example domains written with [factum]: plain Rust types for events, states
//! and decisions, decided with dynamic consistency boundaries.
//!
//! - [`courses`]: course subscriptions, a rule across a course and a student with no
//!   aggregate holding them together;
//! - [`coupons`]: a coupon rush on a hot coupon beside many quiet carts, exact
//!   ([`coupons::ApplyCoupon`]) or with tolerated overbooking
//!   ([`coupons::ApplyCouponTolerant`]);
//! - [`bank`]: bank accounts, where a transfer reads both accounts and appends one event
//!   tagged with both — no saga — and a daily withdrawal limit folds the time each
//!   withdrawal was recorded against the time the command carries;
//! - [`distributed`]: the coupon rush through distributed lanes on NATS, shared by the
//!   `factum-rush-worker` and `factum-rush-client` programs;
//! - [`latency`]: a store wrapper whose appends take a while to arrive, so races
//!   show on a small machine too.
//!
//! Runnable programs: `cargo run -p factum-examples --example courses`,
//! `cargo run -p factum-examples --example coupon_rush` and
//! `cargo run -p factum-examples --example bank` (`-- describe` prints only its
//! catalog).
//!
//! ```
//! use factum::prelude::*;
//! use factum::testing::given;
//! use factum_examples::courses::{events, CourseError, SubscribeStudent};
//!
//! // With the harness: a history, a decision, the events it emits.
//! given([events::CourseDefined { course: "rust-101".into(), capacity: 30 }])
//!     .when(SubscribeStudent { course: "rust-101".into(), student: "ada".into() })
//!     .then([events::StudentSubscribed { course: "rust-101".into(), student: "ada".into() }]);
//!
//! // With the engine, on the in-memory store.
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let engine = Engine::new(MemoryStore::new());
//! let missing = engine
//!     .decide(&SubscribeStudent { course: "go-101".into(), student: "ada".into() })
//!     .await
//!     .unwrap_err();
//! assert_eq!(missing.to_string(), "course go-101 does not exist");
//! assert_eq!(
//!     missing.into_domain(),
//!     Some(CourseError::CourseNotFound { course: "go-101".into() }),
//! );
//! # });
//! ```

pub mod bank;
pub mod coupons;
pub mod courses;
pub mod distributed;
pub mod latency;
pub mod rush;
pub mod sprints;

/// The README's quick start is the quick start example, byte for byte: the example
/// runs in CI and its test with the workspace's, so what a newcomer copies works.
#[cfg(test)]
mod readme {
    #[test]
    fn the_quick_start_is_the_example() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let readme = std::fs::read_to_string(root.join("../README.md")).expect("README.md");
        let example =
            std::fs::read_to_string(root.join("examples/quickstart.rs")).expect("the example");
        let block = format!("```rust\n{}\n```", example.trim_end());
        assert!(
            readme.contains(&block),
            "README.md's quick start differs from examples/examples/quickstart.rs: copy the file into its ```rust block"
        );
    }
}
