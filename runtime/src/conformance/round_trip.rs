//! The case of what comes back: every part of an event, as it was appended.

use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::support::{append, assert_same_payload, encode, named, read, tag_set, tags, types};
use crate::model::{AppendCondition, Codec, Metadata, NewEvent, Payload, Position, Query, Tag};
use crate::store::{EventStore, ReadOptions};

/// Stored events come back as they were appended: type, version, tags (as a set: order
/// carries no meaning for queries, and [`repeated_tags_stored_once`] checks repeats), payload and codec (a JSON payload as the same
/// JSON value, so a store may keep it in a JSON column; any other codec byte for byte),
/// metadata (id, correlation and causation ids, idempotency key); `recorded_at` is set to
/// about the time of the append.
///
/// [`repeated_tags_stored_once`]: super::repeated_tags_stored_once
pub async fn round_trip<S: EventStore + Clone + 'static>(store: S) {
    named("round_trip", async move {
        let full = NewEvent {
            event_type: "shop.CouponIssued".to_owned(),
            version: 3,
            tags: vec![Tag::new("coupon", "SPRING24"), Tag::new("shop", "main")],
            payload: encode(
                "shop.CouponIssued",
                &serde_json::json!({ "coupon": "SPRING24", "uses": 5, "note": "üñí ✓ \"quoted\" nul:\u{0}" }),
            ),
            metadata: Metadata {
                id: Uuid::now_v7(),
                correlation_id: Some(Uuid::now_v7()),
                causation_id: Some(Uuid::now_v7()),
                idempotency_key: Some("issue-coupon:SPRING24".to_owned()),
            },
            recorded_at: None,
        };
        let bare = NewEvent {
            event_type: "shop.CartCleared".to_owned(),
            version: 1,
            tags: Vec::new(),
            // A binary payload: it must come back byte for byte.
            payload: Codec::MessagePack
                .encode(
                    "shop.CartCleared",
                    &serde_json::json!({ "cart": "c-9", "items": [1, 2] }),
                )
                .unwrap_or_else(|e| panic!("store conformance: cannot encode MessagePack: {e}")),
            metadata: Metadata::new(),
            recorded_at: None,
        };
        let odd_tags = NewEvent {
            event_type: "user.UsernameChanged".to_owned(),
            version: 2,
            tags: vec![
                Tag::new("username", "zoe"),
                Tag::new("username", "adam"),
                Tag::new("user", "42"),
                Tag::new("user", "42"),
                Tag::new("note", "a:b c/d"),
                Tag::new("empty", ""),
                // What SQL array literals and string escapes treat specially.
                Tag::new("quo\"te", "back\\slash"),
                Tag::new("list", "{a,b}"),
                Tag::new("null", "NULL"),
                Tag::new("spaced", " x "),
            ],
            payload: encode(
                "user.UsernameChanged",
                &serde_json::json!([1, [2.5, null], {"k": "v"}]),
            ),
            metadata: Metadata {
                idempotency_key: Some("rename:42:zoe".to_owned()),
                ..Metadata::new()
            },
            recorded_at: None,
        };
        // Valid JSON that a JSON column would re-format: the value must survive.
        let raw = NewEvent {
            event_type: "raw.Bytes".to_owned(),
            version: 7,
            tags: vec![Tag::new("raw", "1")],
            payload: Payload {
                codec: Codec::Json,
                bytes: b"{ \"b\" :1,\n  \"a\":  [ 1.50 ] }".to_vec(),
            },
            metadata: Metadata {
                correlation_id: Some(Uuid::now_v7()),
                ..Metadata::new()
            },
            recorded_at: None,
        };
        let started = SystemTime::now();
        let first = append(&store, vec![full.clone(), bare.clone()], None).await;
        let second = append(
            &store,
            vec![odd_tags.clone(), raw.clone()],
            Some(AppendCondition::new(types(&["raw.Bytes"]), None)),
        )
        .await;
        let finished = SystemTime::now();
        let expected = [full, bare, odd_tags, raw];
        let positions: Vec<Position> = first
            .positions
            .iter()
            .chain(&second.positions)
            .copied()
            .collect();

        let stored = read(&store, &Query::all(), ReadOptions::forward()).await;
        assert_eq!(
            stored.len(),
            expected.len(),
            "the number of events read back"
        );
        // Clock differences between the application and a database server are tolerated.
        let slack = Duration::from_secs(300);
        for ((stored, new), position) in stored.iter().zip(&expected).zip(&positions) {
            let what = &new.event_type;
            assert_eq!(stored.position, *position, "the position of {what}");
            assert_eq!(
                stored.event_type, new.event_type,
                "the type of the event at {position}"
            );
            assert_eq!(stored.version, new.version, "the version of {what}");
            assert_eq!(
                tag_set(&stored.tags),
                tag_set(&new.tags),
                "the tags of {what}"
            );
            assert_eq!(
                stored.payload.codec, new.payload.codec,
                "the payload codec of {what}"
            );
            assert_same_payload(&stored.payload, &new.payload, what);
            assert_eq!(stored.metadata, new.metadata, "the metadata of {what}");
            assert!(
                stored.recorded_at + slack >= started && stored.recorded_at <= finished + slack,
                "recorded_at of {what} ({:?}) is not about the time of the append ({:?})",
                stored.recorded_at,
                started
            );
        }

        // A tag carried twice still yields the event once.
        let by_user = read(&store, &tags(&[("user", "42")]), ReadOptions::forward()).await;
        assert_eq!(
            by_user.iter().map(|e| e.position).collect::<Vec<_>>(),
            vec![positions[2]],
            "a read by a tag the event carries twice"
        );
        for value in ["zoe", "adam"] {
            let found = read(
                &store,
                &tags(&[("username", value)]),
                ReadOptions::forward(),
            )
            .await;
            assert_eq!(
                found.iter().map(|e| e.position).collect::<Vec<_>>(),
                vec![positions[2]],
                "a read by tag username:{value} (two tags of one key)"
            );
        }
        let empty_value = read(&store, &tags(&[("empty", "")]), ReadOptions::forward()).await;
        assert_eq!(empty_value.len(), 1, "a read by a tag with an empty value");
        for (key, value) in [
            ("quo\"te", "back\\slash"),
            ("list", "{a,b}"),
            ("null", "NULL"),
            ("spaced", " x "),
        ] {
            let found = read(&store, &tags(&[(key, value)]), ReadOptions::forward()).await;
            assert_eq!(
                found.iter().map(|e| e.position).collect::<Vec<_>>(),
                vec![positions[2]],
                "a read by tag {key:?}:{value:?}"
            );
        }
        let colon = read(
            &store,
            &tags(&[("note", "a:b c/d")]),
            ReadOptions::forward(),
        )
        .await;
        assert_eq!(
            colon.len(),
            1,
            "a read by a tag value holding ':', ' ' and '/'"
        );
        let split = read(
            &store,
            &tags(&[("note:a", "b c/d")]),
            ReadOptions::forward(),
        )
        .await;
        assert!(
            split.is_empty(),
            "tag key and value must not be compared as one joined string"
        );
    })
    .await;
}
