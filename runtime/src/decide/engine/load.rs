use std::ops::ControlFlow;
use std::sync::atomic::Ordering;

use futures::TryStreamExt;

use super::Engine;
use crate::decide::{LoadError, StateSet};
use crate::model::{Codec, DecodeError, Payload, Position, Query, StoredEvent};
use crate::store::{EventStore, ReadOptions, Snapshot};

impl<S: EventStore> Engine<S> {
    /// every state whose query it matches. Returns the states and the position they
    /// reflect: every event of their queries up to it has been folded (`None` when
    /// nothing matched). The read side of a decision, also useful on its own to show a
    /// state.
    ///
    /// States that keep snapshots (`#[state(snapshot_every = N)]`) start from their
    /// snapshot when it is for the same query and still decodes, and the read starts
    /// after the oldest snapshot; a stale or undecodable snapshot is ignored (and soon
    /// replaced, as is one the store fails to load). A state that has folded `N` events
    /// past its snapshot gets a fresh one; a failure to save is logged, never fatal (a
    /// snapshot is only a cache). In a set that also holds a state without snapshots, the
    /// read starts at the beginning for that state's sake.
    pub async fn load<T: StateSet>(
        &self,
        mut states: T,
    ) -> Result<(T, Option<Position>), LoadError> {
        let query = states.read_query();
        if query.is_none() {
            return Ok((states, None));
        }
        if T::SNAPSHOTS {
            return self.load_with_snapshots(states, &query).await;
        }
        let mut last_read = None;
        let mut read = 0;
        self.fold_events(&query, ReadOptions::forward(), |event| {
            states.fold(event)?;
            last_read = Some(event.position);
            read += 1;
            Ok(())
        })
        .await?;
        self.stats.events_read.fetch_add(read, Ordering::Relaxed);
        Ok((states, last_read))
    }

    /// Hands `fold` every event of `query`: in place when the store can
    /// ([`EventStore::visit_in_place`]), from the read stream otherwise.
    pub(crate) async fn fold_events(
        &self,
        query: &Query,
        options: ReadOptions,
        mut fold: impl FnMut(&StoredEvent) -> Result<(), DecodeError>,
    ) -> Result<(), LoadError> {
        let mut failed = None;
        let in_place = self
            .store
            .visit_in_place(query, options, &mut |event| match fold(event) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            });
        if let Some(e) = failed {
            return Err(e.into());
        }
        if !in_place {
            let mut events = std::pin::pin!(self.store.read(query, options));
            while let Some(event) = events.try_next().await? {
                fold(&event)?;
            }
        }
        Ok(())
    }

    async fn load_with_snapshots<T: StateSet>(
        &self,
        mut states: T,
        query: &Query,
    ) -> Result<(T, Option<Position>), LoadError> {
        // Which states keep snapshots, under which key and for which query and start.
        let mut wanted: Vec<Option<(String, String)>> = Vec::new();
        states.visit_states(&mut |s| {
            let wants = s.policy().and_then(|_| Some((s.key(), s.query_text()?)));
            wanted.push(wants);
        });
        let mut found: Vec<Option<Snapshot>> = Vec::with_capacity(wanted.len());
        for want in &wanted {
            let snapshot = match want {
                // A snapshot is a cache: one the store cannot read is a miss, not a failure.
                Some((key, query)) => match self.store.load_snapshot(key).await {
                    Ok(found) => found.filter(|s| {
                        let same = &s.query == query;
                        if !same {
                            tracing::debug!(key, "snapshot of another query, ignored");
                        }
                        same
                    }),
                    Err(e) => {
                        tracing::warn!(key, error = %crate::ErrorChain(&e), "cannot load a snapshot, folding from the log");
                        None
                    }
                },
                None => None,
            };
            found.push(snapshot);
        }
        let mut restored = vec![Position(0); wanted.len()];
        let mut index = 0;
        states.visit_states(&mut |s| {
            if let Some(snapshot) = &found[index] {
                if snapshot.payload.codec == Codec::Json && s.restore(&snapshot.payload.bytes) {
                    restored[index] = snapshot.position;
                } else {
                    tracing::debug!(key = snapshot.key, "snapshot no longer decodes, rebuilding");
                }
            }
            index += 1;
        });
        let restored_count = restored.iter().filter(|p| p.0 > 0).count() as u64;
        self.stats
            .snapshots_restored
            .fetch_add(restored_count, Ordering::Relaxed);

        // Every state has all its events up to its snapshot: read after the oldest.
        let oldest = restored.iter().min().copied().unwrap_or(Position(0));
        let options = if oldest.0 > 0 {
            ReadOptions::from(oldest.next())
        } else {
            ReadOptions::forward()
        };
        let mut last_read = None;
        let mut read: u64 = 0;
        // Per state, the events read past its snapshot: what a new snapshot would save it.
        let mut past = vec![0u64; restored.len()];
        self.fold_events(query, options, |event| {
            states.fold_after(event, &mut restored.iter())?;
            for (count, after) in past.iter_mut().zip(&restored) {
                if event.position > *after {
                    *count += 1;
                }
            }
            last_read = Some(event.position);
            read += 1;
            Ok(())
        })
        .await?;
        self.stats.events_read.fetch_add(read, Ordering::Relaxed);
        // Each state now holds every event of its query up to the read's end, so the
        // newest snapshot position is as safe a bound as the last event read.
        let newest = restored.iter().max().copied().filter(|p| p.0 > 0);
        let reflects = last_read.max(newest);

        if let Some(position) = reflects {
            let mut fresh: Vec<Snapshot> = Vec::new();
            let mut index = 0;
            states.visit_states(&mut |s| {
                if let Some(policy) = s.policy()
                    && let Some((key, query)) = &wanted[index]
                    && past[index] >= policy.every
                    && position > restored[index]
                {
                    // Stored with the start it was folded from, not with what it holds now.
                    let key = key.clone();
                    match s.encode() {
                        Ok(bytes) => fresh.push(Snapshot {
                            key,
                            query: query.clone(),
                            position,
                            payload: Payload {
                                codec: Codec::Json,
                                bytes,
                            },
                        }),
                        Err(e) => {
                            tracing::warn!(key, error = %e, "cannot encode a snapshot")
                        }
                    }
                }
                index += 1;
            });
            for snapshot in fresh {
                let key = snapshot.key.clone();
                match self.store.save_snapshot(snapshot).await {
                    Ok(()) => {
                        self.stats.snapshots_saved.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::warn!(key, error = %crate::ErrorChain(&e), "cannot save a snapshot")
                    }
                }
            }
        }
        Ok((states, reflects))
    }
}
