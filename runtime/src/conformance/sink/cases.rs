//! The cases of the projection-sink contract.

use futures::TryStreamExt;

use super::{
    Faults, NAME, SinkHarness, TAGGED, append, expected, letters, options, stored_checkpoint,
};
use crate::conformance::support::named;
use crate::listen::{NewDeadLetter, OnFailure, Sink, Subscription, SubscriptionError};
use crate::model::{Position, Query, StoredEvent};
use crate::store::{EventStore, ReadOptions};

/// A sink dropped before its commit leaves neither effects nor checkpoint behind; a new
/// subscription goes on from the last commit, applying each event once; events delivered
/// again (at or below the checkpoint, no dead letter) are skipped, and the checkpoint never
/// moves back; a rebuild gives the same read model.
pub async fn dropped_before_commit<H: SinkHarness>(harness: H) {
    named("sink::dropped_before_commit", async move {
        let store = harness.store();
        let all = append(store, 6).await;
        let faults = Faults::default();
        let mut first = harness.sink(&faults).await;
        assert_eq!(
            checkpoint(&mut first).await,
            None,
            "a new sink's checkpoint"
        );
        let events = matching(store, &first.query()).await;
        apply_all(&mut first, &events[..2], "the first sink").await;
        commit(&mut first, events[1].position).await;
        // Two more, never committed.
        apply_all(&mut first, &events[2..4], "the first sink").await;
        drop(first);
        assert_eq!(harness.read_model().await, expected(&all, &all[..2]));
        assert_eq!(stored_checkpoint(store).await, Some(all[1]));

        let mut sub = Subscription::new(store.clone(), harness.sink(&faults).await)
            .with_options(options(OnFailure::DeadLetterAndContinue));
        assert_eq!(done(sub.catch_up().await, "a catch-up").handled, 4);
        assert_eq!(harness.read_model().await, expected(&all, &all));

        let mut again = harness.sink(&faults).await;
        checkpoint(&mut again).await;
        apply_all(&mut again, &events[..1], "a redelivery").await;
        commit(&mut again, events[0].position).await;
        assert_eq!(harness.read_model().await, expected(&all, &all));
        assert!(
            stored_checkpoint(store).await >= all.last().copied(),
            "the checkpoint never moves back"
        );

        done(sub.rebuild().await, "a rebuild");
        assert_eq!(harness.read_model().await, expected(&all, &all));
    })
    .await;
}

/// Transient failures mid-batch (after writing) are retried past; a permanent one stops
/// the subscription with the read model and checkpoint agreeing on everything before it,
/// once, and a dead letter for it; repaired, a restarted subscription applies it and the
/// rest, its dead letter going in the same transaction; a replay then finds nothing, and a
/// rebuild gives the same read model.
pub async fn failures_mid_batch<H: SinkHarness>(harness: H) {
    named("sink::failures_mid_batch", async move {
        let store = harness.store();
        let all = append(store, 10).await;
        let faults = Faults::default();
        faults.flake_at(all[2], 2);
        faults.flake_at(all[5], 1);
        faults.break_at(all[6]);
        let mut sub = Subscription::new(store.clone(), harness.sink(&faults).await)
            .with_options(options(OnFailure::DeadLetterAndStop));
        let stopped = sub.catch_up().await;
        assert!(
            matches!(&stopped, Err(SubscriptionError::Failed { position, .. }) if *position == all[6]),
            "{stopped:?}"
        );
        assert_eq!(harness.read_model().await, expected(&all, &all[..6]));
        let checkpoint = stored_checkpoint(store).await;
        assert!(
            checkpoint >= Some(all[5]) && checkpoint < Some(all[6]),
            "{checkpoint:?}"
        );
        let stopped_at = letters(store, Some(NAME)).await;
        assert_eq!(stopped_at.len(), 1);
        assert_eq!(stopped_at[0].position, all[6]);

        faults.repair();
        let mut sub = Subscription::new(store.clone(), harness.sink(&faults).await)
            .with_options(options(OnFailure::DeadLetterAndStop));
        assert_eq!(done(sub.catch_up().await, "a catch-up").handled, 4);
        assert_eq!(harness.read_model().await, expected(&all, &all));
        assert!(letters(store, None).await.is_empty());
        assert_eq!(done(sub.replay_dead_letters().await, "a replay").handled, 0);

        done(sub.rebuild().await, "a rebuild");
        assert_eq!(harness.read_model().await, expected(&all, &all));
    })
    .await;
}

