//! Reads against the in-memory reference store: the same log, the same answers, whatever
//! the page size, direction, start, limit, and however many items a query has.

use factum::{
    EventStore, MemoryStore, Metadata, NewEvent, Position, Query, QueryItem, ReadOptions,
    StoredEvent, Tag,
};
use factum_sqlite::{SqliteOptions, SqliteStore};
use futures::{StreamExt, TryStreamExt};
use uuid::Uuid;

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

const TYPES: [&str; 4] = ["A", "B", "C", "D"];
const KEYS: [&str; 3] = ["k", "l", "m"];

fn random_event(rng: &mut Rng) -> NewEvent {
    let event_type = TYPES[rng.below(TYPES.len())];
    let tags = (0..rng.below(4))
        .map(|_| Tag::new(KEYS[rng.below(KEYS.len())], rng.below(4)))
        .collect();
    NewEvent {
        event_type: event_type.to_owned(),
        version: 1,
        tags,
        payload: factum::Codec::Json
            .encode(event_type, &serde_json::json!({}))
            .expect("a JSON payload"),
        metadata: Metadata::new(),
        recorded_at: None,
    }
}

fn random_item(rng: &mut Rng) -> QueryItem {
    let types: Vec<&str> = (0..rng.below(3))
        .map(|_| TYPES[rng.below(TYPES.len())])
        .collect();
    let tags: Vec<Tag> = (0..rng.below(3))
        .map(|_| Tag::new(KEYS[rng.below(KEYS.len())], rng.below(4)))
        .collect();
    QueryItem::types(types).with_tags(tags)
}

fn random_query(rng: &mut Rng) -> Query {
    match rng.below(10) {
        0 => Query::none(),
        1 => Query::all(),
        _ => (0..1 + rng.below(3)).map(|_| random_item(rng)).collect(),
    }
}

/// A union of many distinct items: more than one SQL statement can merge.
fn huge_query(rng: &mut Rng) -> Query {
    let mut query = Query::none();
    for n in 0..300 {
        let item = if n % 3 == 0 {
            // Mostly items that match nothing, so the few that do must be merged right.
            QueryItem::types([format!("Missing{n}")])
        } else {
            QueryItem::types([TYPES[rng.below(TYPES.len())]]).with_tags([
                Tag::new("unique", n),
                Tag::new(KEYS[rng.below(3)], rng.below(4)),
            ])
        };
        query = query.union(Query::item(item));
    }
    query.union(Query::item(
        QueryItem::types(["B"]).with_tags([Tag::new("k", 1)]),
    ))
}

async fn ids<S: EventStore>(
    store: &S,
    query: &Query,
    options: ReadOptions,
) -> Vec<(Position, Uuid)> {
    let events: Vec<StoredEvent> = store
        .read(query, options)
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("reading {query} with {options:?}: {e}"));
    events.iter().map(|e| (e.position, e.metadata.id)).collect()
}

async fn fill(stores: (&MemoryStore, &SqliteStore), rng: &mut Rng, events: usize) {
    let mut written = 0;
    while written < events {
        let size = 1 + rng.below(50);
        let mut batch: Vec<NewEvent> = (0..size).map(|_| random_event(rng)).collect();
        // Some events carry a tag no other carries, for the huge queries.
        for event in &mut batch {
            if rng.below(20) == 0 {
                event.tags.push(Tag::new("unique", rng.below(300)));
            }
        }
        let a = stores
            .0
            .append(batch.clone(), None)
            .await
            .expect("memory append");
        let b = stores.1.append(batch, None).await.expect("sqlite append");
        assert_eq!(a, b, "both stores give the same positions");
        written += size;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_match_the_memory_store() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // Smaller logs for the smaller pages, which cost a round trip each.
    for (page, events) in [(1, 150), (7, 500), (1024, 1500)] {
        let memory = MemoryStore::new();
        let options = SqliteOptions {
            read_page_size: page,
            readers: 2,
            ..SqliteOptions::default()
        };
        let sqlite = factum_sqlite::open_with(dir.path().join(format!("page-{page}.db")), options)
            .await
            .expect("a new store");
        let mut rng = Rng(0x5eed ^ page as u64);
        fill((&memory, &sqlite), &mut rng, events).await;
        let head = memory.head().await.expect("head").expect("events");
        for n in 0..120 {
            let query = if n % 20 == 0 {
                huge_query(&mut rng)
            } else {
                random_query(&mut rng)
            };
            let from = match rng.below(4) {
                0 => None,
                1 => Some(Position(rng.below(head.0 as usize + 3) as u64)),
                2 => Some(head),
                _ => Some(Position(1 + rng.below(head.0 as usize) as u64)),
            };
            let limit = match rng.below(3) {
                0 => None,
                1 => Some(rng.below(5)),
                _ => Some(rng.below(events + 100)),
            };
            for backwards in [false, true] {
                let options = ReadOptions {
                    from,
                    backwards,
                    limit,
                };
                let want = ids(&memory, &query, options).await;
                let got = ids(&sqlite, &query, options).await;
                assert_eq!(
                    got.len(),
                    want.len(),
                    "page size {page}, read {n}: {query} with {options:?}"
                );
                assert!(
                    got == want,
                    "page size {page}, read {n}: {query} with {options:?} differs"
                );
            }
        }
        // A huge query must find something, or the test would prove little.
        assert!(
            !ids(&sqlite, &huge_query(&mut rng), ReadOptions::forward())
                .await
                .is_empty()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_streams_and_can_stop_early() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = SqliteOptions {
        read_page_size: 100,
        readers: 1,
        ..SqliteOptions::default()
    };
    let store = factum_sqlite::open_with(dir.path().join("events.db"), options)
        .await
        .expect("a new store");
    let mut rng = Rng(7);
    for _ in 0..20 {
        let batch: Vec<NewEvent> = (0..500).map(|_| random_event(&mut rng)).collect();
        store.append(batch, None).await.expect("an append");
    }
    // Take a few events of a 10 000-event read and drop it: the one reader thread is free
    // again for the next read.
    let first: Vec<StoredEvent> = store
        .read(&Query::all(), ReadOptions::forward())
        .take(5)
        .try_collect()
        .await
        .expect("the first events");
    assert_eq!(
        first.iter().map(|e| e.position.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );

    // A read started before more appends returns the log as of its first page, and ends.
    let all = Query::all();
    let mut stream = std::pin::pin!(store.read(&all, ReadOptions::forward()));
    let mut seen = 0u64;
    while let Some(event) = stream.try_next().await.expect("an event") {
        seen += 1;
        assert_eq!(event.position.0, seen, "every event once, in order");
        if seen == 150 {
            store
                .append(vec![random_event(&mut rng)], None)
                .await
                .expect("an append during the read");
        }
    }
    assert_eq!(seen, 10_000, "the read ends at the head it started with");
    assert_eq!(store.head().await.expect("head"), Some(Position(10_001)));
}
