//! The limits every store holds an event to, checked before anything is written, so that
//! every store accepts exactly the same events and a batch refuses only the request
//! carrying one past them ([`AppendError::Unstorable`](super::AppendError::Unstorable)).
//!
//! They come from PostgreSQL, the strictest store, and hold on every store (SQLite and
//! the in-memory one have no such limits of their own): an application that runs on one
//! store in its tests and on another in production meets the same refusals on both.
//!
//! | field | limit | why |
//! | --- | --- | --- |
//! | type name | [`MAX_TYPE_NAME_BYTES`], no NUL | the btree index on `(type, position)` |
//! | tag key, tag value | [`MAX_TAG_KEY_BYTES`], [`MAX_TAG_VALUE_BYTES`], no NUL | the GIN index on the tags |
//! | idempotency key | [`MAX_IDEMPOTENCY_KEY_BYTES`], no NUL | the btree primary key of the recorded keys |
//! | version | [`MAX_VERSION`] | an `integer` column |
//! | recorded_at | [`MIN_RECORDED_AT_MICROS`] to [`MAX_RECORDED_AT_MICROS`] | `timestamptz` and SQLite's microsecond integers |
//! | payload | [`MAX_PAYLOAD_BYTES`] | `jsonb`'s limit, one protocol message per group commit |
//! | JSON payload | JSON, UTF-8, nested at most as deep as `serde_json` reads (128) | a reader must decode what was written |
//!
//! PostgreSQL (15, 8 kB pages) refuses an index entry above 2,704 bytes in a btree and
//! 2,712 in a GIN index, after compression: random text fails from about 2,690 bytes,
//! while text that compresses well passes far longer (a megabyte of one letter still
//! fails, at 11 kB compressed). A limit that depended on how well a value compresses
//! would refuse one value and take a longer one, so the limits are on raw bytes, well
//! below the smallest failing size: a tag is stored as one element
//! `<key length>:<key>:<value>`, at most 2,054 bytes under these limits.
//!
//! No text field may hold the NUL character: PostgreSQL's `text` cannot. (A NUL inside a
//! JSON string, written `\u0000`, is fine: it is part of the payload's text, not a raw
//! NUL.)

use std::fmt;
use std::time::SystemTime;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use thiserror::Error;

use crate::model::{Codec, NewEvent, whole_micros};

/// The longest event type name, in bytes (UTF-8).
pub const MAX_TYPE_NAME_BYTES: usize = 1024;
/// The longest tag key, in bytes.
pub const MAX_TAG_KEY_BYTES: usize = 1024;
/// The longest tag value, in bytes.
pub const MAX_TAG_VALUE_BYTES: usize = 1024;
/// The longest recorded idempotency key (the part of
/// [`Metadata::idempotency_key`](crate::Metadata::idempotency_key) before its fingerprint,
/// see [`idempotency`](crate::model::idempotency)), in bytes; what follows it may add at
/// most 64 bytes more. A decision's recorded key is its name, `:` and its own key.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 1024;
/// The largest payload, in bytes (64 MiB): below what PostgreSQL's `jsonb` takes (256 MiB)
/// and SQLite's blobs (1 GB), so both take the same payloads, and small enough that a
/// group commit of several stays within one protocol message.
pub const MAX_PAYLOAD_BYTES: usize = 64 << 20;
/// The highest event version: PostgreSQL stores it in an `integer`.
pub const MAX_VERSION: u32 = i32::MAX as u32;
/// The earliest [`NewEvent::recorded_at`], in microseconds since the Unix epoch:
/// 4714-11-24 00:00 UTC BC, the earliest PostgreSQL's `timestamptz` holds.
pub const MIN_RECORDED_AT_MICROS: i64 = -210_866_803_200_000_000;
/// The latest [`NewEvent::recorded_at`], in microseconds since the Unix epoch: the most
/// SQLite's 64-bit integer holds (in 294247 AD).
pub const MAX_RECORDED_AT_MICROS: i64 = i64::MAX;

