//! The case of what a store records of an idempotency key: the part before the first
//! `U+001F`, so that a decision's fingerprint travels with its events without making a
//! reused key look new.

use super::support::{append, assert_unchanged, event, named, read};
use crate::model::idempotency::SEPARATOR;
use crate::model::{NewEvent, Position, Query};
use crate::store::{AppendError, AppendRequest, EventStore, ReadOptions};

/// An event of `event_type` carrying the metadata key `key`.
fn carrying(event_type: &str, key: &str) -> NewEvent {
    let mut e = event(event_type, &[]);
    e.metadata.idempotency_key = Some(key.to_owned());
    e
}

/// `<recorded>` then the separator then `suffix`.
fn suffixed(recorded: &str, suffix: &str) -> String {
    format!("{recorded}{SEPARATOR}{suffix}")
}

fn expect_duplicate(
    result: Result<crate::store::Appended, AppendError>,
    recorded: &str,
    first: &[Position],
    what: &str,
) {
    match result {
        Err(AppendError::Duplicate { key, positions }) => {
            assert_eq!(key, recorded, "{what}: a duplicate names the recorded key");
            assert_eq!(
                positions, first,
                "{what}: a duplicate names the positions of the first append"
            );
        }
        other => panic!("{what}: expected a duplicate of {recorded:?}, got {other:?}"),
    }
}

/// Stores record, look up and report the part of an idempotency key before its first
/// `U+001F` ([`recorded_key`](crate::model::idempotency::recorded_key)): appends whose
/// keys share it are duplicates whatever follows (a fingerprint, nothing, anything), in
/// an append and in a batch; [`EventStore::find_idempotency_keys`] finds it by the
/// recorded key and by any key that shares it; and every event keeps its whole key.
pub async fn recorded_keys<S: EventStore + Clone + 'static>(store: S) {
    named("recorded_keys", async move {
        let recorded = "Pay:r-1";
        let first_key = suffixed(recorded, "00000000000000000000000000000001");
        let first = append(
            &store,
            vec![carrying("Paid", &first_key), carrying("Paid", &first_key)],
            None,
        )
        .await;
        let before = read(&store, &Query::all(), ReadOptions::forward()).await;
        let keys: Vec<Option<&str>> = before
            .iter()
            .map(|e| e.metadata.idempotency_key.as_deref())
            .collect();
        assert_eq!(
            keys,
            [Some(first_key.as_str()); 2],
            "events keep their whole key, fingerprint included"
        );

        let others = [
            suffixed(recorded, "00000000000000000000000000000002"),
            recorded.to_owned(),
            suffixed(recorded, ""),
            suffixed(recorded, &format!("x{SEPARATOR}y")),
        ];
        for other in &others {
            let what = format!("an append carrying {other:?}");
            let result = store.append(vec![carrying("Paid", other)], None).await;
            expect_duplicate(result, recorded, &first.positions, &what);
            let results = store
                .append_batch(vec![AppendRequest::new(
                    vec![carrying("Paid", other)],
                    None,
                )])
                .await
                .unwrap_or_else(|e| panic!("a batch failed as a whole: {e}"));
            let what = format!("a batch request carrying {other:?}");
            match results.into_iter().next() {
                Some(result) => expect_duplicate(result, recorded, &first.positions, &what),
                None => panic!("{what}: no result"),
            }
            assert_unchanged(&store, &before, &format!("after {what}")).await;
        }

        // Within one batch: the second request shares the first's recorded key.
        let results = store
            .append_batch(vec![
                AppendRequest::new(vec![carrying("Paid", &suffixed("Pay:r-2", "a"))], None),
                AppendRequest::new(vec![carrying("Paid", &suffixed("Pay:r-2", "b"))], None),
            ])
            .await
            .unwrap_or_else(|e| panic!("a batch failed as a whole: {e}"));
        let mut results = results.into_iter();
        let second = match (results.next(), results.next()) {
            (Some(Ok(second)), Some(duplicate)) => {
                expect_duplicate(
                    duplicate,
                    "Pay:r-2",
                    &second.positions,
                    "the second request of a batch sharing the first's recorded key",
                );
                second.positions
            }
            other => panic!("a batch of two requests sharing a recorded key: {other:?}"),
        };

        // Events of one append carrying two suffixes of one key record it once; a key
        // differing before the separator is another key.
        let third = append(
            &store,
            vec![
                carrying("Paid", &suffixed("Pay:r-3", "a")),
                carrying("Paid", &suffixed("Pay:r-3", "b")),
            ],
            None,
        )
        .await;
        append(
            &store,
            vec![carrying(
                "Paid",
                &suffixed("Pay:r-1x", "00000000000000000000000000000001"),
            )],
            None,
        )
        .await;

        let asked: Vec<String> = [
            recorded,
            &first_key,
            &suffixed(recorded, "ffff"),
            "Pay:r-2",
            &suffixed("Pay:r-3", "c"),
            "Pay:r-4",
        ]
        .iter()
        .map(|k| (*k).to_owned())
        .collect();
        let found = store
            .find_idempotency_keys(&asked)
            .await
            .unwrap_or_else(|e| panic!("find_idempotency_keys failed: {e}"));
        assert_eq!(
            found,
            vec![
                Some(first.positions.clone()),
                Some(first.positions.clone()),
                Some(first.positions.clone()),
                Some(second),
                Some(third.positions),
                None,
            ],
            "a look-up finds a key by its recorded part, for {asked:?}"
        );
    })
    .await;
}
