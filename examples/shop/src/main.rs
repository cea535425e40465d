//! `factum-shop [--db PATH | --postgres URL [--schema NAME]] [--listen ADDR]`: the coupon
//! shop's JSON API. The embedded SQLite store (`shop.db`) unless `--postgres` names a
//! database; listens on 127.0.0.1:3000; Ctrl-C or SIGTERM shuts it down gracefully.

use factum_shop::{Shop, StoreChoice};
use tracing_subscriber::EnvFilter;

const USAGE: &str =
    "usage: factum-shop [--db PATH | --postgres URL [--schema NAME]] [--listen ADDR]";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("factum-shop: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let mut db = "shop.db".to_owned();
    let mut postgres = None;
    let mut schema = "shop".to_owned();
    let mut listen = "127.0.0.1:3000".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--db" => db = value()?,
            "--postgres" => postgres = Some(value()?),
            "--schema" => schema = value()?,
            "--listen" => listen = value()?,
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let choice = match postgres {
        Some(url) => StoreChoice::Postgres { url, schema },
        None => StoreChoice::Sqlite(db.into()),
    };
    let shop = Shop::start(&choice)
        .await
        .map_err(|e| factum::ErrorChain(&e).to_string())?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    tracing::info!(%listen, store = ?choice, "factum-shop is serving");
    factum_shop::serve(listener, shop, async {
        stop_signal().await;
        tracing::info!("shutting down: finishing requests and draining the lanes");
    })
    .await
    .map_err(|e| format!("serving failed: {e}"))
}

/// Ctrl-C, or SIGTERM (what a container runtime sends).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM, only Ctrl-C stops the shop")
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
