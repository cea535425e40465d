//! What a `#[factum::fold]` handler takes: one event type, or a whole set of them.

use crate::model::{Event, EventSet};

/// The event argument of a fold handler: an event struct, or a group's enum
/// (`shop::CouponEvent`) or a module's `Event` enum, which the handler then takes whole
/// — the form of an event-sourced aggregate, which folds every event of its stream in
/// one `match`.
///
/// Implemented for every [`Event`], and by `#[factum::events]` for the enums it
/// generates.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a factum event type or event set",
    label = "not an event struct, group enum or module `Event` enum",
    note = "a fold handler takes an event struct declared in a `#[factum::events]` module, or a group's enum (`shop::CouponEvent` for `#[group(Coupon)]`) or the module's `shop::Event` to fold all of its types in one method"
)]
pub trait Foldable: EventSet {
    /// The stored type names the handler is called for: the state's query types.
    const FOLDED_TYPES: &'static [&'static str];
    /// The tag keys every one of those types carries: what the state may have as ids.
    const COMMON_TAG_KEYS: &'static [&'static str];
    /// Whether it is a set of several types (an enum), not one event struct: only for
    /// the wording of compile-time errors.
    const IS_SET: bool;
    /// `false` when a type in it has an error the events macro already reported: the
    /// fold's compile-time checks then stay quiet about it.
    const CHECKED: bool = true;
}

impl<E: Event> Foldable for E {
    const FOLDED_TYPES: &'static [&'static str] = &[E::TYPE];
    const COMMON_TAG_KEYS: &'static [&'static str] = E::TAG_KEYS;
    const IS_SET: bool = false;
    const CHECKED: bool = !E::MACRO_REPORTED_ERROR;
}

/// The total length of `lists`, at compile time: the length of [`concat_types`]'s array.
#[doc(hidden)]
pub const fn total_len(lists: &[&[&str]]) -> usize {
    let (mut i, mut n) = (0, 0);
    while i < lists.len() {
        n += lists[i].len();
        i += 1;
    }
    n
}

/// `lists` one after another, at compile time: a fold's types from its handlers'.
/// `N` is their [`total_len`]; past it, items are dropped, and short of it, the rest is
/// `""` (neither happens in generated code, which computes `N` from the same lists).
#[doc(hidden)]
pub const fn concat_types<const N: usize>(lists: &[&[&'static str]]) -> [&'static str; N] {
    let mut out = [""; N];
    let (mut i, mut n) = (0, 0);
    while i < lists.len() {
        let mut j = 0;
        while j < lists[i].len() && n < N {
            out[n] = lists[i][j];
            n += 1;
            j += 1;
        }
        i += 1;
    }
    out
}

/// Whether `list` shares an item with any of `lists`, at compile time: a handler whose
/// types an earlier handler of the fold already takes.
#[doc(hidden)]
pub const fn shares_any(lists: &[&[&str]], list: &[&str]) -> bool {
    let mut i = 0;
    while i < list.len() {
        if super::const_lists::any_contains(lists, list[i]) {
            return true;
        }
        i += 1;
    }
    false
}

/// The typed value of a stored event of `T`'s folded types: what a generated fold passes
/// its handler. (`T::from_stored` cannot be named through `Foldable`.)
#[doc(hidden)]
pub fn decode_folded<T: Foldable>(
    event: &crate::model::StoredEvent,
) -> Result<T, crate::model::DecodeError> {
    T::from_stored(event)
}

/// The types a state's query names: its handlers' `types`, or none (every type) when it
/// has an `#[any]` handler. What exclusions can remove from it, at compile time.
#[doc(hidden)]
pub const fn query_types(types: &'static [&'static str], any: bool) -> &'static [&'static str] {
    if any { &[] } else { types }
}

/// Whether one of `lists` (the query types of a decision's states, see
/// [`query_types`]) is empty: a state that reads every type, whose query no exclusion
/// can narrow.
#[doc(hidden)]
pub const fn reads_every_type(lists: &[&[&str]]) -> bool {
    let mut i = 0;
    while i < lists.len() {
        if lists[i].is_empty() {
            return true;
        }
        i += 1;
    }
    false
}
