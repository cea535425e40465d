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
    /// What the codec said.
    pub reason: String,
}
