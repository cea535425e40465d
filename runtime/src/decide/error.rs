use thiserror::Error;

use crate::model::{DecodeError, EncodeError, Position};
use crate::store::{StoreError, Unstorable};

/// Why a decision did not commit.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DecideError<E> {
    /// The domain said no; the error is the decision's own, untouched.
    #[error("{0}")]
    Domain(E),
    /// The append condition still failed after the retry policy's last attempt.
    #[error(
        "{decision}: another writer kept changing what it relies on ({event_type} at {position}); gave up after {attempts} attempts"
    )]
    Conflict {
        /// The decision's name.
        decision: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last conflicting event's position.
        position: Position,
        /// The last conflicting event's type.
        event_type: String,
    },
    /// The decision returned an event type its `emits` list does not declare.
    #[error("{decision} emitted {event_type}, which is not in its `emits` list")]
    UndeclaredEmit {
        /// The decision's name.
        decision: &'static str,
        /// The undeclared type.
        event_type: &'static str,
    },
    /// The dispatcher was shut down before the decision ran; nothing was appended for
    /// it.
    #[error("{decision}: not run, the dispatcher is shutting down")]
    Stopped {
        /// The decision's name.
        decision: &'static str,
    },
    /// Its `decide`, or the fold of one of its states, panicked in a serial lane; nothing
    /// of it was appended, and the lane goes on with the next decision.
    #[error("{decision}: its decide or a state's fold panicked; nothing was appended")]
    Panicked {
        /// The decision's name.
        decision: &'static str,
    },
    /// The serial lane running the decision lost it while committing (the store code
    /// panicked, or the tokio runtime dropped the lane's task): the decision may or may
    /// not have committed. Its idempotency key, if it
    /// has one, makes sending it again safe.
    #[error(
        "{decision}: its serial lane stopped without answering (the store's code panicked while committing its batch, or the runtime shut the lane down); it may have committed"
    )]
    LaneFailed {
        /// The decision's name.
        decision: &'static str,
    },
    /// Its idempotency key was committed before by a decision of the same type with
    /// other content (its [`fingerprint`](crate::Decision::fingerprint) differs): another
    /// request reusing the key, not a repeat. Nothing was appended and the first commit
    /// is untouched; replaying its outcome would answer this request with another's.
    #[error(
        "{decision}: idempotency key {key:?} was already used, with other content, by the commit at {}; nothing was appended",
        first_position(positions)
    )]
    IdempotencyKeyReused {
        /// The decision's name.
        decision: &'static str,
        /// Its idempotency key, as the decision gives it.
        key: String,
        /// The positions of the first commit with the key.
        positions: Vec<Position>,
    },
    /// An event it emitted breaks one of the [limits](crate::store::limits) every store
    /// holds events to (too long a tag value, a NUL character, ...): nothing was
    /// appended, and deciding it again cannot succeed. Not retried.
    #[error("{decision}: {error}")]
    Unstorable {
        /// The decision's name.
        decision: &'static str,
        /// The event, the field and the limit.
        error: Unstorable,
    },
    /// A stored event could not be decoded while folding.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// An emitted event could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn first_position(positions: &[Position]) -> String {
    positions
        .first()
        .map_or_else(|| "an unknown position".to_owned(), ToString::to_string)
}

impl<E> DecideError<E> {
    /// The domain error, if that is what this is.
    pub fn domain(&self) -> Option<&E> {
        match self {
            DecideError::Domain(e) => Some(e),
            _ => None,
        }
    }

    /// Whether submitting the same decision again may succeed: the failure was one of
    /// timing, not of the decision. So are a conflict that outlasted its retries (the
    /// writers it raced may be done), a dispatcher shutting down (another process may
    /// take it), a lane lost mid-commit (its idempotency key makes a repeat safe; without
    /// one it may commit twice) and a store failure that may pass
    /// ([`StoreError::is_retryable`]). A domain refusal gives the same answer on the same
    /// facts; an undeclared emit, a panic, an event that does not encode or decode, a
    /// reused key and an event past a limit fail the same way every time.
    ///
    /// An HTTP service answers the first kind with 503 and `Retry-After`.
    pub fn is_retryable(&self) -> bool {
        match self {
            DecideError::Conflict { .. }
            | DecideError::Stopped { .. }
            | DecideError::LaneFailed { .. } => true,
            DecideError::Store(e) => e.is_retryable(),
            DecideError::Domain(_)
            | DecideError::UndeclaredEmit { .. }
            | DecideError::Panicked { .. }
            | DecideError::IdempotencyKeyReused { .. }
            | DecideError::Unstorable { .. }
            | DecideError::Decode(_)
            | DecideError::Encode(_) => false,
        }
    }

    /// The domain error by value, if that is what this is.
    pub fn into_domain(self) -> Option<E> {
        match self {
            DecideError::Domain(e) => Some(e),
            _ => None,
        }
    }
}

/// Why folding states from the store failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A stored event could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl LoadError {
    /// Whether loading again may succeed: only after a store failure that may pass
    /// ([`StoreError::is_retryable`]); an event that does not decode never will.
    pub fn is_retryable(&self) -> bool {
        match self {
            LoadError::Decode(_) => false,
            LoadError::Store(e) => e.is_retryable(),
        }
    }
}

impl<E> From<LoadError> for DecideError<E> {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Decode(e) => DecideError::Decode(e),
            LoadError::Store(e) => DecideError::Store(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_of_timing_are_retryable() {
        type E = DecideError<&'static str>;
        let backend = || StoreError::backend(std::io::Error::other("connection reset"));
        let decode = || DecodeError {
            position: Position(7),
            event_type: "Used".into(),
            version: 1,
            reason: crate::model::DecodeReason::Corrupt("an unknown codec".into()),
        };
        let retryable: Vec<E> = vec![
            DecideError::Conflict {
                decision: "Use",
                attempts: 4,
                position: Position(3),
                event_type: "Used".into(),
            },
            DecideError::Stopped { decision: "Use" },
            DecideError::LaneFailed { decision: "Use" },
            DecideError::Store(backend()),
            DecideError::Store(StoreError::Batch(std::sync::Arc::new(backend()))),
        ];
        for error in &retryable {
            assert!(error.is_retryable(), "{error:?}");
        }
        let permanent: Vec<E> = vec![
            DecideError::Domain("used up"),
            DecideError::UndeclaredEmit {
                decision: "Use",
                event_type: "Other",
            },
            DecideError::Panicked { decision: "Use" },
            DecideError::IdempotencyKeyReused {
                decision: "Use",
                key: "k".into(),
                positions: vec![Position(1)],
            },
            DecideError::Decode(decode()),
            DecideError::Encode(EncodeError {
                event_type: "Used".into(),
                reason: crate::model::EncodeReason::NonFinite {
                    path: "Used.amount".into(),
                    value: "NaN",
                },
            }),
            DecideError::Store(StoreError::Corrupt(decode())),
            DecideError::Store(StoreError::Batch(std::sync::Arc::new(StoreError::Corrupt(
                decode(),
            )))),
        ];
        for error in &permanent {
            assert!(!error.is_retryable(), "{error:?}");
        }
        assert!(LoadError::Store(backend()).is_retryable());
        assert!(!LoadError::Decode(decode()).is_retryable());
    }
}
