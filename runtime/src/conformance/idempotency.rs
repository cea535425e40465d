//! The case of idempotency keys: a key recorded once makes every later append carrying
//! it a duplicate.

use super::support::{append, assert_unchanged, event, keyed, named, read, types};
use crate::model::{AppendCondition, Query};
use crate::store::{AppendError, EventStore, ReadOptions};

/// Idempotency keys are unique per store: an append whose events carry a key recorded by
/// an earlier append writes nothing and fails with [`AppendError::Duplicate`] naming the
/// first append's positions, even when its condition would hold or fail; events without a
/// key never clash; an append rejected for any reason records no key.
pub async fn idempotency_keys<S: EventStore + Clone + 'static>(store: S) {
    named("idempotency_keys", async move {
        let first = append(&store, vec![keyed("A", "req-1"), keyed("B", "req-1")], None).await;
        append(&store, vec![event("A", &[]), event("A", &[])], None).await;
        append(&store, vec![event("A", &[])], None).await;
        let before = read(&store, &Query::all(), ReadOptions::forward()).await;

        let conditions = [
            None,
            Some(AppendCondition::new(types(&["Z"]), None)),
            Some(AppendCondition::new(types(&["A"]), None)),
        ];
        for condition in conditions {
            let described = format!("{condition:?}");
            match store.append(vec![keyed("C", "req-1")], condition).await {
                Err(AppendError::Duplicate { key, positions }) => {
                    assert_eq!(key, "req-1", "the key a duplicate names ({described})");
                    assert_eq!(
                        positions, first.positions,
                        "a duplicate names the positions of the first append with its key ({described})"
                    );
                }
                other => panic!(
                    "a second append with key req-1 and condition {described} must be a duplicate, got {other:?}"
                ),
            }
            assert_unchanged(&store, &before, "after a duplicate append").await;
        }

        // One duplicated key among fresh ones: nothing is written, the fresh keys stay free.
        let mixed = vec![keyed("C", "req-2"), keyed("C", "req-1")];
        let result = store.append(mixed, None).await;
        assert!(
            matches!(&result, Err(AppendError::Duplicate { key, .. }) if key == "req-1"),
            "an append carrying a used key among fresh ones must be a duplicate, got {result:?}"
        );
        assert_unchanged(&store, &before, "after a partly duplicate append").await;

        // A conflicting append records nothing: its key stays free.
        let result = store
            .append(
                vec![keyed("C", "req-3")],
                Some(AppendCondition::new(types(&["A"]), None)),
            )
            .await;
        assert!(
            matches!(result, Err(AppendError::Conflict { .. })),
            "a fresh key on a failing condition must be a conflict, got {result:?}"
        );
        let third = append(&store, vec![keyed("C", "req-3"), keyed("C", "req-2")], None).await;
        match store.append(vec![keyed("D", "req-2")], None).await {
            Err(AppendError::Duplicate { positions, .. }) => assert_eq!(
                positions, third.positions,
                "two keys recorded by one append both name it"
            ),
            other => panic!("key req-2 was recorded, expected a duplicate, got {other:?}"),
        }
        // Keys are compared exactly.
        append(&store, vec![keyed("D", "REQ-1")], None).await;
        append(&store, vec![keyed("D", "req-1 ")], None).await;
    })
    .await;
}
