//! A reader tailing the log never skips an event, though transactions commit out of
//! position order; and a reader without the watermark does skip (so the first test can
//! fail).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{event, read_all};
use factum::{
    AppendCondition, AppendError, EventStore, Position, Query, QueryItem, ReadOptions, Tag,
};
use futures::TryStreamExt;
use rand::Rng;
use tokio::sync::{Barrier, oneshot};
use uuid::Uuid;

const WRITERS: usize = 5;
const APPENDS_PER_WRITER: usize = 20;

fn rounds() -> usize {
    std::env::var("FACTUM_TAILING_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20)
}

/// A random pause of up to 3 ms inside each append's transaction, right before commit, so
/// that transactions commit in another order than their positions.
fn random_commit_delay() -> factum_postgres::BeforeCommit {
    Arc::new(|_: &[Position]| {
        let micros = rand::rng().random_range(0..3000);
        Box::pin(tokio::time::sleep(Duration::from_micros(micros)))
    })
}

async fn read_from(store: &impl EventStore, from: Option<Position>) -> Vec<(Position, Uuid)> {
    let options = ReadOptions {
        from: from.map(Position::next),
        ..ReadOptions::forward()
    };
    store
        .read(&Query::all(), options)
        .map_ok(|e| (e.position, e.metadata.id))
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("a tailing read failed: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tailing_reader_sees_every_event_once_in_order() {
    for round in 0..rounds() {
        let (store, _guard) = common::store_with("tailing", |o| {
            o.before_commit = Some(random_commit_delay());
            // Every other round without the fence's wait: the watermark alone must keep
            // the reader from skipping.
            if round % 2 == 1 {
                o.visibility_wait = Duration::ZERO;
            }
        })
        .await;
        let barrier = Arc::new(Barrier::new(WRITERS + 1));
        let done = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn({
            let store = store.clone();
            let barrier = barrier.clone();
            let done = done.clone();
            async move {
                barrier.wait().await;
                let mut seen: Vec<(Position, Uuid)> = Vec::new();
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let new = read_from(&store, seen.last().map(|s| s.0)).await;
                    if finished && new.is_empty() {
                        return seen;
                    }
                    seen.extend(new);
                    tokio::task::yield_now().await;
                }
            }
        });
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let store = store.clone();
            let barrier = barrier.clone();
            writers.push(tokio::spawn(async move {
                barrier.wait().await;
                let me = w.to_string();
                let mine = Query::item(QueryItem::any().with_tags([Tag::new("writer", &me)]));
                let mut last = None;
                for n in 0..APPENDS_PER_WRITER {
                    let events = (0..=n % 3)
                        .map(|_| event("Written", &[("writer", &me)]))
                        .collect();
                    let condition = (n % 2 == 0).then(|| AppendCondition::new(mine.clone(), last));
                    match store.append(events, condition).await {
                        Ok(appended) => last = appended.last(),
                        Err(e) => panic!("round {round}, writer {w}, append {n} failed: {e}"),
                    }
                    let pause = rand::rng().random_range(0..500);
                    tokio::time::sleep(Duration::from_micros(pause)).await;
                }
            }));
        }
        for writer in writers {
            writer
                .await
                .unwrap_or_else(|e| panic!("round {round}: a writer failed: {e}"));
        }
        done.store(true, Ordering::SeqCst);
        let seen = reader
            .await
            .unwrap_or_else(|e| panic!("round {round}: the reader failed: {e}"));
        let log: Vec<(Position, Uuid)> = read_all(&store)
            .await
            .iter()
            .map(|e| (e.position, e.metadata.id))
            .collect();
        let expected = WRITERS * (0..APPENDS_PER_WRITER).map(|n| n % 3 + 1).sum::<usize>();
        assert_eq!(log.len(), expected, "round {round}: the final log");
        if seen != log {
            let seen_at: HashMap<Position, Uuid> = seen.iter().copied().collect();
            let skipped: Vec<Position> = log
                .iter()
                .filter(|(p, _)| !seen_at.contains_key(p))
                .map(|(p, _)| *p)
                .collect();
            panic!(
                "round {round}: the reader's sequence ({} events) is not the final log ({} \
                 events); skipped {skipped:?}",
                seen.len(),
                log.len()
            );
        }
    }
}

