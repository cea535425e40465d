use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{EventSet, StoredEvent, Tag};

/// One item of a [`Query`]: a set of event types (any of them) and a set of tags (all of them).
///
/// An event matches the item when its type is one of `types` (an empty list matches
/// every type) **and** it carries every tag in `tags`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QueryItem {
    /// Event type names; empty means any type.
    pub types: Vec<String>,
    /// Tags the event must all carry.
    pub tags: Vec<Tag>,
}

impl QueryItem {
    /// An item that matches any event.
    pub fn any() -> Self {
        QueryItem::default()
    }

    /// An item for these event type names.
    pub fn types<I, S>(types: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        QueryItem {
            types: types.into_iter().map(Into::into).collect(),
            tags: Vec::new(),
        }
    }

    /// An item for the event types of a set — an event struct, a group or a module's
    /// enum — named by Rust type, so a typo is a compile error.
    pub fn of<E: EventSet>() -> Self {
        QueryItem::types(E::TYPES.iter().copied())
    }

    /// The item restricted to events carrying `tags` as well.
    pub fn with_tags(mut self, tags: impl IntoIterator<Item = Tag>) -> Self {
        self.tags.extend(tags);
        self
    }

    /// Whether an event of `event_type` with `tags` matches this item.
    pub fn matches(&self, event_type: &str, tags: &[Tag]) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == event_type))
            && self.tags.iter().all(|t| tags.contains(t))
    }
}

/// A union of [`QueryItem`]s: an event matches when it matches any item.
///
/// A query with no items matches nothing; [`Query::all`] matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Query {
    /// The items of the union.
    pub items: Vec<QueryItem>,
}

impl Query {
    /// The query that matches every event.
    pub fn all() -> Self {
        Query {
            items: vec![QueryItem::any()],
        }
    }

    /// The query that matches no event.
    pub fn none() -> Self {
        Query { items: Vec::new() }
    }

    /// A query of one item.
    pub fn item(item: QueryItem) -> Self {
        Query { items: vec![item] }
    }

    /// A query for the event types of a set (see [`QueryItem::of`]).
    pub fn of<E: EventSet>() -> Self {
        Query::item(QueryItem::of::<E>())
    }

    /// Whether this query can match no event at all.
    pub fn is_none(&self) -> bool {
        self.items.is_empty()
    }

    /// The union of this query and `other`; identical items are kept once.
    pub fn union(mut self, other: Query) -> Self {
        // Hash the items once a union grows: a decision reading one state per item of a
        // large command would otherwise compare every item with every other.
        if self.items.len() + other.items.len() > 16 {
            let mut seen: HashSet<QueryItem> = self.items.iter().cloned().collect();
            for item in other.items {
                if seen.insert(item.clone()) {
                    self.items.push(item);
                }
            }
            return self;
        }
        for item in other.items {
            if !self.items.contains(&item) {
                self.items.push(item);
            }
        }
        self
    }

    /// This query without the event types in `excluded`.
    ///
    /// An item that names types loses the excluded ones, and disappears when none are
    /// left. An item that matches any type cannot list "all but these" and is kept as it
    /// is: exclusions apply to typed items, which is what states produce.
    pub fn excluding(self, excluded: &[&str]) -> Self {
        let items = self
            .items
            .into_iter()
            .filter_map(|mut item| {
                if item.types.is_empty() {
                    return Some(item);
                }
                item.types.retain(|t| !excluded.contains(&t.as_str()));
                (!item.types.is_empty()).then_some(item)
            })
            .collect();
        Query { items }
    }

    /// Whether an event of `event_type` with `tags` matches the query.
    pub fn matches(&self, event_type: &str, tags: &[Tag]) -> bool {
        self.items.iter().any(|i| i.matches(event_type, tags))
    }

    /// Whether a stored event matches the query.
    pub fn matches_event(&self, event: &StoredEvent) -> bool {
        self.matches(&event.event_type, &event.tags)
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.items.is_empty() {
            return f.write_str("(nothing)");
        }
        for (n, item) in self.items.iter().enumerate() {
            if n > 0 {
                f.write_str(" | ")?;
            }
            if item.types.is_empty() {
                f.write_str("*")?;
            } else {
                f.write_str(&item.types.join(","))?;
            }
            if !item.tags.is_empty() {
                let tags: Vec<String> = item.tags.iter().map(Tag::to_string).collect();
                write!(f, "[{}]", tags.join(","))?;
            }
        }
        Ok(())
    }
}

impl FromIterator<QueryItem> for Query {
    fn from_iter<I: IntoIterator<Item = QueryItem>>(iter: I) -> Self {
        iter.into_iter()
            .fold(Query::none(), |q, i| q.union(Query::item(i)))
    }
}

impl From<QueryItem> for Query {
    fn from(item: QueryItem) -> Self {
        Query::item(item)
    }
}
