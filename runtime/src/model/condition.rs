use super::{Position, Query};

/// The guard of an append: fail if any event matching `query` exists after `after`.
///
/// Without `after`, the append fails if any matching event exists at all.
///
/// The query must be able to match something: a store refuses a condition over
/// [`Query::none`] with [`AppendError::EmptyCondition`](crate::AppendError::EmptyCondition)
/// and writes nothing, because such a condition would guard nothing and commit every
/// time, which is never what a decision that relied on events meant. An append that
/// relies on nothing passes no condition (`None`); [`AppendCondition::guarding`] picks
/// between the two:
///
/// ```
/// use factum::{AppendCondition, Position, Query, QueryItem};
///
/// let seat = Query::item(QueryItem::types(["SeatBooked"]));
/// assert!(AppendCondition::guarding(seat, Some(Position(3))).is_some());
/// // A decision that read nothing appends unconditionally.
/// assert_eq!(AppendCondition::guarding(Query::none(), None), None);
/// // "Fail if any event exists at all" is explicit.
/// let empty_log_only = AppendCondition::new(Query::all(), None);
/// assert!(empty_log_only.is_violated_by(Position(1), "Anything", &[]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendCondition {
    /// The events the decision relied on; never [`Query::none`] (see above).
    pub query: Query,
    /// The last position the decision read; `None` when it read nothing.
    pub after: Option<Position>,
}

impl AppendCondition {
    /// A condition over `query` after `after`.
    ///
    /// `query` should match something: a store refuses a condition over
    /// [`Query::none`] (see [`AppendCondition`]); use [`AppendCondition::guarding`] when
    /// the query may be empty.
    pub fn new(query: Query, after: Option<Position>) -> Self {
        AppendCondition { query, after }
    }

    /// The condition for an append that relied on the events matching `query` up to
    /// `after`, or `None` (an unconditional append) when `query` matches nothing: a
    /// decision that reads no state, an empty `Vec` of states, or whose `exclude = [..]`
    /// removes every type it reads, relies on no event.
    pub fn guarding(query: Query, after: Option<Position>) -> Option<Self> {
        (!query.is_none()).then(|| AppendCondition::new(query, after))
    }

    /// Whether the condition guards nothing (its query has no item): stores refuse it.
    pub fn guards_nothing(&self) -> bool {
        self.query.is_none()
    }

    /// Whether `event_type` with `tags` at `position` violates this condition.
    pub fn is_violated_by(
        &self,
        position: Position,
        event_type: &str,
        tags: &[super::Tag],
    ) -> bool {
        self.after.is_none_or(|after| position > after) && self.query.matches(event_type, tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::QueryItem;

    #[test]
    fn guarding_gives_no_condition_for_a_query_of_no_item() {
        assert_eq!(
            AppendCondition::guarding(Query::none(), Some(Position(4))),
            None
        );
        let seat = Query::item(QueryItem::types(["SeatBooked"]));
        assert_eq!(
            AppendCondition::guarding(seat.clone(), Some(Position(4))),
            Some(AppendCondition::new(seat, Some(Position(4))))
        );
        // `Query::all()` is a condition: it fails on any event after the position.
        let all = AppendCondition::guarding(Query::all(), None);
        assert!(all.is_some_and(|c| !c.guards_nothing()));
        assert!(AppendCondition::new(Query::none(), None).guards_nothing());
    }
}
