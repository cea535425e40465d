use std::sync::atomic::Ordering;

use futures::TryStreamExt;

use super::Engine;
use crate::decide::{Decide, DecideError, Outcome};
use crate::model::idempotency::IdempotencyKey;
use crate::model::{EventSet, Position, Query};
use crate::store::{EventStore, ReadOptions, StoreError};

impl<S: EventStore> Engine<S> {
    /// The positions of the append that recorded idempotency key `key` (a recorded
    /// key, see [`IdempotencyKey::recorded`]), if any.
    pub(crate) async fn committed_key(
        &self,
        key: &str,
    ) -> Result<Option<Vec<Position>>, StoreError> {
        let mut found = self
            .store
            .find_idempotency_keys(std::slice::from_ref(&key.to_owned()))
            .await?;
        Ok(found.pop().flatten())
    }

    /// The outcome of the earlier commit that wrote `positions` under `key`, read back
    /// from the store; [`DecideError::IdempotencyKeyReused`] when one of its events
    /// carries `key` with another fingerprint (checked before anything is decoded).
    pub(crate) async fn replay<D: Decide>(
        &self,
        key: Option<&IdempotencyKey>,
        positions: Vec<Position>,
    ) -> Result<Outcome<D::Event>, DecideError<D::Error>> {
        let mut stored = Vec::with_capacity(positions.len());
        if let (Some(&first), Some(&last)) = (positions.first(), positions.last()) {
            let span = usize::try_from(last.0.saturating_sub(first.0) + 1).unwrap_or(usize::MAX);
            let options = ReadOptions {
                from: Some(first),
                backwards: false,
                limit: Some(span),
            };
            let all = Query::all();
            let mut stream = std::pin::pin!(self.store.read(&all, options));
            while let Some(event) = stream.try_next().await? {
                if positions.contains(&event.position) {
                    stored.push(event);
                }
            }
        }
        if let Some(key) = key {
            let reused = stored.iter().any(|event| {
                event
                    .metadata
                    .idempotency_key
                    .as_deref()
                    .is_some_and(|stored| key.other_content(stored))
            });
            if reused {
                tracing::debug!(
                    ?positions,
                    "idempotency key already committed with other content"
                );
                return Err(DecideError::IdempotencyKeyReused {
                    decision: D::META.name,
                    key: key.key().to_owned(),
                    positions,
                });
            }
        }
        let events = stored
            .iter()
            .map(D::Event::from_stored)
            .collect::<Result<Vec<_>, _>>()?;
        if events.len() != positions.len() {
            return Err(StoreError::backend(MissingEvents {
                decision: D::META.name,
                positions,
            })
            .into());
        }
        self.stats.replayed.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            ?positions,
            "idempotency key already committed, replaying its outcome"
        );
        Ok(Outcome {
            events,
            positions,
            attempts: 0,
            replayed: true,
        })
    }
}

/// The events an idempotency key points to are not in the log.
#[derive(Debug, thiserror::Error)]
#[error(
    "{decision}: the events of the first commit with its idempotency key, at {positions:?}, cannot be read back"
)]
struct MissingEvents {
    decision: &'static str,
    positions: Vec<Position>,
}
