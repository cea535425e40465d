//! The cases of reading: an empty store, query matching, and the read options.

use super::support::{Fixture, append, event, head, named, read, tags, typed_tags, types};
use crate::model::{AppendCondition, Position, Query};
use crate::store::{EventStore, ReadOptions};

/// An empty store has no head, reads nothing forwards or backwards, and accepts a
/// conditional append (nothing can conflict).
pub async fn empty_store<S: EventStore + Clone + 'static>(store: S) {
    named("empty_store", async move {
        assert_eq!(head(&store).await, None, "the head of an empty store");
        for options in [
            ReadOptions::forward(),
            ReadOptions::last(1),
            ReadOptions::last(10),
        ] {
            let events = read(&store, &Query::all(), options).await;
            assert!(
                events.is_empty(),
                "an empty store returned {} events for {options:?}",
                events.len()
            );
        }
        let appended = append(
            &store,
            vec![event("Opened", &[("account", "1")])],
            Some(AppendCondition::new(Query::all(), None)),
        )
        .await;
        assert_eq!(
            appended.positions.len(),
            1,
            "positions of a one-event append"
        );
        assert!(
            appended.positions[0] > Position(0),
            "positions start above 0, got {}",
            appended.positions[0]
        );
        assert_eq!(
            head(&store).await,
            appended.last(),
            "the head after the first append"
        );
    })
    .await;
}

/// Query semantics: an item matches any of its types (none = any type) and all of its
/// tags; a query matches any of its items; reads return exactly the matching events, each
/// once, in position order (reverse order backwards).
pub async fn query_matching<S: EventStore + Clone + 'static>(store: S) {
    named("query_matching", async move {
        let log = Fixture::append_one_by_one(
            &store,
            vec![
                event("A", &[("x", "1")]),
                event("B", &[("x", "1"), ("y", "1")]),
                event("C", &[("y", "1")]),
                event("A", &[("x", "2"), ("y", "1")]),
                event("B", &[]),
                event("C", &[("x", "1"), ("y", "2")]),
                event("A", &[("y", "1"), ("x", "1")]),
            ],
        )
        .await;
        let cases: Vec<(&str, Query, Vec<usize>)> = vec![
            ("types A,B", types(&["A", "B"]), vec![0, 1, 3, 4, 6]),
            ("type A", types(&["A"]), vec![0, 3, 6]),
            ("tag x:1, any type", tags(&[("x", "1")]), vec![0, 1, 5, 6]),
            (
                "tags x:1 and y:1",
                tags(&[("x", "1"), ("y", "1")]),
                vec![1, 6],
            ),
            (
                "tags y:1 and x:1",
                tags(&[("y", "1"), ("x", "1")]),
                vec![1, 6],
            ),
            ("tags x:1 and y:2", tags(&[("x", "1"), ("y", "2")]), vec![5]),
            (
                "type A with tag x:1",
                typed_tags(&["A"], &[("x", "1")]),
                vec![0, 6],
            ),
            (
                "types A,C with tag y:1",
                typed_tags(&["A", "C"], &[("y", "1")]),
                vec![2, 3, 6],
            ),
            (
                "type C or tag x:2",
                types(&["C"]).union(tags(&[("x", "2")])),
                vec![2, 3, 5],
            ),
            (
                "type A or tag x:1 (overlapping items)",
                types(&["A"]).union(tags(&[("x", "1")])),
                vec![0, 1, 3, 5, 6],
            ),
            (
                "A with x:1 or B with y:1",
                typed_tags(&["A"], &[("x", "1")]).union(typed_tags(&["B"], &[("y", "1")])),
                vec![0, 1, 6],
            ),
            ("Query::all", Query::all(), (0..7).collect()),
            (
                "unknown type or any",
                types(&["Z"]).union(Query::all()),
                (0..7).collect(),
            ),
            ("Query::none", Query::none(), vec![]),
            ("unknown type", types(&["Z"]), vec![]),
            ("unknown tag value", tags(&[("x", "3")]), vec![]),
            ("tag key and value swapped", tags(&[("1", "x")]), vec![]),
            (
                "type B with tag y:2",
                typed_tags(&["B"], &[("y", "2")]),
                vec![],
            ),
        ];
        for (what, query, mut expected) in cases {
            expected.sort_unstable();
            let forward = read(&store, &query, ReadOptions::forward()).await;
            log.assert_events(
                &forward,
                &expected,
                &format!("forward read of {what} ({query})"),
            );
            let backward = ReadOptions {
                backwards: true,
                ..ReadOptions::default()
            };
            let backward_events = read(&store, &query, backward).await;
            expected.reverse();
            log.assert_events(
                &backward_events,
                &expected,
                &format!("backward read of {what} ({query})"),
            );
        }
    })
    .await;
}

