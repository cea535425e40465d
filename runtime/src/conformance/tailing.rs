//! The tailing reader: a reader polling forward while writers append sees every event
//! exactly once, in order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Barrier;
use uuid::Uuid;

use super::random::{TAGS, TYPES, default_seed, random_query};
use super::support::{
    AbortOnDrop, assert_strictly_increasing, event, first_few, join, named_seeded, read, tags,
};
use crate::model::{AppendCondition, NewEvent, Position, Query, StoredEvent};
use crate::store::{AppendError, EventStore, ReadOptions};

/// Sizes of [`tailing_reader_sees_every_event_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TailingReader {
    /// Concurrent writer tasks.
    pub writers: usize,
    /// Append attempts per writer, of one to three events each.
    pub appends_per_writer: usize,
    /// Seed of the random choices: writer `i` uses `seed + i`, the reader
    /// `seed + writers`. Failure messages name it. The interleaving of the tasks is up to
    /// the runtime, so runs differ anyway.
    pub seed: u64,
}

impl Default for TailingReader {
    /// 4 writers of 50 appends each; the seed from [`SEED_VARIABLE`](super::SEED_VARIABLE) if it is set, else a
    /// fixed one.
    fn default() -> Self {
        TailingReader {
            writers: 4,
            appends_per_writer: 50,
            seed: default_seed(),
        }
    }
}

/// [`tailing_reader_sees_every_event_with`] with the default sizes (4 writers × 50
/// appends).
pub async fn tailing_reader_sees_every_event<S: EventStore + Clone + 'static>(store: S) {
    tailing_reader_sees_every_event_with(store, TailingReader::default()).await;
}

/// A reader that tails the log while writers append sees every event exactly once, in
/// position order.
///
/// Writer tasks each append one to three events at a time: without a condition, on a
/// condition only their own events match (which must hold), or on a random condition
/// (which may conflict), and let the scheduler run others a random few times in between.
/// Meanwhile a reader task polls the log forward from just after the last position it saw
/// (a random `limit` now and then), until the writers are done and one more read returns
/// nothing new. Then:
/// - every read returned positions above all the reader had seen: **a reader never sees a
///   position commit after a higher one it already saw**, so a store that hands out
///   positions before commit must hold back the higher ones until the lower ones commit
///   or are abandoned;
/// - the reader's sequence is the final log (same positions, same event ids): no event
///   skipped, none seen twice;
/// - the final log holds every event of every successful append, at the position the
///   append returned, and nothing else.
///
/// The writers never read, so every first sight of an event is the reader's. Failure
/// messages name the seed, and the writer and append concerned.
pub async fn tailing_reader_sees_every_event_with<S: EventStore + Clone + 'static>(
    store: S,
    sizes: TailingReader,
) {
    let seed = sizes.seed;
    named_seeded("tailing_reader_sees_every_event", seed, async move {
        let barrier = Arc::new(Barrier::new(sizes.writers + 1));
        let done = Arc::new(AtomicBool::new(false));
        let reader = AbortOnDrop(tokio::spawn({
            let store = store.clone();
            let barrier = barrier.clone();
            let done = done.clone();
            let max_events = sizes.writers * sizes.appends_per_writer * 3;
            let seed = seed.wrapping_add(sizes.writers as u64);
            async move {
                barrier.wait().await;
                tail(&store, seed, &done, max_events).await
            }
        }));
        let mut tasks = Vec::new();
        for w in 0..sizes.writers {
            let store = store.clone();
            let barrier = barrier.clone();
            let seed = seed.wrapping_add(w as u64);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                tailing_writer(&store, w, seed, sizes.appends_per_writer).await
            }));
        }
        let mut written = Vec::new();
        for task in tasks {
            written.extend(join(task).await);
        }
        // Every append has returned: whatever the reader reads from now on must include
        // every event still unseen.
        done.store(true, Ordering::SeqCst);
        let seen = reader.join().await;

        let log = read(&store, &Query::all(), ReadOptions::forward()).await;
        let positions: Vec<Position> = log.iter().map(|e| e.position).collect();
        assert_strictly_increasing(&positions, "positions of the final log");
        let by_position: HashMap<Position, &StoredEvent> =
            log.iter().map(|e| (e.position, e)).collect();
        for batch in &written {
            for (id, position) in batch.ids.iter().zip(&batch.positions) {
                match by_position.get(position) {
                    Some(e) if e.metadata.id == *id => {}
                    Some(e) => panic!(
                        "writer {}, append {}: the final log holds another event ({} {}) at {}, \
                         where the append put {id}",
                        batch.writer, batch.append, e.event_type, e.metadata.id, position
                    ),
                    None => panic!(
                        "writer {}, append {}: the final log has no event at {position}, where \
                         the append put {id}",
                        batch.writer, batch.append
                    ),
                }
            }
        }
        let total: usize = written.iter().map(|b| b.ids.len()).sum();
        assert_eq!(
            log.len(),
            total,
            "the final log holds {} events but the successful appends wrote {total}",
            log.len()
        );

        let expected: Vec<(Position, Uuid)> =
            log.iter().map(|e| (e.position, e.metadata.id)).collect();
        if seen != expected {
            let seen_set: HashSet<(Position, Uuid)> = seen.iter().copied().collect();
            let log_set: HashSet<(Position, Uuid)> = expected.iter().copied().collect();
            let missed: Vec<String> = log
                .iter()
                .filter(|e| !seen_set.contains(&(e.position, e.metadata.id)))
                .map(|e| format!("{} at {}", e.event_type, e.position))
                .collect();
            let extra: Vec<String> = seen
                .iter()
                .filter(|s| !log_set.contains(s))
                .map(|(p, id)| format!("{id} at {p}"))
                .collect();
            panic!(
                "the tailing reader's sequence is not the final log: it read {} events, the log \
                 holds {}; it skipped {} ({}) and saw {} the log does not hold ({})",
                seen.len(),
                expected.len(),
                missed.len(),
                first_few(&missed),
                extra.len(),
                first_few(&extra),
            );
        }
    })
    .await;
}

