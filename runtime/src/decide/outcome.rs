use uuid::Uuid;

use crate::model::Position;
use crate::telemetry::Answered;

/// What a committed decision did.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome<E> {
    /// The events it appended (empty when it decided nothing needed to happen).
    pub events: Vec<E>,
    /// Their positions, one per event.
    pub positions: Vec<Position>,
    /// How many read-decide-append attempts it took (1 without conflicts; 0 when
    /// replayed).
    pub attempts: u32,
    /// Whether this is the outcome of an earlier commit with the same idempotency key,
    /// returned without deciding again (and without appending anything).
    pub replayed: bool,
}

/// Where a decision comes from, recorded in the metadata of the events it appends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The id of the request or flow the decision belongs to.
    pub correlation_id: Option<Uuid>,
    /// The id of the event or command that caused it.
    pub causation_id: Option<Uuid>,
}

/// How `result` counts in [`telemetry::DECISIONS`](crate::telemetry::DECISIONS).
pub(crate) fn answered<E, X>(result: &Result<Outcome<E>, super::DecideError<X>>) -> Answered {
    match result {
        Ok(outcome) if outcome.replayed => Answered::Replayed,
        Ok(_) => Answered::Committed,
        Err(super::DecideError::Domain(_)) => Answered::Refused,
        Err(super::DecideError::Conflict { .. }) => Answered::Conflict,
        Err(_) => Answered::Failed,
    }
}
