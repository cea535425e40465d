//! The coupon shop as a JSON API over HTTP: a web service built on factum.
//!
//! Commands (issue a coupon, open a cart, apply a coupon to a cart) are decisions of
//! [`factum_examples::coupons`], run by a [`Dispatcher`](factum::lanes::Dispatcher) in
//! serial lanes, on the embedded SQLite store or on PostgreSQL ([`StoreChoice`]). A
//! projection keeps a read model in the same database, exactly once, and the API reads
//! it; a write answers with its position, and a read can wait for the read model to hold
//! it ([`api`]). Failures map to HTTP statuses ([`errors`]): a domain refusal is 404,
//! 409 or 422, a conflict that outlasted its retries 503 with `Retry-After`, bad input
//! 400. An `Idempotency-Key` header is the decision's idempotency key. Shutting down
//! drains the lanes first.
//!
//! Run one instance per database (or SQLite file): the projection is a single consumer,
//! and two processes applying the same batch would count a coupon's uses twice. The
//! PostgreSQL store runs on a pool of its own without TLS; a deployment needing TLS
//! builds its pool with factum-postgres's `rustls` feature.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use factum_shop::{Shop, StoreChoice};
//!
//! let shop = Shop::start(&StoreChoice::Sqlite("shop.db".into())).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! factum_shop::serve(listener, shop, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await?;
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod errors;
mod shop;
pub mod view;

use std::future::{Future, IntoFuture};
use std::time::Duration;

pub use shop::{Shop, StartError, StoreChoice};

/// How long a read with `?after=` waits for the read model before answering 503, unless
/// [`Shop::read_wait`] says otherwise.
pub const READ_WAIT: Duration = Duration::from_secs(5);

/// How long a shutdown waits for the requests in flight before it goes on without them.
pub const GRACE: Duration = Duration::from_secs(20);

/// Serves the API on `listener` until `shutdown` completes; then finishes the requests
/// in flight (for up to [`GRACE`]), decides and commits what the lanes hold, and stops
/// the projection once it has caught up.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shop: Shop,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = api::AppState {
        dispatcher: shop.dispatcher.clone(),
        reads: shop.reads.clone(),
        committed: shop.committed.clone(),
        wait: shop.read_wait,
    };
    let (begun, began) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = begun.send(());
    };
    let server = axum::serve(listener, api::router(state))
        .with_graceful_shutdown(signal)
        .into_future();
    let deadline = async {
        match began.await {
            Ok(()) => tokio::time::sleep(GRACE).await,
            // The server ended on its own: nothing to time.
            Err(_) => std::future::pending().await,
        }
    };
    let served = tokio::select! {
        served = server => served,
        () = deadline => {
            tracing::warn!(grace = ?GRACE, "requests still running after the grace period, shutting down without them");
            Ok(())
        }
    };
    shop.shutdown().await;
    served
}
