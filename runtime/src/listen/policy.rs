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

/// A failed decision as a handler error: a domain refusal is permanent (retrying the
/// same decision on the same facts gives the same answer: compensate in
/// [`Listener::give_up`](super::Listener::give_up), or let it become a dead letter);
/// conflicts that outlasted the retries and store failures are transient.
pub fn decide_error<E>(error: DecideError<E>) -> HandlerError
where
    E: std::fmt::Debug + std::fmt::Display + Send + Sync + 'static,
{
    let permanent = error.domain().is_some();
    let error = PolicyFailure(error.to_string());
    if permanent {
        HandlerError::permanent(error)
    } else {
        HandlerError::transient(error)
    }
}

/// The text of a failed decision.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct PolicyFailure(String);
