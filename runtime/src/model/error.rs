use thiserror::Error;

use super::Position;

/// A stored event that the application cannot turn back into a typed event.
///
/// It always names the event's position and type, so the bad record can be found.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot decode event {event_type} (v{version}) at {position}: {reason}")]
pub struct DecodeError {
    /// Where the event is in the log.
    pub position: Position,
    /// The stored type name.
    pub event_type: String,
    /// The stored schema version.
    pub version: u32,
    /// What went wrong.
    pub reason: DecodeReason,
}

/// Why a stored event did not decode.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeReason {
    /// The type name is not one this event set knows.
    #[error("unknown event type (expected one of: {})", expected.join(", "))]
    UnknownType {
        /// The type names that were expected.
        expected: Vec<&'static str>,
    },
    /// The schema version is not the one the application knows.
    #[error("schema version {stored} but the application knows version {known}")]
    Version {
        /// The version found in the store.
        stored: u32,
        /// The version of the Rust type.
        known: u32,
    },
    /// The stored record itself is damaged (a column a store cannot read: an unknown
    /// codec, a malformed tag list, a missing payload); the message says which.
    #[error("the stored record is damaged: {0}")]
    Corrupt(String),
    /// The payload bytes do not decode into the Rust type.
    #[error("payload does not decode: {0}")]
    Payload(PayloadError),
}

/// A payload that does not decode; the message comes from the codec.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

/// An event that could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("cannot encode event {event_type}: {reason}")]
pub struct EncodeError {
    /// The event type name.
    pub event_type: String,
    /// Why not.
    pub reason: EncodeReason,
}

impl EncodeError {
    /// The field the error is about, from the event type down (as in
    /// `SeatPriced.prices[2].amount`), when the codec's reader would refuse a value.
    pub fn path(&self) -> Option<&str> {
        match &self.reason {
            EncodeReason::NonFinite { path, .. } | EncodeReason::TooDeep { path, .. } => Some(path),
            EncodeReason::Codec(_) | EncodeReason::Unavailable(_) => None,
        }
    }
}

/// Why an event could not be encoded.
///
/// A payload is refused when its codec would write it but could not read it back: a
/// decision that committed it would make every later load of its state fail.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeReason {
    /// A NaN or an infinity in a JSON payload: JSON has no such numbers (serde_json
    /// writes `null`, which no float reads back). MessagePack holds them.
    #[error("{path} is {value}, which a JSON payload cannot hold")]
    NonFinite {
        /// The field, from the event type down (`SeatPriced.prices[2].amount`).
        path: String,
        /// `NaN`, `inf` or `-inf`.
        value: &'static str,
    },
    /// Arrays and maps nested deeper than the codec's reader accepts (127 levels for
    /// JSON, 1,023 for MessagePack).
    #[error("{path} is nested {depth} levels deep, past the {limit} the {codec} reader accepts")]
    TooDeep {
        /// Where the nesting went too deep, from the event type down.
        path: String,
        /// The levels of arrays and maps there.
        depth: usize,
        /// The most the reader accepts.
        limit: usize,
        /// The codec's name.
        codec: &'static str,
    },
    /// The codec itself failed (a map key JSON cannot write, a `Serialize` impl that
    /// returned an error); the message is the codec's.
    #[error("{0}")]
    Codec(String),
    /// The codec is not built into this factum: its cargo feature is off
    /// ([`Codec::feature`](super::Codec::feature) names it).
    #[error("{}", super::codec::unavailable(*.0))]
    Unavailable(super::Codec),
}
