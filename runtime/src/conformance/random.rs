//! The randomized DCB check: many random writers, every success honouring its condition;
//! and the seed that drives it and the tailing reader.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Barrier;
use uuid::Uuid;

use super::support::{assert_strictly_increasing, event, head, join, named_seeded, read, types};
use crate::model::{AppendCondition, NewEvent, Position, Query, QueryItem, Tag};
use crate::store::{AppendError, EventStore, ReadOptions};

/// The environment variable that sets the seed of the randomized cases' default sizes:
/// a `u64`, decimal or `0x`-hexadecimal (see [Reproducing a failure](super#reproducing-a-failure)).
pub const SEED_VARIABLE: &str = "FACTUM_CONFORMANCE_SEED";

/// The seed of the default sizes when [`SEED_VARIABLE`] is not set.
const DEFAULT_SEED: u64 = 0x00FA_C700;

/// The seed from [`SEED_VARIABLE`], or [`DEFAULT_SEED`] when it is unset or empty.
///
/// Panics on a value that is not a seed: a typo must not silently run the default.
pub(super) fn default_seed() -> u64 {
    let value = match std::env::var(SEED_VARIABLE) {
        Ok(value) => value,
        Err(std::env::VarError::NotPresent) => return DEFAULT_SEED,
        Err(e) => panic!("store conformance: {SEED_VARIABLE} is not readable: {e}"),
    };
    let value = value.trim();
    if value.is_empty() {
        return DEFAULT_SEED;
    }
    let parsed = match value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => value.replace('_', "").parse(),
    };
    parsed.unwrap_or_else(|_| {
        panic!(
            "store conformance: {SEED_VARIABLE}={value:?} is not a seed (a u64, decimal or \
             0x-hexadecimal)"
        )
    })
}

/// Sizes of [`random_consistency_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomConsistency {
    /// Concurrent writer tasks.
    pub writers: usize,
    /// Append attempts per writer.
    pub appends_per_writer: usize,
    /// Seed of the random choices; writer `i` uses `seed + i`. Failure messages name it.
    /// The interleaving of the writers is up to the runtime, so runs differ anyway.
    pub seed: u64,
}

impl Default for RandomConsistency {
    /// 8 writers of 50 appends each; the seed from [`SEED_VARIABLE`] if it is set, else a
    /// fixed one.
    fn default() -> Self {
        RandomConsistency {
            writers: 8,
            appends_per_writer: 50,
            seed: default_seed(),
        }
    }
}

/// [`random_consistency_with`] with the default sizes (8 writers × 50 appends).
pub async fn random_consistency<S: EventStore + Clone + 'static>(store: S) {
    random_consistency_with(store, RandomConsistency::default()).await;
}

/// The DCB guarantee under random concurrent load.
///
/// Writer tasks each repeat: pick a random query over a few types and tags, read it (or,
/// now and then, pretend to have read nothing), append one to three random events on the
/// condition (that query, the last position read). Afterwards, for the final log:
/// - positions are unique and increasing, and [`EventStore::head`] is the last;
/// - the log holds exactly the events of the successful appends, each batch adjacent and
///   in order at the positions its append returned;
/// - for every successful append, **no event matching its condition's query lies after the
///   condition's position and before the append's first position**
///   ([`AppendCondition::is_violated_by`] holds for none of them);
/// - every conflict names an event that is in the log at that position, with that type,
///   and that violates the condition.
///
/// Failure messages name the seed, and the writer and attempt concerned.
pub async fn random_consistency_with<S: EventStore + Clone + 'static>(
    store: S,
    sizes: RandomConsistency,
) {
    named_seeded("random_consistency", sizes.seed, async move {
        let barrier = Arc::new(Barrier::new(sizes.writers));
        let mut tasks = Vec::new();
        for w in 0..sizes.writers {
            let store = store.clone();
            let barrier = barrier.clone();
            let seed = sizes.seed.wrapping_add(w as u64);
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                random_writer(&store, w, seed, sizes.appends_per_writer).await
            }));
        }
        let mut successes = Vec::new();
        let mut conflicts = Vec::new();
        for task in tasks {
            let (s, c) = join(task).await;
            successes.extend(s);
            conflicts.extend(c);
        }

        let log = read(&store, &Query::all(), ReadOptions::forward()).await;
        let positions: Vec<Position> = log.iter().map(|e| e.position).collect();
        assert_strictly_increasing(&positions, "positions of the final log");
        assert_eq!(
            head(&store).await,
            positions.last().copied(),
            "the head of the final log"
        );
        let index: BTreeMap<Position, usize> =
            positions.iter().enumerate().map(|(i, p)| (*p, i)).collect();

        let written: usize = successes.iter().map(|s| s.ids.len()).sum();
        assert_eq!(
            log.len(),
            written,
            "the log holds {} events but the successful appends wrote {written}",
            log.len()
        );
        for success in &successes {
            let first = success.positions[0];
            let who = format!("writer {}, attempt {}", success.writer, success.attempt);
            let Some(&start) = index.get(&first) else {
                panic!("{who}: position {first} of a successful append is not in the log");
            };
            for (k, (id, position)) in success.ids.iter().zip(&success.positions).enumerate() {
                let stored = &log.get(start + k).unwrap_or_else(|| {
                    panic!("{who}: the append at {first} runs past the end of the log")
                });
                assert_eq!(
                    (stored.position, stored.metadata.id),
                    (*position, *id),
                    "{who}: event {k} of the append at {first}: not where the append said, or \
                     another event lies between"
                );
            }
            let condition = &success.condition;
            let violation = log[..start]
                .iter()
                .find(|e| condition.is_violated_by(e.position, &e.event_type, &e.tags));
            if let Some(e) = violation {
                panic!(
                    "DCB violated: the append at {first} ({who}) succeeded on condition ({}, \
                     after {:?}) but {} at {} matches that query and was written after that \
                     position",
                    condition.query, condition.after, e.event_type, e.position
                );
            }
        }
        for conflict in &conflicts {
            let who = format!("writer {}, attempt {}", conflict.writer, conflict.attempt);
            let Some(&i) = index.get(&conflict.position) else {
                panic!(
                    "{who}: a conflict names {} but the log has no event there",
                    conflict.position
                );
            };
            let e = &log[i];
            assert_eq!(
                e.event_type, conflict.event_type,
                "{who}: the type a conflict names for the event at {}",
                conflict.position
            );
            let condition = &conflict.condition;
            assert!(
                condition.is_violated_by(e.position, &e.event_type, &e.tags),
                "{who}: a conflict on ({}, after {:?}) names {} at {}, which does not violate it",
                condition.query,
                condition.after,
                e.event_type,
                e.position
            );
        }
    })
    .await;
}

