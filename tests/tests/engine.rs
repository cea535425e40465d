//! The engine end to end on the in-memory store: one read for all states, each state
//! folding only its own events, conditional appends, retries, exclusions, `emits`, and
//! concurrent deciders on real threads.

use std::sync::Arc;

use factum::DecideError;
use factum::prelude::*;
use factum_tests::races::{self, AllReadFirst, Interfering};
use futures::TryStreamExt;

#[factum::events]
pub mod stock {
    pub struct Restocked {
        #[tag]
        pub sku: String,
        pub units: u32,
    }
    pub struct Reserved {
        #[tag]
        pub sku: String,
        #[tag]
        pub order: String,
        pub units: u32,
    }
    pub struct Noted {
        #[tag]
        pub sku: String,
    }
}

#[derive(State, Debug, Default)]
pub struct Sku {
    #[id]
    pub sku: String,
    /// Signed: with tolerated overbooking it can go below zero.
    pub available: i64,
    pub last: Option<Position>,
}

#[factum::fold]
impl Sku {
    fn restocked(&mut self, e: &stock::Restocked, stored: &StoredEvent) {
        self.available += i64::from(e.units);
        self.last = Some(stored.position);
    }
    fn reserved(&mut self, e: &stock::Reserved) {
        self.available -= i64::from(e.units);
    }
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum StockError {
    #[error("sku {sku}: {wanted} wanted, {available} available")]
    Short {
        sku: String,
        wanted: u32,
        available: i64,
    },
}

/// Reserve one unit of every listed sku: one state per sku, known only from the command.
#[derive(Decision, Clone, serde::Serialize)]
#[decision(partition = order, idempotency = order, retries = 100, max_delay_ms = 5)]
pub struct Reserve {
    pub order: String,
    pub skus: Vec<String>,
}

impl Decide for Reserve {
    type State = Vec<Sku>;
    type Event = stock::Event;
    type Error = StockError;

    fn state(&self) -> Vec<Sku> {
        self.skus.iter().map(Sku::new).collect()
    }

