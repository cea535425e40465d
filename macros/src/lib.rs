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
/// `#[tag]` (key = field name) or `#[tag("key")]`.
#[proc_macro_attribute]
pub fn events(args: TokenStream, input: TokenStream) -> TokenStream {
    events::run(args.into(), input.into()).into()
}

/// Turns a state's impl block of handlers into its fold.
///
/// Every method is a handler `fn name(&mut self, event: &EventType)`, optionally with a
/// second argument `&factum::StoredEvent`. The handlers' types become the state's query
/// types; each must carry every `#[id]` tag of the state (checked at compile time).
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
/// default (`#[state(constructor = false)]` to skip it, `#[state(name = "..")]` to rename).
#[proc_macro_derive(State, attributes(id, state))]
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
