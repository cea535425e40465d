//! The unreadable-values case: a decision whose events hold what their codec's reader
//! would refuse (a NaN or an infinity in JSON, nesting past the reader's depth limit)
//! fails with a typed encode error and appends nothing, through the engine and through a
//! serial lane; the state stays loadable, and the extreme finite floats commit.
//! (Nesting past MessagePack's 1,023 levels is refused too, but needs more stack than a
//! test thread has in a debug build, so the codec's unit tests check it.)
//!
//! Its domain implements factum's traits by hand, as the contention case's does.

use serde::{Deserialize, Serialize};

use super::support::{head, named};
use crate::catalog::EventInfo;
use crate::decide::{
    Context, Decide, DecideError, Decision, DecisionMeta, Engine, Exclusions, RetryPolicy, State,
    StateId,
};
use crate::lanes::{Dispatcher, Drain, Strategy};
use crate::model::{
    Codec, DecodeError, DecodeReason, EncodeError, EncodeReason, Event, EventSet, NewEvent,
    StoredEvent, Tag,
};
use crate::store::EventStore;

const ITEM: &str = "seat-1";
const TYPE: &str = "conformance.SeatPriced";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SeatPriced {
    seat: String,
    prices: Vec<Price>,
    extra: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Price {
    amount: f64,
    ratio: f32,
}

impl Event for SeatPriced {
    const TYPE: &'static str = TYPE;
    const VERSION: u32 = 1;
    const TAG_KEYS: &'static [&'static str] = &["seat"];
}

impl EventSet for SeatPriced {
    const TYPES: &'static [&'static str] = &[TYPE];

    fn event_type(&self) -> &'static str {
        TYPE
    }

    fn tags(&self) -> Vec<Tag> {
        vec![Tag::new("seat", self.seat.clone())]
    }

    fn to_new_event(&self, codec: Codec) -> Result<NewEvent, EncodeError> {
        NewEvent::encode(self, codec)
    }

    fn from_stored(event: &StoredEvent) -> Result<Self, DecodeError> {
        event.decode()
    }

    fn infos() -> Vec<EventInfo> {
        vec![EventInfo {
            name: TYPE,
            version: 1,
            tag_keys: &["seat"],
            groups: &[],
            public: false,
            module: module_path!(),
        }]
    }
}

/// The seat's prices so far: how many times it was priced, and the last amounts.
#[derive(Debug, Default)]
struct Seat {
    seat: String,
    priced: u32,
    amounts: Vec<f64>,
}

impl StateId for Seat {
    const NAME: &'static str = "conformance.Seat";
    const ID_KEYS: &'static [&'static str] = &["seat"];

    fn ids(&self) -> Vec<Tag> {
        vec![Tag::new("seat", self.seat.clone())]
    }

    fn has_ids(&self, tags: &[Tag]) -> bool {
        tags.iter().any(|t| t.is("seat", &self.seat))
    }
}

impl State for Seat {
    const TYPES: &'static [&'static str] = &[TYPE];

    fn apply(&mut self, event: &StoredEvent) -> Result<(), DecodeError> {
        if event.event_type != TYPE {
            return Err(event.error(DecodeReason::UnknownType {
                expected: Self::TYPES.to_vec(),
            }));
        }
        let priced = event.decode::<SeatPriced>()?;
        self.priced += 1;
        self.amounts = priced.prices.iter().map(|p| p.amount).collect();
        Ok(())
    }
}

/// Emits its event, whatever the state.
struct PriceSeat {
    event: SeatPriced,
}

impl Decision for PriceSeat {
    const META: DecisionMeta = DecisionMeta {
        name: "conformance.PriceSeat",
        partition: Some("seat"),
        partition_tag: None,
        idempotency: None,
        exclude: Exclusions::NONE,
        emits: None,
        retry: RetryPolicy::DEFAULT,
    };

    fn partition_key(&self) -> Option<String> {
        Some(ITEM.to_owned())
    }

    fn idempotency_key(&self) -> Option<String> {
        None
    }
}

impl Decide for PriceSeat {
    type State = Seat;
    type Event = SeatPriced;
    type Error = std::convert::Infallible;

    fn state(&self) -> Seat {
        Seat {
            seat: ITEM.to_owned(),
            ..Seat::default()
        }
    }

    fn decide(&self, _: &Seat) -> Result<Vec<SeatPriced>, Self::Error> {
        Ok(vec![self.event.clone()])
    }
}

fn priced(amounts: &[f64], ratios: &[f32], extra: serde_json::Value) -> PriceSeat {
    let prices = amounts
        .iter()
        .zip(ratios)
        .map(|(&amount, &ratio)| Price { amount, ratio })
        .collect();
    PriceSeat {
        event: SeatPriced {
            seat: ITEM.to_owned(),
            prices,
            extra,
        },
    }
}

/// `levels` arrays, one inside the other.
fn nested(levels: usize) -> serde_json::Value {
    (0..levels).fold(serde_json::json!(1), |inner, _| {
        serde_json::Value::Array(vec![inner])
    })
}

