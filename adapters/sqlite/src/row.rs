//! Rows ↔ events: how each field of an event is stored, and how a row is checked and
//! turned back into a [`StoredEvent`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use factum::model::DecodeReason;
use factum::{Codec, DecodeError, Metadata, Position, StoreError, StoredEvent, Tag};
use rusqlite::Row;
use rusqlite::types::ValueRef;
use uuid::Uuid;

use crate::error::SqliteError;

/// The columns [`decode`] reads after the position, in its order, from the `events`
/// table named `e`.
pub(crate) const EVENT_COLUMNS: &str = "e.type, e.version, e.codec, e.payload, e.tags, \
     e.event_id, e.correlation_id, e.causation_id, e.idempotency_key, e.recorded_at";

/// Microseconds since the Unix epoch (negative before it), rounded down (toward the
/// past, as [`factum::model::whole_micros`] does, so a caller-set time reads back as
/// `whole_micros` of it), saturating.
pub(crate) fn to_micros(time: SystemTime) -> i64 {
    checked_micros(time).unwrap_or(if time < UNIX_EPOCH {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// [`to_micros`], or `None` when the time does not fit.
pub(crate) fn checked_micros(time: SystemTime) -> Option<i64> {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).ok(),
        Err(before) => {
            let before = before.duration();
            let partial = u128::from(before.subsec_nanos() % 1_000 != 0);
            i64::try_from(before.as_micros() + partial).ok().map(|m| -m)
        }
    }
}

/// The time `micros` microseconds after the Unix epoch, if the platform can hold it.
pub(crate) fn from_micros(micros: i64) -> Option<SystemTime> {
    let span = Duration::from_micros(micros.unsigned_abs());
    if micros >= 0 {
        UNIX_EPOCH.checked_add(span)
    } else {
        UNIX_EPOCH.checked_sub(span)
    }
}

/// The tags as stored: a JSON array of `[key, value]` pairs, in the order given.
pub(crate) fn tags_to_text(tags: &[Tag]) -> Result<String, serde_json::Error> {
    let pairs: Vec<[&str; 2]> = tags
        .iter()
        .map(|t| [t.key.as_str(), t.value.as_str()])
        .collect();
    serde_json::to_string(&pairs)
}

/// A position as SQLite's integer.
pub(crate) fn position_to_sql(position: Position) -> Result<i64, SqliteError> {
    i64::try_from(position.0).map_err(|_| SqliteError::OutOfRange {
        what: "position",
        value: position.0,
    })
}

/// A position read from SQLite (positions are at least 1; anything else is corrupt).
pub(crate) fn position_from_sql(position: i64) -> Option<Position> {
    u64::try_from(position)
        .ok()
        .filter(|&p| p > 0)
        .map(Position)
}

/// The text of a column, also when a raw write stored it as a blob; `None` for any other
/// type or for bytes that are not UTF-8.
fn text(value: ValueRef<'_>) -> Option<&str> {
    match value {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => std::str::from_utf8(bytes).ok(),
        _ => None,
    }
}

/// A short description of a column's stored value, for error messages.
fn describe(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(i) => format!("the integer {i}"),
        ValueRef::Real(r) => format!("the real {r}"),
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(s) => format!("the text {s:?}"),
            Err(e) => format!("text that is not UTF-8 ({e})"),
        },
        ValueRef::Blob(bytes) => format!("a blob of {} bytes", bytes.len()),
    }
}

