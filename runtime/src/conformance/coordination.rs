//! The cases of what serial lanes ask of a store: batches whose requests build on each
//! other, and the look-up of idempotency keys. (Partition locks, for the store-lock
//! strategy, are in `locks`.)

use super::support::{
    append, assert_strictly_increasing, assert_unchanged, event, keyed, named, read, tags,
};
use crate::model::{AppendCondition, Position, Query};
use crate::store::{AppendError, AppendRequest, Appended, EventStore, ReadOptions};

/// Requests of a batch that build on earlier ones ([`AppendRequest::builds_on`]): the
/// events of the requests a request builds on never violate its condition, while every
/// other event does — one stored before the batch, or one of a request of the batch it does
/// not build on — and the conflict names the first such event; a request building on one
/// that failed (also transitively), on itself or on a later one fails with
/// [`AppendError::Dependency`] naming that index and writes nothing; requests that build on
/// nothing still commit after a failure.
pub async fn batch_dependencies<S: EventStore + Clone + 'static>(store: S) {
    named("batch_dependencies", async move {
        let before = append(&store, vec![event("Seat", &[("course", "c0")])], None).await;
        let head = before.last();
        let on = |course: &str| Some(AppendCondition::new(tags(&[("course", course)]), head));
        let seat = |course: &str| vec![event("Seat", &[("course", course)])];
        let seats = |course: &str| {
            vec![
                event("Seat", &[("course", course)]),
                event("Seat", &[("course", course)]),
            ]
        };
        let batch = vec![
            // 0: holds, nothing about c1 after the head.
            AppendRequest::new(seats("c1"), on("c1")),
            // 1: holds: 0's events are exempt.
            AppendRequest::new(seat("c1"), on("c1")).building_on([0]),
            // 2: fails on 0's first event: it builds on 1 only, and exemption is not
            // transitive.
            AppendRequest::new(seat("c1"), on("c1")).building_on([1]),
            // 3: holds: 0 and 1 are exempt, 2 wrote nothing.
            AppendRequest::new(seat("c1"), on("c1")).building_on([0, 1]),
            // 4: fails on 1's event, the first that is not exempt.
            AppendRequest::new(seat("c1"), on("c1")).building_on([0]),
            // 5: fails on the event stored before the batch, which nothing exempts.
            AppendRequest::new(
                seat("c0"),
                Some(AppendCondition::new(tags(&[("course", "c0")]), None)),
            )
            .building_on([0]),
            // 6: 5 failed.
            AppendRequest::new(seat("c5"), None).building_on([5]),
            // 7: 6 failed (it depends on 5 in turn).
            AppendRequest::new(seat("c6"), on("c6")).building_on([6]),
            // 8: builds on nothing: commits after the failures.
            AppendRequest::new(seat("c8"), on("c8")),
            // 9: builds on itself.
            AppendRequest::new(seat("c9"), None).building_on([9]),
            // 10: builds on a later request.
            AppendRequest::new(seat("c10"), None).building_on([11]),
            // 11: builds on a request past the end of the batch.
            AppendRequest::new(seat("c11"), None).building_on([100]),
            // 12: 0 holds but 2 failed: the first failed one is named.
            AppendRequest::new(seat("c12"), None).building_on([0, 2]),
            // 13: empty, rejected alone.
            AppendRequest::new(Vec::new(), None),
            // 14: 13 failed.
            AppendRequest::new(seat("c14"), None).building_on([13]),
            // 15: holds: every c1 event of the batch is exempt, and the order of the
            // indexes does not matter.
            AppendRequest::new(seat("c1"), on("c1")).building_on([3, 8, 1, 0]),
        ];
        let count = batch.len();
        let results = store
            .append_batch(batch)
            .await
            .unwrap_or_else(|e| panic!("a batch with dependencies failed as a whole: {e}"));
        assert_eq!(results.len(), count, "one result per request of the batch");
        let ok = |i: usize| -> Appended {
            match &results[i] {
                Ok(appended) => appended.clone(),
                Err(e) => panic!(
                    "request {i} of the batch should commit (the events of the requests it \
                     builds on are exempt from its condition), got {e}"
                ),
            }
        };
        let conflict = |i: usize, position: Position, why: &str| match &results[i] {
            Err(AppendError::Conflict { position: p, .. }) => assert_eq!(
                *p, position,
                "request {i} must conflict with the first event that is not exempt ({why})"
            ),
            other => panic!("request {i} must conflict ({why}), got {other:?}"),
        };
        let dependency = |i: usize, index: usize, why: &str| match &results[i] {
            Err(AppendError::Dependency { index: got }) => assert_eq!(
                *got, index,
                "request {i} must name the request it builds on that failed ({why})"
            ),
            other => panic!("request {i} must fail with a dependency error ({why}), got {other:?}"),
        };
        let first = ok(0);
        let second = ok(1);
        conflict(
            2,
            first.positions[0],
            "it builds on request 1 only, not on request 0",
        );
        let fourth = ok(3);
        conflict(
            4,
            second.positions[0],
            "it builds on request 0, not on request 1",
        );
        conflict(
            5,
            before.positions[0],
            "an event stored before the batch is never exempt",
        );
        dependency(6, 5, "request 5 failed");
        dependency(7, 6, "request 6 failed");
        let ninth = ok(8);
        dependency(9, 9, "a request cannot build on itself");
        dependency(10, 11, "a request cannot build on a later one");
        dependency(11, 100, "a request cannot build on one outside the batch");
        dependency(12, 2, "request 2 failed");
        assert!(
            matches!(results[13], Err(AppendError::Empty)),
            "request 13 is empty, got {:?}",
            results[13]
        );
        dependency(14, 13, "request 13 was rejected");
        let last = ok(15);

        let mut written = before.positions.clone();
        for appended in [&first, &second, &fourth, &ninth, &last] {
            written.extend(&appended.positions);
        }
        assert_strictly_increasing(&written, "positions across a batch with dependencies");
        let log = read(&store, &Query::all(), ReadOptions::forward()).await;
        assert_eq!(
            log.iter().map(|e| e.position).collect::<Vec<_>>(),
            written,
            "the log after the batch must hold exactly the requests that committed: \
             failed dependants write nothing"
        );
        for course in ["c5", "c6", "c9", "c10", "c11", "c12", "c14"] {
            let found = read(&store, &tags(&[("course", course)]), ReadOptions::forward()).await;
            assert!(
                found.is_empty(),
                "a failed dependant wrote {} events about {course}",
                found.len()
            );
        }

        // A batch of one request building on request 0 (itself).
        let alone = store
            .append_batch(vec![AppendRequest::new(seat("c20"), None).building_on([0])])
            .await
            .unwrap_or_else(|e| panic!("a batch of one failed as a whole: {e}"));
        assert!(
            matches!(alone[..], [Err(AppendError::Dependency { index: 0 })]),
            "a lone request building on itself: {alone:?}"
        );
        assert_unchanged(&store, &log, "after a batch of one failed dependant").await;

        // A dependant of a conditional request that failed on an event stored before the
        // batch, behind a request that commits.
        let results = store
            .append_batch(vec![
                AppendRequest::new(
                    seat("c0"),
                    Some(AppendCondition::new(tags(&[("course", "c0")]), None)),
                ),
                AppendRequest::new(seat("c21"), None),
                AppendRequest::new(seat("c21"), on("c21")).building_on([0, 1]),
            ])
            .await
            .unwrap_or_else(|e| panic!("a batch failed as a whole: {e}"));
        assert!(
            matches!(
                results[..],
                [
                    Err(AppendError::Conflict { .. }),
                    Ok(_),
                    Err(AppendError::Dependency { index: 0 })
                ]
            ),
            "a conflicting request, an independent one, and a dependant of both: {results:?}"
        );
    })
    .await;
}

