//! The listener trait and its errors.

use std::future::Future;

use crate::model::{DecodeError, Query, StoredEvent};

/// Why a listener could not handle an event: its cause, as the handler gave it, and
/// whether a retry may help. It displays as its cause, whose own causes are its sources
/// (the cause is not repeated in the chain).
#[derive(Debug)]
pub struct HandlerError {
    /// Whether trying again may help (a timeout, a conflict) or not (a malformed event).
    pub transient: bool,
    /// The cause.
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.source.fmt(f)
    }
}

impl std::error::Error for HandlerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

impl HandlerError {
    /// Whether trying again may help ([`HandlerError::transient`]).
    pub fn is_retryable(&self) -> bool {
        self.transient
    }

    /// A failure worth retrying.
    pub fn transient(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        HandlerError {
            transient: true,
            source: error.into(),
        }
    }

    /// A failure no retry can fix: the event goes to the dead letters at once.
    pub fn permanent(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        HandlerError {
            transient: false,
            source: error.into(),
        }
    }
}

/// An event that does not decode will not decode on a retry either.
impl From<DecodeError> for HandlerError {
    fn from(error: DecodeError) -> Self {
        HandlerError::permanent(error)
    }
}

/// Consumes events of the log in position order, from its checkpoint, at least once.
///
/// `#[factum::listener]` implements it from an impl block of typed handlers, one per
/// event type, the same way `#[factum::fold]` makes a state: the handlers' types are the
/// listener's query.
pub trait Listener: Send + 'static {
    /// Its stable name: the key of its checkpoint and of its dead letters.
    fn name(&self) -> &str;

    /// The events it consumes.
    fn query(&self) -> Query;

    /// Handles one event. Delivery is at least once: after a crash, the events after the
    /// last saved checkpoint are handled again, so handling should be idempotent (the
    /// event's position and id make good keys).
    fn handle(
        &mut self,
        event: &StoredEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Called when an event failed every attempt, before it becomes a dead letter:
    /// return `Ok(true)` when the failure is dealt with (a policy ran a compensating
    /// decision, say) and no dead letter is needed. The default records one.
    ///
    /// It is not called for a record the store cannot read back as an event (a
    /// [`StoreError::Corrupt`](crate::StoreError::Corrupt) of the read): that one
    /// always becomes a dead letter, as there is no event to hand over.
    fn give_up(
        &mut self,
        event: &StoredEvent,
        error: &HandlerError,
    ) -> impl Future<Output = Result<bool, HandlerError>> + Send {
        let _ = (event, error);
        async { Ok(false) }
    }

    /// Called before a rebuild replays the log from the start: drop what was built.
    fn reset(&mut self) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async { Ok(()) }
    }
}

/// What a handler written for `#[factum::listener]` may return: nothing (it cannot
/// fail), or a `Result<(), E>` whose error converts into a [`HandlerError`].
#[doc(hidden)]
pub trait IntoHandled {
    /// The handler's result as the listener's.
    fn into_handled(self) -> Result<(), HandlerError>;
}

impl IntoHandled for () {
    fn into_handled(self) -> Result<(), HandlerError> {
        Ok(())
    }
}

impl<E: Into<HandlerError>> IntoHandled for Result<(), E> {
    fn into_handled(self) -> Result<(), HandlerError> {
        self.map_err(Into::into)
    }
}
