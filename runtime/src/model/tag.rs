use std::fmt;

use serde::{Deserialize, Serialize};

/// A `key:value` pair naming an entity an event concerns, such as `coupon:SPRING24`.
///
/// Events carry tags; states and queries select events by them.
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
