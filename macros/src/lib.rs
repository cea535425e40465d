//! Procedural macros of [factum](https://docs.rs/factum). Use them through the `factum`
//! crate, which re-exports them; the generated code names only `::factum` paths.
//!
//! Each macro runs three steps in three files: `model` parses the input into a plain
//! model, `check` validates it and records every error at its span, `expand` generates
//! code from the checked model. On error a macro still emits the user's item (and a
//! neutral fallback impl where that prevents follow-on errors) plus all the errors.
//!
//! ```
//! use factum::prelude::*;
//!
//! #[factum::events]
//! pub mod shop {
//!     #[group(Coupon)]
//!     pub struct CouponIssued { #[tag] pub coupon: String, pub uses: u32 }
//! }
//!
//! #[derive(State, Default)]
//! pub struct Coupon { #[id] pub coupon: String, pub uses: u32 }
//!
//! #[factum::fold]
//! impl Coupon {
//!     fn issued(&mut self, e: &shop::CouponIssued) { self.uses = e.uses }
//! }
//!
//! assert_eq!(<shop::CouponIssued as factum::Event>::TAG_KEYS, &["coupon"]);
//! assert_eq!(<shop::CouponEvent as EventSet>::TYPES, &["CouponIssued"]);
//! assert_eq!(<Coupon as factum::State>::TYPES, &["CouponIssued"]);
//! assert_eq!(Coupon::new("S1").coupon, "S1");
//! ```

mod attr;
mod decision;
mod errors;
mod events;
#[cfg(test)]
mod expansion_tests;
mod fold;
mod handler;
mod listener;
mod spans;
mod state;
mod tag_key;
mod type_list;

use proc_macro::TokenStream;

/// Turns an inline module of event structs into event types.
///
/// Each struct gets `factum::Event` (type name, schema version, tag keys), serde and the
/// common derives; the module gets an `Event` enum of all its structs and one
/// `<Group>Event` enum per `#[group(Group)]`, with `From`/`TryFrom` between them.
///
/// On structs: `#[group(A, B)]`, `#[event(name = "...", version = N)]`. On fields:
/// `#[tag]` (key = field name) or `#[tag("key")]`; `#[tag(each)]` or
/// `#[tag("key", each)]` on a collection field (`Vec`, slice, array, `VecDeque`,
/// `HashSet`, `BTreeSet`, `Option`, or your own collection implementing
/// `factum::TagValues`) gives one tag per element.
///
/// An event's tags are a set: two fields giving the same tag, or a collection holding a
/// value twice, tag the event once (first occurrence first). An `each` key counts as
/// carried for the compile-time checks of states (`#[id] product` may fold an event with
/// `#[tag("product", each)]`), but an event whose collection is empty has no tag of that
/// key at run time, so it matches no state by that id.
///
/// ```
/// use factum::prelude::*;
///
/// #[factum::events]
/// pub mod shop {
///     pub struct OrderPlaced {
///         #[tag] pub order: String,
///         #[tag("product", each)] pub products: Vec<String>,
///     }
///     pub struct UsernameChanged {
///         #[tag("username")] pub old: String,
///         #[tag("username")] pub new: String,
///     }
/// }
///
/// let order = shop::OrderPlaced { order: "o1".into(), products: vec!["p1".into(), "p2".into(), "p1".into()] };
/// assert_eq!(order.tags(), [Tag::new("order", "o1"), Tag::new("product", "p1"), Tag::new("product", "p2")]);
/// assert_eq!(<shop::OrderPlaced as factum::Event>::TAG_KEYS, &["order", "product"]);
///
/// let same = shop::UsernameChanged { old: "ada".into(), new: "ada".into() };
/// assert_eq!(same.tags(), [Tag::new("username", "ada")]);
/// ```
#[proc_macro_attribute]
pub fn events(args: TokenStream, input: TokenStream) -> TokenStream {
    events::run(args.into(), input.into()).into()
}

