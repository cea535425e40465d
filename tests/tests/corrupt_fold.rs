//! A decision whose state covers a stored row the store cannot read as an event (its
//! codec column names an unknown codec) fails with a corrupt-record error naming that
//! row's position and type, on the engine and in a serial lane: no panic, no hang, and
//! decisions on other states go on.

use std::time::Duration;

use factum::lanes::{Dispatcher, Drain, Strategy};
use factum::prelude::*;
use factum::{DecideError, StoreError};
use futures::TryStreamExt;

#[factum::events]
pub mod stock {
    pub struct Restocked {
        #[tag]
        pub sku: String,
        pub units: u32,
    }
}

#[derive(State, Debug, Default)]
pub struct Sku {
    #[id]
    pub sku: String,
    pub available: u32,
}

#[factum::fold]
impl Sku {
    fn restocked(&mut self, e: &stock::Restocked) {
        self.available += e.units;
    }
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("never")]
pub struct Never;

/// Restocks one unit.
#[derive(Decision, Clone)]
#[decision(partition = sku)]
pub struct Restock {
    pub sku: String,
}

impl Decide for Restock {
    type State = Sku;
    type Event = stock::Restocked;
    type Error = Never;

    fn state(&self) -> Sku {
        Sku::new(&self.sku)
    }

    fn decide(&self, _: &Sku) -> Result<Vec<stock::Restocked>, Never> {
        Ok(vec![stock::Restocked {
            sku: self.sku.clone(),
            units: 1,
        }])
    }
}

fn restock(sku: &str) -> Restock {
    Restock { sku: sku.into() }
}

fn assert_names_the_row(error: &DecideError<Never>, position: Position, event_type: &str) {
    match error {
        DecideError::Store(StoreError::Corrupt(d)) => {
            assert_eq!(
                (d.position, d.event_type.as_str()),
                (position, event_type),
                "{d}"
            );
            assert!(d.to_string().contains("zstd"), "the reason: {d}");
        }
        other => panic!("expected a corrupt record at {position}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fold_over_an_unreadable_row_fails_the_decision_naming_it() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("events.db");
    let engine = Engine::new(factum_sqlite::open(&path).await.expect("a store"));
    for sku in ["a", "a", "b"] {
        engine.decide(&restock(sku)).await.expect("a restock");
    }
    let (_, appended) = engine.load(Sku::new("a")).await.expect("a load");
    assert_eq!(appended, Some(Position(2)));
    let stored: Vec<StoredEvent> = engine
        .store()
        .read(&Query::all(), ReadOptions::forward())
        .try_collect()
        .await
        .expect("a read");
    let event_type = stored[1].event_type.clone();
    let event_type = event_type.as_str();
    rusqlite::Connection::open(&path)
        .expect("a raw connection")
        .execute("UPDATE events SET codec = 'zstd' WHERE position = 2", [])
        .expect("spoiling the row");

    let failed = tokio::time::timeout(Duration::from_secs(10), engine.decide(&restock("a")))
        .await
        .expect("the decision ends");
    assert_names_the_row(
        &failed.expect_err("the fold fails"),
        Position(2),
        event_type,
    );

    let dispatcher = Dispatcher::new(engine.clone());
    dispatcher.set_strategy::<Restock>(Strategy::SerialLanes);
    for _ in 0..2 {
        // The lane answers, and answers the next one the same way: it is not wedged.
        let failed = tokio::time::timeout(Duration::from_secs(10), dispatcher.decide(restock("a")))
            .await
            .expect("the lane answers");
        assert_names_the_row(
            &failed.expect_err("the fold fails"),
            Position(2),
            event_type,
        );
    }
    // Other states are not held up by it.
    dispatcher
        .decide(restock("b"))
        .await
        .expect("a decision on another state");
    engine
        .decide(&restock("b"))
        .await
        .expect("a decision on another state");
    dispatcher.shutdown(Drain::Finish).await;
}
