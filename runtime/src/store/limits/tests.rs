//! The limits, at and past each edge.

use std::time::Duration;

use super::*;
use crate::model::{Metadata, Payload, Tag};

fn event(bytes: &[u8]) -> NewEvent {
    NewEvent {
        event_type: "Noted".into(),
        version: 1,
        tags: vec![Tag::new("note", "1")],
        payload: Payload {
            codec: Codec::Json,
            bytes: bytes.to_vec(),
        },
        metadata: Metadata::new(),
        recorded_at: None,
    }
}

fn problem(event: &NewEvent) -> Option<(Field, Problem)> {
    check(event).err().map(|e| (e.field, e.problem))
}

#[test]
fn json_payloads_must_read_back() {
    let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    for good in [
        "{}".to_owned(),
        r#"{"a": [1, 2.5, null, true, "\u00e9\u0000"], "b": {"c": "d"}}"#.to_owned(),
        "\"\\ud83d\\ude00\"".to_owned(),
        " 1 ".to_owned(),
        nested(127),
    ] {
        assert_eq!(problem(&event(good.as_bytes())), None, "{good}");
    }
    for bad in [
        b"{not json".to_vec(),
        b"{} {}".to_vec(),
        b"".to_vec(),
        b"\"\xff\"".to_vec(),
        b"\"\\ud800\"".to_vec(),
        b"1e400".to_vec(),
        nested(128).into_bytes(),
    ] {
        assert!(
            matches!(
                problem(&event(&bad)),
                Some((Field::Payload, Problem::NotJson(_)))
            ),
            "{:?}",
            String::from_utf8_lossy(&bad)
        );
    }
    // What the reader makes of the deepest accepted document: it reads it.
    assert!(serde_json::from_str::<serde_json::Value>(&nested(127)).is_ok());
    // Other codecs are opaque bytes.
    let mut packed = event(b"\xff");
    packed.payload.codec = Codec::MessagePack;
    assert_eq!(problem(&packed), None);
}

#[test]
fn text_fields_have_a_length_and_no_nul() {
    let long = "é".repeat(MAX_TAG_VALUE_BYTES / 2);
    let mut at_limit = event(b"{}");
    at_limit.event_type = "t".repeat(MAX_TYPE_NAME_BYTES);
    at_limit.tags = vec![Tag::new("k".repeat(MAX_TAG_KEY_BYTES), long.clone())];
    at_limit.metadata.idempotency_key = Some("i".repeat(MAX_IDEMPOTENCY_KEY_BYTES));
    assert_eq!(problem(&at_limit), None);

    let mut value = event(b"{}");
    value.tags.push(Tag::new("note", format!("{long}x")));
    let refused = check(&value).unwrap_err();
    assert_eq!(
        (refused.field, refused.tag_key.as_deref(), &refused.problem),
        (
            Field::TagValue,
            Some("note"),
            &Problem::TooLong {
                bytes: 1025,
                limit: 1024
            }
        )
    );
    assert_eq!(
        refused.to_string(),
        "an event of type \"Noted\" cannot be stored: its tag value (of tag \"note\") is \
         1025 bytes long, above the limit of 1024 bytes"
    );

    let mut name = event(b"{}");
    name.event_type = "T".repeat(5_000);
    assert_eq!(
        check(&name).unwrap_err().to_string(),
        format!(
            "an event of type \"{}\"… (5000 bytes) cannot be stored: its type name is 5000 \
             bytes long, above the limit of 1024 bytes",
            "T".repeat(64)
        )
    );
    let mut nul = event(b"{}");
    nul.metadata.idempotency_key = Some("a\0b".into());
    assert_eq!(problem(&nul), Some((Field::IdempotencyKey, Problem::Nul)));
    nul.metadata.idempotency_key = None;
    nul.tags.push(Tag::new("a\0", "b"));
    assert_eq!(problem(&nul), Some((Field::TagKey, Problem::Nul)));
    nul.event_type = "\0".into();
    assert_eq!(problem(&nul), Some((Field::TypeName, Problem::Nul)));
}

#[test]
fn versions_and_times_have_a_range() {
    let mut version = event(b"{}");
    version.version = MAX_VERSION;
    assert_eq!(problem(&version), None);
    version.version = MAX_VERSION + 1;
    assert!(matches!(
        problem(&version),
        Some((Field::Version, Problem::TooHigh { .. }))
    ));

    let year = Duration::from_secs(31_556_952);
    let mut time = event(b"{}");
    for ok in [
        SystemTime::UNIX_EPOCH - year * 6_000,
        SystemTime::UNIX_EPOCH + year * 290_000,
        at_micros(MIN_RECORDED_AT_MICROS),
        at_micros(MAX_RECORDED_AT_MICROS) + Duration::from_nanos(999),
    ] {
        time.recorded_at = Some(ok);
        assert_eq!(problem(&time), None, "{ok:?}");
    }
    for bad in [
        SystemTime::UNIX_EPOCH - year * 7_000,
        SystemTime::UNIX_EPOCH + year * 300_000,
        at_micros(MIN_RECORDED_AT_MICROS) - Duration::from_nanos(1),
        at_micros(MAX_RECORDED_AT_MICROS) + Duration::from_micros(1),
    ] {
        time.recorded_at = Some(bad);
        assert!(
            matches!(
                problem(&time),
                Some((Field::RecordedAt, Problem::OutOfRange(_)))
            ),
            "{bad:?}"
        );
    }
}

/// How far after the Unix epoch `micros` is, as a [`SystemTime`].
fn at_micros(micros: i64) -> SystemTime {
    let magnitude = Duration::from_micros(micros.unsigned_abs());
    if micros < 0 {
        SystemTime::UNIX_EPOCH - magnitude
    } else {
        SystemTime::UNIX_EPOCH + magnitude
    }
}

#[test]
fn payloads_and_recorded_keys_have_limits_too() {
    let mut big = event(b"{}");
    big.payload.codec = Codec::MessagePack;
    big.payload.bytes = vec![0; MAX_PAYLOAD_BYTES + 1];
    assert_eq!(
        problem(&big),
        Some((
            Field::Payload,
            Problem::TooLong {
                bytes: MAX_PAYLOAD_BYTES + 1,
                limit: MAX_PAYLOAD_BYTES
            }
        ))
    );
    big.payload.bytes.pop();
    assert_eq!(problem(&big), None);

    // A key whose recorded part is empty would collide with every other such key.
    let mut keyed = event(b"{}");
    keyed.metadata.idempotency_key = Some("\u{1f}0123".to_owned());
    assert_eq!(
        problem(&keyed),
        Some((Field::IdempotencyKey, Problem::Empty))
    );
    // The limit is on the recorded part; a fingerprint may follow it.
    let recorded = "k".repeat(MAX_IDEMPOTENCY_KEY_BYTES);
    keyed.metadata.idempotency_key = Some(format!("{recorded}\u{1f}{}", "f".repeat(32)));
    assert_eq!(problem(&keyed), None);
    keyed.metadata.idempotency_key = Some(format!("{recorded}k"));
    assert!(matches!(
        problem(&keyed),
        Some((Field::IdempotencyKey, Problem::TooLong { .. }))
    ));
}
