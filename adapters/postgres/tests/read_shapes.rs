//! Reads take one of two statements: a forward read starting close to the head (the tail
//! of a state after its snapshot) scans those positions by the primary key and filters
//! them; every other read lets the planner pick. Both must return exactly the events a
//! query selects, in order, whatever the start, the limit or the query's shape: checked
//! here against the same filter applied to the whole log.

mod common;

use factum::prelude::*;
use factum::{Position, StoredEvent};
use futures::TryStreamExt;

fn matches(query: &Query, event: &StoredEvent) -> bool {
    query.items().iter().any(|item| {
        (item.types.is_empty() || item.types.iter().any(|t| t.as_str() == event.event_type))
            && item.tags.iter().all(|t| event.tags.contains(t))
    })
}

#[tokio::test]
async fn reads_near_and_far_from_the_head_return_what_the_query_selects() {
    let (store, _guard) = common::store("read_shapes").await;
    // 3,000 events: far more than a tail scan covers, so that starts early in the log
    // take the planner's statement and starts near its end the tail's.
    let mut batch = Vec::new();
    for i in 0..3_000u32 {
        let kind = ["A", "B", "C"][(i % 3) as usize];
        let account = format!("{}", i % 7);
        let mut tags = vec![("account", account.as_str())];
        let region = if i % 5 == 0 { "north" } else { "south" };
        tags.push(("region", region));
        batch.push(common::event(kind, &tags));
        if batch.len() == 500 {
            store
                .append(std::mem::take(&mut batch), None)
                .await
                .unwrap_or_else(|e| panic!("append failed: {e}"));
        }
    }
    let all = common::read_all(&store).await;
    assert_eq!(all.len(), 3_000);
    let head = all.last().map(|e| e.position.0).unwrap_or(0);

    let queries: Vec<Query> = vec![
        Query::item(QueryItem::types(["A"]).with_tags([Tag::new("account", "3")])),
        [
            QueryItem::types(["B"]).with_tags([Tag::new("account", "1")]),
            QueryItem::types(["C"]),
            QueryItem::any().with_tags([Tag::new("region", "north"), Tag::new("account", "2")]),
        ]
        .into_iter()
        .collect(),
        Query::all(),
    ];
    let starts = [
        1,
        2,
        700,
        head - 2_000,
        head - 1_100,
        head - 1_000,
        head - 10,
        head,
        head + 5,
    ];
    for (q, query) in queries.iter().enumerate() {
        for &start in &starts {
            for limit in [None, Some(1), Some(7)] {
                let expected: Vec<Position> = all
                    .iter()
                    .filter(|e| e.position.0 >= start && matches(query, e))
                    .map(|e| e.position)
                    .take(limit.unwrap_or(usize::MAX))
                    .collect();
                let mut options = ReadOptions::from(Position(start));
                options.limit = limit;
                let read: Vec<StoredEvent> = store
                    .read(query, options)
                    .try_collect()
                    .await
                    .unwrap_or_else(|e| panic!("read {q} from {start} failed: {e}"));
                let positions: Vec<Position> = read.iter().map(|e| e.position).collect();
                assert_eq!(
                    positions, expected,
                    "query {q} from {start} (head {head}), limit {limit:?}"
                );
                // Whole events, not only their positions.
                for event in &read {
                    let original = all.iter().find(|e| e.position == event.position);
                    assert_eq!(Some(event), original, "query {q} from {start}");
                }
            }
        }
    }
}
