//! Property tests of query matching, the query algebra, and the in-memory store's reads and
//! condition checks, against a reference model written here.

use factum::{
    AppendCondition, AppendError, Codec, EventStore, MemoryStore, Metadata, NewEvent, Position,
    Query, QueryItem, ReadOptions, StoredEvent, Tag,
};
use futures::TryStreamExt;
use proptest::collection::vec;
use proptest::prelude::*;

const TYPES: [&str; 4] = ["A", "B", "C", "D"];

/// An event as the reference model sees it: a type and tags.
#[derive(Clone, Debug)]
struct Ev {
    event_type: String,
    tags: Vec<Tag>,
}

fn event_type() -> impl Strategy<Value = String> {
    prop::sample::select(&TYPES[..]).prop_map(str::to_owned)
}

fn tag() -> impl Strategy<Value = Tag> {
    (prop::sample::select(&["k", "l"][..]), 1..=3u8).prop_map(|(k, v)| Tag::new(k, v))
}

fn ev() -> impl Strategy<Value = Ev> {
    // Up to 3 tags, duplicates possible (an event may carry a tag twice).
    (event_type(), vec(tag(), 0..=3)).prop_map(|(event_type, tags)| Ev { event_type, tags })
}

fn item() -> impl Strategy<Value = QueryItem> {
    (vec(event_type(), 0..=2), vec(tag(), 0..=2))
        .prop_map(|(types, tags)| QueryItem::types(types).with_tags(tags))
}

fn query() -> impl Strategy<Value = Query> {
    // Collecting unions the items: zero of them is `Query::none()`.
    vec(item(), 0..=3).prop_map(|items| items.into_iter().collect())
}

fn excluded() -> impl Strategy<Value = Vec<&'static str>> {
    vec(prop::sample::select(&TYPES[..]), 0..=3)
}

/// The reference model: any item whose types are empty or hold the type, and whose tags
/// are all on the event.
fn reference(query: &Query, e: &Ev) -> bool {
    query.items().iter().any(|item| {
        let type_ok = item.types.is_empty() || item.types.contains(&e.event_type);
        let tags_ok = item.tags.iter().all(|t| e.tags.contains(t));
        type_ok && tags_ok
    })
}

fn matches(query: &Query, e: &Ev) -> bool {
    query.matches(&e.event_type, &e.tags)
}