/// Reads one row of a position and [`EVENT_COLUMNS`] back into an event.
///
/// A failure of SQLite is [`StoreError::Backend`]; a row whose columns do not make an
/// event (an unknown codec, text that is not UTF-8, a malformed id...) is
/// [`StoreError::Corrupt`] naming its position, type and version.
pub(crate) fn decode(row: &Row<'_>) -> Result<StoredEvent, StoreError> {
    let get = |i: usize| row.get_ref(i).map_err(StoreError::backend);
    let raw_position = get(0)?;
    let raw_type = get(1)?;
    let raw_version = get(2)?;

    // Best effort for the fields every error names, so the bad row can be found.
    let position = match raw_position {
        ValueRef::Integer(p) => position_from_sql(p),
        _ => None,
    };
    let version = match raw_version {
        ValueRef::Integer(v) => u32::try_from(v).ok(),
        _ => None,
    };
    // From the raw column, so that the type read below moves into the event: a copy
    // was one allocation a row.
    let name = || match raw_type {
        ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        other => format!("<{}>", describe(other)),
    };
    let corrupt = |reason: String| -> StoreError {
        StoreError::Corrupt(DecodeError {
            position: position.unwrap_or(Position(0)),
            event_type: name(),
            version: version.unwrap_or(0),
            reason: DecodeReason::Corrupt(reason),
        })
    };

    let Some(position) = position else {
        return Err(corrupt(format!(
            "the position is {}, not a positive integer",
            describe(raw_position)
        )));
    };
    if matches!(raw_type, ValueRef::Null) {
        // Types are NOT NULL: the event row is missing.
        return Err(corrupt(
            "no event at this position, though an index names it".to_owned(),
        ));
    }
    let Some(event_type) = text(raw_type).map(str::to_owned) else {
        return Err(corrupt(format!(
            "the type column holds {}, not UTF-8 text",
            describe(raw_type)
        )));
    };
    let Some(version) = version else {
        return Err(corrupt(format!(
            "the version column holds {}, not a 32-bit unsigned integer",
            describe(raw_version)
        )));
    };

    let raw_codec = get(3)?;
    let codec = text(raw_codec).and_then(Codec::from_name).ok_or_else(|| {
        corrupt(format!(
            "unknown payload codec: the codec column holds {}",
            describe(raw_codec)
        ))
    })?;
    let bytes = match get(4)? {
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => bytes.to_vec(),
        other => {
            return Err(corrupt(format!(
                "the payload column holds {}, not bytes",
                describe(other)
            )));
        }
    };

    let raw_tags = get(5)?;
    let tags_text = text(raw_tags).ok_or_else(|| {
        corrupt(format!(
            "the tags column holds {}, not UTF-8 text",
            describe(raw_tags)
        ))
    })?;
    let pairs: Vec<(String, String)> = serde_json::from_str(tags_text).map_err(|e| {
        corrupt(format!(
            "the tags column is not a JSON array of [key, value] pairs: {e}"
        ))
    })?;
    let tags = pairs
        .into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect();

    let uuid = |i: usize, what: &str| -> Result<Option<Uuid>, StoreError> {
        match get(i)? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(bytes) => Uuid::from_slice(bytes)
                .map(Some)
                .map_err(|e| corrupt(format!("the {what} column is not a 16-byte UUID: {e}"))),
            other => Err(corrupt(format!(
                "the {what} column holds {}, not a 16-byte UUID",
                describe(other)
            ))),
        }
    };
    let id = uuid(6, "event_id")?.ok_or_else(|| corrupt("the event_id column is NULL".into()))?;
    let correlation_id = uuid(7, "correlation_id")?;
    let causation_id = uuid(8, "causation_id")?;
    let idempotency_key = match get(9)? {
        ValueRef::Null => None,
        raw => Some(text(raw).map(str::to_owned).ok_or_else(|| {
            corrupt(format!(
                "the idempotency_key column holds {}, not UTF-8 text",
                describe(raw)
            ))
        })?),
    };
    let recorded_at = match get(10)? {
        ValueRef::Integer(micros) => from_micros(micros),
        _ => None,
    }
    .ok_or_else(|| corrupt("the recorded_at column is not a time in microseconds".into()))?;

    Ok(StoredEvent {
        position,
        recorded_at,
        event_type,
        version,
        tags,
        payload: factum::model::Payload { codec, bytes },
        metadata: Metadata {
            id,
            correlation_id,
            causation_id,
            idempotency_key,
        },
    })
}
