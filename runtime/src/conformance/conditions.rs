//! The cases of append conditions: without a position, with one, and on a query that
//! matches no stored event.

use super::support::{
    Fixture, append, event, expect_conflict, head, named, tags, typed_tags, types,
};
use crate::model::{AppendCondition, Position, Query};
use crate::store::EventStore;

/// A condition without position fails when any matching event exists at all, succeeds
/// when none does (even if the appended events match it), names the first conflicting
/// event, and a failed append writes nothing.
pub async fn append_condition_without_position<S: EventStore + Clone + 'static>(store: S) {
    named("append_condition_without_position", async move {
        let seat = typed_tags(&["SeatBooked"], &[("seat", "1A")]);
        let first = append(
            &store,
            vec![event("SeatBooked", &[("seat", "1A")])],
            Some(AppendCondition::new(seat.clone(), None)),
        )
        .await;
        let first = first.positions[0];

        expect_conflict(
            &store,
            vec![event("SeatBooked", &[("seat", "1A")])],
            AppendCondition::new(seat.clone(), None),
            first,
            "SeatBooked",
            "the same seat booked twice",
        )
        .await;

        // An unrelated event (same type, other seat) does not conflict.
        append(
            &store,
            vec![event("SeatBooked", &[("seat", "2B")])],
            Some(AppendCondition::new(
                typed_tags(&["SeatBooked"], &[("seat", "2B")]),
                None,
            )),
        )
        .await;
        // Nor does one of another type on the same seat.
        let released = append(
            &store,
            vec![event("SeatReleased", &[("seat", "3C")])],
            Some(AppendCondition::new(
                typed_tags(&["SeatBooked"], &[("seat", "3C")]),
                None,
            )),
        )
        .await;

        // Two items: the conflict is the first event matching either of them.
        expect_conflict(
            &store,
            vec![event("SeatBooked", &[("seat", "3C")])],
            AppendCondition::new(
                types(&["SeatReleased"]).union(tags(&[("seat", "3C")])),
                None,
            ),
            released.positions[0],
            "SeatReleased",
            "a condition of two items",
        )
        .await;

        // Several matching events: the error names the first one.
        expect_conflict(
            &store,
            vec![event("SeatBooked", &[("seat", "9Z")])],
            AppendCondition::new(types(&["SeatBooked"]), None),
            first,
            "SeatBooked",
            "several matching events (the first must be named)",
        )
        .await;
    })
    .await;
}

/// A condition with a position fails only when a matching event exists after that
/// position; matching events at or before it do not count. The error names the first
/// conflicting event after the position, and a failed append writes nothing.
pub async fn append_condition_with_position<S: EventStore + Clone + 'static>(store: S) {
    named("append_condition_with_position", async move {
        let log = Fixture::append_one_by_one(
            &store,
            vec![
                event("A", &[("x", "1")]),
                event("B", &[("x", "1")]),
                event("A", &[("x", "2")]),
            ],
        )
        .await;
        let p = |i: usize| log.positions[i];
        let a_x1 = typed_tags(&["A"], &[("x", "1")]);

        // p0 is the only A x:1 and it is not after p0.
        let third = append(
            &store,
            vec![event("A", &[("x", "1")])],
            Some(AppendCondition::new(a_x1.clone(), Some(p(0)))),
        )
        .await;
        let third = third.positions[0];

        expect_conflict(
            &store,
            vec![event("A", &[("x", "1")])],
            AppendCondition::new(a_x1.clone(), Some(p(0))),
            third,
            "A",
            "a match after the condition's position",
        )
        .await;

        append(
            &store,
            vec![event("B", &[("y", "1")])],
            Some(AppendCondition::new(a_x1.clone(), Some(third))),
        )
        .await;

        expect_conflict(
            &store,
            vec![event("C", &[])],
            AppendCondition::new(tags(&[("x", "1")]), Some(p(0))),
            p(1),
            "B",
            "the first match after the position",
        )
        .await;

        expect_conflict(
            &store,
            vec![event("C", &[])],
            AppendCondition::new(types(&["A"]), Some(p(1))),
            p(2),
            "A",
            "a match after a non-matching position",
        )
        .await;

        expect_conflict(
            &store,
            vec![event("C", &[])],
            AppendCondition::new(types(&["A"]), Some(Position(0))),
            p(0),
            "A",
            "a condition after Position(0)",
        )
        .await;

        let before_head = head(&store).await;
        let Some(last) = before_head else {
            panic!("the store has events but no head");
        };
        append(
            &store,
            vec![event("C", &[])],
            Some(AppendCondition::new(Query::all(), Some(last))),
        )
        .await;
        let new_head = head(&store)
            .await
            .unwrap_or_else(|| panic!("no head after an append"));
        expect_conflict(
            &store,
            vec![event("C", &[])],
            AppendCondition::new(Query::all(), Some(last)),
            new_head,
            "C",
            "Query::all after the old head",
        )
        .await;

        // A position past the head (a reader cannot have seen one, but it must not fail).
        append(
            &store,
            vec![event("A", &[("x", "1")])],
            Some(AppendCondition::new(
                a_x1,
                Some(Position(new_head.0 + 1000)),
            )),
        )
        .await;
    })
    .await;
}

/// A condition whose query matches no stored event never conflicts, with or without a
/// position: unknown types, unknown tags, and a type and tag that exist only on
/// different events. (A query that can match nothing at all, [`Query::none`], is no
/// condition: see [`empty_condition_refused`].)
///
/// [`empty_condition_refused`]: super::empty_condition_refused
pub async fn condition_matching_nothing<S: EventStore + Clone + 'static>(store: S) {
    named("condition_matching_nothing", async move {
        Fixture::append_one_by_one(
            &store,
            vec![
                event("A", &[("x", "1")]),
                event("B", &[("y", "1")]),
                event("A", &[]),
            ],
        )
        .await;
        let queries = [
            ("an unknown type", types(&["Z"])),
            ("an unknown tag", tags(&[("x", "404")])),
            (
                "a known type and a known tag never together",
                typed_tags(&["A"], &[("y", "1")]),
            ),
            ("two tags never together", tags(&[("x", "1"), ("y", "1")])),
        ];
        let head = head(&store).await;
        for (what, query) in queries {
            for after in [None, Some(Position(0)), head] {
                // The appended event matches none of the queries either.
                let result = store
                    .append(
                        vec![event("Other", &[("other", "1")])],
                        Some(AppendCondition::new(query.clone(), after)),
                    )
                    .await;
                if let Err(e) = result {
                    panic!("a condition on {what} ({query}, after {after:?}) failed: {e}");
                }
            }
        }
    })
    .await;
}
