//! # factum-postgres
//!
//! A [`factum`] event store on PostgreSQL (15 or newer): [`PostgresStore`].
//!
//! ```
//! use factum::prelude::*;
//! use factum_postgres::PostgresStore;
//!
//! #[factum::events]
//! pub mod shop {
//!     #[group(Coupon)]
//!     pub struct CouponIssued { #[tag] pub coupon: String, pub uses: u32 }
//!     #[group(Coupon)]
//!     pub struct CouponApplied { #[tag] pub coupon: String, #[tag] pub cart: String }
//! }
//!
//! #[derive(State, Debug, Default)]
//! pub struct Coupon { #[id] pub coupon: String, pub remaining: u32 }
//!
//! #[factum::fold]
//! impl Coupon {
//!     fn issued(&mut self, e: &shop::CouponIssued) { self.remaining = e.uses }
//!     fn applied(&mut self, _: &shop::CouponApplied) { self.remaining = self.remaining.saturating_sub(1) }
//! }
//!
//! #[derive(Decision)]
//! #[decision(partition = coupon, retries = 5)]
//! pub struct ApplyCoupon { pub coupon: String, pub cart: String }
//!
//! impl Decide for ApplyCoupon {
//!     type State = Coupon;
//!     type Event = shop::CouponEvent;
//!     type Error = String;
//!     fn state(&self) -> Coupon { Coupon::new(self.coupon.clone()) }
//!     fn decide(&self, coupon: &Coupon) -> Result<Vec<shop::CouponEvent>, String> {
//!         if coupon.remaining == 0 {
//!             return Err(format!("coupon {} is used up", self.coupon));
//!         }
//!         Ok(vec![shop::CouponApplied { coupon: self.coupon.clone(), cart: self.cart.clone() }.into()])
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The server in DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test); the
//! // tables go to their own schema, created and migrated on connect.
//! let schema = format!("factum_doc_{}", uuid::Uuid::now_v7().simple());
//! let store = PostgresStore::from_env(&schema).await?;
//!
//! let engine = Engine::new(store.clone());
//! let issue = shop::CouponIssued { coupon: "SPRING".into(), uses: 1 };
//! engine.store().append(vec![NewEvent::encode(&issue, Codec::Json)?], None).await?;
//!
//! let first = engine.decide(&ApplyCoupon { coupon: "SPRING".into(), cart: "c1".into() }).await;
//! assert_eq!(first.map(|o| o.events.len()).ok(), Some(1));
//! let second = engine.decide(&ApplyCoupon { coupon: "SPRING".into(), cart: "c2".into() }).await;
//! assert_eq!(second.unwrap_err().to_string(), "coupon SPRING is used up");
//!
//! // Read back everything about the coupon, oldest first.
//! use futures::TryStreamExt;
//! let query = Query::item(QueryItem::any().with_tags([Tag::new("coupon", "SPRING")]));
//! let events: Vec<StoredEvent> = store.read(&query, ReadOptions::forward()).try_collect().await?;
//! let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
//! assert_eq!(types.len(), 2);
//! assert!(events[0].position < events[1].position);
//!
//! store.drop_schema().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! The schema (see [`PostgresOptions::schema`]: the store's own, never `public` or a
//! system schema, never one holding another application's objects) holds:
//! - `events`: `position bigint` (from the sequence `positions`), `tx xid8` (the writing
//!   transaction), `type`, `version`, `tags text[]` (each `<key length>:<key>:<value>`,
//!   GIN-indexed), `codec`, `payload_json jsonb` (JSON payloads, which may come back
//!   re-formatted, every number with the same digits) or `payload_bytes bytea` (any
//!   other codec, byte for byte, and the JSON payloads `jsonb` would change: a negative
//!   zero, a number in exponent form, a NUL character), `id`,
//!   `correlation_id`, `causation_id`, `idempotency_key`, `recorded_at` (a
//!   `timestamptz`: the start of the appending statement, or the event's own
//!   [`NewEvent::recorded_at`](factum::NewEvent::recorded_at), to the microsecond, for
//!   an import; one outside 4713 BC..294276 AD fails its append alone); indexed by
//!   `(type, position)` and by tags;
//! - `event_tags`: `(tag, position)` for each tag of each event, filled by a trigger on
//!   every insert into `events`: reads walk a tag's events from a position, in order;
//! - `idempotency`: each recorded key and the positions its append wrote;
//! - `snapshots`: one per key, replaced on save;
//! - `factum_migrations`: the versions applied, see [`SCHEMA_VERSION`].
//!
//! # Concurrency
//!
//! Appends run in READ COMMITTED transactions (never SERIALIZABLE) that take
//! transaction-scoped advisory locks, so that only appends that could affect each
//! other's conditions wait for each other:
//! - a **shared** lock on `tag:k=v` for each tag its events carry, on `type:T` for each
//!   of their types, and on one `global` key;
//! - an **exclusive** lock per item of its condition: on one of the item's tags when it
//!   has tags (an event matching the item carries all of them, so its writer holds that
//!   key shared), else on `type:T` for each of the item's types, else (an item matching
//!   everything) on `global`;
//! - an **exclusive** lock on `idempotency:key` for each idempotency key its events carry.
//!
//! A key needed both ways is taken exclusively, once; keys are taken in ascending order,
//! so two appends never wait on each other in a cycle. Then the append checks its
//! idempotency keys and its condition, each with a fresh statement: in READ COMMITTED that
//! sees everything committed before, including every append that held a lock this one
//! waited for. An append that could violate the condition either committed before the
//! check (and the check sees it: [`AppendError::Conflict`]
//! names the lowest conflicting position) or waits for this one to commit and draws
//! higher positions. [`lock_keys`] gives the keys of an append.
//!
//! A batch ([`EventStore::append_batch`]) takes the locks of all its requests, then checks
//! each request against the stored events and the requests accepted before it. A request
//! building on earlier ones ([`AppendRequest::builds_on`]) fails with
//! [`AppendError::Dependency`] if one of them failed, and otherwise ignores their events
//! in its check (never a stored event: those all precede the batch).
//! [`EventStore::find_idempotency_keys`] is one statement for all the keys asked.
//!
//! # Partition locks
//!
//! [`PartitionLocks::lock_partition`] takes a **session-level** advisory lock,
//! `pg_advisory_lock(integer, integer)` on [`partition_lock_key`] (a hash of the schema
//! and the key), so it excludes every process sharing the store — every
//! [`PostgresStore`] on the same server and schema. The two-`integer` form is a key space
//! of its own, apart from the `bigint` keys of the appends' transaction-level locks above,
//! so a partition lock never delays an append.
//!
//! - **Connections.** A held lock keeps its connection checked out of a separate pool of
//!   at most [`PostgresOptions::lock_pool_size`] connections (8 by default, opened on
//!   demand; `0` turns partition locks off: `lock_partition` returns `Ok(None)`), so locks
//!   never starve reads and appends. Callers of one store wanting a key it already holds
//!   or waits for queue in process, without a connection; a key held by another process
//!   costs one waiting connection per store. Past the pool's size, `lock_partition` waits
//!   for a connection.
//! - **Release.** [`PartitionLock::release`] runs `pg_advisory_unlock` and returns the
//!   connection to the pool; dropping the lock does the same on a spawned task. If the
//!   unlock fails, the connection is closed instead of pooled — ending its session ends
//!   its locks — and so is the connection of a caller that stops waiting (its future
//!   dropped), after cancelling the wait on the server, so no lock is granted to nobody.
//! - **Lost connections.** When a holder's connection dies (its process crashed, the
//!   network failed, the backend was terminated), the server releases the lock with the
//!   session and the next waiter gets it. The holder is not told; its appends stay
//!   correct, since every append is still checked against its condition, but two
//!   decisions on the key may then overlap and one of them conflict.
//!
//! # Listeners and projections
//!
//! [`PostgresStore`] is a [`ListenerStore`](factum::listen::ListenerStore): checkpoints
//! (`listener_checkpoints`) and dead letters (`dead_letters`) are tables of its schema.
//! Its commit signal ([`watch_head`](factum::listen::ListenerStore::watch_head)) follows
//! this store's own appends at once and every other connection's through
//! **LISTEN/NOTIFY**: after each successful append, the store notifies the channel
//! `factum_<schema>` (for a schema name longer than 56 bytes, its first 39 bytes and a
//! hash) with the newest position it committed. It does so after the commit, from a task
//! of its own holding a connection of its own (`application_name` suffixed `-notify`,
//! opened on demand, closed after 30 s without appends), in a transaction of its own that
//! skips the WAL flush: commits made while one notification is in flight make one more,
//! an append never waits for it, and a failed one is logged (`tracing`) and sent again
//! after a backoff, never an append's error. (Up to schema version 4 a trigger on
//! `events` notified inside every appending transaction, which then held the server's
//! one notification lock through its commit: appending commits flushed one at a time.)
//! It notifies whether or not anyone listens: PostgreSQL does not tell a session which
//! channels other sessions listen on. In a rolling deploy from a release before version 5,
//! the old release's listeners still get the new release's notifications (same channel,
//! same payload), and the old release's appends, which no longer notify once the schema
//! is migrated, are found by every listener's poll. The first `watch_head`
//! spawns (on the current tokio runtime) one task holding a connection of its own, not
//! from the pool (`application_name` suffixed `-listen`), which LISTENs and forwards the
//! notifications; when that connection drops, it reconnects with backoff and reads the
//! newest position once, so no commit made meanwhile goes unsignalled. A notification is
//! only a hint: subscriptions still read through the watermark, and still poll; a
//! notification lost (the notifying process ended first, the server was unreachable)
//! costs a listener of another process at most its poll interval.
//!
//! A read model kept in the same database is updated **exactly once** with a
//! [`PgProjectionSink`]: each batch of events, its dead letters and the checkpoint that
//! passes them commit in one transaction, on a connection of the pool it holds for the
//! batch only (between batches it gives it back, so even a pool of one connection serves
//! a subscription). A pool too small for what holds connections at once fails after
//! [`PostgresOptions::pool_wait_timeout`] rather than hanging.
//!
//! ```
//! use factum::listen::{HandlerError, Subscription};
//! use factum::prelude::*;
//! use factum_postgres::{PgProjection, PgProjectionSink, PostgresOptions, PostgresStore};
//! use tokio_postgres::Client;
//!
//! /// Counts the events of each type in a table of the store's schema.
//! struct CountByType { table: String }
//!
//! impl PgProjection for CountByType {
//!     fn name(&self) -> &str { "count_by_type" }
//!     fn query(&self) -> Query { Query::all() }
//!     async fn apply(&mut self, client: &Client, event: &StoredEvent) -> Result<(), HandlerError> {
//!         let sql = format!(
//!             "INSERT INTO {} AS c (type, n) VALUES ($1, 1) \
//!              ON CONFLICT (type) DO UPDATE SET n = c.n + 1",
//!             self.table
//!         );
//!         client.execute(&sql, &[&event.event_type]).await.map_err(HandlerError::transient)?;
//!         Ok(())
//!     }
//!     async fn reset(&mut self, client: &Client) -> Result<(), HandlerError> {
//!         let sql = format!("DELETE FROM {}", self.table);
//!         client.execute(&sql, &[]).await.map_err(HandlerError::transient)?;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let schema = format!("factum_doc_{}", uuid::Uuid::now_v7().simple());
//! let store = PostgresStore::from_env(&schema).await?;
//! let (client, connection) =
//!     tokio_postgres::connect(&PostgresOptions::from_env(&schema).url, tokio_postgres::NoTls).await?;
//! tokio::spawn(connection);
//! let table = format!("\"{schema}\".counts");
//! client
//!     .batch_execute(&format!("CREATE TABLE {table} (type text PRIMARY KEY, n bigint NOT NULL)"))
//!     .await?;
//!
//! let opened = NewEvent {
//!     event_type: "Opened".into(),
//!     version: 1,
//!     tags: vec![],
//!     payload: Codec::Json.encode("Opened", &serde_json::json!({}))?,
//!     metadata: Default::default(),
//!     recorded_at: None,
//! };
//! store.append(vec![opened.clone(), opened], None).await?;
//!
//! let sink = PgProjectionSink::new(store.clone(), CountByType { table: table.clone() });
//! let mut subscription = Subscription::new(store.clone(), sink);
//! assert_eq!(subscription.catch_up().await?.handled, 2);
//! let n: i64 = client
//!     .query_one(&format!("SELECT n FROM {table} WHERE type = 'Opened'"), &[])
//!     .await?
//!     .get(0);
//! assert_eq!(n, 2);
//! drop(subscription);
//! store.drop_schema().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # No reader skips an event
//!
//! ## The problem
//!
//! Positions come from a sequence, so transactions commit out of position order: T1 draws
//! position 7, T2 draws 8, T2 commits, a reader sees 8 and goes on from 9, then T1
//! commits 7, which that reader never sees.
//!
//! ## The rule
//!
//! 1. **Allocation is ordered with transaction ids.** An append draws its positions in
//!    `allocate_positions(n)`, a critical section under a *session-level* advisory lock
//!    (released before the function returns, so never held across a commit) in which the
//!    transaction's id is assigned (`pg_current_xact_id()`) and then the positions are
//!    drawn. Nothing in the append writes before that call (advisory locks and `SELECT`s
//!    assign no id), so the id is assigned inside the critical section. Transaction ids
//!    are handed out in increasing order and the critical sections run one at a time, so
//!    among appenders: **if T1 drew a lower position than T2, then id(T1) < id(T2)**.
//!    Each event row records its transaction's id in the `xid8` column `tx`.
//! 2. **Every appender holds the `global` advisory lock** (shared, or exclusive for a
//!    condition matching everything) from before its id is assigned until it ends: the
//!    locks are taken first, then the positions drawn.
//! 3. **Reads return only events with `tx < w`**, where the watermark `w` comes from a
//!    statement run just before the read: the lowest id among the transactions holding
//!    this store's `global` lock (from `pg_locks`, joined to their `transactionid`
//!    locks), capped by the `xmax` of that statement's snapshot (one past the highest
//!    completed id, so at most the next id to be given out).
//!
//! ## Why no reader skips
//!
//! Say the read returns an event at position p, written by V, so id(V) < w. Take any
//! event at a position q < p, written by W. By (1), id(W) ≤ id(V) < w (equal when
//! W = V). When `pg_locks` was read, W cannot have been running with its id assigned:
//! it would have held the `global` lock (2), and w ≤ id(W). Nor can it have been given
//! its id afterwards: that id would be above every id given out before the statement
//! began, so at least `xmax` ≥ w. So W had ended before `pg_locks` was read — before the
//! read's own snapshot, taken later: it aborted (q is never written: a permanent gap) or
//! committed, and then the read sees q (if it matches, the read returned it). So once a reader has seen p, no event below p can appear later: polling
//! forward from just after the last position seen misses nothing, and no read sees a
//! position commit after a higher one it already saw.
//!
//! The condition check inside an append does *not* apply the watermark: under its locks
//! it must see every committed event after the condition's position.
//!
//! ## What it costs
//!
//! Only this store's running appends hold the watermark back: a transaction left open
//! elsewhere on the server does not (which a watermark from the server-wide
//! `pg_snapshot_xmin` would suffer; `tests/long_transactions.rs` shows the difference).
//! An append's own commit can still be invisible to the read that follows it while an
//! older append is running, so each read first runs a **fence**: if the newest event in
//! the store was written at or above the watermark, it waits (polling, up to
//! [`PostgresOptions::visibility_wait`]) until the watermark passes it. If the wait runs
//! out (an append held open that long, as by a test hook), the read returns what is safe
//! without the late events; still correct: a decision then meets a conflict on append,
//! and a tailing reader picks them up on a later poll. The watermark statement reads
//! `pg_locks`, one round trip before each read. How long reads wait is the histogram
//! [`VISIBILITY_WAIT_SECONDS`] (through the `metrics` facade, as factum's own metrics
//! are: see `factum::telemetry`), recorded for the reads that waited.
//!
//! # Deployment
//!
//! ## TLS
//!
//! The URL's `sslmode` decides (`disable`, `prefer`, tokio-postgres's default, or
//! `require`), for every connection the store opens: both pools, the LISTEN and NOTIFY
//! connections, the cancel requests of partition locks and [`PostgresStore::migrate`]'s.
//! - Without the `rustls` feature there is no TLS: `disable` and `prefer` connect in
//!   plaintext, and `require` fails with [`PostgresError::TlsNotEnabled`] before any
//!   connection, never falling back to plaintext.
//! - With it, `require` connects over TLS (rustls, on ring unless the application
//!   installed another default crypto provider) and verifies the server's certificate
//!   and name against the platform's trusted roots (`rustls-native-certs`: the system's
//!   CA store, or the bundle `SSL_CERT_FILE` names, where operators already put the CA
//!   of a managed database), or against the `rustls::ClientConfig` passed as
//!   `PostgresOptions::tls` (a private CA, client certificates). A server without TLS,
//!   or whose certificate does not verify, fails to connect ([`PostgresError::Connect`],
//!   its source saying why). `prefer` uses TLS when the server offers it only with a
//!   `ClientConfig` of the application's, and otherwise connects in plaintext: the
//!   platform's roots would refuse the many servers with self-signed certificates (which
//!   `prefer` must still reach), and accepting any certificate would encrypt without
//!   authenticating. `disable` connects in plaintext. The feature re-exports `rustls` at
//!   the version it uses.
//!
//! ```no_run
//! # #[cfg(feature = "rustls")]
//! # async fn example(
//! #     client_config: factum_postgres::rustls::ClientConfig,
//! # ) -> Result<(), factum_postgres::PostgresError> {
//! use std::sync::Arc;
//! use factum_postgres::{PostgresOptions, PostgresStore};
//!
//! // Verified against the platform's roots:
//! let store =
//!     PostgresStore::connect("postgres://shop@db.internal/shop?sslmode=require", "shop").await?;
//! // Verified with the application's own config (its roots, client certificates):
//! let options = PostgresOptions {
//!     tls: Some(Arc::new(client_config)),
//!     ..PostgresOptions::new("postgres://shop@db.internal/shop?sslmode=require", "shop")
//! };
//! let store = PostgresStore::connect_with(options).await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## An existing pool or config
//!
//! An application with its own [`tokio_postgres::Config`] opens the store with
//! [`PostgresOptions::from_config`] instead of a URL. One with its own
//! [`deadpool_postgres::Pool`] hands it to [`PostgresStore::connect_with_pool`]: the
//! store runs its reads, appends, snapshots, checkpoints and projections on that pool's
//! connections, at that pool's size and timeouts. It still opens connections of its own,
//! with the server and TLS settings of its options, which should name the same server:
//! the partition locks' pool ([`PostgresOptions::lock_pool_size`], `0` for none), the
//! LISTEN connection (from the first
//! [`watch_head`](factum::listen::ListenerStore::watch_head)) and the NOTIFY connection
//! after appends. Both crates are re-exported at the versions this crate uses.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use factum_postgres::deadpool_postgres::{Manager, Pool};
//! use factum_postgres::{PostgresOptions, PostgresStore, tokio_postgres};
//!
//! let config: tokio_postgres::Config = "postgres://shop@db.internal/shop".parse()?;
//! let pool = Pool::builder(Manager::new(config.clone(), tokio_postgres::NoTls)).build()?;
//! let store =
//!     PostgresStore::connect_with_pool(pool, PostgresOptions::from_config(config, "shop")).await?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Migrations as a step
//!
//! Opening a store creates and migrates its schema by default (concurrent openers apply
//! each step once). A deployment that migrates as a step of its own, before the new
//! release starts and maybe as a role allowed to change the schema, runs
//! [`PostgresStore::migrate`] there, and opens its stores with
//! [`PostgresOptions::migrate_on_connect`] off: they then only check the schema, and fail
//! with [`PostgresError::SchemaMissing`] or [`PostgresError::SchemaTooOld`] (both
//! [retryable](PostgresError::is_retryable): the step may still be running) until it
//! is at [`SCHEMA_VERSION`], changing nothing.
//!
//! ```no_run
//! # async fn example() -> Result<(), factum_postgres::PostgresError> {
//! use factum_postgres::{PostgresOptions, PostgresStore};
//!
//! // The deploy step, as the role owning the schema:
//! PostgresStore::migrate(&PostgresOptions::new("postgres://owner@db.internal/shop", "shop"))
//!     .await?;
//! // The application:
//! let options = PostgresOptions {
//!     migrate_on_connect: false,
//!     ..PostgresOptions::new("postgres://shop@db.internal/shop", "shop")
//! };
//! let store = PostgresStore::connect_with(options).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! Opening a store fails with a [`PostgresError`]; operations fail as the
//! [`EventStore`] trait says: a lost connection or a server restart is
//! a [`StoreError::Backend`] (the append it interrupted is entirely there or entirely
//! absent, and the pool replaces the connection), a stored row that does not decode is a
//! [`StoreError::Corrupt`] naming its position, type and version.
//!
//! The pool does not ping a connection before handing it out (a round trip each time).
//! A connection that died while pooled, its end not yet seen by the client (right after a
//! server restart or `pg_terminate_backend`), fails no operation: a read that meets one
//! runs again on another connection, and an append sends an empty query ahead of its
//! statement, in the same flight, so that it runs again only when the server is known
//! not to have started it.
//!
//! # Features
//!
//! - `rustls`: TLS, as the URL's `sslmode` asks (see [TLS](#tls)); off by default, as it
//!   brings rustls and ring. Without it, `sslmode=require` is refused.
//! - `test-hooks`, for tests only and not a stable API (what it exports may change or go
//!   in any release): `BeforeCommit` and `PostgresOptions::before_commit` (a hook run
//!   right before an append commits), `PIPELINE_ABOVE` (the default of
//!   [`PostgresOptions::pipeline_above`]), `DEFAULT_DATABASE_URL` and `database_url`
//!   (the server [`PostgresStore::from_env`] falls back to). This crate's own tests turn
//!   it on.
//!
//! [`EventStore`]: factum::EventStore
//! [`EventStore::append_batch`]: factum::EventStore::append_batch
//! [`EventStore::find_idempotency_keys`]: factum::EventStore::find_idempotency_keys
//! [`PartitionLocks::lock_partition`]: factum::PartitionLocks::lock_partition
//! [`AppendRequest::builds_on`]: factum::AppendRequest::builds_on
//! [`AppendError::Conflict`]: factum::AppendError::Conflict
//! [`AppendError::Dependency`]: factum::AppendError::Dependency
//! [`PartitionLock::release`]: factum::store::PartitionLock::release
//! [`StoreError::Backend`]: factum::StoreError::Backend
//! [`StoreError::Corrupt`]: factum::StoreError::Corrupt
mod append;
mod connect;
mod error;
mod json;
mod listening;
mod live;
mod locks;
mod migrate;
mod notifier;
mod notify;
mod options;
mod ownership;
mod partition;
mod plans;
mod projection;
mod read;
mod row;
mod snapshot;
mod sql;
mod store;
mod tags;
mod tls;

/// The pool crate [`PostgresStore::connect_with_pool`] takes a pool of, at the version
/// this crate uses.
pub use deadpool_postgres;
/// The TLS crate, at the version this crate uses, for [`PostgresOptions::tls`].
#[cfg(feature = "rustls")]
pub use rustls;
/// The client crate, at the version this crate uses (its `Config` for
/// [`PostgresOptions::from_config`], its `Client` for [`PgProjection`]).
pub use tokio_postgres;

pub use error::{PostgresError, PostgresFailure};
pub use locks::{LockKey, lock_keys, partition_lock_key};
pub use migrate::SCHEMA_VERSION;
pub use options::{DATABASE_URL, PostgresOptions};
pub use projection::{PgProjection, PgProjectionSink, ProjectionError};
pub use read::VISIBILITY_WAIT_SECONDS;
pub use store::PostgresStore;

// For tests only, not a stable API: see the `test-hooks` feature in the crate docs.
#[cfg(feature = "test-hooks")]
pub use append::PIPELINE_ABOVE;
#[cfg(feature = "test-hooks")]
pub use options::{BeforeCommit, DEFAULT_DATABASE_URL, database_url};
