use serde::{Serialize, de::DeserializeOwned};

use super::{EncodeError, PayloadError};

/// How an event payload is written to bytes.
///
/// Each payload records its codec, so a store can hold events written with different
/// codecs and still read every one of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// JSON through `serde_json`: readable, the default (a JSONB column in PostgreSQL).
    #[default]
    Json,
    /// MessagePack through `rmp-serde`, fields by name: compact and fast, still
    /// self-describing, so upcasters and renamed fields work as with JSON — except on
    /// payloads JSON cannot express (maps with non-string keys, raw bytes), which an
    /// upcaster cannot read (a decode error names the event).
    MessagePack,
}

impl Codec {
    /// The codec's stable name, as stores record it.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::MessagePack => "msgpack",
        }
    }

    /// The codec with this stable name.
    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "json" => Some(Codec::Json),
            "msgpack" => Some(Codec::MessagePack),
            _ => None,
        }
    }

    /// Encodes a value into a payload.
    pub fn encode<T: Serialize + ?Sized>(
        self,
        event_type: &str,
        value: &T,
    ) -> Result<Payload, EncodeError> {
        let error = |reason: String| EncodeError {
            event_type: event_type.to_owned(),
            reason,
        };
        let bytes = match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| error(e.to_string()))?,
            // Named fields, so a payload decodes into a JSON value an upcaster can edit.
            Codec::MessagePack => {
                rmp_serde::to_vec_named(value).map_err(|e| error(e.to_string()))?
            }
        };
        Ok(Payload { codec: self, bytes })
    }
}

/// An encoded event payload and the codec that wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// The codec that wrote `bytes`.
    pub codec: Codec,
    /// The encoded payload.
    pub bytes: Vec<u8>,
}

impl Payload {
    /// Decodes the payload into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, PayloadError> {
        match self.codec {
            Codec::Json => {
                serde_json::from_slice(&self.bytes).map_err(|e| PayloadError(e.to_string()))
            }
            Codec::MessagePack => {
                rmp_serde::from_slice(&self.bytes).map_err(|e| PayloadError(e.to_string()))
            }
        }
    }

    /// Decodes the payload into a JSON value, whatever its codec: what upcasters edit.
    pub fn decode_value(&self) -> Result<serde_json::Value, PayloadError> {
        self.decode()
    }
}
