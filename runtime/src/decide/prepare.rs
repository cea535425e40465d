use super::{Context, Decide, DecideError};
use crate::model::idempotency::IdempotencyKey;
use crate::model::{Codec, EventSet, NewEvent};

/// The events a decision decided, as a store takes them: each of a type the decision
/// declares it emits, encoded with `codec`, and stamped with the decision's idempotency
/// key and where it came from. Every strategy appends what this returns.
pub(crate) fn prepare_events<D: Decide>(
    events: &[D::Event],
    key: Option<&IdempotencyKey>,
    context: &Context,
    codec: Codec,
) -> Result<Vec<NewEvent>, DecideError<D::Error>> {
    if let Some(allowed) = D::META.emits
        && let Some(bad) = events.iter().find(|e| !allowed.contains(&e.event_type()))
    {
        return Err(DecideError::UndeclaredEmit {
            decision: D::META.name,
            event_type: bad.event_type(),
        });
    }
    let idempotency_key = key.map(|k| k.metadata_key().to_owned());
    let mut prepared = Vec::with_capacity(events.len());
    for event in events {
        let mut new_event = event.to_new_event(codec)?;
        let metadata = &mut new_event.metadata;
        metadata.idempotency_key.clone_from(&idempotency_key);
        metadata.correlation_id = context.correlation_id;
        metadata.causation_id = context.causation_id;
        prepared.push(new_event);
    }
    Ok(prepared)
}
