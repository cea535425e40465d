//! An append's events as the column arrays the SQL functions take.

use std::time::SystemTime;

use factum::model::whole_micros;
use factum::{Codec, NewEvent, StoreError};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::Unstorable;
use crate::tags;

/// Events as the arrays `insert_events` and `append_batch` take (schema version 8).
pub(super) struct Columns<'a> {
    pub(super) types: Vec<&'a str>,
    pub(super) versions: Vec<i32>,
    /// Each event's tags as one `text[]` literal.
    pub(super) tag_lists: Vec<String>,
    pub(super) codecs: Vec<&'static str>,
    pub(super) json: Vec<Option<&'a str>>,
    pub(super) bytes: Vec<Option<&'a [u8]>>,
    pub(super) ids: Vec<Uuid>,
    pub(super) correlations: Vec<Option<Uuid>>,
    pub(super) causations: Vec<Option<Uuid>>,
    pub(super) keys: Vec<Option<&'a str>>,
    /// Caller-set times, to the microsecond; `None`: the time of the statement.
    pub(super) recorded_ats: Vec<Option<SystemTime>>,
}

impl<'a> Columns<'a> {
    pub(super) fn new() -> Self {
        Columns {
            types: Vec::new(),
            versions: Vec::new(),
            tag_lists: Vec::new(),
            codecs: Vec::new(),
            json: Vec::new(),
            bytes: Vec::new(),
            ids: Vec::new(),
            correlations: Vec::new(),
            causations: Vec::new(),
            keys: Vec::new(),
            recorded_ats: Vec::new(),
        }
    }

    pub(super) fn push(&mut self, event: &'a NewEvent) -> Result<(), StoreError> {
        let unstorable = |what: String| StoreError::backend(Unstorable(what));
        self.types.push(&event.event_type);
        self.versions
            .push(i32::try_from(event.version).map_err(|_| {
                unstorable(format!(
                    "version {} of {} is above {}, the most a PostgreSQL integer holds",
                    event.version,
                    event.event_type,
                    i32::MAX
                ))
            })?);
        self.tag_lists.push(tags::array_literal(&event.tags));
        self.codecs.push(event.payload.codec.name());
        if event.payload.codec == Codec::Json {
            let json = std::str::from_utf8(&event.payload.bytes).map_err(|_| {
                unstorable(format!(
                    "the JSON payload of {} is not UTF-8",
                    event.event_type
                ))
            })?;
            // Payloads jsonb would not give back as written (a NUL character, a negative
            // zero, an exponent: see `json.rs`) are kept as bytes (still codec "json").
            if crate::json::needs_bytes(json) {
                self.json.push(None);
                self.bytes.push(Some(&event.payload.bytes));
            } else {
                self.json.push(Some(json));
                self.bytes.push(None);
            }
        } else {
            self.json.push(None);
            self.bytes.push(Some(&event.payload.bytes));
        }
        self.ids.push(event.metadata.id);
        self.correlations.push(event.metadata.correlation_id);
        self.causations.push(event.metadata.causation_id);
        self.keys.push(event.metadata.idempotency_key.as_deref());
        self.recorded_ats.push(event.recorded_at.map(whole_micros));
        Ok(())
    }

    /// The parameters shared by `insert_events` and `append_batch`, from `types` to
    /// `idempotency_keys`; both take [`Columns::recorded_ats`] last.
    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 10] {
        [
            &self.types,
            &self.versions,
            &self.tag_lists,
            &self.codecs,
            &self.json,
            &self.bytes,
            &self.ids,
            &self.correlations,
            &self.causations,
            &self.keys,
        ]
    }
}