fn new_event(e: &Ev) -> NewEvent {
    NewEvent {
        event_type: e.event_type.clone(),
        version: 1,
        tags: e.tags.clone(),
        payload: Codec::Json.encode(&e.event_type, &()).unwrap(),
        metadata: Metadata::new(),
        recorded_at: None,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

async fn read(store: &MemoryStore, query: &Query, options: ReadOptions) -> Vec<StoredEvent> {
    store.read(query, options).try_collect().await.unwrap()
}

/// The positions of the events matching `query` under `options`, by the reference model.
fn reference_read(log: &[(Position, Ev)], query: &Query, options: ReadOptions) -> Vec<Position> {
    let mut hits: Vec<Position> = log
        .iter()
        .filter(|(_, e)| reference(query, e))
        .map(|(p, _)| *p)
        .filter(|p| match options.from {
            None => true,
            Some(from) if options.backwards => *p <= from,
            Some(from) => *p >= from,
        })
        .collect();
    if options.backwards {
        hits.reverse();
    }
    hits.truncate(options.limit.unwrap_or(usize::MAX));
    hits
}

fn read_options() -> impl Strategy<Value = ReadOptions> {
    (
        prop::option::of(0..30u64),
        any::<bool>(),
        prop::option::of(0..6usize),
    )
        .prop_map(|(from, backwards, limit)| ReadOptions {
            from: from.map(Position),
            backwards,
            limit,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matching_agrees_with_the_reference(q in query(), events in vec(ev(), 1..10)) {
        for e in &events {
            prop_assert_eq!(matches(&q, e), reference(&q, e), "{} on {:?}", q, e);
            // An item matches alone exactly as the reference says of a one-item query.
            for item in q.items() {
                prop_assert_eq!(
                    item.matches(&e.event_type, &e.tags),
                    reference(&Query::item(item.clone()), e)
                );
            }
        }
    }

    #[test]
    fn all_matches_everything_and_none_nothing(e in ev()) {
        prop_assert!(matches(&Query::all(), &e));
        prop_assert!(matches(&Query::item(QueryItem::any()), &e));
        prop_assert!(!matches(&Query::none(), &e));
    }

    #[test]
    fn union_is_or_and_commutes(a in query(), b in query(), events in vec(ev(), 1..10)) {
        let ab = a.clone().union(b.clone());
        let ba = b.clone().union(a.clone());
        for e in &events {
            let either = matches(&a, e) || matches(&b, e);
            prop_assert_eq!(matches(&ab, e), either, "{} on {:?}", ab, e);
            prop_assert_eq!(matches(&ba, e), either, "{} on {:?}", ba, e);
        }
        // Union with nothing changes nothing; identical items are kept once.
        prop_assert_eq!(a.clone().union(Query::none()), a.clone());
        let aa = a.clone().union(a.clone());
        prop_assert!(aa.items().len() <= a.items().len());
        for e in &events {
            prop_assert_eq!(matches(&aa, e), matches(&a, e));
        }
    }

    #[test]
    fn a_query_matches_everything_exactly_when_it_is_all(
        a in query(),
        b in query(),
        events in vec(ev(), 1..10),
    ) {
        // An item with neither types nor tags is "all", and absorbs a union.
        let with_all = a.clone().union(Query::all()).union(b.clone());
        prop_assert!(with_all.is_all());
        prop_assert_eq!(&with_all, &Query::all());
        if a.is_all() {
            prop_assert_eq!(&a, &Query::all());
        }
        prop_assert_eq!(a.is_none(), a.items().is_empty());
        for e in &events {
            prop_assert!(matches(&with_all, e));
            if a.is_all() {
                prop_assert!(matches(&a, e));
            }
            if a.is_none() {
                prop_assert!(!matches(&a, e));
            }
        }
    }

    #[test]
    fn from_iterator_is_the_union_of_the_items(q in query(), events in vec(ev(), 1..10)) {
        let collected: Query = q.items().iter().cloned().collect();
        for e in &events {
            prop_assert_eq!(matches(&collected, e), matches(&q, e));
        }
    }

    #[test]
    fn excluding_removes_exactly_the_excluded_types(
        q in query(),
        ex in excluded(),
        events in vec(ev(), 1..10),
    ) {
        let narrowed = q.clone().excluding(&ex);
        // Structure: untyped items stay as they are; typed items lose the excluded types and
        // disappear when none is left; nothing else changes.
        let expected: Vec<QueryItem> = q
            .items()
            .iter()
            .filter_map(|item| {
                if item.types.is_empty() {
                    return Some(item.clone());
                }
                let types: Vec<String> =
                    item.types.iter().filter(|t| !ex.contains(&t.as_str())).cloned().collect();
                (!types.is_empty()).then(|| QueryItem { types, tags: item.tags.clone() })
            })
            .collect();
        prop_assert_eq!(narrowed.items(), &expected[..]);

        for e in &events {
            let before = matches(&q, e);
            let after = matches(&narrowed, e);
            // Never widens.
            prop_assert!(!after || before, "{} matches {:?} but {} does not", narrowed, e, q);
            if !ex.contains(&e.event_type.as_str()) {
                // Events of other types are matched as before.
                prop_assert_eq!(after, before, "{} vs {} on {:?}", narrowed, q, e);
            } else {
                // An excluded type is matched only through an untyped item.
                let untyped: Query =
                    q.items().iter().filter(|i| i.types.is_empty()).cloned().collect();
                prop_assert_eq!(after, matches(&untyped, e), "{} on {:?}", narrowed, e);
            }
            // No typed item of the result matches an excluded type.
            for item in narrowed.items().iter().filter(|i| !i.types.is_empty()) {
                if item.matches(&e.event_type, &e.tags) {
                    prop_assert!(!ex.contains(&e.event_type.as_str()));
                }
            }
        }
    }

    #[test]
    fn memory_store_reads_what_the_reference_selects(
        events in vec(ev(), 0..25),
        batch_sizes in vec(1..4usize, 1..25),
        queries in vec((query(), read_options()), 1..8),
    ) {
        runtime().block_on(async {
            let store = MemoryStore::new();
            let mut log: Vec<(Position, Ev)> = Vec::new();
            let mut rest = &events[..];
            let mut sizes = batch_sizes.iter().cycle();
            while !rest.is_empty() {
                let n = (*sizes.next().unwrap()).min(rest.len());
                let (batch, tail) = rest.split_at(n);
                rest = tail;
                let appended = store
                    .append(batch.iter().map(new_event).collect(), None)
                    .await
                    .unwrap();
                log.extend(appended.positions.into_iter().zip(batch.iter().cloned()));
            }
            for (q, options) in &queries {
                let got: Vec<Position> =
                    read(&store, q, *options).await.iter().map(|e| e.position).collect();
                prop_assert_eq!(
                    got,
                    reference_read(&log, q, *options),
                    "{} with {:?}",
                    q,
                    options
                );
            }
            Ok(())
        })?;
    }

    #[test]
    fn memory_store_conditions_agree_with_the_reference(
        events in vec(ev(), 0..25),
        attempts in vec((query(), prop::option::of(0..30u64), ev()), 1..12),
    ) {
        runtime().block_on(async {
            let store = MemoryStore::new();
            let mut log: Vec<(Position, Ev)> = Vec::new();
            for e in &events {
                let appended = store.append(vec![new_event(e)], None).await.unwrap();
                log.push((appended.positions[0], e.clone()));
            }
            for (q, after, e) in &attempts {
                let after = after.map(Position);
                let first_violation = log
                    .iter()
                    .find(|(p, ev)| after.is_none_or(|a| *p > a) && reference(q, ev));
                let result = store
                    .append(vec![new_event(e)], Some(AppendCondition::new(q.clone(), after)))
                    .await;
                match (result, first_violation) {
                    // A condition that guards nothing is refused, whatever the log holds.
                    (Err(AppendError::EmptyCondition), _) if q.is_none() => {}
                    (result, _) if q.is_none() => prop_assert!(
                        false,
                        "a condition on Query::none() must be refused, got {:?}",
                        result
                    ),
                    (Ok(appended), None) => log.push((appended.positions[0], e.clone())),
                    (Err(AppendError::Conflict { position, event_type }), Some((p, ev))) => {
                        prop_assert_eq!(position, *p, "{} after {:?}", q, after);
                        prop_assert_eq!(&event_type, &ev.event_type);
                    }
                    (result, expected) => prop_assert!(
                        false,
                        "{} after {:?}: got {:?}, expected a conflict with {:?}",
                        q,
                        after,
                        result,
                        expected
                    ),
                }
            }
            prop_assert_eq!(store.len(), log.len());
            Ok(())
        })?;
    }
}
