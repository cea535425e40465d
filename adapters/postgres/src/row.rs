//! A stored row back to a [`StoredEvent`], straight from the binary wire format.
//!
//! Every column is taken as raw bytes and decoded here, without the driver's generic
//! conversions: reading is the hot path of folding. Anything unexpected (an unknown codec
//! name, a missing payload, a malformed tag, a negative version) is a
//! [`DecodeError`] naming the position, type and version, never a panic or a skipped row.

use std::time::{Duration, SystemTime};

use factum::model::DecodeReason;
use factum::{Codec, DecodeError, Metadata, Position, StoredEvent, Tag};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};
use uuid::Uuid;

use crate::tags;

/// The columns [`decode`] expects, in order.
pub(crate) const COLUMNS: &str = "position, recorded_at, type, version, tags, codec, \
     payload_json, payload_bytes, id, correlation_id, causation_id, idempotency_key";

/// Seconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
pub(crate) const PG_EPOCH_FROM_UNIX: u64 = 946_684_800;

/// A column's bytes as they came over the wire, whatever its type.
struct Raw<'a>(&'a [u8]);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn column<'a>(row: &'a Row, index: usize) -> Result<Option<&'a [u8]>, String> {
    row.try_get::<_, Option<Raw<'a>>>(index)
        .map(|raw| raw.map(|r| r.0))
        .map_err(|e| format!("column {index}: {e}"))
}

fn required<'a>(row: &'a Row, index: usize, name: &str) -> Result<&'a [u8], String> {
    column(row, index)?.ok_or_else(|| format!("{name} is NULL"))
}

fn int8(bytes: &[u8], name: &str) -> Result<i64, String> {
    <[u8; 8]>::try_from(bytes)
        .map(i64::from_be_bytes)
        .map_err(|_| format!("{name} is not an 8-byte integer"))
}

fn int4(bytes: &[u8], name: &str) -> Result<i32, String> {
    <[u8; 4]>::try_from(bytes)
        .map(i32::from_be_bytes)
        .map_err(|_| format!("{name} is not a 4-byte integer"))
}

fn text<'a>(bytes: &'a [u8], name: &str) -> Result<&'a str, String> {
    std::str::from_utf8(bytes).map_err(|_| format!("{name} is not UTF-8"))
}

fn uuid(bytes: &[u8], name: &str) -> Result<Uuid, String> {
    Uuid::from_slice(bytes).map_err(|_| format!("{name} is not a 16-byte UUID"))
}

fn optional_uuid(row: &Row, index: usize, name: &str) -> Result<Option<Uuid>, String> {
    column(row, index)?.map(|b| uuid(b, name)).transpose()
}

/// A `timestamptz`: microseconds since 2000-01-01 UTC.
fn timestamp(bytes: &[u8]) -> Result<SystemTime, String> {
    let micros = int8(bytes, "recorded_at")?;
    let epoch = SystemTime::UNIX_EPOCH + Duration::from_secs(PG_EPOCH_FROM_UNIX);
    let offset = Duration::from_micros(micros.unsigned_abs());
    let time = if micros >= 0 {
        epoch.checked_add(offset)
    } else {
        epoch.checked_sub(offset)
    };
    time.ok_or_else(|| "recorded_at is out of range".to_owned())
}

