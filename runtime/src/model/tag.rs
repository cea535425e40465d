use std::fmt;

use serde::{Deserialize, Serialize};

/// A `key:value` pair naming an entity an event concerns, such as `coupon:SPRING24`.
///
/// Events carry tags; states and queries select events by them. An event's tags are a
/// set: a tag given twice is stored once, where it first appeared (see
/// [`NewEvent::dedup_tags`](crate::NewEvent::dedup_tags)).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Tag {
    /// The tag key, such as `coupon`.
    pub key: String,
    /// The tag value, such as `SPRING24`.
    pub value: String,
}

impl Tag {
    /// A tag from a key and any value that renders as text.
    pub fn new(key: impl Into<String>, value: impl TagValue) -> Self {
        Tag {
            key: key.into(),
            value: value.tag_value(),
        }
    }

    /// Whether this tag has `key` and `value`, without allocating.
    pub fn is(&self, key: &str, value: &str) -> bool {
        self.key == key && self.value == value
    }
}

/// Drops repeated tags from `tags`, keeping the first occurrence of each in place.
pub(crate) fn dedup(tags: &mut Vec<Tag>) {
    // Events carry a handful of tags: comparing each with those before it beats hashing
    // until a list grows long.
    if tags.len() <= 16 {
        let mut n = 0;
        while n < tags.len() {
            if tags[..n].contains(&tags[n]) {
                tags.remove(n);
            } else {
                n += 1;
            }
        }
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(tags.len());
    tags.retain(|t| seen.insert(t.clone()));
}

/// `tags` without repeats (see [`dedup`]).
pub(crate) fn deduped(mut tags: Vec<Tag>) -> Vec<Tag> {
    dedup(&mut tags);
    tags
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.key, self.value)
    }
}

/// A value that can be the value half of a [`Tag`].
///
/// Implemented for everything that is [`Display`](fmt::Display), so tag fields can be
/// strings, numbers, UUIDs or your own newtypes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a tag value",
    label = "tag values are text",
    note = "a `#[tag]`, `#[id]`, `partition` or `idempotency` field needs a type that implements `Display` (a string, a number, a UUID, or a newtype with `impl Display`)"
)]
pub trait TagValue {
    /// The text of the tag value.
    fn tag_value(&self) -> String;

    /// Whether the text of the tag value equals `text`.
    fn tag_value_is(&self, text: &str) -> bool {
        self.tag_value() == text
    }
}

impl<T: fmt::Display + ?Sized> TagValue for T {
    fn tag_value(&self) -> String {
        self.to_string()
    }

    /// Compares while formatting, so matching a state's ids against every folded event
    /// allocates nothing.
    fn tag_value_is(&self, text: &str) -> bool {
        let mut cmp = Compare {
            rest: text,
            equal: true,
        };
        fmt::write(&mut cmp, format_args!("{self}")).is_ok() && cmp.equal && cmp.rest.is_empty()
    }
}

struct Compare<'a> {
    rest: &'a str,
    equal: bool,
}

impl fmt::Write for Compare<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        match self.rest.strip_prefix(s) {
            Some(rest) => {
                self.rest = rest;
                Ok(())
            }
            None => {
                self.equal = false;
                // Stop formatting early: the answer is known.
                Err(fmt::Error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keeps_the_first_occurrence_of_each_tag_in_place() {
        let t = |v: &str| Tag::new("k", v);
        assert_eq!(
            deduped(vec![t("2"), t("1"), t("2"), t("3"), t("1")]),
            [t("2"), t("1"), t("3")]
        );
        assert_eq!(deduped(Vec::new()), Vec::<Tag>::new());
        // Long lists take the hashing path, with the same result.
        let long: Vec<Tag> = (0..40).map(|n| t(&(n % 25).to_string())).collect();
        let expected: Vec<Tag> = (0..25).map(|n| t(&n.to_string())).collect();
        assert_eq!(deduped(long), expected);
    }
}
