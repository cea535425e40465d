//! One stored event as one NATS message: subject, headers, payload.

use async_nats::HeaderMap;
use factum::{Codec, StoredEvent};

use super::{PublishError, PublishOptions};

/// The header carrying the event's id (`metadata.id`): JetStream drops a message whose
/// id it has seen within the stream's duplicate window.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// The header carrying the event's type name.
pub const EVENT_TYPE: &str = "Factum-Event-Type";
/// The header carrying the schema version the event was written with (the payload is
/// the stored version: consumers upcast older ones themselves).
pub const EVENT_VERSION: &str = "Factum-Event-Version";
/// The header carrying the event's position in the log (a decimal number).
pub const POSITION: &str = "Factum-Position";
/// The header carrying the event's correlation id, when it has one.
pub const CORRELATION_ID: &str = "Factum-Correlation-Id";
/// The header carrying the event's causation id, when it has one.
pub const CAUSATION_ID: &str = "Factum-Causation-Id";
/// The header naming the payload's format: `application/json`, or with
/// [`PayloadFormat::Stored`] the store's codec (`application/msgpack`).
pub const CONTENT_TYPE: &str = "Content-Type";

/// How the event's payload is put in the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PayloadFormat {
    /// JSON, whatever the codec the event was stored with (`Content-Type:
    /// application/json`): readable from any language and with the `nats` CLI. JSON
    /// payloads are sent as stored; MessagePack ones are converted
    /// ([`factum::model::Payload::decode_value`]), and one that JSON cannot express (a
    /// map with non-string keys, raw bytes) is a permanent failure: its event becomes a
    /// dead letter. Converting needs factum's `msgpack` feature in the application's
    /// build; without it every MessagePack event is such a failure.
    #[default]
    Json,
    /// The bytes as stored, with the codec in `Content-Type` (`application/json` or
    /// `application/msgpack`): no conversion, no failure.
    Stored,
}

/// A message ready to publish.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    /// `<prefix>.<event type>`.
    pub subject: String,
    /// Id, type, version, position, correlation and causation, content type.
    pub headers: HeaderMap,
    /// The payload.
    pub payload: Vec<u8>,
}

/// The content type of a payload written by `codec`.
fn content_type(codec: Codec) -> String {
    match codec {
        Codec::Json => "application/json".to_owned(),
        Codec::MessagePack => "application/msgpack".to_owned(),
        other => format!("application/x-factum-{}", other.name()),
    }
}

/// The message that publishes `event` under `options`.
pub(crate) fn message(
    options: &PublishOptions,
    event: &StoredEvent,
) -> Result<Outgoing, PublishError> {
    let (payload, content_type) = match (options.payload, event.payload.codec) {
        (PayloadFormat::Stored, codec) | (PayloadFormat::Json, codec @ Codec::Json) => {
            (event.payload.bytes.clone(), content_type(codec))
        }
        (PayloadFormat::Json, _) => {
            let error = |source| PublishError::Payload {
                position: event.position,
                event_type: event.event_type.clone(),
                source,
            };
            let value = event.payload.decode_value().map_err(error)?;
            let bytes = serde_json::to_vec(&value)
                .map_err(|e| error(factum::model::PayloadError(e.to_string())))?;
            (bytes, content_type(Codec::Json))
        }
    };
    let mut headers = HeaderMap::new();
    headers.insert(MSG_ID, event.metadata.id.to_string());
    headers.insert(EVENT_TYPE, event.event_type.as_str());
    headers.insert(EVENT_VERSION, event.version.to_string());
    headers.insert(POSITION, event.position.0.to_string());
    if let Some(id) = event.metadata.correlation_id {
        headers.insert(CORRELATION_ID, id.to_string());
    }
    if let Some(id) = event.metadata.causation_id {
        headers.insert(CAUSATION_ID, id.to_string());
    }
    headers.insert(CONTENT_TYPE, content_type);
    Ok(Outgoing {
        subject: options.subject(&event.event_type),
        headers,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use factum::{Metadata, NewEvent, Position};

    use super::*;

    fn event(codec: Codec) -> StoredEvent {
        let payload = codec
            .encode(
                "Opened",
                &serde_json::json!({"account": "a-1", "limit": 10}),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let mut metadata = Metadata::new();
        metadata.correlation_id = Some(metadata.id);
        StoredEvent::record(
            NewEvent {
                event_type: "Opened".into(),
                version: 2,
                tags: vec![],
                payload,
                metadata,
                recorded_at: None,
            },
            Position(42),
        )
    }

    fn header(message: &Outgoing, name: &str) -> Option<String> {
        message.headers.get(name).map(|v| v.as_str().to_owned())
    }

    #[test]
    fn headers_and_json_payload() {
        let options = PublishOptions::new("S", "app.events");
        for codec in [Codec::Json, Codec::MessagePack] {
            let event = event(codec);
            let message = message(&options, &event).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(message.subject, "app.events.Opened");
            assert_eq!(
                header(&message, MSG_ID),
                Some(event.metadata.id.to_string())
            );
            assert_eq!(header(&message, EVENT_TYPE).as_deref(), Some("Opened"));
            assert_eq!(header(&message, EVENT_VERSION).as_deref(), Some("2"));
            assert_eq!(header(&message, POSITION).as_deref(), Some("42"));
            assert_eq!(
                header(&message, CORRELATION_ID),
                Some(event.metadata.id.to_string())
            );
            assert_eq!(header(&message, CAUSATION_ID), None);
            assert_eq!(
                header(&message, CONTENT_TYPE).as_deref(),
                Some("application/json")
            );
            let value: serde_json::Value =
                serde_json::from_slice(&message.payload).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(value, serde_json::json!({"account": "a-1", "limit": 10}));
        }
    }

    #[test]
    fn stored_payload_keeps_the_codec() {
        let options = PublishOptions {
            payload: PayloadFormat::Stored,
            ..PublishOptions::new("S", "app")
        };
        let event = event(Codec::MessagePack);
        let message = message(&options, &event).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(message.payload, event.payload.bytes);
        assert_eq!(
            header(&message, CONTENT_TYPE).as_deref(),
            Some("application/msgpack")
        );
    }
}
