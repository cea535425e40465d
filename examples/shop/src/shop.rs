//! The shop's parts, wired: a store chosen by configuration, the dispatcher deciding on
//! it, and the projection keeping the read model, on a task of its own.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use factum::lanes::{Dispatcher, Drain};
use factum::listen::{Progress, Subscription, SubscriptionError};
use factum::{AnyStore, Engine, Position};
use factum_postgres::{PgProjectionSink, PostgresError, PostgresStore};
use factum_sqlite::{SqliteError, SqliteProjectionSink};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::view::{ReadModel, ShopView};

/// Which store the shop runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreChoice {
    /// The embedded store, in this file (created if missing).
    Sqlite(PathBuf),
    /// A PostgreSQL database, the shop's log and read model in `schema`.
    Postgres {
        /// The connection URL.
        url: String,
        /// The schema.
        schema: String,
    },
}

/// Why the shop could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The SQLite store did not open.
    #[error("cannot open the SQLite store")]
    Sqlite(#[from] SqliteError),
    /// The PostgreSQL store did not connect.
    #[error("cannot connect the PostgreSQL store")]
    Postgres(#[from] PostgresError),
    /// The read model's tables could not be created, or its connection opened.
    #[error("cannot set up the read model")]
    ReadModel(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A running shop: what the API needs, and what shutting down stops.
pub struct Shop {
    /// Decides the shop's commands.
    pub dispatcher: Dispatcher<AnyStore>,
    /// Where the API reads the read model.
    pub reads: ReadModel,
    /// The position up to which the read model is committed.
    pub committed: watch::Receiver<Position>,
    /// How long a read with `?after=` waits for the read model before answering 503
    /// ([`READ_WAIT`](crate::READ_WAIT) unless set).
    pub read_wait: std::time::Duration,
    stop: oneshot::Sender<()>,
    projection: JoinHandle<Result<Progress, SubscriptionError>>,
}

impl Shop {
    /// Opens the store `choice` names, creates the read model's tables, and starts the
    /// projection. Call it inside a tokio runtime.
    pub async fn start(choice: &StoreChoice) -> Result<Shop, StartError> {
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async move {
            // Dropped or sent: either way the projection stops.
            let _ = stopped.await;
        };
        let (store, reads, committed, projection) = match choice {
            StoreChoice::Sqlite(path) => {
                let store = factum_sqlite::open(path).await?;
                let view = ShopView::sqlite();
                let conn = rusqlite::Connection::open(store.path()).map_err(read_model)?;
                conn.execute_batch(&view.create_tables())
                    .map_err(read_model)?;
                let sink = SqliteProjectionSink::new(&store, view).await?;
                let mut subscription = Subscription::new(store.clone(), sink);
                let committed = subscription.committed();
                let projection = tokio::spawn(async move {
                    subscription.run(stopped).await?;
                    // What was committed before the stop, read-model included.
                    subscription.catch_up().await
                });
                let reads = ReadModel::Sqlite(Arc::new(Mutex::new(conn)));
                (AnyStore::new(store), reads, committed, projection)
            }
            StoreChoice::Postgres { url, schema } => {
                let store = PostgresStore::connect(url, schema).await?;
                let view = ShopView::postgres(schema);
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .map_err(read_model)?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "the read model's connection ended");
                    }
                });
                client
                    .batch_execute(&view.create_tables())
                    .await
                    .map_err(read_model)?;
                let sink = PgProjectionSink::new(store.clone(), view);
                let mut subscription = Subscription::new(store.clone(), sink);
                let committed = subscription.committed();
                let projection = tokio::spawn(async move {
                    subscription.run(stopped).await?;
                    // What was committed before the stop, read-model included.
                    subscription.catch_up().await
                });
                let reads = ReadModel::Postgres {
                    client: Arc::new(client),
                    schema: schema.clone(),
                };
                (AnyStore::new(store), reads, committed, projection)
            }
        };
        Ok(Shop {
            dispatcher: Dispatcher::new(Engine::new(store)),
            reads,
            committed,
            read_wait: crate::READ_WAIT,
            stop,
            projection,
        })
    }

    /// Stops taking decisions, decides and commits every queued one, then stops the
    /// projection once it has caught up with what was committed.
    pub async fn shutdown(self) {
        self.dispatcher.shutdown(Drain::Finish).await;
        let _ = self.stop.send(());
        match self.projection.await {
            Ok(Ok(progress)) => tracing::info!(position = %progress.position, "projection stopped"),
            Ok(Err(e)) => tracing::error!(error = %factum::ErrorChain(&e), "the projection failed"),
            Err(e) => tracing::error!(error = %e, "the projection's task failed"),
        }
    }
}

fn read_model(e: impl std::error::Error + Send + Sync + 'static) -> StartError {
    StartError::ReadModel(Box::new(e))
}
