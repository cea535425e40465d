//! # factum
//!
//! Event-sourced domains as plain Rust types, decided with **dynamic consistency
//! boundaries** (DCB).
//!
//! You declare events, states and decisions; the macros derive the event enums and
//! groups, the state folds and queries, and each decision's concurrency metadata. The
//! [`Engine`] reads exactly the events a decision needs, folds them, calls your pure
//! `decide`, and appends on the condition that nothing it relied on changed meanwhile,
//! retrying on conflict.
//!
//! ```
//! use factum::prelude::*;
//!
//! #[factum::events]
//! pub mod shop {
//!     #[group(Coupon)]
//!     pub struct CouponIssued { #[tag] pub coupon: String, pub uses: u32 }
//!     #[group(Coupon)]
//!     pub struct CouponApplied { #[tag] pub coupon: String, #[tag] pub cart: String }
//! }
//!
//! #[derive(State, Debug, Default)]
//! pub struct Coupon { #[id] pub coupon: String, pub remaining: u32 }
//!
//! #[factum::fold]
//! impl Coupon {
//!     fn issued(&mut self, e: &shop::CouponIssued) { self.remaining = e.uses }
//!     fn applied(&mut self, _: &shop::CouponApplied) { self.remaining = self.remaining.saturating_sub(1) }
//! }
//!
//! #[derive(Decision)]
//! #[decision(partition = coupon, retries = 5)]
//! pub struct ApplyCoupon { pub coupon: String, pub cart: String }
//!
//! impl Decide for ApplyCoupon {
//!     type State = Coupon;
//!     type Event = shop::CouponEvent;
//!     type Error = String;
//!     fn state(&self) -> Coupon { Coupon::new(self.coupon.clone()) }
//!     fn decide(&self, coupon: &Coupon) -> Result<Vec<shop::CouponEvent>, String> {
//!         if coupon.remaining == 0 {
//!             return Err(format!("coupon {} is used up", self.coupon));
//!         }
//!         Ok(vec![shop::CouponApplied { coupon: self.coupon.clone(), cart: self.cart.clone() }.into()])
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let engine = Engine::new(MemoryStore::new());
//! let issue = shop::CouponIssued { coupon: "SPRING".into(), uses: 1 };
//! engine.store().append(vec![NewEvent::encode(&issue, Codec::Json).unwrap()], None).await.unwrap();
//!
//! let first = engine.decide(&ApplyCoupon { coupon: "SPRING".into(), cart: "c1".into() }).await;
//! assert_eq!(first.unwrap().positions, vec![Position(2)]);
//! let second = engine.decide(&ApplyCoupon { coupon: "SPRING".into(), cart: "c2".into() }).await;
//! assert_eq!(second.unwrap_err().to_string(), "coupon SPRING is used up");
//! # });
//! ```
//!
//! ## Versioned events
//!
//! Change an event's shape by raising its version and declaring, next to it, one
//! upcaster per older version: a function from the old payload (as JSON, whatever the
//! codec) to the next version's. Reads return the current type.
//!
//! ```
//! use factum::prelude::*;
//!
//! #[factum::events]
//! pub mod school {
//!     /// v1 called the student `student_id`.
//!     #[event(version = 2)]
//!     #[upcast(from = 1, with = super::rename_student_id)]
//!     pub struct StudentSubscribed { #[tag] pub course: String, #[tag] pub student: String }
//! }
//!
//! fn rename_student_id(mut payload: serde_json::Value) -> serde_json::Value {
//!     if let Some(fields) = payload.as_object_mut()
//!         && let Some(student) = fields.remove("student_id")
//!     {
//!         fields.insert("student".to_owned(), student);
//!     }
//!     payload
//! }
//!
//! # fn main() {
//! // An event an older release stored at version 1.
//! let old = StoredEvent::record(
//!     NewEvent {
//!         event_type: "StudentSubscribed".into(),
//!         version: 1,
//!         tags: vec![Tag::new("course", "c1"), Tag::new("student", "ada")],
//!         payload: Codec::Json
//!             .encode("StudentSubscribed", &serde_json::json!({ "course": "c1", "student_id": "ada" }))
//!             .unwrap(),
//!         metadata: Default::default(),
//!         recorded_at: None,
//!     },
//!     Position(1),
//! );
//! let current: school::StudentSubscribed = old.decode().unwrap();
//! assert_eq!(current.student, "ada");
//! # }
//! ```
//!
//! ## Snapshots
//!
//! A state folded from many events can keep snapshots: `#[state(snapshot_every = N)]`
//! (with serde's derives). [`Engine::load`] and decisions then start from the snapshot
//! and read only the events after it; a snapshot for another query, or that no longer
//! decodes, is ignored and rebuilt.
//!
//! ```
//! use factum::prelude::*;
//!
//! #[factum::events]
//! pub mod bank {
//!     pub struct Deposited { #[tag] pub account: String, pub amount: u64 }
//! }
//!
//! #[derive(State, Debug, Default, serde::Serialize, serde::Deserialize)]
//! #[state(snapshot_every = 100)]
//! pub struct Balance { #[id] pub account: String, pub total: u64 }
//!
//! #[factum::fold]
//! impl Balance {
//!     fn deposited(&mut self, e: &bank::Deposited) { self.total += e.amount }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let engine = Engine::new(MemoryStore::new());
//! let deposits = (0..250)
//!     .map(|_| NewEvent::encode(&bank::Deposited { account: "a".into(), amount: 2 }, Codec::Json).unwrap())
//!     .collect();
//! engine.store().append(deposits, None).await.unwrap();
//! assert_eq!(engine.load(Balance::new("a")).await.unwrap().0.total, 500); // reads 250, saves
//! assert_eq!(engine.load(Balance::new("a")).await.unwrap().0.total, 500); // restores, reads 0
//! assert_eq!((engine.stats().events_read, engine.stats().snapshots_restored), (250, 1));
//! # });
//! ```
//!
//! ## Concurrency strategies and idempotent requests
//!
//! A [`lanes::Dispatcher`] runs each decision under the strategy its metadata asks for
//! — serial lanes for a decision with a partition key, optimistic retries otherwise —
//! or the one the application sets ([`lanes::Strategy`]): a hot key then costs no
//! retries, and decisions queued behind each other commit in one store transaction.
//! A decision with an idempotency key that already committed returns the first
//! outcome, under every strategy.
//!
//! An idempotency key belongs to its decision type: the store records it as
//! `<decision name>:<key>`, so one request id used by two decision types names two
//! requests, each committing its own events. The events also carry a fingerprint of
//! the decision's content (a digest of its serde serialization, so a decision with
//! `idempotency = ..` derives `Serialize`; see [`model::idempotency`]): the same key sent
//! again with other content is not a repeat but another request reusing the key, and
//! fails with [`DecideError::IdempotencyKeyReused`], appending nothing and leaving the
//! first commit as it was — also when the two race (exactly one commits). A key stored
//! without a fingerprint (by a raw append, or a decision implementing `Decision` by
//! hand) replays as before, whatever the content. A key recorded by a factum version
//! that did not scope keys (a bare `<key>`) is not found by this one: a request retried
//! across that upgrade is decided again.
//!
//! ```
//! # use factum::prelude::*;
//! # #[factum::events]
//! # pub mod shop {
//! #     #[group(Coupon)]
//! #     pub struct CouponIssued { #[tag] pub coupon: String, pub uses: u32 }
//! #     #[group(Coupon)]
//! #     pub struct CouponApplied { #[tag] pub coupon: String, #[tag] pub cart: String }
//! # }
//! # #[derive(State, Debug, Default)]
//! # pub struct Coupon { #[id] pub coupon: String, pub remaining: u32 }
//! # #[factum::fold]
//! # impl Coupon {
//! #     fn issued(&mut self, e: &shop::CouponIssued) { self.remaining = e.uses }
//! #     fn applied(&mut self, _: &shop::CouponApplied) { self.remaining = self.remaining.saturating_sub(1) }
//! # }
//! use factum::lanes::{Dispatcher, Drain, Strategy};
//!
//! #[derive(Decision, Clone, serde::Serialize)]
//! #[decision(partition = coupon, idempotency = request)]
//! pub struct ApplyCoupon { pub coupon: String, pub cart: String, pub request: String }
//!
//! impl Decide for ApplyCoupon {
//!     type State = Coupon;
//!     type Event = shop::CouponEvent;
//!     type Error = String;
//!     fn state(&self) -> Coupon { Coupon::new(self.coupon.clone()) }
//!     fn decide(&self, coupon: &Coupon) -> Result<Vec<shop::CouponEvent>, String> {
//!         if coupon.remaining == 0 {
//!             return Err(format!("coupon {} is used up", self.coupon));
//!         }
//!         Ok(vec![shop::CouponApplied { coupon: self.coupon.clone(), cart: self.cart.clone() }.into()])
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let issue = shop::CouponIssued { coupon: "SPRING".into(), uses: 3 };
//! store.append(vec![NewEvent::encode(&issue, Codec::Json).unwrap()], None).await.unwrap();
//!
//! let dispatcher = Dispatcher::new(Engine::new(store));
//! assert_eq!(dispatcher.strategy_for::<ApplyCoupon>(), Strategy::SerialLanes);
//! let apply = |cart: &str| ApplyCoupon { coupon: "SPRING".into(), cart: cart.into(), request: format!("r-{cart}") };
//!
//! let first = dispatcher.decide(apply("c0")).await.unwrap();
//! assert_eq!(first.positions, vec![Position(2)]);
//! // The same request again, under any strategy: the first outcome, nothing appended.
//! let again = dispatcher.decide_using(apply("c0"), Strategy::Optimistic, Default::default()).await.unwrap();
//! assert!(again.replayed);
//! assert_eq!(again.positions, first.positions);
//! // The same request id with another cart is not a repeat: refused, nothing appended.
//! let reused = ApplyCoupon { cart: "c9".into(), ..apply("c0") };
//! let refused = dispatcher.decide(reused).await.unwrap_err();
//! assert!(matches!(refused, DecideError::IdempotencyKeyReused { .. }), "{refused}");
//!
//! // Five customers at once for the two uses left: the lane decides them one after
//! // another, so two commit and three are told the coupon is used up — no retries.
//! let customers: Vec<_> = (1..=5)
//!     .map(|i| {
//!         let (dispatcher, apply) = (dispatcher.clone(), apply(&format!("c{i}")));
//!         tokio::spawn(async move { dispatcher.decide(apply).await })
//!     })
//!     .collect();
//! let mut applied = 0;
//! for customer in customers {
//!     applied += customer.await.unwrap().is_ok() as u32;
//! }
//! assert_eq!((applied, dispatcher.engine().stats().conflicts), (2, 0));
//! dispatcher.shutdown(Drain::Finish).await;
//! # });
//! ```
//!
//! ## States the command builds
//!
//! A decision's `state()` may set more than ids: a starting value (`#[initial(..)]` in
//! the generated constructor), a clock, a window. Every strategy decides on exactly the
//! state it built: a lane's warm state or a snapshot stands in only for a state built
//! equal to the one it was folded from ([`StateId::same_start`]).
//!
//! ```
//! # use factum::prelude::*;
//! use factum::lanes::{Dispatcher, Drain};
//! use std::time::{Duration, SystemTime};
//!
//! #[factum::events]
//! pub mod names {
//!     pub struct NameReleased { #[tag] pub name: String }
//!     pub struct NameClaimed { #[tag] pub name: String }
//! }
//!
//! /// Free once released for 3 days, counted from the command's clock.
//! #[derive(State, Debug)]
//! pub struct Name {
//!     #[id] pub name: String,
//!     pub now: Option<SystemTime>,
//!     #[initial(true)] pub free: bool,
//! }
//!
//! #[factum::fold]
//! impl Name {
//!     fn released(&mut self, _: &names::NameReleased, stored: &StoredEvent) {
//!         let now = self.now.unwrap_or(SystemTime::UNIX_EPOCH);
//!         self.free = stored.recorded_at + Duration::from_secs(3 * 86_400) <= now;
//!     }
//!     fn claimed(&mut self, _: &names::NameClaimed) { self.free = false }
//! }
//!
//! #[derive(Decision)]
//! #[decision(partition = name)]
//! pub struct Claim { pub name: String, pub now: SystemTime }
//!
//! impl Decide for Claim {
//!     type State = Name;
//!     type Event = names::Event;
//!     type Error = String;
//!     fn state(&self) -> Name { Name { now: Some(self.now), ..Name::new(&self.name) } }
//!     fn decide(&self, name: &Name) -> Result<Vec<names::Event>, String> {
//!         if !name.free {
//!             return Err(format!("{} is not free", self.name));
//!         }
//!         Ok(vec![names::NameClaimed { name: self.name.clone() }.into()])
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let released = names::NameReleased { name: "ada".into() };
//! store.append(vec![NewEvent::encode(&released, Codec::Json).unwrap()], None).await.unwrap();
//!
//! let lanes = Dispatcher::new(Engine::new(store));
//! let now = SystemTime::now();
//! let day = Duration::from_secs(86_400);
//! // Refused a day later; four days later the lane folds the state this command built,
//! // not the warm one folded on the earlier clock.
//! assert!(lanes.decide(Claim { name: "ada".into(), now: now + day }).await.is_err());
//! assert!(lanes.decide(Claim { name: "ada".into(), now: now + 4 * day }).await.is_ok());
//! lanes.shutdown(Drain::Finish).await;
//! # });
//! ```
//!
//! Layout, following a decision's data path, each module using only those before it:
//! [`model`] (the DCB vocabulary), [`store`] (the [`EventStore`] trait with
//! [`SnapshotStore`] and [`PartitionLocks`], [`StoreLayer`] for wrappers, [`AnyStore`],
//! the in-memory store), [`decide`] (states, decisions, the engine), [`lanes`] (serial
//! lanes and the dispatcher), [`listen`] (listeners and subscriptions), [`catalog`] (the
//! registry), `testing` (given/when/then; feature `testing`, for your
//! dev-dependencies), and `conformance` (the suite every store runs against itself;
//! feature `conformance`, on top of all the others). Durable stores live in their own crates: `factum-sqlite`
//! (embedded, the default) and `factum-postgres`.
//!
//! ## Features
//!
//! The core (events, states, decisions, the engine, lanes, listeners, the in-memory
//! store, the catalog and its analysis) has no feature; the optional parts do:
//!
//! - `describe` (default): `Catalog::describe`, `Catalog::document` and the `describe`
//!   command (`catalog::cli`), the model as Markdown tables (pulls `comfy-table`).
//! - `inventory` (default): `Catalog::from_inventory`, the catalog of every type the
//!   macros registered in the linked crates (pulls `inventory`); without it the macros
//!   register nothing, and the catalog is built with [`Catalog::new`] and its builder.
//! - `msgpack`: [`Codec::MessagePack`] payloads (pulls `rmp-serde`). Without it the
//!   variant is still there, so stores hold and copy MessagePack events, but encoding
//!   one is an [`EncodeError`](model::EncodeError) and decoding one a [`DecodeError`]
//!   naming its position and type ([`Codec::is_available`]).
//! - `testing`: the given/when/then harness, for your dev-dependencies (pulls `similar`).
//! - `conformance`: the store conformance suite, for a store's own tests (turns on
//!   `msgpack`).

