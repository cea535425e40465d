//! The cases of what listeners ask of a store ([`ListenerStore`]): checkpoints, dead
//! letters, the commit signal, and a subscription running over it end to end.
//!
//! Run them with [`listener_conformance_tests!`](crate::listener_conformance_tests).

use std::collections::HashSet;
use std::time::Duration;

use super::support::{append, event, named, types};
use crate::listen::{
    HandlerError, Listener, ListenerStore, NewDeadLetter, Subscription, SubscriptionOptions,
};
use crate::model::{Position, Query, StoredEvent};
use crate::store::AppendRequest;

/// How long a case waits for something that must happen promptly (a commit signal, a
/// tailing listener seeing an append) before it calls the store stuck.
const PROMPTLY: Duration = Duration::from_secs(10);

/// Checkpoints start absent, load back what was saved, per listener, and a later save
/// replaces an earlier one (also with a lower position: a rebuild goes back to 0).
pub async fn checkpoints<S: ListenerStore + Clone + 'static>(store: S) {
    named("checkpoints", async move {
        assert_eq!(store.load_checkpoint("a").await.unwrap(), None);
        store.save_checkpoint("a", Position(7)).await.unwrap();
        store.save_checkpoint("b", Position(3)).await.unwrap();
        assert_eq!(store.load_checkpoint("a").await.unwrap(), Some(Position(7)));
        assert_eq!(store.load_checkpoint("b").await.unwrap(), Some(Position(3)));
        store.save_checkpoint("a", Position(12)).await.unwrap();
        assert_eq!(
            store.load_checkpoint("a").await.unwrap(),
            Some(Position(12))
        );
        store.save_checkpoint("a", Position(0)).await.unwrap();
        assert_eq!(store.load_checkpoint("a").await.unwrap(), Some(Position(0)));
        assert_eq!(store.load_checkpoint("b").await.unwrap(), Some(Position(3)));
        assert_eq!(store.load_checkpoint("c").await.unwrap(), None);
    })
    .await;
}

/// Dead letters get distinct ids, come back field for field, oldest first, per listener
/// or all together; a second letter for one listener and position replaces the first
/// (same id); removing one removes only it, and removing it again says so.
pub async fn dead_letters<S: ListenerStore + Clone + 'static>(store: S) {
    named("dead_letters", async move {
        assert!(store.dead_letters(None).await.unwrap().is_empty());
        let letter = |listener: &str, position: u64| NewDeadLetter {
            listener: listener.to_owned(),
            position: Position(position),
            event_type: format!("Type{position}"),
            error: format!("failed on {position}: \"quoted\", and a NUL-free ünïcode"),
            attempts: u32::try_from(position).unwrap_or(u32::MAX),
        };
        let first = store.record_dead_letter(letter("a", 5)).await.unwrap();
        let second = store.record_dead_letter(letter("b", 6)).await.unwrap();
        let third = store.record_dead_letter(letter("a", 9)).await.unwrap();
        let ids: HashSet<u64> = [first, second, third].into();
        assert_eq!(ids.len(), 3, "dead letter ids must be distinct");

        let of_a = store.dead_letters(Some("a")).await.unwrap();
        let summary: Vec<(u64, &str, Position)> = of_a
            .iter()
            .map(|l| (l.id, l.listener.as_str(), l.position))
            .collect();
        assert_eq!(
            summary,
            vec![(first, "a", Position(5)), (third, "a", Position(9))]
        );
        let nine = &of_a[1];
        let expected = letter("a", 9);
        assert_eq!(
            (&nine.event_type, &nine.error, nine.attempts),
            (&expected.event_type, &expected.error, expected.attempts)
        );
        assert_eq!(store.dead_letters(None).await.unwrap().len(), 3);

        // Another letter for a listener and position replaces the first, keeping its id.
        let again = NewDeadLetter {
            error: "failed again".into(),
            attempts: 11,
            ..letter("a", 9)
        };
        assert_eq!(store.record_dead_letter(again).await.unwrap(), third);
        let of_a = store.dead_letters(Some("a")).await.unwrap();
        assert_eq!(
            of_a.len(),
            2,
            "one letter per listener and position: {of_a:?}"
        );
        assert_eq!(
            (of_a[1].error.as_str(), of_a[1].attempts),
            ("failed again", 11)
        );

        assert!(store.remove_dead_letter(first).await.unwrap());
        assert!(!store.remove_dead_letter(first).await.unwrap());
        let left: Vec<u64> = store
            .dead_letters(None)
            .await
            .unwrap()
            .iter()
            .map(|l| l.id)
            .collect();
        assert_eq!(left, vec![second, third]);
    })
    .await;
}

/// The commit signal moves to the newest position after an append and after a batch,
/// promptly, so a waiting listener wakes.
pub async fn head_signal<S: ListenerStore + Clone + 'static>(store: S) {
    named("head_signal", async move {
        let mut head = store.watch_head();
        head.borrow_and_update();
        let appended = append(&store, vec![event("Signal", &[("n", "1")])], None).await;
        let expected = appended.last();
        wait_for(&mut head, expected, "an append").await;

        head.borrow_and_update();
        let batch = store
            .append_batch(vec![
                AppendRequest::new(vec![event("Signal", &[("n", "2")])], None),
                AppendRequest::new(vec![event("Signal", &[("n", "3")])], None),
            ])
            .await
            .unwrap();
        let newest = batch
            .iter()
            .filter_map(|r| r.as_ref().ok().and_then(|a| a.last()))
            .max();
        wait_for(&mut head, newest, "a batch").await;
    })
    .await;
}

