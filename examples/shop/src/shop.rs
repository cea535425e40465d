//! The shop's parts, wired: a store chosen by configuration, the dispatcher deciding on
//! it, and the projection keeping the read model, on a task of its own.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use factum::lanes::{Dispatcher, Drain};
use factum::listen::{ListenerStore, OnFailure, Sink, SubscriptionOptions};
use factum::listen::{Progress, Subscription, SubscriptionError};
use factum::{AnyStore, Engine, Position};
use factum_postgres::deadpool_postgres::{Manager, Pool};
use factum_postgres::{PgProjectionSink, PostgresError, PostgresOptions, PostgresStore};
use factum_sqlite::{SqliteError, SqliteProjectionSink};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::view::{ReadModel, ShopView};

/// Which store the shop runs on.
#[derive(Clone, PartialEq, Eq)]
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

/// Shows no password: a PostgreSQL URL as the store's options describe it.
impl std::fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreChoice::Sqlite(path) => write!(f, "SQLite at {}", path.display()),
            StoreChoice::Postgres { url, schema } => {
                let server = url
                    .parse::<tokio_postgres::Config>()
                    .map(|config| PostgresOptions::from_config(config, schema.as_str()).url)
                    .unwrap_or_else(|_| "an unparsable URL".to_owned());
                write!(f, "PostgreSQL ({server}), schema {schema}")
            }
        }
    }
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
    /// The PostgreSQL URL does not parse.
    #[error("invalid PostgreSQL URL")]
    Url(#[source] tokio_postgres::Error),
    /// The PostgreSQL pool could not be built.
    #[error("cannot build the PostgreSQL pool")]
    Pool(#[source] factum_postgres::deadpool_postgres::BuildError),
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
                let (committed, projection) =
                    spawn_projection(Subscription::new(store.clone(), sink), stopped);
                let reads = ReadModel::Sqlite(Arc::new(Mutex::new(conn)));
                (AnyStore::new(store), reads, committed, projection)
            }
            StoreChoice::Postgres { url, schema } => {
                // One pool for the store's statements and the API's reads: a connection
                // lost to a server restart is replaced, for both.
                let config: tokio_postgres::Config = url.parse().map_err(StartError::Url)?;
                let manager = Manager::new(config.clone(), tokio_postgres::NoTls);
                let pool = Pool::builder(manager)
                    .max_size(16)
                    .build()
                    .map_err(StartError::Pool)?;
                let options = PostgresOptions::from_config(config, schema.as_str());
                let store = PostgresStore::connect_with_pool(pool.clone(), options).await?;
                // The schema's name as the store checked it.
                let schema = store.schema().to_owned();
                let view = ShopView::postgres(&schema);
                let client = pool.get().await.map_err(read_model)?;
                client
                    .batch_execute(&view.create_tables())
                    .await
                    .map_err(read_model)?;
                drop(client);
                let sink = PgProjectionSink::new(store.clone(), view);
                let (committed, projection) =
                    spawn_projection(Subscription::new(store.clone(), sink), stopped);
                let reads = ReadModel::Postgres { pool, schema };
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
            // Logged when it happened.
            Ok(Err(_)) => {}
            Err(e) => tracing::error!(error = %e, "the projection's task failed"),
        }
    }
}

/// The projection's options: an event the read model cannot take stops it, rather than
/// leaving the read model without it for good (a dead letter would); the API then
/// reports it ([`api`](crate::api)'s `/health`, and 500 to reads that wait).
fn subscription_options() -> SubscriptionOptions {
    SubscriptionOptions {
        on_failure: OnFailure::DeadLetterAndStop,
        ..SubscriptionOptions::default()
    }
}

/// Runs `subscription` on a task of its own until `stopped`, then catches up with what
/// was committed before the stop; its failure is logged when it happens, not at
/// shutdown. Returns where the read model is committed to, and the task.
fn spawn_projection<St, K>(
    subscription: Subscription<St, K>,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> (
    watch::Receiver<Position>,
    JoinHandle<Result<Progress, SubscriptionError>>,
)
where
    St: ListenerStore + 'static,
    K: Sink + Send + Sync + 'static,
{
    let mut subscription = subscription.with_options(subscription_options());
    let committed = subscription.committed();
    let projection = tokio::spawn(async move {
        let result = async {
            subscription.run(stopped).await?;
            subscription.catch_up().await
        }
        .await;
        if let Err(e) = &result {
            tracing::error!(error = %factum::ErrorChain(e), "the read model's projection stopped");
        }
        result
    });
    (committed, projection)
}

fn read_model(e: impl std::error::Error + Send + Sync + 'static) -> StartError {
    StartError::ReadModel(Box::new(e))
}
