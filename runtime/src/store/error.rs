use thiserror::Error;

use super::limits::Unstorable;
use crate::model::{DecodeError, Position};

/// A failure of the store itself: I/O, connection, corrupt data.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed (connection lost, disk error, ...).
    #[error("the event store's backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored record cannot be read back; the error names its position and type.
    #[error(transparent)]
    Corrupt(#[from] DecodeError),
    /// The store transaction a serial lane committed this request in failed: every
    /// decision of the batch gets the one failure, as its source.
    #[error("the batch this request was committed in failed")]
    Batch(#[source] std::sync::Arc<StoreError>),
}

impl StoreError {
    /// A backend error from any error value.
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(error))
    }

    /// Whether the same call may succeed later: a backend failure may pass (a lost
    /// connection, a pool timeout, a busy database; factum cannot tell those from a
    /// misconfiguration, so it takes every one as passing), corrupt data does not.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Backend(_) => true,
            StoreError::Corrupt(_) => false,
            StoreError::Batch(e) => e.is_retryable(),
        }
    }
}

/// Why an append wrote nothing.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AppendError {
    /// An event matching the condition's query exists after the condition's position.
    #[error(
        "append condition failed: event {event_type} at {position} matches the condition's query"
    )]
    Conflict {
        /// The position of the first conflicting event.
        position: Position,
        /// Its type name.
        event_type: String,
    },
    /// An idempotency key the events carry was recorded by an earlier append.
    #[error(
        "idempotency key {key:?} was already used by the append at {}",
        first_position(positions)
    )]
    Duplicate {
        /// The key.
        key: String,
        /// The positions the first append with this key wrote.
        positions: Vec<Position>,
    },
    /// The request was part of a batch and builds on an earlier request of it (at
    /// `index`) that failed, or names an index that is not earlier than its own.
    #[error("the request builds on request {index} of its batch, which failed or is not earlier")]
    Dependency {
        /// The index, in the batch, of the request it builds on.
        index: usize,
    },
    /// Appends must carry at least one event.
    #[error("an append must carry at least one event")]
    Empty,
    /// The condition's query has no item ([`Query::none`](crate::Query::none)): it would
    /// guard nothing. Pass no condition for an unconditional append.
    #[error(
        "the append condition's query matches nothing, so it would guard nothing: append without a condition (`None`) if nothing was read, or guard with a query that has an item (`Query::all()` matches every event)"
    )]
    EmptyCondition,
    /// An event breaks one of the [limits](super::limits) every store holds events to (a
    /// tag value too long, a NUL character, a JSON payload that is not JSON, ...): the
    /// request wrote nothing, and sending it again cannot succeed. In a batch, only the
    /// request carrying it fails.
    #[error(transparent)]
    Unstorable(#[from] Unstorable),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AppendError {
    /// Whether this is a condition conflict (worth retrying with a fresh read).
    pub fn is_conflict(&self) -> bool {
        matches!(self, AppendError::Conflict { .. })
    }

    /// Whether the same request may succeed later: after a conflict (with a fresh read
    /// and a new decision), after the request it builds on, or once the store is back
    /// ([`StoreError::is_retryable`]). A duplicate, an empty request and an event past a
    /// limit fail the same way every time.
    pub fn is_retryable(&self) -> bool {
        match self {
            AppendError::Conflict { .. } | AppendError::Dependency { .. } => true,
            AppendError::Store(e) => e.is_retryable(),
            AppendError::Duplicate { .. }
            | AppendError::Empty
            | AppendError::EmptyCondition
            | AppendError::Unstorable(_) => false,
        }
    }
}

fn first_position(positions: &[Position]) -> String {
    positions
        .first()
        .map_or_else(|| "an unknown position".to_owned(), ToString::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorChain;

    #[test]
    fn a_backend_failure_names_its_cause_once_in_the_chain() {
        let error = StoreError::backend(std::io::Error::other("the disk is full"));
        assert_eq!(error.to_string(), "the event store's backend failed");
        assert_eq!(
            ErrorChain(&error).to_string(),
            "the event store's backend failed: the disk is full"
        );
        let wrapped = AppendError::from(error);
        assert_eq!(
            ErrorChain(&wrapped).to_string(),
            "the event store's backend failed: the disk is full"
        );
    }

    #[test]
    fn what_may_pass_is_retryable_and_what_fails_the_same_way_is_not() {
        let backend = || StoreError::backend(std::io::Error::other("connection reset"));
        let corrupt = || {
            StoreError::Corrupt(DecodeError {
                position: Position(3),
                event_type: "Used".into(),
                version: 1,
                reason: crate::model::DecodeReason::Corrupt("an unknown codec".into()),
            })
        };
        assert!(backend().is_retryable());
        assert!(!corrupt().is_retryable());
        let conflict = AppendError::Conflict {
            position: Position(2),
            event_type: "Used".into(),
        };
        assert!(conflict.is_retryable());
        assert!(AppendError::Dependency { index: 0 }.is_retryable());
        assert!(AppendError::Store(backend()).is_retryable());
        assert!(!AppendError::Store(corrupt()).is_retryable());
        assert!(!AppendError::Empty.is_retryable());
        assert!(!AppendError::EmptyCondition.is_retryable());
        let duplicate = AppendError::Duplicate {
            key: "k".into(),
            positions: vec![Position(1)],
        };
        assert!(!duplicate.is_retryable());
    }
}