/// The part of an event that breaks a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// [`NewEvent::event_type`].
    TypeName,
    /// The key of one of [`NewEvent::tags`].
    TagKey,
    /// The value of one of [`NewEvent::tags`].
    TagValue,
    /// [`Metadata::idempotency_key`](crate::Metadata::idempotency_key).
    IdempotencyKey,
    /// [`NewEvent::payload`].
    Payload,
    /// [`NewEvent::version`].
    Version,
    /// [`NewEvent::recorded_at`].
    RecordedAt,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::TypeName => "type name",
            Field::TagKey => "tag key",
            Field::TagValue => "tag value",
            Field::IdempotencyKey => "idempotency key",
            Field::Payload => "payload",
            Field::Version => "version",
            Field::RecordedAt => "recorded_at",
        })
    }
}

/// What is wrong with the [`Field`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// Longer than the limit.
    TooLong {
        /// Its length in bytes.
        bytes: usize,
        /// The most allowed.
        limit: usize,
    },
    /// It holds a NUL character.
    Nul,
    /// It is empty (an idempotency key whose recorded part is empty would make every
    /// such append a duplicate of every other).
    Empty,
    /// A JSON payload that is not JSON (or not UTF-8, or nested deeper than the reader
    /// accepts): what the parser said.
    NotJson(String),
    /// A number above the limit.
    TooHigh {
        /// The value.
        value: u64,
        /// The most allowed.
        limit: u64,
    },
    /// A time outside [`MIN_RECORDED_AT_MICROS`]..=[`MAX_RECORDED_AT_MICROS`].
    OutOfRange(SystemTime),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::TooLong { bytes, limit } => {
                write!(f, "is {bytes} bytes long, above the limit of {limit} bytes")
            }
            Problem::Nul => f.write_str("contains a NUL character, which no store holds"),
            Problem::Empty => f.write_str("is empty"),
            Problem::NotJson(reason) => write!(f, "is not JSON: {reason}"),
            Problem::TooHigh { value, limit } => write!(f, "{value} is above the limit of {limit}"),
            Problem::OutOfRange(time) => write!(
                f,
                "{time:?} is outside the range every store holds (4714-11-24 BC to 294247 AD)"
            ),
        }
    }
}

/// An event that breaks one of the [limits](self) every store holds events to; nothing
/// of its append was written. Sending it again cannot succeed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("an event of type {} cannot be stored: its {field}{} {problem}", Shown(.event_type), TagOf(.tag_key.as_deref()))]
#[non_exhaustive]
pub struct Unstorable {
    /// The event's type name.
    pub event_type: String,
    /// What breaks the limit.
    pub field: Field,
    /// For a tag value, the key of its tag.
    pub tag_key: Option<String>,
    /// How.
    pub problem: Problem,
}

