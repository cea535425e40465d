//! [`ListenerStore`] for [`PostgresStore`]: checkpoints and dead letters in the store's
//! schema, and the commit signal over LISTEN/NOTIFY (see [`notify`](crate::notify)).

use std::time::SystemTime;

use factum::listen::{DeadLetter, ListenerStore, NewDeadLetter};
use factum::{Position, StoreError};
use tokio::sync::watch;
use tokio_postgres::{GenericClient, Row};

use crate::PostgresStore;
use crate::append::{Unstorable, stored_position};
use crate::error::db;
use crate::read::position_param;

/// Text PostgreSQL can store: NUL characters (which `text` cannot hold) become U+FFFD.
pub(crate) fn storable_text(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

/// The checkpoint of `listener` in the schema `quoted`.
pub(crate) async fn load_checkpoint(
    client: &impl GenericClient,
    quoted: &str,
    listener: &str,
) -> Result<Option<Position>, StoreError> {
    let row = client
        .query_opt(
            &format!("SELECT position FROM {quoted}.listener_checkpoints WHERE listener = $1"),
            &[&listener],
        )
        .await
        .map_err(db)?;
    row.map(|row| {
        let position: i64 = row.try_get(0).map_err(db)?;
        checkpoint_position(position)
    })
    .transpose()
}

/// A stored checkpoint (0 is valid).
pub(crate) fn checkpoint_position(position: i64) -> Result<Position, StoreError> {
    u64::try_from(position)
        .map(Position)
        .map_err(|_| StoreError::backend(Unstorable(format!("negative checkpoint {position}"))))
}

/// Records `letter` in the schema `quoted` and returns its id.
pub(crate) async fn record_dead_letter(
    client: &impl GenericClient,
    quoted: &str,
    letter: &NewDeadLetter,
) -> Result<i64, StoreError> {
    let attempts = i32::try_from(letter.attempts).unwrap_or(i32::MAX);
    client
        .query_one(
            &format!(
                "INSERT INTO {quoted}.dead_letters \
                 (listener, position, event_type, error, attempts) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (listener, position) DO UPDATE SET event_type = excluded.event_type, \
                 error = excluded.error, attempts = excluded.attempts, recorded_at = now() \
                 RETURNING id"
            ),
            &[
                &letter.listener,
                &position_param(letter.position),
                &storable_text(&letter.event_type),
                &storable_text(&letter.error),
                &attempts,
            ],
        )
        .await
        .map_err(db)?
        .try_get(0)
        .map_err(db)
}

fn dead_letter(row: &Row) -> Result<DeadLetter, StoreError> {
    let get = db;
    let id: i64 = row.try_get(0).map_err(get)?;
    let attempts: i32 = row.try_get(5).map_err(get)?;
    Ok(DeadLetter {
        id: u64::try_from(id).map_err(|_| {
            StoreError::backend(Unstorable(format!("negative dead letter id {id}")))
        })?,
        listener: row.try_get(1).map_err(get)?,
        position: stored_position(row.try_get(2).map_err(get)?)?,
        event_type: row.try_get(3).map_err(get)?,
        error: row.try_get(4).map_err(get)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        recorded_at: row.try_get::<_, SystemTime>(6).map_err(get)?,
    })
}

/// Checkpoints and dead letters are rows of the store's schema (`listener_checkpoints`,
/// `dead_letters`). The commit signal follows this store's own appends at once, and every
/// other process's through LISTEN/NOTIFY (see [the crate documentation](crate#listeners-and-projections)).
impl ListenerStore for PostgresStore {
    async fn load_checkpoint(&self, listener: &str) -> Result<Option<Position>, StoreError> {
        self.on_live_client("checkpoint load", |client| async {
            let loaded = load_checkpoint(&**client, &self.inner.quoted, listener).await;
            (client, loaded)
        })
        .await
    }

    async fn save_checkpoint(&self, listener: &str, position: Position) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {}.listener_checkpoints (listener, position) VALUES ($1, $2) \
             ON CONFLICT (listener) DO UPDATE \
             SET position = excluded.position, updated_at = now()",
            self.inner.quoted
        );
        // An upsert to one position: running it twice changes nothing more.
        self.on_live_client("checkpoint save", |client| async {
            let saved = client
                .execute(&sql, &[&listener, &position_param(position)])
                .await
                .map_err(db);
            (client, saved.map(drop))
        })
        .await
    }

    async fn record_dead_letter(&self, letter: NewDeadLetter) -> Result<u64, StoreError> {
        // One letter per listener and position (an upsert): running it twice records one.
        let id = self
            .on_live_client("dead letter", |client| async {
                let id = record_dead_letter(&**client, &self.inner.quoted, &letter).await;
                (client, id)
            })
            .await?;
        u64::try_from(id)
            .map_err(|_| StoreError::backend(Unstorable(format!("negative dead letter id {id}"))))
    }

    async fn dead_letters(&self, listener: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        let sql = format!(
            "SELECT id, listener, position, event_type, error, attempts, recorded_at \
             FROM {}.dead_letters WHERE $1::text IS NULL OR listener = $1 ORDER BY id",
            self.inner.quoted
        );
        let rows = self
            .on_live_client("dead letters", |client| async {
                let rows = client.query(&sql, &[&listener]).await.map_err(db);
                (client, rows)
            })
            .await?;
        rows.iter().map(dead_letter).collect()
    }

    async fn remove_dead_letter(&self, id: u64) -> Result<bool, StoreError> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(false);
        };
        let client = self.client().await?;
        let removed = client
            .execute(
                &format!(
                    "DELETE FROM {}.dead_letters WHERE id = $1",
                    self.inner.quoted
                ),
                &[&id],
            )
            .await
            .map_err(db)?;
        Ok(removed > 0)
    }

    fn watch_head(&self) -> watch::Receiver<Option<Position>> {
        self.inner.head.subscribe()
    }
}
