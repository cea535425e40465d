//! A build without the `msgpack` feature: MessagePack events are still stored, read and
//! copied, and encoding or decoding one is a clear error, never a panic.
//! (`cargo test -p factum --no-default-features --test without_msgpack`.) It is also the
//! build without `inventory`: what every macro generates compiles with no registration.
#![cfg(not(feature = "msgpack"))]

use factum::model::{DecodeReason, EncodeReason, Payload};
use factum::prelude::*;

#[factum::events]
mod bank {
    pub struct Deposited {
        #[tag]
        pub account: String,
        pub amount: u64,
    }
}

#[derive(State, Debug, Default)]
struct Balance {
    #[id]
    account: String,
    total: u64,
}

#[factum::fold]
impl Balance {
    fn deposited(&mut self, e: &bank::Deposited) {
        self.total += e.amount
    }
}

#[derive(Decision)]
#[decision(partition = account)]
struct Deposit {
    account: String,
    amount: u64,
}

impl Decide for Deposit {
    type State = Balance;
    type Event = bank::Event;
    type Error = String;
    fn state(&self) -> Balance {
        Balance::new(self.account.clone())
    }
    fn decide(&self, _: &Balance) -> Result<Vec<bank::Event>, String> {
        let deposit = bank::Deposited {
            account: self.account.clone(),
            amount: self.amount,
        };
        Ok(vec![deposit.into()])
    }
}

/// `{"account": "a", "amount": 5}` in MessagePack, written by a build with the feature.
const PACKED: &[u8] = b"\x82\xa7account\xa1a\xa6amount\x05";

fn packed() -> NewEvent {
    NewEvent {
        event_type: "Deposited".into(),
        version: 1,
        tags: vec![Tag::new("account", "a")],
        payload: Payload {
            codec: Codec::MessagePack,
            bytes: PACKED.to_vec(),
        },
        metadata: Default::default(),
        recorded_at: None,
    }
}

#[test]
fn the_codec_says_it_is_not_built_in() {
    assert!(Codec::Json.is_available());
    assert!(!Codec::MessagePack.is_available());
    assert_eq!(Codec::MessagePack.feature(), Some("msgpack"));
    // Its stored name is still known, so stores read the rows.
    assert_eq!(Codec::from_name("msgpack"), Some(Codec::MessagePack));
}

#[test]
fn encoding_is_refused_naming_the_feature() {
    let deposit = bank::Deposited {
        account: "a".into(),
        amount: 5,
    };
    let error = NewEvent::encode(&deposit, Codec::MessagePack).unwrap_err();
    assert_eq!(error.reason, EncodeReason::Unavailable(Codec::MessagePack));
    assert_eq!(
        error.to_string(),
        "cannot encode event Deposited: msgpack payloads need factum's `msgpack` feature, \
         which this build lacks"
    );
}

#[test]
fn a_stored_event_is_a_decode_error_naming_position_and_type() {
    let stored = StoredEvent::record(packed(), Position(7));
    let error = stored.decode::<bank::Deposited>().unwrap_err();
    assert_eq!(
        (error.position, error.event_type.as_str()),
        (Position(7), "Deposited")
    );
    assert!(matches!(error.reason, DecodeReason::Payload(_)), "{error}");
    assert_eq!(
        error.to_string(),
        "cannot decode event Deposited (v1) at #7: payload does not decode: msgpack payloads \
         need factum's `msgpack` feature, which this build lacks"
    );
}

#[tokio::test]
async fn loading_a_state_fails_with_the_decode_error() {
    let store = MemoryStore::new();
    store.append(vec![packed()], None).await.unwrap();
    // The store reads it back as it was.
    let all = Query::all();
    let read = store.read(&all, ReadOptions::default());
    let events: Vec<StoredEvent> = futures::TryStreamExt::try_collect(read).await.unwrap();
    assert_eq!(events[0].payload.bytes, PACKED);

    let engine = Engine::new(store);
    let error = engine.load(Balance::new("a")).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("Deposited") && text.contains("at #1") && text.contains("`msgpack` feature"),
        "{text}"
    );
    // A decision on that state fails the same way, and appends nothing.
    let deposit = Deposit {
        account: "a".into(),
        amount: 1,
    };
    let error = engine.decide(&deposit).await.unwrap_err().to_string();
    assert!(
        error.contains("at #1") && error.contains("`msgpack` feature"),
        "{error}"
    );
    // With JSON, the default codec, the engine decides as usual on a fresh account.
    let other = Deposit {
        account: "b".into(),
        amount: 1,
    };
    assert_eq!(
        engine.decide(&other).await.unwrap().positions,
        vec![Position(2)]
    );
}