async fn wait_for(
    head: &mut tokio::sync::watch::Receiver<Option<Position>>,
    expected: Option<Position>,
    after: &str,
) {
    let reached = tokio::time::timeout(PROMPTLY, async {
        loop {
            if *head.borrow_and_update() >= expected {
                return;
            }
            if head.changed().await.is_err() {
                panic!("the commit signal closed");
            }
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "the commit signal did not reach {expected:?} within {PROMPTLY:?} after {after} (it is at {:?})",
        *head.borrow()
    );
}

/// A listener that records what it handled and fails on the positions it is told to.
struct Recorder {
    seen: Vec<Position>,
    failing: HashSet<Position>,
}

impl Listener for Recorder {
    fn name(&self) -> &str {
        "conformance.recorder"
    }

    fn query(&self) -> Query {
        types(&["Listened"])
    }

    async fn handle(&mut self, event: &StoredEvent) -> Result<(), HandlerError> {
        if self.failing.contains(&event.position) {
            return Err(HandlerError::transient(format!(
                "refusing {} on purpose",
                event.position
            )));
        }
        self.seen.push(event.position);
        Ok(())
    }

    async fn reset(&mut self) -> Result<(), HandlerError> {
        self.seen.clear();
        Ok(())
    }
}

/// A subscription over the store: catches up on what matches its query, in order, with
/// its checkpoint saved; a failing event becomes a dead letter and the rest go on; a
/// restarted subscription resumes after the checkpoint; tailing sees a new append
/// promptly; a replay of the dead letter after the cause is gone removes it; a rebuild
/// handles everything again.
pub async fn subscription<S: ListenerStore + Clone + 'static>(store: S) {
    named("subscription", async move {
        let mut wanted = Vec::new();
        for i in 0..30 {
            let kind = if i % 3 == 0 { "Other" } else { "Listened" };
            let appended = append(&store, vec![event(kind, &[("i", &i.to_string())])], None).await;
            if kind == "Listened" {
                wanted.extend(appended.positions);
            }
        }
        let failing = wanted[4];
        let options = SubscriptionOptions {
            batch: 7,
            retry: crate::decide::RetryPolicy {
                max_retries: 2,
                min_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
            },
            // Tailing must not rely on polling: the signal has to wake it.
            poll_interval: Duration::from_secs(3600),
            ..SubscriptionOptions::default()
        };
        let recorder = Recorder {
            seen: Vec::new(),
            failing: [failing].into(),
        };
        let mut sub = Subscription::listener(store.clone(), recorder).with_options(options);
        let progress = sub.catch_up().await.unwrap();
        let expected: Vec<Position> = wanted.iter().copied().filter(|p| *p != failing).collect();
        assert_eq!(sub.sink().listener().seen, expected);
        assert_eq!(progress.handled, expected.len() as u64);
        assert_eq!(progress.dead_lettered, 1);
        let last = *wanted.last().unwrap();
        assert!(progress.position >= last, "{progress:?}");
        let checkpoint = store.load_checkpoint("conformance.recorder").await.unwrap();
        assert!(checkpoint >= Some(last), "checkpoint {checkpoint:?}");
        let letters = store.dead_letters(Some("conformance.recorder")).await.unwrap();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].position, failing);
        assert_eq!(letters[0].event_type, "Listened");
        assert_eq!(letters[0].attempts, 3);
        assert!(letters[0].error.contains("on purpose"), "{}", letters[0].error);

        // A new subscription resumes after the checkpoint: nothing again.
        let mut resumed = Subscription::listener(
            store.clone(),
            Recorder {
                seen: Vec::new(),
                failing: HashSet::new(),
            },
        )
        .with_options(options);
        assert_eq!(resumed.catch_up().await.unwrap().handled, 0);

        // Tailing: an append while it waits is handled promptly.
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let tail = tokio::spawn(async move {
            let progress = resumed
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
            (resumed, progress)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let late = append(&store, vec![event("Listened", &[("i", "late")])], None).await;
        let late = late.positions[0];
        let deadline = tokio::time::Instant::now() + PROMPTLY;
        loop {
            let at = store.load_checkpoint("conformance.recorder").await.unwrap();
            if at >= Some(late) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "a tailing subscription did not handle the append at {late} within {PROMPTLY:?}: is the commit signal sent?"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = stop_tx.send(());
        let (resumed, _) = tokio::time::timeout(PROMPTLY, tail)
            .await
            .expect("the subscription stops when told")
            .unwrap();
        assert_eq!(resumed.sink().listener().seen, vec![late]);

        // The cause is gone: replaying the dead letter handles it and removes it.
        sub.sink_mut().listener_mut().failing.clear();
        let replayed = sub.replay_dead_letters().await.unwrap();
        assert_eq!(replayed.handled, 1);
        assert!(store.dead_letters(None).await.unwrap().is_empty());
        assert_eq!(sub.sink().listener().seen.last(), Some(&failing));
        assert!(store.load_checkpoint("conformance.recorder").await.unwrap() >= Some(late));

        // A rebuild starts from nothing and handles every matching event once, in order.
        let rebuilt = sub.rebuild().await.unwrap();
        let mut all = wanted.clone();
        all.push(late);
        assert_eq!(sub.sink().listener().seen, all);
        assert_eq!(rebuilt.handled, all.len() as u64);
    })
    .await;
}