/// A successful append of [`tailing_writer`].
struct Batch {
    writer: usize,
    append: usize,
    ids: Vec<Uuid>,
    positions: Vec<Position>,
}

/// Appends `appends` random batches, never reading, and returns the successful ones.
async fn tailing_writer<S: EventStore>(
    store: &S,
    writer: usize,
    seed: u64,
    appends: usize,
) -> Vec<Batch> {
    let mut rng = StdRng::seed_from_u64(seed);
    let me = writer.to_string();
    let own = tags(&[("writer", &me)]);
    let mut last_own: Option<Position> = None;
    let mut written = Vec::new();
    for append in 0..appends {
        let events: Vec<NewEvent> = (0..rng.random_range(1..=3))
            .map(|_| {
                let t = TYPES[rng.random_range(0..TYPES.len())];
                let mut tags: Vec<(&str, &str)> = (0..rng.random_range(0..=1))
                    .map(|_| TAGS[rng.random_range(0..TAGS.len())])
                    .collect();
                tags.push(("writer", &me));
                event(t, &tags)
            })
            .collect();
        let ids: Vec<Uuid> = events.iter().map(|e| e.metadata.id).collect();
        let (condition, must_hold) = match rng.random_range(0..3) {
            0 => (None, true),
            1 => (Some(AppendCondition::new(own.clone(), last_own)), true),
            _ => (
                Some(AppendCondition::new(random_query(&mut rng), last_own)),
                false,
            ),
        };
        let described = condition
            .as_ref()
            .map(|c| format!("condition ({}, after {:?})", c.query, c.after))
            .unwrap_or_else(|| "no condition".to_owned());
        match store.append(events, condition).await {
            Ok(appended) => {
                assert_eq!(
                    appended.positions.len(),
                    ids.len(),
                    "writer {writer}, append {append}: one position per event"
                );
                assert_strictly_increasing(
                    &appended.positions,
                    &format!("writer {writer}, append {append}: positions of one append"),
                );
                last_own = appended.last();
                written.push(Batch {
                    writer,
                    append,
                    ids,
                    positions: appended.positions,
                });
            }
            Err(AppendError::Conflict { .. }) if !must_hold => {}
            Err(e) => {
                panic!("writer {writer}, append {append}: an append on {described} failed: {e}")
            }
        }
        pause(&mut rng).await;
    }
    written
}

/// Polls the log forward from just after the last position seen until `done` was set
/// before a read that returns nothing; returns what it saw, in order.
async fn tail<S: EventStore>(
    store: &S,
    seed: u64,
    done: &AtomicBool,
    max_events: usize,
) -> Vec<(Position, Uuid)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut seen: Vec<(Position, Uuid)> = Vec::new();
    let mut reads_after_done = 0usize;
    for n in 0.. {
        // Read the flag first: if the writers were done before this read began, the read
        // must return every event the reader has not seen.
        let finished = done.load(Ordering::SeqCst);
        let limit = (rng.random_range(0..4) == 0).then(|| rng.random_range(1..=5));
        let options = ReadOptions {
            from: seen.last().map(|(p, _)| p.next()),
            backwards: false,
            limit,
        };
        let events = read(store, &Query::all(), options).await;
        if let Some(limit) = limit {
            assert!(
                events.len() <= limit,
                "reader, read {n} ({options:?}): {} events returned",
                events.len()
            );
        }
        for e in &events {
            if let Some(&(last, _)) = seen.last() {
                assert!(
                    e.position > last,
                    "reader, read {n} ({options:?}): got {} at {} after it had seen {last}: a \
                     reader must never see a position below one it already saw",
                    e.event_type,
                    e.position
                );
            }
            seen.push((e.position, e.metadata.id));
        }
        if finished {
            if events.is_empty() {
                return seen;
            }
            reads_after_done += 1;
            assert!(
                reads_after_done <= max_events + 1,
                "reader, read {n}: still new events {reads_after_done} reads after the writers \
                 finished, more than they can have written"
            );
        }
        pause(&mut rng).await;
    }
    unreachable!("the reader polls until it returns")
}

/// Lets the scheduler run other tasks zero to three times.
async fn pause(rng: &mut StdRng) {
    for _ in 0..rng.random_range(0..=3) {
        tokio::task::yield_now().await;
    }
}