/// A decision emitting an event that holds a NaN, +∞ or −∞ (`f64` or `f32`) or JSON
/// nested 200 levels deep fails with [`DecideError::Encode`], naming the event type and
/// the field (`conformance.SeatPriced.prices[2].amount`), through
/// [`Engine::decide`] and through a serial lane; nothing is appended, and the state
/// still loads: a decision after them commits, and the one after that folds every
/// earlier event, `f64::MAX`, `f64::MIN` and `-0.0` bit for bit. In MessagePack, which
/// holds NaN, the infinities and 200 levels exactly, they commit and fold back.
pub async fn unreadable_values_refused<S: EventStore + Clone + 'static>(store: S) {
    named("unreadable_values_refused", async move {
        let engine = Engine::new(store.clone());
        let lanes = Dispatcher::new(Engine::new(store.clone()));
        let fine = [1.0, 2.0, 3.0];
        let ratios = [0.5f32, 0.25, 0.125];
        let flat = serde_json::Value::Null;
        let refused = [
            (
                priced(&[1.0, 2.0, f64::NAN], &ratios, flat.clone()),
                "conformance.SeatPriced.prices[2].amount",
                "NaN",
            ),
            (
                priced(&[f64::INFINITY, 2.0, 3.0], &ratios, flat.clone()),
                "conformance.SeatPriced.prices[0].amount",
                "inf",
            ),
            (
                priced(&[1.0, f64::NEG_INFINITY, 3.0], &ratios, flat.clone()),
                "conformance.SeatPriced.prices[1].amount",
                "-inf",
            ),
            (
                priced(&fine, &[0.5, f32::NAN, 0.125], flat.clone()),
                "conformance.SeatPriced.prices[1].ratio",
                "NaN",
            ),
            (
                priced(&fine, &ratios, nested(200)),
                "conformance.SeatPriced.extra",
                "nested",
            ),
        ];
        let before = head(&store).await;
        for (decision, path, what) in &refused {
            let event = decision.event.clone();
            let through_engine = engine.decide(decision).await;
            assert_encode_refused(through_engine, path, what, "Engine::decide");
            let in_lane = lanes
                .decide_using(
                    PriceSeat { event },
                    Strategy::SerialLanes,
                    Context::default(),
                )
                .await;
            assert_encode_refused(in_lane, path, what, "a serial lane");
        }
        assert_eq!(
            head(&store).await,
            before,
            "refused decisions appended something"
        );

        let extremes = [f64::MAX, f64::MIN, -0.0];
        let deep_but_readable = nested(120);
        for (label, result) in [
            (
                "Engine::decide",
                engine
                    .decide(&priced(&extremes, &ratios, deep_but_readable.clone()))
                    .await,
            ),
            (
                "a serial lane",
                lanes
                    .decide(priced(&extremes, &ratios, deep_but_readable.clone()))
                    .await,
            ),
        ] {
            if let Err(e) = result {
                panic!(
                    "a decision after refused ones, with f64::MAX, f64::MIN, -0.0 and JSON \
                     nested 120 levels, failed through {label}: {e}"
                );
            }
        }
        let (seat, _) = engine
            .load(priced(&fine, &ratios, flat.clone()).state())
            .await
            .unwrap_or_else(|e| panic!("the state no longer loads after refused decisions: {e}"));
        assert_eq!(seat.priced, 2, "the two committed decisions folded");
        let bits = |values: &[f64]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&seat.amounts),
            bits(&extremes),
            "f64::MAX, f64::MIN and -0.0 fold back bit for bit, got {:?}",
            seat.amounts
        );

        let binary = Engine::new(store.clone()).with_codec(Codec::MessagePack);
        let odd = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
        if let Err(e) = binary
            .decide(&priced(&odd, &[f32::NAN, f32::INFINITY, 1.0], nested(200)))
            .await
        {
            panic!(
                "MessagePack holds NaN, the infinities and 200 levels, yet the decision failed: {e}"
            );
        }
        let (seat, _) = binary
            .load(priced(&fine, &ratios, flat.clone()).state())
            .await
            .unwrap_or_else(|e| panic!("the state with MessagePack NaN no longer loads: {e}"));
        assert_eq!(
            bits(&seat.amounts),
            bits(&odd),
            "NaN and the infinities in MessagePack fold back bit for bit"
        );
        lanes.shutdown(Drain::Finish).await;
    })
    .await;
}

/// Asserts a typed encode error naming the event type and the field at `path` (a
/// nesting error names where the nesting went too deep, below `path`).
fn assert_encode_refused<T: std::fmt::Debug>(
    result: Result<T, DecideError<std::convert::Infallible>>,
    path: &str,
    what: &str,
    through: &str,
) {
    let error = match result {
        Err(DecideError::Encode(error)) => error,
        other => panic!(
            "a decision emitting {what} at {path} through {through} must fail with \
             DecideError::Encode, got {other:?}"
        ),
    };
    assert_eq!(error.event_type, TYPE, "the refused event's type");
    let named = match &error.reason {
        EncodeReason::NonFinite { path: at, value } => at == path && *value == what,
        EncodeReason::TooDeep { path: at, .. } => what == "nested" && at.starts_with(path),
        _ => false,
    };
    assert!(
        named,
        "the encode error for {what} at {path} through {through} names something else: {error}"
    );
}
