//! Why publishing integration events failed.

use async_nats::jetstream::context::{
    CreateStreamError, GetStreamError, PublishError as NatsPublishError,
};
use factum::Position;
use factum::model::PayloadError;
use thiserror::Error;

/// Why a [`Publisher`](super::Publisher) could not be built or could not publish an
/// event, or a stream could not be set up.
///
/// Inside a subscription, [`PublishError::is_retryable`] decides whether the event is
/// retried ([`factum::listen::HandlerError::transient`]) or goes to the dead letters at
/// once ([`factum::listen::HandlerError::permanent`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The options are not usable (a stream name, a subject prefix, a duration).
    #[error("invalid publish options: {0}")]
    Options(String),
    /// No event type to publish: the catalog or list holds no `#[event(public)]` type.
    #[error("no public event type to publish: mark integration events with #[event(public)]")]
    NoPublicTypes,
    /// An event type name that cannot be a subject token (a space, `*`, `>`, an empty
    /// token).
    #[error("event type {event_type:?} cannot be part of a NATS subject")]
    InvalidEventType {
        /// The event type's name.
        event_type: String,
    },
    /// The stored payload could not be turned into JSON (a MessagePack payload JSON
    /// cannot express): publish it as stored with
    /// [`PayloadFormat::Stored`](super::PayloadFormat::Stored).
    #[error("event {event_type} at {position}: payload is not JSON-compatible")]
    Payload {
        /// The event's position.
        position: Position,
        /// The event's type.
        event_type: String,
        /// What the codec said.
        #[source]
        source: PayloadError,
    },
    /// JetStream did not acknowledge the message: the broker is down, timed out, had no
    /// stream for the subject, or refused it.
    #[error("publishing event at {position} to {subject} failed")]
    Publish {
        /// The subject.
        subject: String,
        /// The event's position.
        position: Position,
        /// The client's error.
        #[source]
        source: NatsPublishError,
    },
    /// The message was stored, but by another stream than the configured one: two
    /// streams' subjects overlap.
    #[error("event at {position} on {subject} was stored in stream {actual}, not {expected}")]
    WrongStream {
        /// The subject.
        subject: String,
        /// The event's position.
        position: Position,
        /// The configured stream.
        expected: String,
        /// The stream that acknowledged it.
        actual: String,
    },
    /// The stream could not be read, created or updated.
    #[error("setting up stream {stream} failed")]
    Stream {
        /// The stream's name.
        stream: String,
        /// The client's error.
        #[source]
        source: StreamErrorSource,
    },
}

/// The client error behind [`PublishError::Stream`].
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StreamErrorSource {
    /// Looking the stream up or deleting it failed.
    #[error(transparent)]
    Get(#[from] GetStreamError),
    /// Creating or updating it failed.
    #[error(transparent)]
    Create(#[from] CreateStreamError),
}

impl PublishError {
    /// Whether trying again may help: a broker that is down, slow or still starting
    /// (including "no stream for the subject", which a restarting server answers until
    /// JetStream is up), or a stream that is out of storage. A message larger than the
    /// server's `max_payload` or the stream's `max_msg_size` (JetStream error 10054) or
    /// headers larger than its limit (10097), a sealed stream (10109), a payload that is
    /// not JSON-compatible, or a message stored by the wrong stream will fail the same
    /// way again.
    pub fn is_retryable(&self) -> bool {
        use async_nats::jetstream::context::PublishErrorKind;
        match self {
            PublishError::Publish { source, .. } => match source.kind() {
                PublishErrorKind::MaxPayloadExceeded
                | PublishErrorKind::WrongLastMessageId
                | PublishErrorKind::WrongLastSequence => false,
                // Timed out, broken pipe, no stream (yet) for the subject, back-pressure.
                PublishErrorKind::TimedOut
                | PublishErrorKind::BrokenPipe
                | PublishErrorKind::StreamNotFound
                | PublishErrorKind::MaxAckPending => true,
                _ => !std::error::Error::source(source)
                    .and_then(|cause| cause.downcast_ref::<async_nats::jetstream::Error>())
                    .is_some_and(|refused| is_permanent(refused.error_code())),
            },
            PublishError::Stream { .. } => true,
            PublishError::Options(_)
            | PublishError::NoPublicTypes
            | PublishError::InvalidEventType { .. }
            | PublishError::Payload { .. }
            | PublishError::WrongStream { .. } => false,
        }
    }
}

/// The JetStream errors a publish answers that trying again cannot cure: the stream's
/// configuration refuses the message.
fn is_permanent(code: async_nats::jetstream::ErrorCode) -> bool {
    use async_nats::jetstream::ErrorCode;
    [
        ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM,
        ErrorCode::STREAM_HEADER_EXCEEDS_MAXIMUM,
        ErrorCode::STREAM_SEALED,
        ErrorCode::STREAM_WRONG_LAST_MESSAGE_ID,
        ErrorCode::STREAM_WRONG_LAST_SEQUENCE,
    ]
    .contains(&code)
}
