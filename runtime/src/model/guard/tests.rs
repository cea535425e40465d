use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Codec, EncodeReason};

#[derive(Serialize)]
struct Price {
    amount: f64,
    ratio: f32,
}

#[derive(Serialize)]
struct SeatPriced {
    prices: Vec<Price>,
    by_currency: BTreeMap<String, f64>,
    kind: Kind,
}

#[derive(Serialize)]
enum Kind {
    Plain,
    Discount(f64),
    Range { low: f64, high: f64 },
    Pair(f64, f64),
}

fn priced(amounts: &[f64], kind: Kind) -> SeatPriced {
    SeatPriced {
        prices: amounts
            .iter()
            .map(|&amount| Price { amount, ratio: 0.5 })
            .collect(),
        by_currency: BTreeMap::new(),
        kind,
    }
}

fn refused(codec: Codec, value: &impl Serialize) -> EncodeReason {
    match codec.encode("SeatPriced", value) {
        Err(e) => {
            assert_eq!(e.event_type, "SeatPriced");
            e.reason
        }
        Ok(payload) => panic!(
            "encoded as {}",
            String::from_utf8_lossy(&payload.bytes)
                .chars()
                .take(200)
                .collect::<String>()
        ),
    }
}

fn non_finite(path: &str, value: &'static str) -> EncodeReason {
    EncodeReason::NonFinite {
        path: path.to_owned(),
        value,
    }
}

#[test]
fn json_refuses_nan_and_infinities_naming_the_field() {
    let nan = priced(&[1.0, 2.0, f64::NAN], Kind::Plain);
    assert_eq!(
        refused(Codec::Json, &nan),
        non_finite("SeatPriced.prices[2].amount", "NaN")
    );
    let inf = priced(&[f64::INFINITY], Kind::Plain);
    assert_eq!(
        refused(Codec::Json, &inf),
        non_finite("SeatPriced.prices[0].amount", "inf")
    );
    let mut single = priced(&[1.0], Kind::Plain);
    single.prices[0].ratio = f32::NEG_INFINITY;
    assert_eq!(
        refused(Codec::Json, &single),
        non_finite("SeatPriced.prices[0].ratio", "-inf")
    );
    let mut by_key = priced(&[], Kind::Plain);
    by_key.by_currency.insert("EUR".to_owned(), 1.0);
    by_key.by_currency.insert("USD".to_owned(), f64::NAN);
    assert_eq!(
        refused(Codec::Json, &by_key),
        non_finite("SeatPriced.by_currency[\"USD\"]", "NaN")
    );
    for (kind, path) in [
        (Kind::Discount(f64::NAN), "SeatPriced.kind.Discount"),
        (
            Kind::Range {
                low: 1.0,
                high: f64::NAN,
            },
            "SeatPriced.kind.Range.high",
        ),
        (Kind::Pair(1.0, f64::NAN), "SeatPriced.kind.Pair[1]"),
    ] {
        assert_eq!(
            refused(Codec::Json, &priced(&[], kind)),
            non_finite(path, "NaN")
        );
    }
    assert_eq!(
        refused(Codec::Json, &f64::NAN),
        non_finite("SeatPriced", "NaN")
    );
    assert_eq!(
        refused(Codec::Json, &Some(vec![(1u8, f64::INFINITY)])),
        non_finite("SeatPriced[0][1]", "inf")
    );
    let message = Codec::Json
        .encode("SeatPriced", &nan)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("SeatPriced.prices[2].amount is NaN"),
        "{message}"
    );
}

#[cfg(feature = "msgpack")]
#[test]
fn message_pack_keeps_nan_and_infinities_bit_for_bit() {
    let odd = [
        f64::NAN,
        -f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::from_bits(0x7ff0_0000_0000_0001),
        -0.0,
    ];
    let payload = Codec::MessagePack.encode("Odd", &odd.to_vec()).unwrap();
    let back: Vec<f64> = payload.decode().unwrap();
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(&odd));
    let singles = [f32::NAN, f32::INFINITY, f32::from_bits(0x7f80_0001), -0.0];
    let payload = Codec::MessagePack.encode("Odd", &singles.to_vec()).unwrap();
    let back: Vec<f32> = payload.decode().unwrap();
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&back), bits(&singles));
}

/// `levels` arrays, one inside the other, around a number.
fn nested(levels: usize) -> serde_json::Value {
    (0..levels).fold(serde_json::json!(1), |inner, _| {
        serde_json::Value::Array(vec![inner])
    })
}

#[derive(Serialize, Deserialize)]
enum Tree {
    Leaf,
    Node(Box<Tree>),
    Branch { next: Box<Tree> },
    Pair(Box<Tree>, u8),
}

/// Wraps a tree in one more node.
type Node = fn(Tree) -> Tree;

fn tree(levels: usize, node: Node) -> Tree {
    (0..levels).fold(Tree::Leaf, |inner, _| node(inner))
}

