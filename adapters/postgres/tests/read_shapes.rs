//! Reads walk each tag's entries in `event_tags` (one arm per query item, merged), or,
//! for a large read from the start, let the planner find the events. Every shape must
//! return exactly the events a query selects, each once, in order, whatever the start,
//! the direction, the limit or the query's shape (items that overlap, items with only
//! types, a query matching everything): checked here against the same filter applied to
//! the whole log.

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
    // 3,000 events: enough for an account's read from the start to be a large read,
    // which the second time is planned for its values.
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
        // Large reads (2,400 and 2,600 events): from the start, the second time, the
        // planner's statement.
        Query::item(QueryItem::any().with_tags([Tag::new("region", "south")])),
        [
            QueryItem::types(["C"]),
            QueryItem::types(["A", "C"]).with_tags([Tag::new("region", "south")]),
        ]
        .into_iter()
        .collect(),
        Query::all(),
    ];
    let starts = [
        0,
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
                for backwards in [false, true] {
                    let selected = all.iter().filter(|e| {
                        matches(query, e)
                            && if backwards {
                                e.position.0 <= start
                            } else {
                                e.position.0 >= start
                            }
                    });
                    let expected: Vec<Position> = if backwards {
                        selected
                            .rev()
                            .map(|e| e.position)
                            .take(limit.unwrap_or(usize::MAX))
                            .collect()
                    } else {
                        selected
                            .map(|e| e.position)
                            .take(limit.unwrap_or(usize::MAX))
                            .collect()
                    };
                    let options = ReadOptions {
                        from: Some(Position(start)),
                        backwards,
                        limit,
                    };
                    let read: Vec<StoredEvent> = store
                        .read(query, options)
                        .try_collect()
                        .await
                        .unwrap_or_else(|e| panic!("read {q} from {start} failed: {e}"));
                    let positions: Vec<Position> = read.iter().map(|e| e.position).collect();
                    assert_eq!(
                        positions, expected,
                        "query {q} from {start} (head {head}), limit {limit:?}, \
                         backwards {backwards}"
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
}
