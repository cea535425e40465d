//! The cases of racing appends: on one condition exactly one wins, on unrelated ones all
//! do.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::Barrier;

use super::support::{
    append, assert_strictly_increasing, event, head, join, named, read, tags, typed_tags,
};
use crate::model::{AppendCondition, Position};
use crate::store::{AppendError, EventStore, ReadOptions};

/// Racing appends on the same condition: every task reads the same result, then all
/// append with the same condition at once; exactly one succeeds and the others get a
/// conflict naming the winner's event. Run twice: on no matching event, then after one.
pub async fn concurrent_overlapping_conditions<S: EventStore + Clone + 'static>(store: S) {
    named("concurrent_overlapping_conditions", async move {
        let racers = 8;
        let query = typed_tags(&["SeatBooked", "SeatReleased"], &[("seat", "1A")]);
        append(&store, vec![event("SeatBooked", &[("seat", "2B")])], None).await;
        for round in 0..2 {
            let barrier = Arc::new(Barrier::new(racers));
            let mut tasks = Vec::new();
            for racer in 0..racers {
                let store = store.clone();
                let barrier = barrier.clone();
                let query = query.clone();
                tasks.push(tokio::spawn(async move {
                    let seen = read(&store, &query, ReadOptions::last(1)).await;
                    let after = seen.first().map(|e| e.position);
                    barrier.wait().await;
                    let racer = racer.to_string();
                    let result = store
                        .append(
                            vec![event("SeatBooked", &[("seat", "1A"), ("racer", &racer)])],
                            Some(AppendCondition::new(query, after)),
                        )
                        .await;
                    (after, result)
                }));
            }
            let mut results = Vec::new();
            for task in tasks {
                results.push(join(task).await);
            }
            let afters: HashSet<Option<Position>> = results.iter().map(|r| r.0).collect();
            assert_eq!(
                afters.len(),
                1,
                "round {round}: the racers read different results"
            );
            let winners: Vec<Position> = results
                .iter()
                .filter_map(|(_, r)| r.as_ref().ok().map(|a| a.positions[0]))
                .collect();
            assert_eq!(
                winners.len(),
                1,
                "round {round}: {} of {racers} racing appends on one condition succeeded",
                winners.len()
            );
            for (_, result) in &results {
                match result {
                    Ok(_) => {}
                    Err(AppendError::Conflict {
                        position,
                        event_type,
                    }) => {
                        assert_eq!(
                            (*position, event_type.as_str()),
                            (winners[0], "SeatBooked"),
                            "round {round}: a loser's conflict must name the winner's event"
                        );
                    }
                    Err(other) => panic!("round {round}: a racing append failed with {other}"),
                }
            }
            let booked = read(&store, &query, ReadOptions::forward()).await;
            assert_eq!(
                booked.len(),
                round + 1,
                "round {round}: events matching the raced condition"
            );
            assert_eq!(
                head(&store).await,
                Some(winners[0]),
                "round {round}: the head"
            );
        }
    })
    .await;
}

/// Racing appends on unrelated conditions (each task its own tag, all sharing another tag
/// no condition names) all succeed.
pub async fn concurrent_disjoint_conditions<S: EventStore + Clone + 'static>(store: S) {
    named("concurrent_disjoint_conditions", async move {
        let writers = 8;
        let appends = 10;
        let barrier = Arc::new(Barrier::new(writers));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let store = store.clone();
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                let account = format!("acc-{w}");
                let query = typed_tags(&["Deposited", "Withdrawn"], &[("account", &account)]);
                barrier.wait().await;
                let mut positions = Vec::new();
                for n in 0..appends {
                    let seen = read(&store, &query, ReadOptions::last(1)).await;
                    let after = seen.first().map(|e| e.position);
                    tokio::task::yield_now().await;
                    let appended = store
                        .append(
                            vec![event(
                                "Deposited",
                                &[("account", &account), ("bank", "main")],
                            )],
                            Some(AppendCondition::new(query.clone(), after)),
                        )
                        .await
                        .unwrap_or_else(|e| {
                            panic!("writer {w}, append {n}: an unrelated append failed: {e}")
                        });
                    positions.extend(appended.positions);
                }
                (query, positions)
            }));
        }
        let mut all = HashSet::new();
        for task in tasks {
            let (query, positions) = join(task).await;
            assert_strictly_increasing(&positions, "one writer's positions");
            let read_back: Vec<Position> = read(&store, &query, ReadOptions::forward())
                .await
                .iter()
                .map(|e| e.position)
                .collect();
            assert_eq!(read_back, positions, "the events of {query}");
            all.extend(positions);
        }
        assert_eq!(
            all.len(),
            writers * appends,
            "distinct positions over all writers"
        );
        let bank = read(&store, &tags(&[("bank", "main")]), ReadOptions::forward()).await;
        assert_eq!(bank.len(), writers * appends, "events in the log");
    })
    .await;
}
