use super::{Position, Query};

/// The guard of an append: fail if any event matching `query` exists after `after`.
///
/// Without `after`, the append fails if any matching event exists at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendCondition {
    /// The events the decision relied on.
    pub query: Query,
    /// The last position the decision read; `None` when it read nothing.
    pub after: Option<Position>,
}

impl AppendCondition {
    /// A condition over `query` after `after`.
    pub fn new(query: Query, after: Option<Position>) -> Self {
        AppendCondition { query, after }
    }

    /// Whether `event_type` with `tags` at `position` violates this condition.
    pub fn is_violated_by(
        &self,
        position: Position,
        event_type: &str,
        tags: &[crate::Tag],
    ) -> bool {
        self.after.is_none_or(|after| position > after) && self.query.matches(event_type, tags)
    }
}