/// A dead letter written by a sink dropped before its commit is not kept; one committed
/// goes with the checkpoint past it; a replay keeps it while its event still fails, and
/// applies it once and removes it when it no longer does.
pub async fn dead_letter_with_checkpoint<H: SinkHarness>(harness: H) {
    named("sink::dead_letter_with_checkpoint", async move {
        let store = harness.store();
        let all = append(store, 8).await;
        let faults = Faults::default();
        faults.break_at(all[3]);

        let mut dropped = harness.sink(&faults).await;
        checkpoint(&mut dropped).await;
        dropped
            .dead_letter(NewDeadLetter {
                listener: NAME.to_owned(),
                position: all[3],
                event_type: TAGGED.to_owned(),
                error: "never committed".to_owned(),
                attempts: 1,
            })
            .await
            .unwrap_or_else(|e| panic!("writing a dead letter failed: {e}"));
        drop(dropped);
        assert!(letters(store, None).await.is_empty());

        let mut sub = Subscription::new(store.clone(), harness.sink(&faults).await)
            .with_options(options(OnFailure::DeadLetterAndContinue));
        let progress = done(sub.catch_up().await, "a catch-up");
        assert_eq!((progress.handled, progress.dead_lettered), (7, 1));
        let applied: Vec<Position> = all.iter().copied().filter(|p| *p != all[3]).collect();
        assert_eq!(harness.read_model().await, expected(&all, &applied));
        let kept = letters(store, Some(NAME)).await;
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].position, all[3]);
        assert!(kept[0].error.contains("on purpose"), "{}", kept[0].error);
        assert!(stored_checkpoint(store).await >= all.last().copied());

        let replay = done(sub.replay_dead_letters().await, "a replay");
        assert_eq!((replay.handled, replay.dead_lettered), (0, 1));
        assert_eq!(letters(store, None).await.len(), 1);
        assert_eq!(harness.read_model().await, expected(&all, &applied));

        faults.repair();
        let replay = done(sub.replay_dead_letters().await, "a replay");
        assert_eq!(replay.handled, 1);
        assert!(letters(store, None).await.is_empty());
        assert_eq!(harness.read_model().await, expected(&all, &all));
        assert_eq!(done(sub.replay_dead_letters().await, "a replay").handled, 0);
        assert_eq!(harness.read_model().await, expected(&all, &all));
    })
    .await;
}

/// A batch that applies a dead letter's event, then starts over (a call of it was
/// dropped): the rollback brings the letter back, and applying its event again must remove
/// it again.
pub async fn batch_started_over<H: SinkHarness>(harness: H) {
    named("sink::batch_started_over", async move {
        let store = harness.store();
        let all = append(store, 6).await;
        let faults = Faults::default();
        faults.break_at(all[2]);
        let mut sub = Subscription::new(store.clone(), harness.sink(&faults).await)
            .with_options(options(OnFailure::DeadLetterAndStop));
        assert!(sub.catch_up().await.is_err());
        assert_eq!(letters(store, None).await.len(), 1);
        faults.repair();

        let events = matching(store, &sub.sink().query()).await;
        let mut sink = harness.sink(&faults).await;
        let checkpoint = checkpoint(&mut sink).await;
        assert!(checkpoint >= Some(all[1]) && checkpoint < Some(all[2]));
        apply_all(&mut sink, &events[2..4], "the batch").await;
        apply_all(&mut sink, &events[2..4], "the batch started over").await;
        commit(&mut sink, events[3].position).await;
        assert!(
            letters(store, None).await.is_empty(),
            "the dead letter outlived its applied event"
        );
        assert_eq!(harness.read_model().await, expected(&all, &all[..4]));
    })
    .await;
}

/// The events a sink's own query matches, in order.
pub(super) async fn matching<S: EventStore>(store: &S, query: &Query) -> Vec<StoredEvent> {
    store
        .read(query, ReadOptions::forward())
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("reading {query} failed: {e}"))
}

/// The sink's checkpoint, which also begins its use.
async fn checkpoint<K: Sink>(sink: &mut K) -> Option<Position> {
    sink.checkpoint()
        .await
        .unwrap_or_else(|e| panic!("the sink's checkpoint failed: {e}"))
}

async fn apply_all<K: Sink>(sink: &mut K, events: &[StoredEvent], what: &str) {
    for event in events {
        sink.apply(event)
            .await
            .unwrap_or_else(|e| panic!("{what}: applying {} failed: {e}", event.position));
    }
}

async fn commit<K: Sink>(sink: &mut K, position: Position) {
    sink.commit(position)
        .await
        .unwrap_or_else(|e| panic!("committing at {position} failed: {e}"));
}

fn done<T>(result: Result<T, SubscriptionError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what} failed: {e}"))
}
