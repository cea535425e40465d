//! The case of batch appends: each request checked alone, in order.

use super::support::{
    append, assert_strictly_increasing, assert_unchanged, event, head, keyed, named, read, tags,
};
use crate::model::{AppendCondition, Position, Query};
use crate::store::{AppendError, AppendRequest, Appended, EventStore, ReadOptions};

/// A batch appends its requests in order, each checked against its own condition as if
/// appended alone right after the earlier ones: a later request sees the events of the
/// earlier ones, a failing request writes nothing and the others still commit, positions
/// increase across the batch; idempotency keys clash within a batch too.
pub async fn batch_appends<S: EventStore + Clone + 'static>(store: S) {
    named("batch_appends", async move {
        let existing = append(&store, vec![event("Seat", &[("course", "c1")])], None).await;
        let after = existing.last();
        let results = store
            .append_batch(vec![
                // Holds: nothing about c2 yet.
                AppendRequest::new(
                    vec![
                        event("Seat", &[("course", "c2")]),
                        event("Seat", &[("course", "c2")]),
                    ],
                    Some(AppendCondition::new(tags(&[("course", "c2")]), after)),
                ),
                // Fails: the request before wrote c2 after `after`.
                AppendRequest::new(
                    vec![event("Seat", &[("course", "c2")])],
                    Some(AppendCondition::new(tags(&[("course", "c2")]), after)),
                ),
                // Empty: rejected alone.
                AppendRequest::new(Vec::new(), None),
                // Holds: c3 is untouched.
                AppendRequest::new(
                    vec![keyed("Seat", "batch-key")],
                    Some(AppendCondition::new(tags(&[("course", "c3")]), after)),
                ),
                // Duplicate of the request before.
                AppendRequest::new(vec![keyed("Seat", "batch-key")], None),
                // Fails on the event stored before the batch.
                AppendRequest::new(
                    vec![event("Seat", &[("course", "c1")])],
                    Some(AppendCondition::new(tags(&[("course", "c1")]), None)),
                ),
            ])
            .await
            .unwrap_or_else(|e| panic!("a batch append failed as a whole: {e}"));
        assert_eq!(results.len(), 6, "one result per request of the batch");
        let ok = |i: usize| -> Appended {
            match &results[i] {
                Ok(a) => a.clone(),
                Err(e) => panic!("request {i} of the batch should commit, got {e}"),
            }
        };
        let first = ok(0);
        let fourth = ok(3);
        assert_eq!(first.positions.len(), 2, "positions of request 0");
        match &results[1] {
            Err(AppendError::Conflict {
                position,
                event_type,
            }) => assert_eq!(
                (*position, event_type.as_str()),
                (first.positions[0], "Seat"),
                "request 1 must conflict with the first event of request 0"
            ),
            other => panic!("request 1 must conflict with request 0's events, got {other:?}"),
        }
        assert!(
            matches!(results[2], Err(AppendError::Empty)),
            "an empty request in a batch is rejected alone, got {:?}",
            results[2]
        );
        match &results[4] {
            Err(AppendError::Duplicate { key, positions }) => {
                assert_eq!(key, "batch-key", "the duplicate's key");
                assert_eq!(
                    positions, &fourth.positions,
                    "the duplicate names request 3's positions"
                );
            }
            other => {
                panic!("request 4 repeats request 3's key, expected a duplicate, got {other:?}")
            }
        }
        match &results[5] {
            Err(AppendError::Conflict { position, .. }) => assert_eq!(
                Some(*position),
                after,
                "request 5 must conflict with the event stored before the batch"
            ),
            other => panic!("request 5 must conflict, got {other:?}"),
        }
        let mut all: Vec<Position> = existing.positions.clone();
        all.extend(&first.positions);
        all.extend(&fourth.positions);
        assert_strictly_increasing(&all, "positions across a batch");
        let log = read(&store, &Query::all(), ReadOptions::forward()).await;
        assert_eq!(
            log.iter().map(|e| e.position).collect::<Vec<_>>(),
            all,
            "the log after the batch holds exactly the committed requests"
        );
        assert_eq!(
            head(&store).await,
            all.last().copied(),
            "the head after a batch"
        );

        // Batches of nothing and of only failing requests write nothing.
        let none = store
            .append_batch(Vec::new())
            .await
            .unwrap_or_else(|e| panic!("an empty batch failed: {e}"));
        assert!(none.is_empty(), "an empty batch has no results");
        let failing = store
            .append_batch(vec![AppendRequest::new(
                vec![event("Seat", &[("course", "c1")])],
                Some(AppendCondition::new(tags(&[("course", "c1")]), None)),
            )])
            .await
            .unwrap_or_else(|e| panic!("a batch failed as a whole: {e}"));
        assert!(
            matches!(failing[..], [Err(AppendError::Conflict { .. })]),
            "a batch of one failing request: {failing:?}"
        );
        assert_unchanged(&store, &log, "after a batch of one failing request").await;
    })
    .await;
}
