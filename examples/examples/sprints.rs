//! Sprint planning with a policy: items are committed to sprints (each decision on the
//! item alone), and the sprint policy — a listener taking decisions — records each item
//! in its sprint or, when the sprint is full or unknown, returns it to the backlog.
//! The policy runs as a subscription tailing the log, woken by the store's commit
//! signal; it keeps its checkpoint in the store (SQLite, in `target/factum-sprints/`).
//!
//! `cargo run -p factum-examples --example sprints` (`-- describe` prints the model).
//! Exits non-zero if an item ends up neither recorded nor returned, or both.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use factum::listen::{ListenerStore, Subscription};
use factum::prelude::*;
use factum_examples::sprints::{self, CommitItem, PlanSprint, SprintPolicy, planning};
use futures::TryStreamExt;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    if let Some(code) = factum::catalog::cli::run(&sprints::catalog(), std::env::args().skip(1)) {
        return code;
    }
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let dir = std::path::Path::new("target/factum-sprints");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let store = factum_sqlite::open(dir.join("sprints.db")).await?;
    let engine = Engine::new(store.clone());

    // The policy tails the log from the start, in the background.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut policy = Subscription::listener(store.clone(), SprintPolicy::new(engine.clone()));
    let tail = tokio::spawn(async move {
        let progress = policy
            .run(async {
                let _ = stopped.await;
            })
            .await;
        (policy, progress)
    });

    println!(
        "== planning two sprints of 3 items; committing 8 items (one to a sprint nobody planned)"
    );
    for (sprint, capacity) in [("s1", 3), ("s2", 3)] {
        engine
            .decide(&PlanSprint {
                sprint: sprint.into(),
                capacity,
            })
            .await?;
    }
    let plan = [
        ("login", "s1"),
        ("search", "s1"),
        ("cart", "s1"),
        ("checkout", "s1"),
        ("profile", "s2"),
        ("reviews", "s2"),
        ("wishlist", "s3"),
        ("export", "s2"),
    ];
    for (item, sprint) in plan {
        let outcome = engine
            .decide(&CommitItem {
                item: item.into(),
                sprint: sprint.into(),
            })
            .await?;
        println!(
            "  commit {item:<9} to {sprint}: at {}",
            outcome.positions[0]
        );
    }

    // Wait until the policy has handled every commit.
    let head = store.head().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.load_checkpoint(SprintPolicy::<()>::NAME).await? < head {
        if tokio::time::Instant::now() > deadline {
            return Err("the policy did not catch up within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop.send(());
    let (_, progress) = tail.await?;
    let progress = progress?;
    println!(
        "== the policy handled {} commits and compensated {} refusals",
        progress.handled, progress.given_up
    );

    let events: Vec<StoredEvent> = store
        .read(&Query::all(), ReadOptions::forward())
        .try_collect()
        .await?;
    let mut fate: HashMap<String, Vec<String>> = HashMap::new();
    for event in &events {
        if let Ok(e) = event.decode::<planning::SprintItemRecorded>() {
            fate.entry(e.item)
                .or_default()
                .push(format!("recorded by {}", e.sprint));
        } else if let Ok(e) = event.decode::<planning::BacklogItemReturned>() {
            fate.entry(e.item)
                .or_default()
                .push(format!("returned: {}", e.reason));
        }
    }
    let mut ok = true;
    for (item, _) in plan {
        let what = fate.get(item).cloned().unwrap_or_default();
        println!("  {item:<9} {}", what.join("; "));
        if what.len() != 1 {
            eprintln!("error: {item} was handled {} times", what.len());
            ok = false;
        }
    }
    let letters = store.dead_letters(None).await?;
    if !letters.is_empty() {
        eprintln!("error: dead letters: {letters:?}");
        ok = false;
    }
    println!(
        "{}",
        if ok {
            "ok: every item recorded or returned exactly once"
        } else {
            "FAILED"
        }
    );
    Ok(ok)
}