/// A one-dimensional `text[]` of stored tags.
fn tag_array(bytes: &[u8]) -> Result<Vec<Tag>, String> {
    let corrupt = || "tags is not a one-dimensional text array".to_owned();
    let mut rest = bytes;
    let mut take = |n: usize| -> Result<&[u8], String> {
        if rest.len() < n {
            return Err(corrupt());
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let dimensions = int4(take(4)?, "tags")?;
    let _has_nulls = take(4)?;
    let _element_type = take(4)?;
    if dimensions == 0 {
        return Ok(Vec::new());
    }
    if dimensions != 1 {
        return Err(corrupt());
    }
    let count = usize::try_from(int4(take(4)?, "tags")?).map_err(|_| corrupt())?;
    let _lower_bound = take(4)?;
    let mut out = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let length = int4(take(4)?, "tags")?;
        let length = usize::try_from(length).map_err(|_| "tags holds a NULL".to_owned())?;
        let element = text(take(length)?, "a tag")?;
        out.push(tags::decode(element)?);
    }
    Ok(out)
}

/// The event in `row` (selected with [`COLUMNS`]).
pub(crate) fn decode(row: &Row) -> Result<StoredEvent, DecodeError> {
    // Position, type and version first: every later error names them. Each is read on
    // its own, so a bad type or version still names the position (a subscription
    // dead-letters the row there and reads on after it).
    let position = required(row, 0, "position")
        .and_then(|b| int8(b, "position"))
        .and_then(|p| {
            u64::try_from(p)
                .ok()
                .filter(|&p| p > 0)
                .map(Position)
                .ok_or_else(|| format!("position {p} is not positive"))
        })
        .map_err(|reason| corrupt(Position(0), "", 0, reason))?;
    let raw_type = required(row, 2, "type").map_err(|r| corrupt(position, "", 0, r))?;
    let event_type = text(raw_type, "type")
        .map(str::to_owned)
        .map_err(|r| corrupt(position, &String::from_utf8_lossy(raw_type), 0, r))?;
    let version = required(row, 3, "version")
        .and_then(|b| int4(b, "version"))
        .map_err(|r| corrupt(position, &event_type, 0, r))?;
    let Ok(stored_version) = u32::try_from(version) else {
        return Err(corrupt(
            position,
            &event_type,
            0,
            format!("negative version {version}"),
        ));
    };
    let rest = || -> Result<_, String> {
        let recorded_at = timestamp(required(row, 1, "recorded_at")?)?;
        let tags = tag_array(required(row, 4, "tags")?)?;
        let codec_name = text(required(row, 5, "codec")?, "codec")?;
        let codec =
            Codec::from_name(codec_name).ok_or_else(|| format!("unknown codec {codec_name:?}"))?;
        let bytes = if codec == Codec::Json {
            // JSON that jsonb cannot hold (a NUL character) is kept as bytes.
            match column(row, 6)? {
                Some(jsonb) => match jsonb.split_first() {
                    Some((1, json)) => json.to_vec(),
                    _ => return Err("payload_json is not jsonb version 1".to_owned()),
                },
                None => {
                    required(row, 7, "payload_json or payload_bytes (of a JSON event)")?.to_vec()
                }
            }
        } else {
            required(row, 7, "payload_bytes (of a non-JSON event)")?.to_vec()
        };
        let metadata = Metadata {
            id: uuid(required(row, 8, "id")?, "id")?,
            correlation_id: optional_uuid(row, 9, "correlation_id")?,
            causation_id: optional_uuid(row, 10, "causation_id")?,
            idempotency_key: column(row, 11)?
                .map(|b| text(b, "idempotency_key").map(str::to_owned))
                .transpose()?,
        };
        Ok((recorded_at, tags, codec, bytes, metadata))
    };
    let (recorded_at, tags, codec, bytes, metadata) =
        rest().map_err(|reason| corrupt(position, &event_type, stored_version, reason))?;
    // The type moves in: a fold decodes every row, and a copy of it was one allocation
    // a row.
    Ok(StoredEvent {
        position,
        recorded_at,
        event_type,
        version: stored_version,
        tags,
        payload: factum::model::Payload { codec, bytes },
        metadata,
    })
}

fn corrupt(position: Position, event_type: &str, version: u32, reason: String) -> DecodeError {
    DecodeError {
        position,
        event_type: event_type.to_owned(),
        version,
        reason: DecodeReason::Corrupt(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(elements: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(1i32.to_be_bytes());
        out.extend(0i32.to_be_bytes());
        out.extend(25u32.to_be_bytes());
        out.extend((elements.len() as i32).to_be_bytes());
        out.extend(1i32.to_be_bytes());
        for e in elements {
            out.extend((e.len() as i32).to_be_bytes());
            out.extend(*e);
        }
        out
    }

    #[test]
    fn tag_arrays_decode_and_corruption_is_reported() {
        assert_eq!(
            tag_array(&array(&[b"1:a:b", b"4:note:x:y"])),
            Ok(vec![Tag::new("a", "b"), Tag::new("note", "x:y")])
        );
        let mut empty = Vec::new();
        empty.extend([0u8; 12]);
        assert_eq!(tag_array(&empty), Ok(vec![]));
        let good = array(&[b"1:a:b"]);
        assert!(tag_array(&good[..good.len() - 1]).is_err(), "truncated");
        assert!(tag_array(&array(&[b"a:b"])).is_err(), "no length prefix");
        assert!(tag_array(&array(&[&[0xff, b':']])).is_err(), "not UTF-8");
        assert!(tag_array(&[0, 0]).is_err(), "no header");
    }

    #[test]
    fn timestamps_count_from_2000() {
        assert_eq!(
            timestamp(&0i64.to_be_bytes()),
            Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(PG_EPOCH_FROM_UNIX))
        );
        assert_eq!(
            timestamp(&(-1_000_000i64).to_be_bytes()),
            Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(PG_EPOCH_FROM_UNIX - 1))
        );
        assert!(timestamp(&[1, 2]).is_err());
    }
}