/// Read options: `from` is inclusive in both directions (and may name a position that
/// holds no matching event), backwards gives newest first, `limit` bounds the count, and
/// [`ReadOptions::last`] gives the newest matching events only.
pub async fn read_options<S: EventStore + Clone + 'static>(store: S) {
    named("read_options", async move {
        let log = Fixture::append_one_by_one(
            &store,
            ["A", "B", "A", "A", "B", "A", "B", "A"]
                .iter()
                .map(|t| event(t, &[("stream", "1")]))
                .collect(),
        )
        .await;
        let p = |i: usize| log.positions[i];
        let a = types(&["A"]);
        let opts = |from: Option<Position>, backwards: bool, limit: Option<usize>| ReadOptions {
            from,
            backwards,
            limit,
        };
        let cases: Vec<(&str, Query, ReadOptions, Vec<usize>)> = vec![
            (
                "forward",
                a.clone(),
                ReadOptions::forward(),
                vec![0, 2, 3, 5, 7],
            ),
            (
                "from a match",
                a.clone(),
                ReadOptions::from(p(2)),
                vec![2, 3, 5, 7],
            ),
            (
                "from a non-match",
                a.clone(),
                ReadOptions::from(p(4)),
                vec![5, 7],
            ),
            (
                "from past the head",
                a.clone(),
                ReadOptions::from(p(7).next()),
                vec![],
            ),
            (
                "backwards",
                a.clone(),
                opts(None, true, None),
                vec![7, 5, 3, 2, 0],
            ),
            (
                "backwards from a match",
                a.clone(),
                opts(Some(p(5)), true, None),
                vec![5, 3, 2, 0],
            ),
            (
                "backwards from a non-match",
                a.clone(),
                opts(Some(p(4)), true, None),
                vec![3, 2, 0],
            ),
            (
                "backwards from the first",
                a.clone(),
                opts(Some(p(0)), true, None),
                vec![0],
            ),
            (
                "backwards from past the head",
                a.clone(),
                opts(Some(p(7).next()), true, None),
                vec![7, 5, 3, 2, 0],
            ),
            ("limit 2", a.clone(), opts(None, false, Some(2)), vec![0, 2]),
            (
                "from and limit",
                a.clone(),
                opts(Some(p(3)), false, Some(2)),
                vec![3, 5],
            ),
            (
                "backwards from and limit",
                a.clone(),
                opts(Some(p(6)), true, Some(2)),
                vec![5, 3],
            ),
            ("limit 0", a.clone(), opts(None, false, Some(0)), vec![]),
            (
                "limit above the count",
                a.clone(),
                opts(None, false, Some(100)),
                vec![0, 2, 3, 5, 7],
            ),
            ("last(1)", a.clone(), ReadOptions::last(1), vec![7]),
            ("last(3)", a.clone(), ReadOptions::last(3), vec![7, 5, 3]),
            (
                "last(1) of type B",
                types(&["B"]),
                ReadOptions::last(1),
                vec![6],
            ),
            (
                "last(1) of everything",
                Query::all(),
                ReadOptions::last(1),
                vec![7],
            ),
            (
                "last(1) of nothing",
                Query::none(),
                ReadOptions::last(1),
                vec![],
            ),
            (
                "last(1) of an unknown type",
                types(&["Z"]),
                ReadOptions::last(1),
                vec![],
            ),
        ];
        for (what, query, options, expected) in cases {
            let events = read(&store, &query, options).await;
            log.assert_events(
                &events,
                &expected,
                &format!("{what}: {query} with {options:?}"),
            );
        }
    })
    .await;
}
