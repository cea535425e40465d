//! Helpers for policies: listeners whose handlers issue decisions (eventual consistency
//! across decisions, outside any one consistency boundary).
//!
//! A policy reacts to an event with a decision in its own append. Delivery is at least
//! once, so the decision it takes must carry an idempotency key derived from the event
//! ([`reaction_key`]): when the policy is handled again after a crash, the engine
//! answers the repeat from the log instead of appending twice.

use crate::decide::{Context, DecideError};
use crate::model::StoredEvent;

use super::handler::HandlerError;

/// The idempotency key of the decision `policy` takes in reaction to `event`: the same
/// on every delivery of the event, different for every event and policy.
pub fn reaction_key(policy: &str, event: &StoredEvent) -> String {
    format!("{policy}/{}", event.metadata.id)
}

/// The context of a decision taken in reaction to `event`: the same correlation id, and
/// the event as its cause.
pub fn caused_by(event: &StoredEvent) -> Context {
    Context {
        correlation_id: event.metadata.correlation_id.or(Some(event.metadata.id)),
        causation_id: Some(event.metadata.id),
    }
}

/// A failed decision as a handler error, keeping the [`DecideError`] as its source (so
/// [`Listener::give_up`](super::Listener::give_up) can downcast it, with
/// [`decision_error`], to compensate a domain refusal).
///
/// Only what may pass ([`DecideError::is_retryable`]) is transient: a conflict that
/// outlasted the decision's retries, a dispatcher shutting down, a lane lost mid-commit,
/// a store failure. A domain refusal gives the same answer on the same facts, and an
/// undeclared emit, a panic, an event that does not encode or decode, or corrupt data
/// fail the same way every time: those are permanent, and go to `give_up` and the dead
/// letters at once.
pub fn decide_error<E>(error: DecideError<E>) -> HandlerError
where
    E: std::fmt::Debug + std::fmt::Display + Send + Sync + 'static,
{
    if error.is_retryable() {
        HandlerError::transient(error)
    } else {
        HandlerError::permanent(error)
    }
}

/// The failed decision behind a handler error made by [`decide_error`], if it failed
/// with domain error type `E`.
pub fn decision_error<E>(error: &HandlerError) -> Option<&DecideError<E>>
where
    E: std::fmt::Debug + std::fmt::Display + Send + Sync + 'static,
{
    error.source.downcast_ref::<DecideError<E>>()
}
