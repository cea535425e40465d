use serde::{Serialize, de::DeserializeOwned};

use super::{EncodeError, PayloadError};

/// How an event payload is written to bytes.
///
/// Each payload records its codec, so a store can hold events written with different
/// codecs and still read every one of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// JSON through `serde_json`: readable, the default.
    #[default]
    Json,
}

impl Codec {
    /// The codec's stable name, as stores record it.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
        }
    }

    /// The codec with this stable name.
    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "json" => Some(Codec::Json),
            _ => None,
        }
    }

    /// Encodes a value into a payload.
    pub fn encode<T: Serialize>(self, event_type: &str, value: &T) -> Result<Payload, EncodeError> {
        let bytes = match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| EncodeError {
                event_type: event_type.to_owned(),
                reason: e.to_string(),
            })?,
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
        }
    }
}
