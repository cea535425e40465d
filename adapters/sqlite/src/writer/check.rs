//! The checks of an append against what is stored: the positions an idempotency key
//! recorded, the positions a request of a batch is exempt from, and the first event
//! violating a condition.

use factum::{AppendError, Appended, Position, StoreError};
use rusqlite::Connection;
use rusqlite::types::ValueRef;

use crate::error::SqliteError;
use crate::row::position_from_sql;
use crate::sql::{CompiledQuery, Direction};

/// The positions `first..=last` recorded for the idempotency key `key`.
pub(crate) fn recorded_positions(
    key: &str,
    first: i64,
    last: i64,
) -> Result<Vec<Position>, StoreError> {
    let corrupt = || {
        StoreError::backend(SqliteError::CorruptRecord {
            what: "idempotency_keys",
            key: key.to_owned(),
            reason: format!("positions {first}..={last} are not a range of positions"),
        })
    };
    if first > last {
        return Err(corrupt());
    }
    (first..=last)
        .map(|p| position_from_sql(p).ok_or_else(corrupt))
        .collect()
}

/// The positions a request of a batch is exempt from
/// ([`exempt_positions`](factum::store::exempt_positions)), as ranges `(first, last)`
/// ascending and merged: a condition check skips a range in one look-up.
pub(super) fn exempt(
    index: usize,
    builds_on: &[usize],
    results: &[Result<Appended, AppendError>],
) -> Result<Vec<(i64, i64)>, AppendError> {
    let positions = factum::store::exempt_positions(index, builds_on, results)?;
    let mut merged: Vec<(i64, i64)> = Vec::new();
    for position in positions {
        let Ok(position) = i64::try_from(position.0) else {
            // Written here, so within SQLite's integers.
            continue;
        };
        match merged.last_mut() {
            Some(previous) if position <= previous.1.saturating_add(1) => {
                previous.1 = previous.1.max(position);
            }
            _ => merged.push((position, position)),
        }
    }
    Ok(merged)
}

/// The first position above `after` matching `query` and outside the ranges of `exempt`
/// (ascending, disjoint), with its type: the event that makes a condition fail.
///
/// Each look-up runs on the indexes; one that lands in an exempt range goes on from its
/// end, so a check costs at most one look-up more than there are ranges.
pub(crate) fn first_after(
    conn: &Connection,
    query: &CompiledQuery,
    after: Option<Position>,
    exempt: &[(i64, i64)],
) -> Result<Option<(Position, String)>, StoreError> {
    let mut low = match after {
        None => 1,
        Some(after) => match i64::try_from(after.0) {
            Ok(after) => after.saturating_add(1),
            // No position can be above it.
            Err(_) => return Ok(None),
        },
    };
    let position = loop {
        let positions = query
            .positions(conn, Direction::Forward, low, i64::MAX, 1)
            .map_err(StoreError::backend)?;
        let Some(&position) = positions.first() else {
            return Ok(None);
        };
        match exempt
            .iter()
            .find(|(first, last)| (*first..=*last).contains(&position))
        {
            Some(&(_, last)) => match last.checked_add(1) {
                Some(next) => low = next,
                None => return Ok(None),
            },
            None => break position,
        }
    };
    let event_type = conn
        .prepare_cached("SELECT type FROM events WHERE position = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([position], |row| {
                Ok(match row.get_ref(0)? {
                    ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                        String::from_utf8_lossy(bytes).into_owned()
                    }
                    _ => String::new(),
                })
            })
        })
        .map_err(StoreError::backend)?;
    let position = position_from_sql(position).unwrap_or(Position(0));
    Ok(Some((position, event_type)))
}
