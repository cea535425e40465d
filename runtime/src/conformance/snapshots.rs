//! The case of snapshots: saved, loaded back, replaced.

use super::support::named;
use crate::model::{Codec, Payload, Position};
use crate::store::{EventStore, Snapshot};

/// Snapshots: none under an unknown key; one saved comes back equal (key, query,
/// position, payload and codec, bytes exactly); a later save under the same key replaces
/// it; keys are independent.
pub async fn snapshots<S: EventStore + Clone + 'static>(store: S) {
    named("snapshots", async move {
        let load = |key: &'static str| {
            let store = store.clone();
            async move {
                store
                    .load_snapshot(key)
                    .await
                    .unwrap_or_else(|e| panic!("loading snapshot {key} failed: {e}"))
            }
        };
        assert_eq!(
            load("Course|course:c1").await,
            None,
            "a snapshot never saved"
        );
        let first = Snapshot {
            key: "Course|course:c1".to_owned(),
            query: "types Seat with course:c1".to_owned(),
            position: Position(7),
            payload: Payload {
                codec: Codec::Json,
                bytes: b"{\"seats\":3}".to_vec(),
            },
        };
        let save = |snapshot: Snapshot| {
            let store = store.clone();
            async move {
                store
                    .save_snapshot(snapshot)
                    .await
                    .unwrap_or_else(|e| panic!("saving a snapshot failed: {e}"))
            }
        };
        save(first.clone()).await;
        assert_eq!(
            load("Course|course:c1").await,
            Some(first.clone()),
            "a saved snapshot"
        );
        assert_eq!(load("Course|course:c2").await, None, "another key");
        let binary = Snapshot {
            key: "Course|course:c2".to_owned(),
            query: "q".to_owned(),
            position: Position(9),
            payload: Payload {
                codec: Codec::MessagePack,
                bytes: vec![0x81, 0xa1, b'a', 0xcc, 0xff, 0x00],
            },
        };
        save(binary.clone()).await;
        let replaced = Snapshot {
            position: Position(12),
            payload: Payload {
                codec: Codec::Json,
                bytes: b"{\"seats\":4}".to_vec(),
            },
            ..first.clone()
        };
        save(replaced.clone()).await;
        assert_eq!(
            load("Course|course:c1").await,
            Some(replaced),
            "a replaced snapshot"
        );
        assert_eq!(
            load("Course|course:c2").await,
            Some(binary),
            "a binary snapshot"
        );
    })
    .await;
}