/// [`EventStore::find_idempotency_keys`]: for each key, in the order asked (repeats
/// included), the positions of the append that recorded it — every position of that
/// append, also for a key recorded by a request of a batch — and `None` for a key never
/// recorded, including the keys of appends that failed; keys are compared exactly; no key
/// asked gives no answer.
pub async fn idempotency_lookup<S: EventStore + Clone + 'static>(store: S) {
    named("idempotency_lookup", async move {
        let find = |keys: &[&str]| {
            let store = store.clone();
            let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
            async move {
                let found = store
                    .find_idempotency_keys(&keys)
                    .await
                    .unwrap_or_else(|e| panic!("looking up idempotency keys {keys:?} failed: {e}"));
                assert_eq!(
                    found.len(),
                    keys.len(),
                    "one answer per key looked up ({keys:?})"
                );
                found
            }
        };
        assert!(find(&[]).await.is_empty(), "no key gives no answer");
        assert_eq!(
            find(&["lookup-1"]).await,
            vec![None],
            "a key in an empty store"
        );

        let first = append(
            &store,
            vec![keyed("A", "lookup-1"), keyed("B", "lookup-1")],
            None,
        )
        .await;
        append(&store, vec![event("A", &[])], None).await;
        let second = append(
            &store,
            vec![
                keyed("C", "lookup-2"),
                event("C", &[]),
                keyed("C", "lookup-3"),
            ],
            None,
        )
        .await;
        let results = store
            .append_batch(vec![
                AppendRequest::new(vec![keyed("D", "lookup-4")], None),
                // A duplicate: records nothing.
                AppendRequest::new(vec![keyed("D", "lookup-1"), keyed("D", "lookup-5")], None),
                // A conflict: records nothing.
                AppendRequest::new(
                    vec![keyed("D", "lookup-6")],
                    Some(AppendCondition::new(Query::all(), None)),
                ),
                AppendRequest::new(vec![keyed("E", "lookup-7"), keyed("E", "lookup-7")], None),
            ])
            .await
            .unwrap_or_else(|e| panic!("a batch failed as a whole: {e}"));
        let batched = |i: usize| match &results[i] {
            Ok(appended) => appended.positions.clone(),
            Err(e) => panic!("request {i} of the batch should commit, got {e}"),
        };
        let (fourth, seventh) = (batched(0), batched(3));
        assert!(
            matches!(results[1], Err(AppendError::Duplicate { .. })),
            "request 1 repeats key lookup-1: {:?}",
            results[1]
        );
        assert!(
            matches!(results[2], Err(AppendError::Conflict { .. })),
            "request 2's condition fails: {:?}",
            results[2]
        );
        // A failed single append records nothing either.
        let failed = store
            .append(
                vec![keyed("F", "lookup-8")],
                Some(AppendCondition::new(Query::all(), None)),
            )
            .await;
        assert!(
            matches!(failed, Err(AppendError::Conflict { .. })),
            "an append on a condition matching everything must conflict, got {failed:?}"
        );

        let keys = [
            "lookup-3",
            "missing",
            "lookup-1",
            "lookup-4",
            "lookup-5",
            "lookup-6",
            "lookup-7",
            "lookup-8",
            "lookup-2",
            "lookup-1",
            "LOOKUP-1",
            "lookup-1 ",
        ];
        let found = find(&keys).await;
        let want = vec![
            Some(second.positions.clone()),
            None,
            Some(first.positions.clone()),
            Some(fourth),
            None,
            None,
            Some(seventh),
            None,
            Some(second.positions.clone()),
            Some(first.positions.clone()),
            None,
            None,
        ];
        for ((key, got), want) in keys.iter().zip(&found).zip(&want) {
            assert_eq!(
                got, want,
                "the positions recorded for key {key:?} (all answers: {found:?})"
            );
        }
    })
    .await;
}
