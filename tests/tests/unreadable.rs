//! Values a codec writes but cannot read back, on a SQLite store, through the events and
//! states the macros generate: a decision emitting a NaN gets a typed encode error naming
//! the event type and the field, and commits nothing; a state folded to a NaN keeps no
//! snapshot (a cache) and still decides; a snapshot of extreme floats restores them bit
//! for bit.

use factum::SnapshotStore;
use factum::prelude::*;
use factum::{DecideError, StoreError};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Price {
    pub amount: f64,
}

#[factum::events]
pub mod seats {
    #[group(Seat)]
    pub struct SeatPriced {
        #[tag]
        pub seat: String,
        pub prices: Vec<super::Price>,
    }
    #[group(Seat)]
    pub struct SeatMeasured {
        #[tag]
        pub seat: String,
        pub numerator: f64,
        pub denominator: f64,
    }
}

/// The seat's last prices and the ratio of its last measure, snapshotted at every load.
#[derive(State, Debug, Default, PartialEq, Serialize, Deserialize)]
#[state(snapshot_every = 1)]
pub struct Seat {
    #[id]
    pub seat: String,
    pub amounts: Vec<f64>,
    pub ratio: f64,
    pub events: u32,
}

#[factum::fold]
impl Seat {
    fn priced(&mut self, e: &seats::SeatPriced) {
        self.amounts = e.prices.iter().map(|p| p.amount).collect();
        self.events += 1;
    }
    fn measured(&mut self, e: &seats::SeatMeasured) {
        // 0 / 0: a fold can make a NaN out of events that hold none.
        self.ratio = e.numerator / e.denominator;
        self.events += 1;
    }
}

#[derive(Decision, Clone)]
#[decision(partition = seat)]
pub struct Reprice {
    pub seat: String,
    pub event: seats::SeatEvent,
}

impl Decide for Reprice {
    type State = Seat;
    type Event = seats::SeatEvent;
    type Error = std::convert::Infallible;

    fn state(&self) -> Seat {
        Seat::new(&self.seat)
    }

    fn decide(&self, _: &Seat) -> Result<Vec<seats::SeatEvent>, Self::Error> {
        Ok(vec![self.event.clone()])
    }
}

fn priced(amounts: &[f64]) -> Reprice {
    Reprice {
        seat: "s1".to_owned(),
        event: seats::SeatEvent::SeatPriced(seats::SeatPriced {
            seat: "s1".to_owned(),
            prices: amounts.iter().map(|&amount| Price { amount }).collect(),
        }),
    }
}

fn measured(numerator: f64, denominator: f64) -> Reprice {
    Reprice {
        seat: "s1".to_owned(),
        event: seats::SeatEvent::SeatMeasured(seats::SeatMeasured {
            seat: "s1".to_owned(),
            numerator,
            denominator,
        }),
    }
}

async fn sqlite() -> (factum_sqlite::SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = factum_sqlite::open(dir.path().join("seats.db"))
        .await
        .unwrap();
    (store, dir)
}

#[tokio::test]
async fn a_nan_in_a_generated_event_is_a_typed_encode_error_and_commits_nothing() {
    let (store, _dir) = sqlite().await;
    let engine = Engine::new(store.clone());
    engine.decide(&priced(&[1.0])).await.unwrap();
    let head = store.head().await.unwrap();

    for (amounts, path, value) in [
        (
            vec![1.0, 2.0, f64::NAN],
            "SeatPriced.prices[2].amount",
            "NaN",
        ),
        (vec![f64::INFINITY], "SeatPriced.prices[0].amount", "inf"),
    ] {
        let error = match engine.decide(&priced(&amounts)).await {
            Err(DecideError::Encode(e)) => e,
            other => panic!("{path} = {value}: expected an encode error, got {other:?}"),
        };
        assert_eq!(error.event_type, "SeatPriced");
        assert_eq!(error.path(), Some(path), "{error}");
        assert!(
            error.to_string().contains(&format!("{path} is {value}")),
            "{error}"
        );
    }
    assert_eq!(store.head().await.unwrap(), head, "nothing appended");

    let extremes = [f64::MAX, f64::MIN, -0.0, f64::MIN_POSITIVE, 5e-324];
    engine.decide(&priced(&extremes)).await.unwrap();
    let (seat, _) = engine.load(Seat::new("s1")).await.unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&seat.amounts), bits(&extremes));
    assert_eq!(seat.events, 2);
}

#[tokio::test]
async fn a_state_folded_to_nan_keeps_no_snapshot_and_still_decides() {
    let (store, _dir) = sqlite().await;
    let engine = Engine::new(store.clone());
    engine.decide(&measured(0.0, 0.0)).await.unwrap();
    engine.decide(&measured(0.0, 0.0)).await.unwrap();
    let (seat, _) = engine.load(Seat::new("s1")).await.unwrap();
    assert!(seat.ratio.is_nan());
    assert_eq!(seat.events, 2);
    let key = Seat::new("s1").snapshot_key();
    let snapshot = store.load_snapshot(&key).await.unwrap();
    assert!(
        snapshot.is_none(),
        "a state holding a NaN was snapshotted: {:?}",
        snapshot.map(|s| String::from_utf8_lossy(&s.payload.bytes).into_owned())
    );
    assert_eq!(engine.stats().snapshots_saved, 0);
    engine.decide(&measured(1.0, 4.0)).await.unwrap();
    let (seat, _) = engine.load(Seat::new("s1")).await.unwrap();
    assert_eq!((seat.ratio, seat.events), (0.25, 3));
    assert!(
        store.load_snapshot(&key).await.unwrap().is_some(),
        "once it holds no NaN, the state is snapshotted again"
    );
}

#[tokio::test]
async fn a_snapshot_restores_extreme_floats_bit_for_bit() -> Result<(), StoreError> {
    let (store, _dir) = sqlite().await;
    let engine = Engine::new(store.clone());
    let amounts = [
        -0.0,
        f64::MAX,
        f64::MIN,
        f64::MIN_POSITIVE,
        5e-324,
        0.1 + 0.2,
        1.000_000_000_000_000_2,
        9.109_383_701_528_e-31,
    ];
    engine.decide(&priced(&amounts)).await.unwrap();
    let (folded, _) = engine.load(Seat::new("s1")).await.unwrap();
    assert_eq!(engine.stats().snapshots_saved, 1);
    let (restored, _) = engine.load(Seat::new("s1")).await.unwrap();
    assert_eq!(engine.stats().snapshots_restored, 1);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&folded.amounts), bits(&amounts));
    assert_eq!(bits(&restored.amounts), bits(&amounts));
    Ok(())
}
