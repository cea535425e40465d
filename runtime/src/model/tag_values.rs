//! `#[tag(each)]`: one tag per element of a collection field.

use std::collections::{BTreeSet, HashSet, VecDeque};

use super::{Tag, TagValue};

/// A collection whose every element is a [`TagValue`]: the type of a `#[tag(each)]`
/// field, which gives the event one tag per element.
///
/// Implemented for the standard collections of tag values: `Vec`, slices, arrays,
/// `Box<[T]>`, `VecDeque`, `HashSet`, `BTreeSet`, and `Option` (zero or one tag).
/// Implement it for a collection of your own by calling [`TagValue::tag_value`] on
/// each element.
///
/// ```
/// use std::collections::BTreeSet;
/// use factum::{Tag, TagValues};
///
/// let mut tags = vec![Tag::new("order", "o1")];
/// BTreeSet::from(["p2", "p1"]).push_tags("product", &mut tags);
/// assert_eq!(tags, [Tag::new("order", "o1"), Tag::new("product", "p1"), Tag::new("product", "p2")]);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a collection of tag values, so `#[tag(each)]` cannot tag one per element",
    label = "not a collection of tag values",
    note = "`#[tag(each)]` gives one tag per element of a `Vec`, slice, array, `VecDeque`, `HashSet`, `BTreeSet` or `Option` whose elements implement `Display`, or a collection that implements `factum::TagValues`; for a field that is one value, write `#[tag]` without `each`"
)]
pub trait TagValues {
    /// Appends the tag `key:<element>` for each element, in iteration order (repeats
    /// included: the event's tags are deduplicated as a whole).
    fn push_tags(&self, key: &str, tags: &mut Vec<Tag>);
}

/// One tag per item of `values`.
fn push_all<'a, T: TagValue + 'a>(
    values: impl IntoIterator<Item = &'a T>,
    key: &str,
    tags: &mut Vec<Tag>,
) {
    for value in values {
        tags.push(Tag {
            key: key.to_owned(),
            value: value.tag_value(),
        });
    }
}

// One impl per collection, not a blanket impl over `IntoIterator`: for a type that is no
// collection, the compiler then reports this trait's own message, not an iterator bound.
impl<T: TagValue> TagValues for [T] {
    fn push_tags(&self, key: &str, tags: &mut Vec<Tag>) {
        push_all(self, key, tags);
    }
}

impl<T: TagValue, const N: usize> TagValues for [T; N] {
    fn push_tags(&self, key: &str, tags: &mut Vec<Tag>) {
        push_all(self, key, tags);
    }
}

impl<T: TagValue> TagValues for Vec<T> {
    fn push_tags(&self, key: &str, tags: &mut Vec<Tag>) {
        push_all(self, key, tags);
    }
}

impl<T: TagValue> TagValues for Box<[T]> {
    fn push_tags(&self, key: &str, tags: &mut Vec<Tag>) {
        push_all(self, key, tags);
    }
}

impl<T: TagValue> TagValues for VecDeque<T> {
    fn push_tags(&self, key: &str, tags: &mut Vec<Tag>) {
        push_all(self, key, tags);
    }
}

impl<T: TagValue, S> TagValues for HashSet<T, S> {
    fn push_tags(&self, key: &str, tags: &mut Vec<Tag>) {
        push_all(self, key, tags);
    }
}

impl<T: TagValue> TagValues for BTreeSet<T> {
    fn push_tags(&self, key: &str, tags: &mut Vec<Tag>) {
        push_all(self, key, tags);
    }
}

impl<T: TagValue> TagValues for Option<T> {
    fn push_tags(&self, key: &str, tags: &mut Vec<Tag>) {
        push_all(self, key, tags);
    }
}

/// Drops repeated tags, keeping the first occurrence of each in place: what the
/// generated `EventSet::tags` does when two tag fields share a key or one is `each`.
#[doc(hidden)]
pub fn dedup_tags(tags: &mut Vec<Tag>) {
    super::tag::dedup(tags);
}
