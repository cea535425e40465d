//! The process the crash tests kill: customers open carts, apply a coupon and add two
//! items at a time through serial lanes with group commit, as fast as they can, and
//! each answer they get is written to a side file before the next request — so the
//! side file lists what was acknowledged when the process died.
//!
//! `factum-crash-child sqlite PATH ACK RUN` or `factum-crash-child postgres SCHEMA ACK RUN`
//! (PostgreSQL at `DATABASE_URL`). Runs until killed. Lines of the side file:
//! `open CART POS`, `apply CART POS`, `refused CART`, `items CART POS POS`.

use std::fs::File;
use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use factum::Context;
use factum::lanes::{Dispatcher, Strategy};
use factum::prelude::*;
use factum_examples::coupons::{AddItems, ApplyCoupon, CouponError, OpenCart};

/// The coupon the crash tests rush.
const COUPON: &str = "CRASH";
const SUBMITTERS: usize = 32;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, target, ack, run] = args.as_slice() else {
        eprintln!("usage: factum-crash-child sqlite|postgres PATH|SCHEMA ACK-FILE RUN");
        return ExitCode::from(2);
    };
    let ack = match File::options().create(true).append(true).open(ack) {
        Ok(file) => Arc::new(Mutex::new(file)),
        Err(e) => {
            eprintln!("cannot open the side file {ack}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match kind.as_str() {
        "sqlite" => match factum_sqlite::open(target).await {
            Ok(store) => rush(store, ack, run).await,
            Err(e) => Err(e.to_string()),
        },
        "postgres" => match factum_postgres::PostgresStore::from_env(target).await {
            Ok(store) => rush(store, ack, run).await,
            Err(e) => Err(format!("{e} (set DATABASE_URL)")),
        },
        other => Err(format!("unknown store {other}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn note(ack: &Mutex<File>, line: String) -> Result<(), String> {
    let mut file = ack.lock().map_err(|e| e.to_string())?;
    // One write per line, so a kill leaves at worst one partial last line.
    file.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| e.to_string())
}

async fn rush<S: EventStore + Clone + 'static>(
    store: S,
    ack: Arc<Mutex<File>>,
    run: &str,
) -> Result<(), String> {
    let dispatcher = Dispatcher::new(Engine::new(store));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..SUBMITTERS {
        let (dispatcher, ack, next, run) = (
            dispatcher.clone(),
            ack.clone(),
            next.clone(),
            run.to_owned(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let cart = format!("r{run}-c{i}");
                let opened = dispatcher
                    .decide(OpenCart { cart: cart.clone() })
                    .await
                    .map_err(|e| e.to_string())?;
                note(&ack, format!("open {cart} {}", opened.positions[0].0))?;
                match dispatcher.decide(ApplyCoupon::new(COUPON, &cart)).await {
                    Ok(applied) => note(&ack, format!("apply {cart} {}", applied.positions[0].0))?,
                    Err(DecideError::Domain(CouponError::CouponUsedUp { .. })) => {
                        note(&ack, format!("refused {cart}"))?
                    }
                    Err(e) => return Err(e.to_string()),
                }
                let items = AddItems {
                    cart: cart.clone(),
                    skus: vec!["tea".into(), "mug".into()],
                };
                let context = Context {
                    correlation_id: Some(uuid::Uuid::now_v7()),
                    causation_id: None,
                };
                let added = dispatcher
                    .decide_using(items, Strategy::SerialLanes, context)
                    .await
                    .map_err(|e| e.to_string())?;
                let positions: Vec<String> =
                    added.positions.iter().map(|p| p.0.to_string()).collect();
                note(&ack, format!("items {cart} {}", positions.join(" ")))?;
            }
        });
    }
    match tasks.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(e.to_string()),
        None => Ok(()),
    }
}
