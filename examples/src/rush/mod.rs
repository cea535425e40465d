//! The coupon rush that `cargo run -p factum-examples --example coupon_rush` runs, in
//! three parts:
//!
//! - [`scenario`]: the seed scenario (a coupon with 100 uses, 1,000 customers each
//!   opening a cart and applying it, other carts filling up meanwhile), run under one
//!   [`Strategy`](factum::lanes::Strategy) through one
//!   [`Dispatcher`](factum::lanes::Dispatcher), recording what every command was told;
//! - [`audit`]: the log read back from the store, checked against those answers: no
//!   command lost, none duplicated;
//! - [`table`]: one row per run (decisions/s, latency, conflicts, retries, coupons
//!   applied, lost, duplicated) and the checks a run must pass.
//!
//! ```
//! use factum::prelude::*;
//! use factum_examples::latency::Latency;
//! use factum_examples::rush::{Run, Rush, audit::audit, scenario::run, table::Summary};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let rush = Rush {
//!     uses: 5,
//!     customers: 20,
//!     background_carts: 2,
//!     items_per_cart: 3,
//!     ..Rush::seed()
//! };
//! let store = Latency::new(MemoryStore::new(), std::time::Duration::ZERO);
//! let bar = indicatif::ProgressBar::hidden();
//! let observed = run(store.clone(), &rush, Run::SerialLanes, &bar).await.unwrap();
//! let audit = audit(&store, &rush, &observed).await;
//! let summary = Summary::new(&rush, &observed, &audit);
//! assert_eq!((summary.applied, summary.lost, summary.duplicated), (5, 0, 0));
//! assert!(summary.problems().is_empty());
//! # });
//! ```

pub mod audit;
pub mod scenario;
pub mod table;

pub use scenario::{Run, Rush};
