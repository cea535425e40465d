//! The cases of appends themselves: several events at once, the positions they get, and
//! an append of nothing.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Barrier;
use uuid::Uuid;

use super::support::{
    append, assert_strictly_increasing, assert_unchanged, event, expect_conflict, head, join,
    named, read, tags, types,
};
use crate::model::{AppendCondition, NewEvent, Position, Query};
use crate::store::{AppendError, EventStore, ReadOptions};

/// The events of one append get increasing positions in the order given with no other
/// event between them, also while other tasks append; the condition is checked against
/// stored events only, never the ones being appended; a failing append of several events
/// writes none of them.
pub async fn multi_event_appends<S: EventStore + Clone + 'static>(store: S) {
    named("multi_event_appends", async move {
        let batch = vec![
            event("A", &[("t", "1")]),
            event("B", &[("t", "1")]),
            event("C", &[("t", "2")]),
        ];
        let ids: Vec<Uuid> = batch.iter().map(|e| e.metadata.id).collect();
        let appended = append(&store, batch, None).await;
        assert_eq!(
            appended.positions.len(),
            3,
            "one position per event of a batch"
        );
        assert_strictly_increasing(&appended.positions, "positions of one batch");
        let all = read(&store, &Query::all(), ReadOptions::forward()).await;
        assert_eq!(
            all.iter().map(|e| e.metadata.id).collect::<Vec<_>>(),
            ids,
            "the log after one batch holds its events in the order given"
        );
        assert_eq!(
            all.iter().map(|e| e.position).collect::<Vec<_>>(),
            appended.positions,
            "the log holds the batch at the positions the append returned"
        );

        // The batch's own events match the condition: it still succeeds.
        let d = types(&["D"]);
        let own = append(
            &store,
            vec![event("D", &[]), event("D", &[])],
            Some(AppendCondition::new(d.clone(), None)),
        )
        .await;
        assert_eq!(
            own.positions.len(),
            2,
            "positions of a batch matching its own condition"
        );

        // A failing batch writes none of its events.
        expect_conflict(
            &store,
            vec![event("E", &[]), event("E", &[]), event("D", &[])],
            AppendCondition::new(d, None),
            own.positions[0],
            "D",
            "a conflicting batch of three",
        )
        .await;
        let e = read(&store, &types(&["E"]), ReadOptions::forward()).await;
        assert!(
            e.is_empty(),
            "a failed batch wrote {} of its events",
            e.len()
        );

        // Batches appended concurrently never interleave.
        let writers = 4;
        let batches = 15;
        let size = 4;
        let barrier = Arc::new(Barrier::new(writers));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let store = store.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let mut written = Vec::new();
                for b in 0..batches {
                    let events: Vec<NewEvent> = (0..size)
                        .map(|i| {
                            event(
                                "Batched",
                                &[("writer", &w.to_string()), ("i", &i.to_string())],
                            )
                        })
                        .collect();
                    let ids: Vec<Uuid> = events.iter().map(|e| e.metadata.id).collect();
                    let appended = store.append(events, None).await.unwrap_or_else(|e| {
                        panic!("writer {w}, batch {b}: an unconditional append failed: {e}")
                    });
                    written.push((ids, appended.positions));
                    tokio::task::yield_now().await;
                }
                written
            }));
        }
        let mut all_batches = Vec::new();
        for task in tasks {
            all_batches.extend(join(task).await);
        }
        let whole_after = read(&store, &Query::all(), ReadOptions::forward()).await;
        let index: HashMap<Position, usize> = whole_after
            .iter()
            .enumerate()
            .map(|(i, e)| (e.position, i))
            .collect();
        for (ids, positions) in &all_batches {
            assert_eq!(
                positions.len(),
                size,
                "one position per event of a concurrent batch"
            );
            let Some(&start) = index.get(&positions[0]) else {
                panic!(
                    "position {} of a concurrent batch is not in the log",
                    positions[0]
                );
            };
            for (k, (id, position)) in ids.iter().zip(positions).enumerate() {
                let stored = whole_after.get(start + k).unwrap_or_else(|| {
                    panic!(
                        "a concurrent batch at {} runs past the end of the log",
                        positions[0]
                    )
                });
                assert_eq!(
                    (stored.position, stored.metadata.id),
                    (*position, *id),
                    "event {k} of the concurrent batch starting at {}: another event lies \
                     between the batch's events, or the order differs",
                    positions[0]
                );
            }
        }
        assert_eq!(
            whole_after.len(),
            all.len() + own.positions.len() + writers * batches * size,
            "the log holds every event appended and nothing else"
        );
    })
    .await;
}

/// Positions are unique and strictly increasing across many appends; [`EventStore::head`]
/// is always the last position written; a full read returns every event in that order.
pub async fn positions_monotonic<S: EventStore + Clone + 'static>(store: S) {
    named("positions_monotonic", async move {
        let mut written: Vec<(Position, Uuid)> = Vec::new();
        for n in 0..40 {
            let events: Vec<NewEvent> = (0..(n % 3 + 1))
                .map(|i| event(["A", "B", "C"][(n + i) % 3], &[("n", &n.to_string())]))
                .collect();
            let ids: Vec<Uuid> = events.iter().map(|e| e.metadata.id).collect();
            let condition = (n % 2 == 0).then(|| {
                AppendCondition::new(tags(&[("n", &n.to_string())]), written.last().map(|w| w.0))
            });
            let appended = append(&store, events, condition).await;
            assert_eq!(
                appended.positions.len(),
                ids.len(),
                "one position per event"
            );
            if let Some((previous, _)) = written.last() {
                assert!(
                    appended.positions[0] > *previous,
                    "append {n} got position {} after {previous} was written",
                    appended.positions[0]
                );
            }
            assert_strictly_increasing(&appended.positions, "positions of one append");
            written.extend(appended.positions.iter().copied().zip(ids));
            assert_eq!(
                head(&store).await,
                appended.last(),
                "the head after append {n} is its last position"
            );
        }
        let all = read(&store, &Query::all(), ReadOptions::forward()).await;
        assert_eq!(
            all.iter()
                .map(|e| (e.position, e.metadata.id))
                .collect::<Vec<_>>(),
            written,
            "a full read returns every event at the position its append returned, in order"
        );
    })
    .await;
}

/// An append of no event fails with [`AppendError::Empty`], with or without a condition,
/// and writes nothing.
pub async fn empty_append_rejected<S: EventStore + Clone + 'static>(store: S) {
    named("empty_append_rejected", async move {
        let result = store.append(Vec::new(), None).await;
        assert!(
            matches!(result, Err(AppendError::Empty)),
            "an empty append on an empty store returned {result:?}"
        );
        assert_eq!(head(&store).await, None, "an empty append wrote something");

        let result = store
            .append(Vec::new(), Some(AppendCondition::new(Query::all(), None)))
            .await;
        assert!(
            matches!(result, Err(AppendError::Empty)),
            "an empty append with a condition that holds returned {result:?}"
        );
        assert_eq!(
            head(&store).await,
            None,
            "an empty conditional append wrote something"
        );

        let first = append(&store, vec![event("A", &[])], None).await;
        let before = read(&store, &Query::all(), ReadOptions::forward()).await;
        let result = store
            .append(
                Vec::new(),
                Some(AppendCondition::new(types(&["Z"]), first.last())),
            )
            .await;
        assert!(
            matches!(result, Err(AppendError::Empty)),
            "an empty append on a non-empty store returned {result:?}"
        );
        assert_unchanged(&store, &before, "after an empty append").await;
    })
    .await;
}
