//! Snapshots: one row per key, replaced on save.

use factum::model::{DecodeReason, Payload};
use factum::{Codec, DecodeError, Snapshot, StoreError};

use crate::PostgresStore;
use crate::append::{Unstorable, stored_position};
use crate::error::db;

impl PostgresStore {
    /// [`SnapshotStore::load_snapshot`](factum::SnapshotStore::load_snapshot).
    pub(crate) async fn load(&self, key: &str) -> Result<Option<Snapshot>, StoreError> {
        let sql = format!(
            "SELECT query, position, codec, payload FROM {}.snapshots WHERE key = $1",
            self.inner.quoted
        );
        let row = self
            .on_live_client("snapshot load", |client| async {
                let row = async {
                    let statement = client.prepare_cached(&sql).await.map_err(db)?;
                    client.query_opt(&statement, &[&key]).await.map_err(db)
                }
                .await;
                (client, row)
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let query: String = row.try_get(0).map_err(db)?;
        let position = stored_position(row.try_get(1).map_err(db)?)?;
        let codec_name: String = row.try_get(2).map_err(db)?;
        let bytes: Vec<u8> = row.try_get(3).map_err(db)?;
        let Some(codec) = Codec::from_name(&codec_name) else {
            return Err(StoreError::Corrupt(DecodeError {
                position,
                event_type: format!("snapshot {key}"),
                version: 0,
                reason: DecodeReason::Corrupt(format!("unknown codec {codec_name:?}")),
            }));
        };
        Ok(Some(Snapshot {
            key: key.to_owned(),
            query,
            position,
            payload: Payload { codec, bytes },
        }))
    }

    /// [`SnapshotStore::save_snapshot`](factum::SnapshotStore::save_snapshot).
    pub(crate) async fn save(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let position = i64::try_from(snapshot.position.0).map_err(|_| {
            StoreError::backend(Unstorable(format!(
                "snapshot position {} is out of range",
                snapshot.position
            )))
        })?;
        let sql = format!(
            "INSERT INTO {}.snapshots (key, query, position, codec, payload) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (key) DO UPDATE SET query = excluded.query, \
             position = excluded.position, codec = excluded.codec, payload = excluded.payload",
            self.inner.quoted
        );
        // An upsert of the same row: running it twice changes nothing more.
        self.on_live_client("snapshot save", |client| async {
            let saved = async {
                let statement = client.prepare_cached(&sql).await.map_err(db)?;
                client
                    .execute(
                        &statement,
                        &[
                            &snapshot.key,
                            &snapshot.query,
                            &position,
                            &snapshot.payload.codec.name(),
                            &snapshot.payload.bytes,
                        ],
                    )
                    .await
                    .map_err(db)
            }
            .await;
            (client, saved.map(drop))
        })
        .await
    }
}