pub mod catalog;
pub mod decide;
mod error_chain;
pub mod lanes;
pub mod listen;
pub mod model;
#[cfg(test)]
mod module_order;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
// Last, above every other module: the suite drives stores through the engine, lanes and
// listeners.
#[cfg(feature = "conformance")]
pub mod conformance;

pub use catalog::Catalog;
pub use decide::{
    Context, Decide, DecideError, Decision, DecisionMeta, Engine, EngineStats, Exclusions,
    LoadError, Outcome, RetryPolicy, SnapshotPolicy, State, StateId, StateSet,
};
pub use error_chain::ErrorChain;
pub use factum_macros::{Decision, State, events, fold, listener};
pub use model::{
    AppendCondition, Codec, DecodeError, Event, EventSet, Metadata, NewEvent, Position, Query,
    QueryItem, StoredEvent, Tag, TagValue, TagValues, Upcaster,
};
pub use store::{
    AnyStore, AppendError, AppendRequest, Appended, EventStore, MemoryStore, PartitionLocks,
    ReadOptions, Snapshot, SnapshotStore, StoreError, StoreLayer, Unstorable,
};

/// The names most applications need: `use factum::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Codec, Decide, DecideError, Decision, Engine, Event as _, EventSet, EventStore,
        MemoryStore, NewEvent, Position, Query, QueryItem, ReadOptions, State, StateId as _,
        StateSet as _, StoredEvent, Tag,
    };
}

/// Items the generated code names. Not a public API.
#[doc(hidden)]
#[path = "macro_support.rs"]
pub mod __private;

/// A catalog registration the macros emit: an `inventory::submit!` with the feature
/// `inventory`, nothing without it. Not a public API.
#[cfg(feature = "inventory")]
#[doc(hidden)]
#[macro_export]
macro_rules! __submit {
    ($($entry:tt)*) => {
        $crate::__private::inventory::submit! { $($entry)* }
    };
}

/// A catalog registration the macros emit: an `inventory::submit!` with the feature
/// `inventory`, nothing without it. Not a public API.
#[cfg(not(feature = "inventory"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __submit {
    ($($entry:tt)*) => {};
}