/// Turns a state's impl block of handlers into its fold.
///
/// Every method is a handler `fn name(&mut self, event: &EventType)`, optionally with a
/// second argument `&factum::StoredEvent`. The handlers' types become the state's query
/// types; each must carry every `#[id]` tag of the state (checked at compile time).
///
/// A handler may also take a whole event set — a group's enum (`&shop::CouponEvent`) or
/// the module's `&shop::Event` — and is then called for every type in it: the form of an
/// event-sourced aggregate, folding every event of its group that carries its id, in one
/// exhaustive `match` (a new event in the group is a compile error until it is handled).
/// Every type of the set must carry the state's `#[id]` tags, and no type may be taken by
/// two handlers.
///
/// ```
/// use factum::prelude::*;
///
/// #[factum::events]
/// pub mod courses {
///     #[group(Course)]
///     pub struct CourseDefined { #[tag] pub course: String, pub capacity: u32 }
///     #[group(Course)]
///     pub struct StudentSubscribed { #[tag] pub course: String, #[tag] pub student: String }
/// }
/// use courses::CourseEvent;
///
/// #[derive(State, Default)]
/// pub struct Course { #[id] pub course: String, pub capacity: u32, pub students: u32 }
///
/// #[factum::fold]
/// impl Course {
///     fn apply(&mut self, event: &CourseEvent) {
///         match event {
///             CourseEvent::CourseDefined(e) => self.capacity = e.capacity,
///             CourseEvent::StudentSubscribed(_) => self.students += 1,
///         }
///     }
/// }
///
/// assert_eq!(<Course as State>::TYPES, <CourseEvent as EventSet>::TYPES);
/// assert_eq!(
///     State::query(&Course::new("c1")).to_string(),
///     "CourseDefined,StudentSubscribed[course:c1]"
/// );
/// ```
///
/// One method marked `#[any]`, `fn other(&mut self, stored: &factum::StoredEvent)`,
/// makes the state fold **every** event carrying its ids, whatever the type — types of
/// other modules, and types this code does not know (appended by another service, or
/// retired): its query names no type (`*[course:c1]`), so an append of any event with
/// its tags invalidates a decision on it. Typed handlers take their own types first; the
/// `#[any]` handler gets every other event as stored, and reads it through
/// `stored.decode::<T>()` or as JSON (`stored.payload.decode_value()`). `State::TYPES`
/// lists the typed handlers' types and `State::ANY_TYPE` is `true`. Such a state must
/// have an `#[id]` (without one it would read, and conflict with, the whole store: a
/// compile error), and an `exclude = [..]` cannot narrow it (also a compile error when
/// that is all the exclusion would do). Its handler reads the stored event, so a serial
/// lane treats it as it does a handler taking `&StoredEvent`.
///
/// ```
/// use factum::prelude::*;
///
/// #[factum::events]
/// pub mod courses {
///     pub struct CourseDefined { #[tag] pub course: String, pub capacity: u32 }
///     pub struct StudentSubscribed { #[tag] pub course: String, #[tag] pub student: String }
/// }
///
/// /// Everything that ever happened to one course, for an audit trail.
/// #[derive(State, Default)]
/// pub struct CourseHistory { #[id] pub course: String, pub capacity: u32, pub other: Vec<String> }
///
/// #[factum::fold]
/// impl CourseHistory {
///     fn defined(&mut self, e: &courses::CourseDefined) { self.capacity = e.capacity }
///     #[any]
///     fn other(&mut self, stored: &StoredEvent) { self.other.push(stored.event_type.clone()) }
/// }
///
/// assert!(<CourseHistory as State>::ANY_TYPE);
/// assert_eq!(<CourseHistory as State>::TYPES, ["CourseDefined"]);
/// assert_eq!(State::query(&CourseHistory::new("c1")).to_string(), "*[course:c1]");
///
/// let mut history = CourseHistory::new("c1");
/// let subscribed = courses::StudentSubscribed { course: "c1".into(), student: "ada".into() };
/// let event = StoredEvent::record(NewEvent::encode(&subscribed, Codec::Json).unwrap(), Position(1));
/// assert!(history.matches(&event));
/// history.apply(&event).unwrap();
/// assert_eq!(history.other, ["StudentSubscribed"]);
/// ```
#[proc_macro_attribute]
pub fn fold(args: TokenStream, input: TokenStream) -> TokenStream {
    fold::run(args.into(), input.into()).into()
}

/// Turns an impl block of handlers, one per event type, into a
/// `factum::listen::Listener`: its query is the handlers' types (restricted to the tags
/// a method returns with `tags = method`), its name `name = ".."` or the type's name.
///
/// A handler is `[async] fn name(&mut self, event: &EventType[, stored: &StoredEvent])`
/// returning nothing or `Result<(), E>` with `E: Into<HandlerError>`.
#[proc_macro_attribute]
pub fn listener(args: TokenStream, input: TokenStream) -> TokenStream {
    listener::run(args.into(), input.into()).into()
}

/// Derives `factum::StateId` for a state struct: `#[id]` / `#[id("key")]` fields become
/// the tags of its query, and `new(ids..)` builds it with every other field at its
/// `#[initial(expr)]` value or its default (`#[state(constructor = false)]` to skip it,
/// `#[state(name = "..")]` to rename).
///
/// It also compares states field by field (`StateId::same_start`), so every field must
/// be `PartialEq`: a serial lane's warm state or a snapshot stands in for the state a
/// decision built only when it was folded from an equal one.
#[proc_macro_derive(State, attributes(id, initial, state))]
pub fn derive_state(input: TokenStream) -> TokenStream {
    state::run(input.into()).into()
}

/// Derives `factum::Decision`: the concurrency metadata of a command.
///
/// `#[decision(partition = field, idempotency = field, exclude = [Types..],
/// emits = [Types..], retries = n, min_delay_ms = n, max_delay_ms = n, name = "..")]`,
/// every key optional.
#[proc_macro_derive(Decision, attributes(decision))]
pub fn derive_decision(input: TokenStream) -> TokenStream {
    decision::run(input.into()).into()
}
