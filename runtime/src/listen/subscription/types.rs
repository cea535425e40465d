//! What a subscription is told (its options) and tells (its progress, its errors).

use std::time::Duration;

use crate::decide::RetryPolicy;
use crate::listen::HandlerError;
use crate::model::Position;
use crate::store::StoreError;

/// What a subscription does with an event that failed every attempt, or with a record
/// the store cannot read back as an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnFailure {
    /// Record a dead letter and go on with the next event.
    #[default]
    DeadLetterAndContinue,
    /// Record a dead letter and stop, with the checkpoint just before the event, so
    /// nothing after it is handled out of order.
    DeadLetterAndStop,
}

/// How a subscription reads, retries and waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriptionOptions {
    /// Events read and committed at a time.
    pub batch: usize,
    /// Attempts per event: `max_retries` after the first, with backoff between.
    pub retry: RetryPolicy,
    /// What an event that failed every attempt leads to.
    pub on_failure: OnFailure,
    /// How often to look for new events when no commit signal came: commits by other
    /// processes may not be signalled.
    pub poll_interval: Duration,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        SubscriptionOptions {
            batch: 256,
            retry: RetryPolicy {
                max_retries: 5,
                min_delay: Duration::from_millis(10),
                max_delay: Duration::from_secs(1),
            },
            on_failure: OnFailure::default(),
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// Why a subscription stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// The store failed; nothing after the last commit counts as consumed.
    #[error("subscription `{listener}` stopped: its store failed")]
    Store {
        /// The listener.
        listener: String,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// An event failed every attempt (or a record could not be read as an event) under
    /// [`OnFailure::DeadLetterAndStop`]; it is a dead letter and the checkpoint is just
    /// before it.
    #[error("subscription `{listener}` stopped at {event_type} at {position}: {error}")]
    Failed {
        /// The listener.
        listener: String,
        /// The event's position.
        position: Position,
        /// The event's type.
        event_type: String,
        /// The last error.
        error: String,
    },
    /// The consumer could not be reset for a rebuild.
    #[error("subscription `{listener}` could not reset for a rebuild")]
    Reset {
        /// The listener.
        listener: String,
        /// The cause.
        #[source]
        source: HandlerError,
    },
}

impl SubscriptionError {
    /// Whether running the subscription again may get further: after a store failure
    /// that may pass, or a reset whose handler error is transient. One stopped at an
    /// event that failed every attempt stops there again until the consumer or the event
    /// is fixed.
    pub fn is_retryable(&self) -> bool {
        match self {
            SubscriptionError::Store { source, .. } => source.is_retryable(),
            SubscriptionError::Failed { .. } => false,
            SubscriptionError::Reset { source, .. } => source.is_retryable(),
        }
    }
}

/// What a catch-up or a replay did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Events handled.
    pub handled: u64,
    /// Events that became dead letters.
    pub dead_lettered: u64,
    /// Events whose failure the consumer dealt with itself ([`Listener::give_up`](crate::listen::Listener::give_up)).
    pub given_up: u64,
    /// The checkpoint now (`Position(0)`: nothing consumed).
    pub position: Position,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            handled: 0,
            dead_lettered: 0,
            given_up: 0,
            position: Position(0),
        }
    }
}
