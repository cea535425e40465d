//! Why a distributed decision, a client or a worker failed.

use std::time::Duration;

use thiserror::Error;

/// A boxed error of the NATS client (its error types are generic over their kinds).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a request through the distributed lanes did not commit, or a client or worker
/// could not start.
///
/// [`LanesError::Refused`] is the domain saying no; every other variant is the
/// infrastructure. After [`LanesError::Timeout`], [`LanesError::ReplyLost`] and
/// [`LanesError::Failed`] the command
/// may or may not have committed (or may still commit): send it again with the same
/// idempotency key to learn its outcome.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LanesError {
    /// The decision's domain refused: `message` is its error's `Display` text.
    #[error("{message}")]
    Refused {
        /// The decision's name.
        decision: String,
        /// The id of the worker that decided.
        worker: String,
        /// The domain error's text.
        message: String,
    },
    /// The worker that owns the partition does not handle this decision type.
    #[error("worker {worker} does not handle decision {decision}")]
    UnknownDecision {
        /// The decision's name.
        decision: String,
        /// The worker's id.
        worker: String,
    },
    /// The worker could not read the command (a missing header, a payload that does not
    /// decode as the decision).
    #[error("worker {worker} could not read the {decision} command: {message}")]
    Malformed {
        /// The decision's name.
        decision: String,
        /// The worker's id.
        worker: String,
        /// What was wrong.
        message: String,
    },
    /// The worker ran the decision and it failed for a reason other than the domain: one
    /// that may pass (the store, a conflict after the last retry, a lost lane) on every
    /// one of the consumer's `max_deliver` deliveries, or one that would repeat (a
    /// panic, an undeclared event). It may have committed when the reason is a lost
    /// lane.
    #[error("{decision} failed on worker {worker}: {message}")]
    Failed {
        /// The decision's name.
        decision: String,
        /// The worker's id.
        worker: String,
        /// The error's text.
        message: String,
    },
    /// No answer came within the timeout: no worker holds the partition, or it is slow,
    /// or it died and the command waits for redelivery. The command stays in the stream
    /// and may still be decided.
    #[error(
        "no answer to {decision} on {subject} within {waited:?} (is a worker running for partition {partition}?)"
    )]
    Timeout {
        /// The decision's name.
        decision: String,
        /// The subject it was sent on.
        subject: String,
        /// Its partition.
        partition: u32,
        /// How long the client waited.
        waited: Duration,
    },
    /// The subscription waiting for the answer ended (the connection was closed or
    /// drained) before an answer came: the command may still be decided.
    #[error(
        "the subscription for the answer to {decision} on {subject} closed before an answer came"
    )]
    ReplyLost {
        /// The decision's name.
        decision: String,
        /// The subject it was sent on.
        subject: String,
        /// Its partition.
        partition: u32,
    },
    /// The server is older than the lanes need (pinned consumers arrived in 2.11).
    #[error("NATS server {found} is too old: distributed lanes need {needed} or newer")]
    ServerTooOld {
        /// The version the server reported.
        found: String,
        /// The oldest version that works.
        needed: &'static str,
    },
    /// The options are inconsistent.
    #[error("invalid lanes options: {0}")]
    Options(String),
    /// The command could not be encoded.
    #[error("cannot encode the {decision} command")]
    Encode {
        /// The decision's name.
        decision: String,
        /// The encoder's error.
        source: serde_json::Error,
    },
    /// Publishing the command (or waiting for JetStream to store it) failed.
    #[error("cannot publish the {decision} command on {subject}")]
    Publish {
        /// The decision's name.
        decision: String,
        /// The subject.
        subject: String,
        /// The client's error.
        source: BoxError,
    },
    /// Creating or finding the stream, a consumer or a subscription failed.
    #[error("{what} failed")]
    Broker {
        /// What was being done.
        what: String,
        /// The client's error.
        source: BoxError,
    },
    /// The reply could not be read.
    #[error("unreadable reply to {decision}: {message}")]
    BadReply {
        /// The decision's name.
        decision: String,
        /// What was wrong.
        message: String,
    },
}

impl LanesError {
    /// The domain error's text, if the domain refused.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            LanesError::Refused { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Whether sending the same command again (with the same idempotency key) may give
    /// its outcome: a timeout, a lost reply subscription, a failure on the worker, or a
    /// publish error.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LanesError::Timeout { .. }
                | LanesError::ReplyLost { .. }
                | LanesError::Failed { .. }
                | LanesError::Publish { .. }
        )
    }

    pub(crate) fn broker(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        LanesError::Broker {
            what: what.into(),
            source: source.into(),
        }
    }
}
