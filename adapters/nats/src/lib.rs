//! factum over NATS JetStream.
//!
//! [`lanes`]: **distributed lanes**. A [`LanesClient`] routes each decision by its
//! partition key to one of `N` JetStream subjects (`<prefix>.cmd.<partition>`, one
//! stream); [`Worker`] processes each consume the partitions they own through durable
//! pull consumers with the `pinned_client` priority policy, so the broker hands every
//! partition to exactly one worker at a time, moves it to a standby worker when its
//! owner stops pulling, and redelivers what the owner left unacknowledged. A worker
//! decides through a [`factum::lanes::Dispatcher`] (serial lanes, group commit) on the
//! store it is given, replies the outcome to the caller, and only then acknowledges the
//! command. Idempotency keys make redelivered commands harmless: one that already
//! committed is answered `replayed`.
//!
//! Needs a NATS server 2.11 or newer with JetStream.
//!
//! ```no_run
//! use factum::lanes::Dispatcher;
//! use factum::prelude::*;
//! use factum_nats::{LanesClient, LanesOptions, Worker};
//! # #[derive(Decision, serde::Serialize, serde::Deserialize)]
//! # #[decision(partition = coupon, idempotency = request)]
//! # struct ApplyCoupon { coupon: String, request: String }
//! # impl Decide for ApplyCoupon {
//! #     type State = (); type Event = shop::Applied; type Error = String;
//! #     fn state(&self) {}
//! #     fn decide(&self, _: &()) -> Result<Vec<shop::Applied>, String> { Ok(vec![]) }
//! # }
//! # #[factum::events] pub mod shop { pub struct Applied { #[tag] pub coupon: String } }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let options = LanesOptions::new("SHOP_LANES", "shop");
//!
//! // A worker process: decides the commands of the partitions it owns on its store.
//! let nats = async_nats::connect(factum_nats::nats_url()).await?;
//! let dispatcher = Dispatcher::new(Engine::new(MemoryStore::new()));
//! let worker = Worker::builder(nats, dispatcher, options.clone())
//!     .id("worker-1")
//!     .handle::<ApplyCoupon>()
//!     .start()
//!     .await?;
//!
//! // A client process: sends a command and waits for its outcome.
//! let client = LanesClient::new(async_nats::connect(factum_nats::nats_url()).await?, options)
//!     .await?;
//! let outcome = client
//!     .request(&ApplyCoupon { coupon: "SPRING".into(), request: "r-1".into() })
//!     .await?;
//! println!("committed at {:?} by {}", outcome.positions, outcome.worker);
//! worker.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! [`publish`]: **integration events published from the log** (the log is the outbox).
//! A [`Publisher`] is a [`factum::listen::Listener`] whose query is the public event
//! types (`#[event(public)]`); run by a [`factum::listen::Subscription`] from its own
//! checkpoint, it publishes each event after commit, in position order, to
//! `<prefix>.<event type>`, waiting for JetStream's acknowledgement before the next, with
//! the event id as `Nats-Msg-Id`, so the broker drops the re-publishes that follow a
//! crash between publish and checkpoint. A broker that is down is retried, never
//! skipped ([`Publisher::subscription_options`]). It works with NATS 2.9 and newer.
//!
//! ```no_run
//! use factum::listen::Subscription;
//! use factum::prelude::*;
//! use factum_nats::{PublishOptions, Publisher};
//! # #[factum::events] pub mod shop {
//! #     #[event(public)] pub struct CouponApplied { #[tag] pub coupon: String }
//! # }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let nats = async_nats::connect(factum_nats::nats_url()).await?;
//! let options = PublishOptions::new("SHOP_EVENTS", "shop.events");
//! factum_nats::publish::ensure_stream(&nats, &options).await?;
//! let store = MemoryStore::new(); // the application's store, shared with its engine
//! let publisher = Publisher::of::<shop::Event>(nats, options)?;
//! let mut subscription = Subscription::listener(store, publisher)
//!     .with_options(Publisher::subscription_options());
//! subscription.run(std::future::pending()).await?;
//! # Ok(())
//! # }
//! ```

pub mod lanes;
mod names;
pub mod publish;

/// The NATS client this crate speaks through, re-exported so applications connect with
/// the same version.
pub use async_nats;
pub use lanes::{
    LanesClient, LanesError, LanesOptions, RemoteOutcome, Worker, WorkerBuilder, WorkerStats,
    partition_of,
};
pub use publish::{PayloadFormat, PublishError, PublishOptions, Publisher, PublisherStats};

/// The environment variable naming the NATS server: [`nats_url`] reads it.
pub const NATS_URL: &str = "NATS_URL";

/// The server [`nats_url`] falls back to when [`NATS_URL`] is not set.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// The URL in [`NATS_URL`], or [`DEFAULT_NATS_URL`].
pub fn nats_url() -> String {
    std::env::var(NATS_URL).unwrap_or_else(|_| DEFAULT_NATS_URL.to_owned())
}
