use std::collections::HashSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{EventSet, StoredEvent, Tag};

/// One item of a [`Query`]: a set of event types (any of them) and a set of tags (all of them).
///
/// An event matches the item when its type is one of `types` (an empty list matches
/// every type) **and** it carries every tag in `tags`. An item with neither is "match
/// all" ([`QueryItem::any`]); no item matches nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QueryItem {
    /// Event type names; empty means any type.
    pub types: Vec<String>,
    /// Tags the event must all carry.
    pub tags: Vec<Tag>,
}

impl QueryItem {
    /// An item that matches any event: no types and no tags.
    pub fn any() -> Self {
        QueryItem::default()
    }

    /// Whether the item matches every event: it names neither types nor tags.
    pub fn matches_all(&self) -> bool {
        self.types.is_empty() && self.tags.is_empty()
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
/// The DCB specification has a query hold at least one item, or stand for "match all".
/// The items are private so that no query is left empty by accident; build one with
/// [`Query::all`], [`Query::item`], [`Query::of`], [`Query::union`] or by collecting
/// items:
///
/// ```
/// use factum::{Query, QueryItem, Tag};
///
/// let everything = Query::all();
/// let seat = Query::item(QueryItem::types(["SeatBooked", "SeatReleased"]).with_tags([Tag::new("seat", "1A")]));
/// assert!(everything.matches("Anything", &[]));
/// assert!(seat.matches("SeatBooked", &[Tag::new("seat", "1A")]));
/// assert_eq!(seat.items().len(), 1);
/// // An item with neither types nor tags matches every event: a union holding one is `all`.
/// assert!(seat.union(Query::all()).is_all());
/// ```
///
/// The one query with no item, [`Query::none`], matches nothing. It exists as the
/// identity of [`Query::union`] and for reads of nothing; it cannot guard an append: a
/// store refuses an [`AppendCondition`](crate::AppendCondition) over it with
/// [`AppendError::EmptyCondition`](crate::AppendError::EmptyCondition) (say "no
/// condition" with `None` instead, or let [`AppendCondition::guarding`](crate::AppendCondition::guarding)
/// decide).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Query {
    items: Vec<QueryItem>,
}

impl Query {
    /// The query that matches every event: one item with neither types nor tags.
    pub fn all() -> Self {
        Query {
            items: vec![QueryItem::any()],
        }
    }

    /// The query that matches no event: the identity of [`Query::union`].
    ///
    /// Reading it returns nothing; an append condition over it is refused (see
    /// [`Query`]).
    pub fn none() -> Self {
        Query { items: Vec::new() }
    }

    /// A query of one item (an item with neither types nor tags makes [`Query::all`]).
    pub fn item(item: QueryItem) -> Self {
        Query { items: vec![item] }
    }

    /// A query for the event types of a set (see [`QueryItem::of`]).
    pub fn of<E: EventSet>() -> Self {
        Query::item(QueryItem::of::<E>())
    }

    /// The items of the union, in the order they were added.
    pub fn items(&self) -> &[QueryItem] {
        &self.items
    }

    /// Whether this query can match no event at all: it has no item.
    pub fn is_none(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether this query matches every event: one of its items names neither types nor
    /// tags.
    pub fn is_all(&self) -> bool {
        self.items.iter().any(QueryItem::matches_all)
    }

    /// The union of this query and `other`; identical items are kept once, and a union
    /// with a query that matches everything is [`Query::all`].
    pub fn union(mut self, other: Query) -> Self {
        if self.is_all() || other.is_all() {
            return Query::all();
        }
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
    ///
    /// When every item loses all its types the result is [`Query::none`]: as a validation
    /// query that guards nothing, which the engine turns into an unconditional append
    /// (see [`AppendCondition::guarding`](crate::AppendCondition::guarding)).
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

/// The union of the items; collecting no item gives [`Query::none`].
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

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(types: &[&str]) -> Query {
        Query::item(QueryItem::types(types.iter().copied()))
    }

    #[test]
    fn an_item_with_neither_types_nor_tags_is_all_and_absorbs_a_union() {
        assert!(Query::item(QueryItem::any()).is_all());
        assert!(!typed(&["A"]).is_all());
        assert!(!Query::item(QueryItem::any().with_tags([Tag::new("k", "v")])).is_all());
        let union = typed(&["A"]).union(Query::all()).union(typed(&["B"]));
        assert_eq!(union, Query::all());
        assert_eq!(union.to_string(), "*");
        assert_eq!(Query::all().union(typed(&["A"])), Query::all());
    }

    #[test]
    fn none_is_the_identity_of_union_and_what_collecting_nothing_gives() {
        let a = typed(&["A"]);
        assert_eq!(Query::none().union(a.clone()), a);
        assert_eq!(a.clone().union(Query::none()), a);
        let collected: Query = std::iter::empty::<QueryItem>().collect();
        assert!(collected.is_none());
        assert!(!collected.matches("A", &[]));
        assert_eq!(collected.to_string(), "(nothing)");
    }

    #[test]
    fn excluding_every_type_leaves_none_but_keeps_untyped_items() {
        let typed_only = typed(&["A", "B"]).union(typed(&["B"]));
        assert!(typed_only.excluding(&["A", "B"]).is_none());
        let with_tags = Query::item(QueryItem::any().with_tags([Tag::new("k", "v")]));
        let mixed = typed(&["A"]).union(with_tags.clone());
        assert_eq!(mixed.excluding(&["A"]), with_tags);
        assert_eq!(Query::all().excluding(&["A"]), Query::all());
    }

    #[test]
    fn items_are_read_through_the_accessor() {
        let q = typed(&["A"]).union(typed(&["B"])).union(typed(&["A"]));
        let types: Vec<&[String]> = q.items().iter().map(|i| &i.types[..]).collect();
        assert_eq!(types, [&["A".to_owned()][..], &["B".to_owned()][..]]);
    }
}