/// Checks `event` against every [limit](self), in the order of the table above; the
/// first broken one is the error.
///
/// ```
/// use factum::store::limits::{self, Field, Problem};
/// use factum::{Codec, NewEvent, Tag};
///
/// let event = NewEvent {
///     event_type: "Noted".into(),
///     version: 1,
///     tags: vec![Tag::new("note", "x".repeat(limits::MAX_TAG_VALUE_BYTES + 1))],
///     payload: Codec::Json.encode("Noted", &serde_json::json!({}))?,
///     metadata: Default::default(),
///     recorded_at: None,
/// };
/// let refused = limits::check(&event).unwrap_err();
/// assert_eq!(refused.field, Field::TagValue);
/// assert_eq!(refused.tag_key.as_deref(), Some("note"));
/// assert!(matches!(refused.problem, Problem::TooLong { bytes: 1025, limit: 1024 }));
/// # Ok::<(), factum::model::EncodeError>(())
/// ```
pub fn check(event: &NewEvent) -> Result<(), Unstorable> {
    let refuse = |field: Field, tag_key: Option<&str>, problem: Problem| Unstorable {
        event_type: event.event_type.clone(),
        field,
        tag_key: tag_key.map(str::to_owned),
        problem,
    };
    let text = |field: Field, tag_key: Option<&str>, text: &str, limit: usize| {
        if text.len() > limit {
            Err(refuse(
                field,
                tag_key,
                Problem::TooLong {
                    bytes: text.len(),
                    limit,
                },
            ))
        } else if text.contains('\0') {
            Err(refuse(field, tag_key, Problem::Nul))
        } else {
            Ok(())
        }
    };
    text(
        Field::TypeName,
        None,
        &event.event_type,
        MAX_TYPE_NAME_BYTES,
    )?;
    if event.version > MAX_VERSION {
        return Err(refuse(
            Field::Version,
            None,
            Problem::TooHigh {
                value: event.version.into(),
                limit: MAX_VERSION.into(),
            },
        ));
    }
    for tag in &event.tags {
        text(Field::TagKey, None, &tag.key, MAX_TAG_KEY_BYTES)?;
        text(
            Field::TagValue,
            Some(&tag.key),
            &tag.value,
            MAX_TAG_VALUE_BYTES,
        )?;
    }
    if let Some(key) = &event.metadata.idempotency_key {
        // The limit is on the recorded key, the part an index holds; a fingerprint after
        // the separator is a fixed 32 digits more, on the event only.
        let recorded = crate::model::idempotency::recorded_key(key);
        if recorded.is_empty() {
            return Err(refuse(Field::IdempotencyKey, None, Problem::Empty));
        }
        text(
            Field::IdempotencyKey,
            None,
            recorded,
            MAX_IDEMPOTENCY_KEY_BYTES,
        )?;
        text(
            Field::IdempotencyKey,
            None,
            key,
            MAX_IDEMPOTENCY_KEY_BYTES + 64,
        )?;
    }
    if let Some(time) = event.recorded_at
        && !recordable(time)
    {
        return Err(refuse(Field::RecordedAt, None, Problem::OutOfRange(time)));
    }
    if event.payload.bytes.len() > MAX_PAYLOAD_BYTES {
        return Err(refuse(
            Field::Payload,
            None,
            Problem::TooLong {
                bytes: event.payload.bytes.len(),
                limit: MAX_PAYLOAD_BYTES,
            },
        ));
    }
    if event.payload.codec == Codec::Json {
        json(&event.payload.bytes)
            .map_err(|reason| refuse(Field::Payload, None, Problem::NotJson(reason)))?;
    }
    Ok(())
}

/// Whether `time`, to the microsecond, lies within [`MIN_RECORDED_AT_MICROS`] and
/// [`MAX_RECORDED_AT_MICROS`].
fn recordable(time: SystemTime) -> bool {
    let micros = match whole_micros(time).duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_micros()).unwrap_or(i128::MAX),
        Err(before) => i128::try_from(before.duration().as_micros()).map_or(i128::MIN, |m| -m),
    };
    (i128::from(MIN_RECORDED_AT_MICROS)..=i128::from(MAX_RECORDED_AT_MICROS)).contains(&micros)
}

/// Why `bytes` is not one JSON document that `serde_json` reads back: not UTF-8 (also
/// inside strings, and no lone surrogate escape), no trailing data, nested at most as
/// deep as its reader accepts. Nothing is built: strings are checked in place.
fn json(bytes: &[u8]) -> Result<(), String> {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    Json::deserialize(&mut reader)
        .and_then(|Json| reader.end())
        .map_err(|e| e.to_string())
}

/// Any JSON value, read and dropped (unlike [`serde::de::IgnoredAny`], which skips strings
/// without checking their bytes or escapes).
struct Json;

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Json)
    }
}

impl<'de> Visitor<'de> for Json {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Json, E> {
        Ok(Json)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Json, E> {
        Ok(Json)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Json, E> {
        Ok(Json)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Json, E> {
        Ok(Json)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Json, E> {
        Ok(Json)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        while seq.next_element::<Json>()?.is_some() {}
        Ok(Json)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        while map.next_entry::<Json, Json>()?.is_some() {}
        Ok(Json)
    }
}

/// A type name in a message: whole up to 64 bytes, else its start and its length.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 64;
        if self.0.len() <= SHOWN {
            return write!(f, "{:?}", self.0);
        }
        let mut end = SHOWN;
        while !self.0.is_char_boundary(end) {
            end -= 1;
        }
        write!(f, "{:?}… ({} bytes)", &self.0[..end], self.0.len())
    }
}

/// " (of tag `<key>`)" for a tag value, nothing otherwise.
struct TagOf<'a>(Option<&'a str>);

impl fmt::Display for TagOf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(key) => write!(f, " (of tag {})", Shown(key)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
