//! Reads and condition checks are answered from the indexes, never by scanning the log.

mod common;

use common::event;

use factum::{EventStore, Query, QueryItem, ReadOptions, Tag};

fn typed_tags(types: &[&str], tags: &[(&str, &str)]) -> Query {
    Query::item(
        QueryItem::types(types.iter().copied())
            .with_tags(tags.iter().map(|(k, v)| Tag::new(*k, *v))),
    )
}

#[tokio::test]
async fn type_and_tag_queries_use_the_indexes() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = factum_sqlite::open(dir.path().join("events.db"))
        .await
        .expect("a fresh store");
    let events = (0..200)
        .map(|n| {
            let course = (n % 7).to_string();
            event(
                ["A", "B", "C"][n % 3],
                &[("course", &course), ("student", "s1")],
            )
        })
        .collect();
    store.append(events, None).await.expect("some events");

    let cases = [
        ("one tag", typed_tags(&[], &[("course", "c1")])),
        (
            "two tags",
            typed_tags(&[], &[("course", "c1"), ("student", "s1")]),
        ),
        ("one type", typed_tags(&["A"], &[])),
        ("two types", typed_tags(&["A", "B"], &[])),
        (
            "types and a tag",
            typed_tags(&["A", "B"], &[("course", "c1")]),
        ),
        (
            "a union",
            typed_tags(&["A"], &[("course", "c1")]).union(typed_tags(&["B"], &[])),
        ),
        ("everything", Query::all()),
    ];
    for (what, query) in cases {
        for options in [ReadOptions::forward(), ReadOptions::last(1)] {
            let plan = store
                .query_plan(&query, options)
                .await
                .expect("a query plan");
            let shown = plan.join("\n  ");
            println!("{what} {options:?}:\n  {shown}");
            assert!(
                plan.iter().any(|l| l.starts_with("SEARCH")),
                "{what}: no index search in\n  {shown}"
            );
            for line in &plan {
                // `m` is the merged positions, streamed from the index searches.
                assert!(
                    !line.starts_with("SCAN") || line == "SCAN m",
                    "{what} ({options:?}) scans a table:\n  {shown}"
                );
                assert!(
                    !line.contains("SCAN events") && !line.contains("SCAN event_tags"),
                    "{what} ({options:?}) scans the log:\n  {shown}"
                );
                assert!(
                    !line.contains("TEMP B-TREE"),
                    "{what} ({options:?}) sorts instead of reading in index order:\n  {shown}"
                );
            }
        }
    }
    let none = store
        .query_plan(&Query::none(), ReadOptions::forward())
        .await
        .expect("a query plan");
    assert!(none.is_empty(), "Query::none runs no statement: {none:?}");
}
