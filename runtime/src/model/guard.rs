//! Refusing, while a payload is written, what its codec's reader would not give back.
//!
//! serde_json writes a NaN or an infinity as `null` without an error, and its reader
//! refuses JSON nested 128 levels deep; rmp_serde's reader refuses 1,024 levels. A
//! payload like that encodes, commits, and then fails every load of its state for good.
//! So the codec's serializer is wrapped in [`Guard`], which forwards every call and
//! checks each float and each level of nesting on the way: one walk, the one that writes
//! the bytes, and nothing allocated unless a value is refused (then the field's path is
//! built from the stack of borrowed [`Path`] steps).

mod compound;
mod serializer;

use std::cell::Cell;

use serde::Serialize;

use super::{Codec, EncodeReason};
use serializer::Guard;

/// What a codec's reader accepts.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    /// The codec's name, for errors.
    codec: &'static str,
    /// Whether NaN and the infinities are refused (JSON cannot write them).
    finite_floats: bool,
    /// The most levels of arrays and maps the reader accepts.
    max_depth: usize,
    /// Whether bytes are written as an array of numbers (a level of nesting).
    bytes_nest: bool,
    /// Whether a unit struct is written as an empty array (a level of nesting).
    unit_struct_nests: bool,
}

impl Limits {
    /// The limits of `codec`'s reader, measured on the versions factum builds with.
    pub(super) fn of(codec: Codec) -> Limits {
        match codec {
            // serde_json's reader counts every `[` and `{` against a budget of 128 and
            // refuses the one that exhausts it.
            Codec::Json => Limits {
                codec: "JSON",
                finite_floats: true,
                max_depth: 127,
                bytes_nest: true,
                unit_struct_nests: false,
            },
            // rmp_serde's reader counts arrays, maps and extensions against a depth of
            // 1,024 and refuses the one that exhausts it; it holds every float bit for
            // bit, NaN payloads included.
            Codec::MessagePack => Limits {
                codec: "MessagePack",
                finite_floats: false,
                max_depth: 1_023,
                bytes_nest: false,
                unit_struct_nests: true,
            },
        }
    }
}

/// The state one encode shares between its [`Guard`]s: the limits and the first refusal.
struct Shared {
    limits: Limits,
    refusal: Cell<Option<EncodeReason>>,
}

/// One step from a value to a field inside it.
#[derive(Clone, Copy)]
enum Step<'a> {
    /// The value itself, named by its event type.
    Root(&'a str),
    /// A struct field (of a struct or a struct variant).
    Field(&'static str),
    /// An element of a sequence or tuple.
    Index(usize),
    /// The value of a map entry under this key.
    Key(&'a dyn KeyText),
    /// The value of an enum variant.
    Variant(&'static str),
}

/// Where a value is: a step, and the path to the value holding it (on the stack).
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    /// The variant of a tuple or struct variant, between the parent and the step.
    variant: Option<&'static str>,
    step: Step<'a>,
}

impl Path<'_> {
    /// The path as text, from the root: `SeatPriced.prices[2].amount`.
    fn render(&self) -> String {
        let mut steps = Vec::new();
        let mut at = Some(self);
        while let Some(path) = at {
            steps.push(path.step);
            if let Some(variant) = path.variant {
                steps.push(Step::Variant(variant));
            }
            at = path.parent;
        }
        let mut text = String::new();
        for step in steps.iter().rev() {
            match step {
                Step::Root(name) => text.push_str(name),
                Step::Field(name) | Step::Variant(name) => {
                    text.push('.');
                    text.push_str(name);
                }
                Step::Index(index) => text.push_str(&format!("[{index}]")),
                Step::Key(key) => {
                    text.push('[');
                    text.push_str(&key.text());
                    text.push(']');
                }
            }
        }
        text
    }
}

/// A map key, rendered only when a path through it is reported.
trait KeyText {
    fn text(&self) -> String;
}

/// A borrowed map key of any serializable type.
struct KeyRef<'a, K: ?Sized>(&'a K);

impl<K: Serialize + ?Sized> KeyText for KeyRef<'_, K> {
    fn text(&self) -> String {
        serde_json::to_string(self.0).unwrap_or_else(|_| "?".to_owned())
    }
}

impl KeyText for String {
    fn text(&self) -> String {
        self.clone()
    }
}

/// Serializes `value` into `serializer`, refusing what the reader of `codec` would not
/// give back. `Err(Ok(reason))` is a refusal, `Err(Err(e))` the codec's own error.
pub(super) fn serialize<T, S>(
    value: &T,
    serializer: S,
    codec: Codec,
    root: &str,
) -> Result<S::Ok, Result<EncodeReason, S::Error>>
where
    T: Serialize + ?Sized,
    S: serde::Serializer,
{
    let shared = Shared {
        limits: Limits::of(codec),
        refusal: Cell::new(None),
    };
    let path = Path {
        parent: None,
        variant: None,
        step: Step::Root(root),
    };
    let result = value.serialize(Guard::new(serializer, &shared, &path, 0));
    // A refusal stands even if a `Serialize` impl swallowed the error it raised.
    match (shared.refusal.take(), result) {
        (Some(reason), _) => Err(Ok(reason)),
        (None, Ok(ok)) => Ok(ok),
        (None, Err(e)) => Err(Err(e)),
    }
}

#[cfg(test)]
mod tests;
