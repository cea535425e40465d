//! The case of events imported with their own time: a caller-set
//! [`NewEvent::recorded_at`] is what the store records, on every append path.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::support::{append, assert_strictly_increasing, event, named, read};
use crate::model::{NewEvent, Position, Query, StoredEvent, whole_micros};
use crate::store::{AppendRequest, EventStore, ReadOptions};

/// A time with nanoseconds the stores cannot keep: `seconds` after the Unix epoch
/// (before it if negative), plus 123 456 789 ns.
fn legacy(seconds: i64) -> SystemTime {
    let nanos = Duration::from_nanos(123_456_789);
    let whole = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        UNIX_EPOCH + whole + nanos
    } else {
        UNIX_EPOCH - whole + nanos
    }
}

/// An event to record as of `time`, set on the field (not through the builder), so the
/// store must round it itself.
fn at(event_type: &str, key: &str, time: SystemTime) -> NewEvent {
    NewEvent {
        recorded_at: Some(time),
        ..event(event_type, &[("import", key)])
    }
}

/// Events carrying their own time ([`NewEvent::recorded_at`]) are recorded as of that
/// time, rounded down to a whole microsecond ([`whole_micros`]), whichever path wrote
/// them: one append, a small batch and a large one (PostgreSQL pipelines batches of more
/// than four requests), and in one append next to events without a time, which the
/// store records at the time of the append. Positions still follow the order of the
/// appends, though the times go backwards along the log, and before the Unix epoch.
pub async fn imported_times<S: EventStore + Clone + 'static>(store: S) {
    named("imported_times", async move {
        const DAY: i64 = 86_400;
        // From 2021-01-01 back by 1200 days per event: the last ones are before 1970.
        let start = 1_609_459_200;
        let mut times = (0..).map(|i| legacy(start - i * DAY * 1_200));
        let mut next = || times.next().unwrap_or(UNIX_EPOCH);
        let mut expected: Vec<(String, Option<SystemTime>)> = Vec::new();
        let mut expect = |e: &NewEvent| expected.push((e.event_type.clone(), e.recorded_at));

        // One append: two imported events around one recorded now.
        let single = vec![
            at("Imported", "single-1", next()),
            event("Live", &[("import", "single-live")]),
            at("Imported", "single-2", next()),
        ];
        single.iter().for_each(&mut expect);
        let started = SystemTime::now();
        let mut positions = append(&store, single, None).await.positions;

        // A batch of 2 requests, then one of 6: every request's times are kept.
        for requests in [2, 6] {
            let batch: Vec<AppendRequest> = (0..requests)
                .map(|r| {
                    let events = vec![
                        at("Imported", &format!("batch{requests}-{r}a"), next()),
                        at("Imported", &format!("batch{requests}-{r}b"), next()),
                    ];
                    events.iter().for_each(&mut expect);
                    AppendRequest::new(events, None)
                })
                .collect();
            let results = store
                .append_batch(batch)
                .await
                .unwrap_or_else(|e| panic!("a batch of {requests} imports failed: {e}"));
            for (r, result) in results.into_iter().enumerate() {
                match result {
                    Ok(appended) => positions.extend(appended.positions),
                    Err(e) => panic!("request {r} of a batch of {requests} imports failed: {e}"),
                }
            }
        }
        let finished = SystemTime::now();
        assert_strictly_increasing(&positions, "positions of imported events");

        let stored: Vec<StoredEvent> = read(&store, &Query::all(), ReadOptions::forward()).await;
        assert_eq!(
            stored.iter().map(|e| e.position).collect::<Vec<Position>>(),
            positions,
            "the imported events read back, in the order they were appended"
        );
        let before_epoch = expected
            .iter()
            .filter_map(|(_, t)| *t)
            .filter(|t| *t < UNIX_EPOCH)
            .count();
        assert!(before_epoch > 0, "the case imports times before 1970");
        for (stored, (event_type, given)) in stored.iter().zip(&expected) {
            assert_eq!(
                &stored.event_type, event_type,
                "the event at {}",
                stored.position
            );
            match given {
                Some(time) => assert_eq!(
                    stored.recorded_at,
                    whole_micros(*time),
                    "the recorded_at of the event at {}: given {time:?}, it must come back \
                     rounded down to the microsecond",
                    stored.position
                ),
                None => {
                    // The store's clock, with a second's slack for one in another process.
                    let slack = Duration::from_secs(1);
                    assert!(
                        stored.recorded_at + slack >= started
                            && stored.recorded_at <= finished + slack,
                        "an event without a time of its own is recorded at the append, got {:?}",
                        stored.recorded_at
                    );
                    assert_eq!(
                        stored.recorded_at,
                        whole_micros(stored.recorded_at),
                        "the store's own clock is kept to the microsecond too, as every store \
                         keeps it, so one scenario reads back the same times on every store"
                    );
                }
            }
        }
    })
    .await;
}
