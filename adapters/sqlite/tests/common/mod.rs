//! Helpers shared by the SQLite adapter's tests.

use factum::{Codec, Metadata, NewEvent, Tag};

/// A version-1 event of `event_type` with `tags` and an empty JSON payload.
pub fn event(event_type: &str, tags: &[(&str, &str)]) -> NewEvent {
    NewEvent {
        event_type: event_type.to_owned(),
        version: 1,
        tags: tags.iter().map(|(k, v)| Tag::new(*k, *v)).collect(),
        payload: Codec::Json
            .encode(event_type, &serde_json::json!({}))
            .expect("a JSON payload"),
        metadata: Metadata::new(),
        recorded_at: None,
    }
}