pub(super) const TYPES: [&str; 3] = ["A", "B", "C"];
pub(super) const TAGS: [(&str, &str); 4] = [("k", "1"), ("k", "2"), ("l", "1"), ("l", "2")];

struct Success {
    writer: usize,
    attempt: usize,
    condition: AppendCondition,
    ids: Vec<Uuid>,
    positions: Vec<Position>,
}

struct Conflict {
    writer: usize,
    attempt: usize,
    condition: AppendCondition,
    position: Position,
    event_type: String,
}

async fn random_writer<S: EventStore>(
    store: &S,
    writer: usize,
    seed: u64,
    attempts: usize,
) -> (Vec<Success>, Vec<Conflict>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut successes = Vec::new();
    let mut conflicts = Vec::new();
    for attempt in 0..attempts {
        let query = random_query(&mut rng);
        let after = match rng.random_range(0..10) {
            0 => None,
            1..=4 => read(store, &query, ReadOptions::last(1))
                .await
                .first()
                .map(|e| e.position),
            _ => read(store, &query, ReadOptions::forward())
                .await
                .last()
                .map(|e| e.position),
        };
        tokio::task::yield_now().await;
        let events: Vec<NewEvent> = (0..rng.random_range(1..=3))
            .map(|_| {
                let t = TYPES[rng.random_range(0..TYPES.len())];
                let tags: Vec<(&str, &str)> = (0..rng.random_range(0..=2))
                    .map(|_| TAGS[rng.random_range(0..TAGS.len())])
                    .collect();
                event(t, &tags)
            })
            .collect();
        let ids: Vec<Uuid> = events.iter().map(|e| e.metadata.id).collect();
        let condition = AppendCondition::new(query, after);
        match store.append(events, Some(condition.clone())).await {
            Ok(appended) => {
                assert_eq!(
                    appended.positions.len(),
                    ids.len(),
                    "writer {writer}, attempt {attempt}: one position per event"
                );
                assert_strictly_increasing(
                    &appended.positions,
                    &format!("writer {writer}, attempt {attempt}: positions of one append"),
                );
                successes.push(Success {
                    writer,
                    attempt,
                    condition,
                    ids,
                    positions: appended.positions,
                });
            }
            Err(AppendError::Conflict {
                position,
                event_type,
            }) => conflicts.push(Conflict {
                writer,
                attempt,
                condition,
                position,
                event_type,
            }),
            Err(other) => panic!(
                "writer {writer}, attempt {attempt}: an append on ({}, after {:?}) failed with \
                 {other}",
                condition.query, condition.after
            ),
        }
    }
    (successes, conflicts)
}

pub(super) fn random_query(rng: &mut StdRng) -> Query {
    if rng.random_range(0..20) == 0 {
        // Matches no event written here (a condition cannot be `Query::none()`).
        return types(&["Never"]);
    }
    (0..rng.random_range(1..=2))
        .map(|_| {
            let types: Vec<&str> = (0..rng.random_range(0..=2))
                .map(|_| TYPES[rng.random_range(0..TYPES.len())])
                .collect();
            let tags: Vec<Tag> = (0..rng.random_range(0..=2))
                .map(|_| {
                    let (k, v) = TAGS[rng.random_range(0..TAGS.len())];
                    Tag::new(k, v)
                })
                .collect();
            QueryItem::types(types).with_tags(tags)
        })
        .collect()
}
