use serde::{Serialize, de::DeserializeOwned};

use super::{EncodeError, EncodeReason, PayloadError, guard};

/// How an event payload is written to bytes.
///
/// Each payload records its codec, so a store can hold events written with different
/// codecs and still read every one of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// JSON through `serde_json`: readable, the default (a JSONB column in PostgreSQL).
    /// It has no NaN or infinity, so [`Codec::encode`] refuses them.
    #[default]
    Json,
    /// MessagePack through `rmp-serde`, fields by name: compact and fast, still
    /// self-describing, so upcasters and renamed fields work as with JSON — except on
    /// payloads JSON cannot express (maps with non-string keys, raw bytes, NaN and the
    /// infinities, which it holds exactly), which an upcaster cannot read (a decode
    /// error names the event).
    ///
    /// Encoding and decoding it need the `msgpack` feature. Without it the variant
    /// still exists, so a store still holds, reads and copies MessagePack events, but
    /// [`Codec::encode`] refuses with [`EncodeReason::Unavailable`] and decoding one
    /// fails with a [`DecodeError`](super::DecodeError) naming the event.
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

    /// Whether this build of factum can encode and decode this codec's payloads
    /// (MessagePack needs the `msgpack` feature).
    pub fn is_available(self) -> bool {
        match self {
            Codec::Json => true,
            Codec::MessagePack => cfg!(feature = "msgpack"),
        }
    }

    /// The cargo feature of factum this codec needs, if any.
    pub fn feature(self) -> Option<&'static str> {
        match self {
            Codec::Json => None,
            Codec::MessagePack => Some("msgpack"),
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
    ///
    /// Refuses, naming the field from `event_type` down (`SeatPriced.prices[2].amount`),
    /// what this codec writes but its reader would not give back: in JSON a NaN or an
    /// infinity (`f64` or `f32`, which JSON has no number for), and in either codec
    /// arrays and maps nested deeper than the reader accepts (127 levels for JSON, 1,023
    /// for MessagePack). Every finite float round-trips bit for bit in both. A codec this
    /// build cannot write ([`Codec::is_available`]) is refused with
    /// [`EncodeReason::Unavailable`].
    ///
    /// ```
    /// use factum::Codec;
    ///
    /// #[derive(serde::Serialize)]
    /// struct Price { amount: f64 }
    /// #[derive(serde::Serialize)]
    /// struct SeatPriced { prices: Vec<Price> }
    ///
    /// let priced = SeatPriced { prices: vec![Price { amount: 1.5 }, Price { amount: f64::NAN }] };
    /// let error = Codec::Json.encode("SeatPriced", &priced).unwrap_err();
    /// assert_eq!(error.path(), Some("SeatPriced.prices[1].amount"));
    /// // MessagePack holds NaN.
    /// # #[cfg(feature = "msgpack")]
    /// assert!(Codec::MessagePack.encode("SeatPriced", &priced).is_ok());
    /// ```
    pub fn encode<T: Serialize + ?Sized>(
        self,
        event_type: &str,
        value: &T,
    ) -> Result<Payload, EncodeError> {
        let mut bytes = Vec::with_capacity(128);
        let written = match self {
            Codec::Json => {
                let mut serializer = serde_json::Serializer::new(&mut bytes);
                guard::serialize(value, &mut serializer, self, event_type)
                    .map_err(|e| e.unwrap_or_else(|e| EncodeReason::Codec(e.to_string())))
            }
            // Named fields, so a payload decodes into a JSON value an upcaster can edit.
            #[cfg(feature = "msgpack")]
            Codec::MessagePack => {
                let mut serializer = rmp_serde::Serializer::new(&mut bytes).with_struct_map();
                guard::serialize(value, &mut serializer, self, event_type)
                    .map_err(|e| e.unwrap_or_else(|e| EncodeReason::Codec(e.to_string())))
            }
            #[cfg(not(feature = "msgpack"))]
            Codec::MessagePack => Err(EncodeReason::Unavailable(self)),
        };
        written.map_err(|reason| EncodeError {
            event_type: event_type.to_owned(),
            reason,
        })?;
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
    ///
    /// A payload of a codec this build cannot read ([`Codec::is_available`]) is an
    /// error that names the missing feature.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, PayloadError> {
        match self.codec {
            Codec::Json => {
                serde_json::from_slice(&self.bytes).map_err(|e| PayloadError(e.to_string()))
            }
            #[cfg(feature = "msgpack")]
            Codec::MessagePack => {
                rmp_serde::from_slice(&self.bytes).map_err(|e| PayloadError(e.to_string()))
            }
            #[cfg(not(feature = "msgpack"))]
            Codec::MessagePack => Err(PayloadError(unavailable(self.codec))),
        }
    }

    /// Decodes the payload into a JSON value, whatever its codec: what upcasters edit.
    pub fn decode_value(&self) -> Result<serde_json::Value, PayloadError> {
        self.decode()
    }
}

/// Why this build cannot read or write a payload of `codec`.
pub(super) fn unavailable(codec: Codec) -> String {
    match codec.feature() {
        Some(feature) => format!(
            "{} payloads need factum's `{feature}` feature, which this build lacks",
            codec.name()
        ),
        None => format!("{} payloads are not supported by this build", codec.name()),
    }
}
