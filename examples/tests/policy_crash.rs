//! The sprint policy is killed mid-way (SIGKILL, at random moments, several times) and
//! restarted from its checkpoint each time; once it has caught up, every committed item
//! is recorded by its sprint or returned to the backlog exactly once — never both, never
//! twice — no sprint holds more than its capacity, and there is no dead letter.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use factum::listen::ListenerStore;
use factum::prelude::*;
use factum_examples::sprints::{CommitItem, PlanSprint, SprintPolicy, planning};
use futures::TryStreamExt;

const SPRINTS: usize = 4;
const CAPACITY: u32 = 25;
const ITEMS: usize = 120;
const KILLS: usize = 6;

fn child(path: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_factum-policy-child"))
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the policy process")
}

/// A pseudo-random delay between 80 and 330 ms.
fn random_delay(run: usize) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    Duration::from_millis(80 + (nanos ^ (run as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) % 250)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_killed_mid_way_completes_after_restarts_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sprints.db");
    {
        let store = factum_sqlite::open(&path).await.unwrap();
        let engine = Engine::new(store.clone());
        for s in 0..SPRINTS {
            engine
                .decide(&PlanSprint {
                    sprint: format!("s{s}"),
                    capacity: CAPACITY,
                })
                .await
                .unwrap();
        }
        // 30 items per sprint, 25 places each: 5 per sprint come back; one sprint
        // never planned takes the rest of the items' refusals.
        for i in 0..ITEMS {
            engine
                .decide(&CommitItem {
                    item: format!("item-{i}"),
                    sprint: format!("s{}", i % (SPRINTS + 1)),
                })
                .await
                .unwrap();
        }
    }

    let mut killed = 0;
    let mut caught_mid_way = 0;
    let mut finished = false;
    for run in 0..=KILLS {
        let mut process = child(&path);
        if run < KILLS {
            tokio::time::sleep(random_delay(run)).await;
            if process.try_wait().unwrap().is_none() {
                process.kill().unwrap();
                killed += 1;
            }
            process.wait().unwrap();
            if decided_past_checkpoint(&path).await {
                caught_mid_way += 1;
            }
        } else {
            let output = process.wait_with_output().unwrap();
            assert!(output.status.success(), "the last run failed: {output:?}");
            finished = true;
        }
    }
    assert!(finished);
    // The point of the test: some kill fell after a decision of the policy committed and
    // before its checkpoint did, so the restart handled that event again.
    assert!(
        caught_mid_way >= 1,
        "no kill fell between a policy decision and its checkpoint: nothing was tested"
    );
    assert!(
        killed >= KILLS / 2,
        "only {killed} of {KILLS} runs were killed before they caught up: the runs are too short to test anything"
    );

    let store = factum_sqlite::open(&path).await.unwrap();
    let events: Vec<StoredEvent> = store
        .read(&Query::all(), ReadOptions::forward())
        .try_collect()
        .await
        .unwrap();
    let mut recorded: HashMap<String, usize> = HashMap::new();
    let mut returned: HashMap<String, usize> = HashMap::new();
    let mut per_sprint: HashMap<String, u32> = HashMap::new();
    for event in &events {
        if let Ok(e) = event.decode::<planning::SprintItemRecorded>() {
            *recorded.entry(e.item).or_default() += 1;
            *per_sprint.entry(e.sprint).or_default() += 1;
        } else if let Ok(e) = event.decode::<planning::BacklogItemReturned>() {
            *returned.entry(e.item).or_default() += 1;
        }
    }
    for i in 0..ITEMS {
        let item = format!("item-{i}");
        let (r, b) = (
            recorded.get(&item).copied().unwrap_or(0),
            returned.get(&item).copied().unwrap_or(0),
        );
        assert_eq!(
            (r + b, r.max(b)),
            (1, 1),
            "{item}: recorded {r} times, returned {b} times"
        );
    }
    for (sprint, count) in &per_sprint {
        assert!(*count <= CAPACITY, "{sprint} holds {count} items");
    }
    let planned_items = ITEMS / (SPRINTS + 1) * SPRINTS;
    let full = (SPRINTS as u32 * CAPACITY) as usize;
    assert_eq!(recorded.len(), full.min(planned_items));
    assert!(store.dead_letters(None).await.unwrap().is_empty());
    let head = store.head().await.unwrap();
    let checkpoint = store
        .load_checkpoint(SprintPolicy::<()>::NAME)
        .await
        .unwrap();
    let last_commit = events
        .iter()
        .filter(|e| e.event_type == "BacklogItemCommitted")
        .map(|e| e.position)
        .max();
    assert!(
        checkpoint >= last_commit && checkpoint <= head,
        "checkpoint {checkpoint:?}"
    );
    println!(
        "policy: {killed} kills, {caught_mid_way} between a decision and its checkpoint, {} recorded, {} returned",
        recorded.len(),
        returned.len()
    );
}

/// Whether the policy's last decision reacts to an event after its checkpoint: the
/// process died between the decision's commit and the checkpoint that covers it.
async fn decided_past_checkpoint(path: &std::path::Path) -> bool {
    let store = factum_sqlite::open(path).await.unwrap();
    let checkpoint = store
        .load_checkpoint(SprintPolicy::<()>::NAME)
        .await
        .unwrap()
        .unwrap_or(Position(0));
    let events: Vec<StoredEvent> = store
        .read(&Query::all(), ReadOptions::forward())
        .try_collect()
        .await
        .unwrap();
    let position_of: HashMap<uuid::Uuid, Position> =
        events.iter().map(|e| (e.metadata.id, e.position)).collect();
    events
        .iter()
        .filter(|e| e.event_type == "SprintItemRecorded" || e.event_type == "BacklogItemReturned")
        .filter_map(|e| e.metadata.causation_id.and_then(|c| position_of.get(&c)))
        .any(|caused_by| *caused_by > checkpoint)
}