    fn decide(&self, skus: &Vec<Sku>) -> Result<Vec<stock::Event>, StockError> {
        let mut out = Vec::new();
        for s in skus {
            if s.available <= 0 {
                return Err(StockError::Short {
                    sku: s.sku.clone(),
                    wanted: 1,
                    available: s.available,
                });
            }
            out.push(
                stock::Reserved {
                    sku: s.sku.clone(),
                    order: self.order.clone(),
                    units: 1,
                }
                .into(),
            );
        }
        Ok(out)
    }
}

/// Declares a decision reserving one unit of one sku, with the given metadata: the
/// variants below differ only in how they handle concurrency.
macro_rules! reserve_one {
    ($(#[$doc:meta])* $name:ident, $($meta:tt)*) => {
        $(#[$doc])*
        #[derive(Decision, Clone)]
        #[decision($($meta)*)]
        pub struct $name {
            pub order: String,
            pub sku: String,
        }

        impl Decide for $name {
            type State = Sku;
            type Event = stock::Reserved;
            type Error = StockError;

            fn state(&self) -> Sku {
                Sku::new(&self.sku)
            }

            fn decide(&self, s: &Sku) -> Result<Vec<stock::Reserved>, StockError> {
                if s.available <= 0 {
                    return Err(StockError::Short {
                        sku: s.sku.clone(),
                        wanted: 1,
                        available: s.available,
                    });
                }
                Ok(vec![stock::Reserved {
                    sku: s.sku.clone(),
                    order: self.order.clone(),
                    units: 1,
                }])
            }
        }
    };
}

reserve_one!(
    /// Reservations by others do not invalidate it (tolerated overbooking).
    ReserveLoosely, exclude = [stock::Reserved], retries = 0
);
reserve_one!(
    /// Strict, and never retries.
    ReserveOnce, retries = 0
);
reserve_one!(
    /// Strict, with two retries.
    ReserveWithRetries, retries = 2, min_delay_ms = 1, max_delay_ms = 2
);

/// Declares it emits only `Reserved`, but also returns a `Noted`.
#[derive(Decision)]
#[decision(emits = [stock::Reserved])]
pub struct Sloppy {
    pub sku: String,
}

impl Decide for Sloppy {
    type State = Sku;
    type Event = stock::Event;
    type Error = StockError;

    fn state(&self) -> Sku {
        Sku::new(&self.sku)
    }

    fn decide(&self, _: &Sku) -> Result<Vec<stock::Event>, StockError> {
        Ok(vec![
            stock::Noted {
                sku: self.sku.clone(),
            }
            .into(),
        ])
    }
}

/// Decides that nothing needs to happen.
#[derive(Decision)]
pub struct Check {
    pub sku: String,
}

impl Decide for Check {
    type State = Sku;
    type Event = stock::Event;
    type Error = StockError;

    fn state(&self) -> Sku {
        Sku::new(&self.sku)
    }

    fn decide(&self, _: &Sku) -> Result<Vec<stock::Event>, StockError> {
        Ok(Vec::new())
    }
}

fn new_event<E: EventSet>(e: E) -> NewEvent {
    e.to_new_event(Codec::Json).unwrap()
}

async fn restock(store: &impl EventStore, sku: &str, units: u32) {
    store
        .append(
            vec![new_event(stock::Restocked {
                sku: sku.into(),
                units,
            })],
            None,
        )
        .await
        .unwrap();
}

async fn all_events(store: &impl EventStore) -> Vec<StoredEvent> {
    let q = Query::all();
    store
        .read(&q, ReadOptions::forward())
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_vec_of_states_folds_each_only_its_own_events_from_one_read() {
    let engine = Engine::new(MemoryStore::new());
    restock(engine.store(), "a", 2).await;
    restock(engine.store(), "b", 1).await;
    restock(engine.store(), "c", 0).await;
    let out = engine
        .decide(&Reserve {
            order: "o1".into(),
            skus: vec!["a".into(), "b".into()],
        })
        .await
        .unwrap();
    assert_eq!(out.positions, vec![Position(4), Position(5)]);
    assert_eq!(out.attempts, 1);
    let err = engine
        .decide(&Reserve {
            order: "o2".into(),
            skus: vec!["a".into(), "b".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.into_domain(),
        Some(StockError::Short {
            sku: "b".into(),
            wanted: 1,
            available: 0
        })
    );
    let stored = all_events(engine.store()).await;
    assert_eq!(stored.len(), 5, "a rejected decision appends nothing");
    assert_eq!(
        stored[3]
            .metadata
            .idempotency_key
            .as_deref()
            .map(factum::model::idempotency::recorded_key),
        Some("Reserve:o1"),
        "the idempotency key, scoped by the decision, is recorded with the append"
    );
}

#[test]
fn a_fold_handler_sees_the_stored_position() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = MemoryStore::new();
        restock(&store, "x", 1).await;
        restock(&store, "a", 1).await;
        let mut sku = Sku::new("a");
        let q = factum::State::query(&sku);
        let events: Vec<StoredEvent> = store
            .read(&q, ReadOptions::forward())
            .try_collect()
            .await
            .unwrap();
        for e in &events {
            factum::StateSet::fold(&mut sku, e).unwrap();
        }
        assert_eq!(sku.last, Some(Position(2)));
        assert_eq!(sku.available, 1);
    });
}

#[tokio::test]
async fn emitting_an_undeclared_type_is_an_error_and_appends_nothing() {
    let engine = Engine::new(MemoryStore::new());
    let err = engine
        .decide(&Sloppy { sku: "a".into() })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DecideError::UndeclaredEmit {
                decision: "Sloppy",
                event_type: "Noted"
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "Sloppy emitted Noted, which is not in its `emits` list"
    );
    assert!(engine.store().is_empty());
}

#[tokio::test]
async fn a_decision_that_emits_nothing_appends_nothing() {
    let engine = Engine::new(MemoryStore::new());
    restock(engine.store(), "a", 1).await;
    let out = engine.decide(&Check { sku: "a".into() }).await.unwrap();
    assert!(out.events.is_empty() && out.positions.is_empty());
    assert_eq!(engine.store().len(), 1);
}

#[tokio::test]
async fn a_corrupt_stored_event_fails_the_decision_naming_position_and_type() {
    let engine = Engine::new(MemoryStore::new());
    restock(engine.store(), "a", 1).await;
    let mut bad = new_event(stock::Restocked {
        sku: "a".into(),
        units: 1,
    });
    bad.payload.bytes = br#"{"sku":"a","units":-1}"#.to_vec();
    engine.store().append(vec![bad], None).await.unwrap();
    let err = engine
        .decide(&ReserveOnce {
            order: "o".into(),
            sku: "a".into(),
        })
        .await
        .unwrap_err();
    let DecideError::Decode(decode) = &err else {
        panic!("expected a decode error, got {err:?}");
    };
    assert_eq!(decode.position, Position(2));
    assert_eq!(decode.event_type, "Restocked");
    assert_eq!(engine.store().len(), 2);
}

fn interfering(
    times: u32,
    event: impl Fn() -> NewEvent + Send + Sync + 'static,
) -> Interfering<MemoryStore> {
    races::interfering(MemoryStore::new(), times, event)
}

fn someone_reserves() -> NewEvent {
    new_event(stock::Reserved {
        sku: "a".into(),
        order: "other".into(),
        units: 1,
    })
}

#[tokio::test]
async fn a_conflict_without_retries_is_a_typed_error_and_writes_nothing() {
    let store = interfering(1, someone_reserves);
    restock(&store.inner, "a", 5).await;
    let engine = Engine::new(store.clone());
    let err = engine
        .decide(&ReserveOnce {
            order: "o".into(),
            sku: "a".into(),
        })
        .await
        .unwrap_err();
    match &err {
        DecideError::Conflict {
            decision,
            attempts,
            position,
            event_type,
        } => {
            assert_eq!((*decision, *attempts), ("ReserveOnce", 1));
            assert_eq!((*position, event_type.as_str()), (Position(2), "Reserved"));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.inner.len(),
        2,
        "only the other writer's event is there"
    );
}

#[tokio::test]
async fn a_conflict_is_retried_with_a_fresh_read() {
    let store = interfering(3, someone_reserves);
    restock(&store.inner, "a", 4).await;
    let engine = Engine::new(store.clone());
    let out = engine
        .decide(&Reserve {
            order: "o".into(),
            skus: vec!["a".into()],
        })
        .await
        .unwrap();
    assert_eq!(out.attempts, 4);
    assert_eq!(out.positions, vec![Position(5)]);
    // The fourth attempt folded the three interfering reservations: nothing left now.
    let err = engine
        .decide(&Reserve {
            order: "o2".into(),
            skus: vec!["a".into()],
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, DecideError::Domain(StockError::Short { .. })),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_excluded_type_does_not_conflict_but_the_others_still_do() {
    let store = interfering(1, someone_reserves);
    restock(&store.inner, "a", 5).await;
    let engine = Engine::new(store.clone());
    let out = engine
        .decide(&ReserveLoosely {
            order: "o".into(),
            sku: "a".into(),
        })
        .await
        .unwrap();
    assert_eq!(out.attempts, 1, "a concurrent Reserved is tolerated");

    let store = interfering(1, || {
        new_event(stock::Restocked {
            sku: "a".into(),
            units: 1,
        })
    });
    restock(&store.inner, "a", 5).await;
    let err = Engine::new(store)
        .decide(&ReserveLoosely {
            order: "o".into(),
            sku: "a".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, DecideError::Conflict { .. }),
        "a concurrent Restocked is not: {err:?}"
    );
}

async fn race<S, D>(
    engine: &Engine<S>,
    deciders: usize,
    make: impl Fn(usize) -> D,
) -> (usize, usize)
where
    S: EventStore + Clone + 'static,
    D: Decide<Error = StockError> + Clone,
{
    let mut tasks = Vec::new();
    for i in 0..deciders {
        let engine = engine.clone();
        let decision = make(i);
        tasks.push(tokio::spawn(async move { engine.decide(&decision).await }));
    }
    let (mut ok, mut rejected) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(DecideError::Domain(StockError::Short { .. })) => rejected += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    (ok, rejected)
}

async fn reserved_units(store: &impl EventStore, sku: &str) -> usize {
    all_events(store)
        .await
        .iter()
        .filter(|e| e.event_type == "Reserved" && e.has_tag("sku", sku))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_deciders_that_all_read_first_never_overbook() {
    let store = AllReadFirst::new(MemoryStore::new(), 5);
    restock(&store.inner, "hot", 3).await;
    let engine = Engine::new(store.clone());
    let (ok, rejected) = race(&engine, 5, |i| Reserve {
        order: format!("o{i}"),
        skus: vec!["hot".into()],
    })
    .await;
    assert_eq!((ok, rejected), (3, 2));
    assert_eq!(
        reserved_units(&store.inner, "hot").await,
        3,
        "the log holds exactly the acknowledged reservations"
    );
    let stats = engine.stats();
    assert_eq!((stats.committed, stats.rejected), (3, 2));
    // All five passed the check on the same read; four lost the first commit race.
    assert!(stats.conflicts >= 4, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deciders_never_overbook() {
    let engine = Engine::new(MemoryStore::new());
    restock(engine.store(), "hot", 10).await;
    let (ok, rejected) = race(&engine, 64, |i| Reserve {
        order: format!("o{i}"),
        skus: vec!["hot".into()],
    })
    .await;
    assert_eq!((ok, rejected), (10, 54));
    assert_eq!(reserved_units(engine.store(), "hot").await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_exclusion_lets_every_decider_in_flight_overbook_once() {
    let store = AllReadFirst::new(MemoryStore::new(), 5);
    restock(&store.inner, "hot", 3).await;
    let engine = Engine::new(store.clone());
    let (ok, rejected) = race(&engine, 5, |i| ReserveLoosely {
        order: format!("o{i}"),
        sku: "hot".into(),
    })
    .await;
    // Every decider read 3 available, none is invalidated by the others' reservations:
    // the overbooking is exactly the deciders in flight beyond the stock.
    assert_eq!((ok, rejected), (5, 0));
    assert_eq!(reserved_units(&store.inner, "hot").await, 5);
    assert_eq!(engine.stats().conflicts, 0);
    // Once the reservations are read, the rule holds again.
    let err = engine
        .decide(&ReserveLoosely {
            order: "late".into(),
            sku: "hot".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            DecideError::Domain(StockError::Short { available: -2, .. })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_conflict_error_comes_after_the_last_retry() {
    let store = interfering(10, someone_reserves);
    restock(&store.inner, "a", 50).await;
    let engine = Engine::new(store.clone());
    let err = engine
        .decide(&ReserveWithRetries {
            order: "o".into(),
            sku: "a".into(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, DecideError::Conflict { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(
        store.inner.len(),
        1 + 3,
        "the restock and one interfering event per attempt"
    );
    assert_eq!(engine.stats().conflicts, 3);
    assert_eq!(engine.stats().committed, 0);
}

#[tokio::test]
async fn the_context_ids_are_recorded_on_every_appended_event() {
    let engine = Engine::new(MemoryStore::new());
    restock(engine.store(), "a", 2).await;
    restock(engine.store(), "b", 2).await;
    let context = factum::Context {
        correlation_id: Some(uuid::Uuid::now_v7()),
        causation_id: Some(uuid::Uuid::now_v7()),
    };
    let out = engine
        .decide_with(
            &Reserve {
                order: "o1".into(),
                skus: vec!["a".into(), "b".into()],
            },
            &context,
        )
        .await
        .unwrap();
    let stored = all_events(engine.store()).await;
    for p in out.positions {
        let e = &stored[(p.0 - 1) as usize];
        assert_eq!(e.metadata.correlation_id, context.correlation_id);
        assert_eq!(e.metadata.causation_id, context.causation_id);
        assert_eq!(
            e.metadata
                .idempotency_key
                .as_deref()
                .map(factum::model::idempotency::recorded_key),
            Some("Reserve:o1")
        );
    }
}

#[tokio::test]
async fn queries_are_built_from_event_types() {
    let store = MemoryStore::new();
    restock(&store, "a", 1).await;
    store
        .append(vec![new_event(stock::Noted { sku: "a".into() })], None)
        .await
        .unwrap();
    let reserved_or_restocked =
        Query::of::<stock::Restocked>().union(Query::of::<stock::Reserved>());
    let read: Vec<StoredEvent> = store
        .read(&reserved_or_restocked, ReadOptions::forward())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(read.len(), 1);
    let everything = QueryItem::of::<stock::Event>().with_tags([Tag::new("sku", "a")]);
    assert_eq!(everything.types, ["Restocked", "Reserved", "Noted"]);
    let read: Vec<StoredEvent> = store
        .read(&everything.into(), ReadOptions::forward())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(read.len(), 2);
}

/// Needs no state: records a note whatever happened before.
#[derive(Decision)]
pub struct Note {
    pub sku: String,
}

impl Decide for Note {
    type State = ();
    type Event = stock::Noted;
    type Error = StockError;

    fn state(&self) {}

    fn decide(&self, _: &()) -> Result<Vec<stock::Noted>, StockError> {
        Ok(vec![stock::Noted {
            sku: self.sku.clone(),
        }])
    }
}

#[tokio::test]
async fn a_decision_without_state_appends_unconditionally() {
    let store = interfering(5, someone_reserves);
    restock(&store.inner, "a", 1).await;
    let engine = Engine::new(store.clone());
    let out = engine.decide(&Note { sku: "a".into() }).await.unwrap();
    assert_eq!(out.attempts, 1);
    assert_eq!(out.positions, vec![Position(2)]);
    assert!(<Note as Decide>::info().states.is_empty());
}

/// Decisions and loads run on spawned tasks: their futures are `Send` for every store
/// (the in-memory store folds in place, others from a stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_and_load_futures_can_be_spawned() {
    let store = Arc::new(MemoryStore::new());
    restock(&store, "apple", 3).await;
    let engine = Engine::new(store.clone());
    let decision = Reserve {
        order: "o-spawned".into(),
        skus: vec!["apple".into()],
    };
    let decided = tokio::spawn({
        let engine = engine.clone();
        async move { engine.decide(&decision).await.map(|o| o.positions) }
    });
    assert_eq!(decided.await.unwrap().unwrap().len(), 1);
    let loaded = tokio::spawn(async move { engine.load(Sku::new("apple")).await.map(|(s, _)| s) });
    assert_eq!(loaded.await.unwrap().unwrap().available, 2);
}

/// A decision whose idempotency key already committed is not decided again: it returns
/// the first outcome, read back from the log, and appends nothing (deciding it again
/// would reserve a second apple).
#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_outcome() {
    let store = MemoryStore::new();
    restock(&store, "apple", 5).await;
    let engine = Engine::new(store.clone());
    let order = Reserve {
        order: "o-twice".into(),
        skus: vec!["apple".into()],
    };
    let first = engine.decide(&order).await.unwrap();
    assert!(!first.replayed);
    let again = engine.decide(&order).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.attempts, 0);
    assert_eq!(
        (&again.events, &again.positions),
        (&first.events, &first.positions)
    );
    assert_eq!(store.len(), 2, "the repeated request appended nothing");
    assert_eq!(engine.stats().replayed, 1);
}