/// A reader without the watermark — the plain `position > last` query — skips an event
/// that commits after a higher one; the store's reader waits for it. Deterministic: one
/// append is held just before its commit while a later one commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_watermark_a_reader_skips_and_with_it_it_does_not() {
    // Appends commit at once, except one the test holds: the hook tells the test when it
    // has been reached and waits for the go.
    type Gate = (oneshot::Sender<()>, oneshot::Receiver<()>);
    let gate: Arc<Mutex<Option<Gate>>> = Arc::new(Mutex::new(None));
    let hook_gate = gate.clone();
    let (store, _guard) = common::store_with("naive", move |o| {
        o.visibility_wait = Duration::from_millis(200);
        o.before_commit = Some(Arc::new(move |_: &[Position]| {
            let held = hook_gate.lock().map(|mut g| g.take()).unwrap_or(None);
            Box::pin(async move {
                if let Some((reached, go)) = held {
                    let _ = reached.send(());
                    let _ = go.await;
                }
            })
        }));
    })
    .await;
    let first = store
        .append(vec![event("First", &[])], None)
        .await
        .unwrap_or_else(|e| panic!("the first append failed: {e}"));
    let first = first.positions[0];

    let (reached_tx, reached) = oneshot::channel();
    let (go, go_rx) = oneshot::channel();
    *gate.lock().unwrap_or_else(|e| e.into_inner()) = Some((reached_tx, go_rx));
    let slow = tokio::spawn({
        let store = store.clone();
        async move { store.append(vec![event("Slow", &[])], None).await }
    });
    reached
        .await
        .unwrap_or_else(|_| panic!("the slow append never reached its commit"));
    let fast = store
        .append(vec![event("Fast", &[])], None)
        .await
        .unwrap_or_else(|e| panic!("the fast append failed: {e}"));
    let fast = fast.positions[0];

    // The naive reader sees the fast event; the store's reader sees nothing new yet.
    let client = common::connect_raw().await;
    let naive = |after: Position| {
        let client = &client;
        let sql = format!(
            "SELECT position FROM \"{}\".events WHERE position > $1 ORDER BY position",
            store.schema()
        );
        async move {
            let rows = client
                .query(&sql, &[&(after.0 as i64)])
                .await
                .unwrap_or_else(|e| panic!("the naive read failed: {e}"));
            rows.iter()
                .map(|r| Position(r.get::<_, i64>(0) as u64))
                .collect::<Vec<_>>()
        }
    };
    let naive_first = naive(first).await;
    assert_eq!(
        naive_first,
        [fast],
        "the naive reader sees the event that committed"
    );
    let watched_first = read_from(&store, Some(first)).await;
    assert!(
        watched_first.is_empty(),
        "the store's reader returned {watched_first:?} while a lower position was in flight"
    );

    let _ = go.send(());
    let slow = slow
        .await
        .unwrap_or_else(|e| panic!("the slow append task failed: {e}"))
        .unwrap_or_else(|e: AppendError| panic!("the slow append failed: {e}"));
    let slow = slow.positions[0];
    assert!(slow < fast, "the held append drew the lower position");

    // Tailing on: the naive reader goes on after the fast event and never sees the slow
    // one; the store's reader sees both, in order.
    let naive_next = naive(fast).await;
    assert!(
        naive_next.is_empty(),
        "nothing after the fast event: {naive_next:?}"
    );
    let naive_seen: Vec<Position> = naive_first.into_iter().chain(naive_next).collect();
    assert!(
        !naive_seen.contains(&slow),
        "the naive reader skipped nothing ({naive_seen:?}): this test shows nothing"
    );
    let watched: Vec<Position> = read_from(&store, Some(first))
        .await
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        watched,
        [slow, fast],
        "the store's reader sees both, in order"
    );
}