/// Encoding accepts exactly what the reader reads back, typed and as a JSON value (as
/// upcasters read it), for each kind of nesting, at and around each codec's limit.
#[test]
fn nesting_is_refused_exactly_where_the_reader_stops() {
    // Deep recursion in a debug build: a thread with room for it.
    let run = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            let shapes: [(&str, Node); 3] = [
                ("newtype variant", |t| Tree::Node(Box::new(t))),
                ("struct variant", |t| Tree::Branch { next: Box::new(t) }),
                ("tuple variant", |t| Tree::Pair(Box::new(t), 1)),
            ];
            let codecs = [
                (Codec::Json, 127usize),
                #[cfg(feature = "msgpack")]
                (Codec::MessagePack, 1_023),
            ];
            for (codec, limit) in codecs {
                for levels in [limit - 1, limit, limit + 1, limit + 2] {
                    let value = nested(levels);
                    check(codec, &format!("{levels} arrays"), &value, |p| {
                        p.decode_value().is_ok()
                    });
                }
                for (shape, node) in shapes {
                    for levels in (limit / 2 - 2)..=(limit + 1) {
                        let value = tree(levels, node);
                        check(codec, &format!("{levels} × {shape}"), &value, |p| {
                            p.decode::<Tree>().is_ok() && p.decode_value().is_ok()
                        });
                    }
                }
            }
        })
        .unwrap();
    run.join().unwrap();
}

fn check<T: Serialize>(
    codec: Codec,
    what: &str,
    value: &T,
    reads: impl Fn(&crate::model::Payload) -> bool,
) {
    let plain = match codec {
        Codec::Json => serde_json::to_vec(value).unwrap(),
        #[cfg(feature = "msgpack")]
        Codec::MessagePack => rmp_serde::to_vec_named(value).unwrap(),
        #[cfg(not(feature = "msgpack"))]
        other => unreachable!("no {other:?} payloads in this build"),
    };
    let readable = reads(&crate::model::Payload {
        codec,
        bytes: plain.clone(),
    });
    match codec.encode("Deep", value) {
        Ok(payload) => {
            assert!(
                readable,
                "{}: {what} encoded but does not read back",
                codec.name()
            );
            assert_eq!(payload.bytes, plain, "{what}: the guard changed the bytes");
        }
        Err(e) => {
            assert!(
                !readable,
                "{}: {what} reads back but was refused: {e}",
                codec.name()
            );
            assert!(
                matches!(e.reason, EncodeReason::TooDeep { .. }),
                "{what}: {e}"
            );
        }
    }
}

#[test]
fn the_guard_writes_the_codecs_own_bytes() {
    #[derive(Serialize)]
    struct Everything {
        text: String,
        bytes: serde_bytes_like::Bytes,
        unit: (),
        none: Option<u8>,
        some: Option<i128>,
        tuple: (u8, char, bool),
        map: BTreeMap<u32, Vec<f32>>,
        kinds: Vec<Kind>,
        json: serde_json::Value,
    }
    let value = Everything {
        text: "é\u{0}".to_owned(),
        bytes: serde_bytes_like::Bytes(vec![0, 1, 255]),
        unit: (),
        none: None,
        some: Some(-1),
        tuple: (7, 'x', true),
        map: BTreeMap::from([(3, vec![0.1, -0.0])]),
        kinds: vec![
            Kind::Plain,
            Kind::Discount(2.5),
            Kind::Range {
                low: 1e300,
                high: 5e-324,
            },
            Kind::Pair(-1.0, 1e16),
        ],
        json: serde_json::json!({"a": [1, {"b": null}], "c": 1.5}),
    };
    let json = Codec::Json.encode("E", &value).unwrap();
    assert_eq!(json.bytes, serde_json::to_vec(&value).unwrap());
    #[cfg(feature = "msgpack")]
    {
        let binary = Codec::MessagePack.encode("E", &value).unwrap();
        assert_eq!(binary.bytes, rmp_serde::to_vec_named(&value).unwrap());
    }
}

/// Bytes through `serialize_bytes`, without a dependency on `serde_bytes`.
mod serde_bytes_like {
    pub struct Bytes(pub Vec<u8>);

    impl serde::Serialize for Bytes {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(&self.0)
        }
    }
}

/// A map written key by key, as a hand-written `Serialize` may: the value's path still
/// names its key.
#[test]
fn a_map_written_key_then_value_names_the_key() {
    struct Split;

    impl Serialize for Split {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeMap;
            let mut map = serializer.serialize_map(Some(2))?;
            map.serialize_key("fine")?;
            map.serialize_value(&1.0)?;
            map.serialize_key("odd")?;
            map.serialize_value(&f64::NAN)?;
            map.end()
        }
    }

    assert_eq!(
        refused(Codec::Json, &vec![Split]),
        non_finite("SeatPriced[0][\"odd\"]", "NaN")
    );
}
