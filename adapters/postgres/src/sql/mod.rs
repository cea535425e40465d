//! A [`Query`] as SQL over the events: one arm per way to find its events ([`Filter`]),
//! and the statements reading them ([`select`]).

mod select;

pub(crate) use select::Scan;
#[cfg(test)]
use select::exclusive;

use std::fmt::Write;

use factum::Query;
use tokio_postgres::types::ToSql;

use crate::tags;

/// A query as SQL: its arms refer to `params` as `$first`, `$first + 1`, ...
pub(crate) struct Filter {
    /// The ways to find the query's events (a read makes them disjoint, see
    /// [`Scan::once`]); empty when the query matches every event.
    arms: Vec<Arm>,
    /// One `text[]` per placeholder.
    pub params: Vec<Vec<String>>,
}

/// One way to find some of a query's events: through one tag's entries in `event_tags`,
/// or through the `(type, position)` index.
pub(crate) struct Arm {
    /// The tag whose entries the arm walks (an expression of the parameters); `None`:
    /// the events of the arm's types.
    pub(crate) tag: Option<String>,
    /// What an event the arm finds must be, over the columns `type` and `tags`: its
    /// item's condition, in parentheses.
    pub(crate) condition: String,
}

impl Filter {
    /// The parameters as the driver takes them.
    pub(crate) fn refs(&self) -> impl Iterator<Item = &(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p as &(dyn ToSql + Sync))
    }

    /// The statement returning `scan.columns` of the query's events within `scan`'s
    /// bound, in position order, each arm walking its index (see [`select::select`]).
    pub(crate) fn select(&self, scan: &Scan<'_>) -> String {
        select::select(&self.arms, scan)
    }

    /// The same as [`Filter::select`], as one condition on the events table, for the
    /// planner to find them: for a read of many events planned for its values (a whole
    /// state of 100,000 events: a scan of the table's pages that hold them and a sort,
    /// where fetching each by its position costs three times the server's time).
    pub(crate) fn select_planned(&self, scan: &Scan<'_>) -> String {
        select::select_planned(&self.arms, scan)
    }
}

/// The filter matching `query`, with placeholders numbered from `first`; `None` when the
/// query matches nothing.
pub(crate) fn filter(query: &Query, first: usize) -> Option<Filter> {
    let mut params: Vec<Vec<String>> = Vec::new();
    let arms = arms(query, |values| {
        params.push(values);
        let array = format!("${}::text[]", first + params.len() - 1);
        let element = format!("({array})[1]");
        (array, element)
    })?;
    Some(Filter { arms, params })
}

/// The filter matching `query` with every `text[]` value in one array, `flat`, which the
/// statement refers to as `$param`, each value a slice of it (`$2[3:4]`); `None` when the
/// query matches nothing. Its [`Filter::params`] are empty.
pub(crate) fn flat_filter(query: &Query, param: usize, flat: &mut Vec<String>) -> Option<Filter> {
    let arms = arms(query, |values| {
        let start = flat.len() + 1;
        flat.extend(values);
        (
            format!("${param}[{start}:{}]", flat.len()),
            format!("${param}[{start}]"),
        )
    })?;
    Some(Filter {
        arms,
        params: Vec::new(),
    })
}

/// The arms finding `query`'s events (none: every event), with `placeholder` turning each
/// `text[]` value into SQL, as the array and as its first element; `None` when the query
/// matches nothing.
///
/// Items with only types are merged into one arm, `type = ANY(...)` (the `(type,
/// position)` index answers it); an item with tags is an arm walking one of its tags
/// (an event matching it carries all of them), its other tags and its types checked on
/// the events found; an item with neither matches every event.
fn arms(
    query: &Query,
    mut placeholder: impl FnMut(Vec<String>) -> (String, String),
) -> Option<Vec<Arm>> {
    if query.is_none() {
        return None;
    }
    if query.is_all() {
        return Some(Vec::new());
    }
    let mut arms: Vec<Arm> = Vec::new();
    let mut only_types: Vec<String> = Vec::new();
    // No stored event holds a NUL character (every store refuses one: see
    // `factum::store::limits`), and a text parameter cannot carry one to the server,
    // which would refuse the whole statement: a tag or a type holding one matches nothing.
    let nul = |text: &str| text.contains('\0');
    for item in query.items() {
        if item.tags.iter().any(|t| nul(&t.key) || nul(&t.value)) {
            continue;
        }
        let types: Vec<String> = item.types.iter().filter(|t| !nul(t)).cloned().collect();
        if types.is_empty() && !item.types.is_empty() {
            continue;
        }
        if item.tags.is_empty() {
            for t in types {
                if !only_types.contains(&t) {
                    only_types.push(t);
                }
            }
            continue;
        }
        let mut tags: Vec<String> = item.tags.iter().map(tags::encode_tag).collect();
        tags.sort_unstable();
        tags.dedup();
        let (array, first) = placeholder(tags);
        let mut condition = format!("e.tags @> {array}");
        if !types.is_empty() {
            // `type || ''` keeps the planner off the `(type, position)` index here: the
            // tag's entries find the few candidates, and combining them with every event
            // of the type (which a planner without fresh statistics does) reads the
            // whole type.
            let _ = write!(
                condition,
                " AND (e.type || '') = ANY({})",
                placeholder(types).0
            );
        }
        arms.push(Arm {
            tag: Some(first),
            condition: format!("({condition})"),
        });
    }
    if !only_types.is_empty() {
        let (array, _) = placeholder(only_types);
        arms.insert(
            0,
            Arm {
                tag: None,
                condition: format!("(e.type = ANY({array}))"),
            },
        );
    }
    (!arms.is_empty()).then_some(arms)
}

#[cfg(test)]
mod tests {
    use factum::{QueryItem, Tag};

    use super::select::tests::scan;
    use super::*;

    #[test]
    fn queries_become_arms() {
        assert!(filter(&Query::none(), 1).is_none());
        let all = filter(&Query::all().union(Query::item(QueryItem::types(["A"]))), 1);
        assert_eq!(
            all.map(|f| (f.select(&scan(None)), f.params.len())),
            Some((
                "SELECT e.position, e.type FROM s.events e WHERE e.position >= $1 \
                 ORDER BY e.position"
                    .into(),
                0
            ))
        );
        let one = filter(
            &Query::item(QueryItem::types(["A"]).with_tags([Tag::new("x", "1")])),
            2,
        )
        .map(|f| (f.select(&scan(Some("$9"))), f.params));
        assert_eq!(
            one,
            Some((
                "SELECT e.position, e.type FROM s.event_tags t CROSS JOIN LATERAL \
                 (SELECT * FROM s.events e WHERE e.position = t.position \
                 AND (e.tags @> $2::text[] AND (e.type || '') = ANY($3::text[])) OFFSET 0) e \
                 WHERE t.tag = ($2::text[])[1] AND t.position >= $1 \
                 ORDER BY t.position LIMIT $9"
                    .to_owned(),
                vec![vec!["1:x:1".to_owned()], vec!["A".to_owned()]]
            ))
        );
        let q: Query = [
            QueryItem::types(["A", "B"]),
            QueryItem::types(["C"]).with_tags([Tag::new("x", "1"), Tag::new("x", "1")]),
            QueryItem::types(["B", "D"]),
            QueryItem::any().with_tags([Tag::new("y", "2")]),
        ]
        .into_iter()
        .collect();
        let f = filter(&q, 3).map(|f| (f.arms, f.params));
        let (arms, params) = f.unwrap_or_default();
        let arms: Vec<(Option<String>, String)> = (0..arms.len())
            .map(|i| (arms[i].tag.clone(), exclusive(&arms, i)))
            .collect();
        assert_eq!(
            arms,
            [
                (None, "(e.type = ANY($6::text[]))".to_owned()),
                (
                    Some("($3::text[])[1]".to_owned()),
                    "(e.tags @> $3::text[] AND (e.type || '') = ANY($4::text[])) \
                     AND NOT ((e.type = ANY($6::text[])))"
                        .to_owned()
                ),
                (
                    Some("($5::text[])[1]".to_owned()),
                    "(e.tags @> $5::text[]) AND NOT ((e.type = ANY($6::text[])) \
                     OR (e.tags @> $3::text[] AND (e.type || '') = ANY($4::text[])))"
                        .to_owned()
                ),
            ]
        );
        assert_eq!(
            params,
            [
                vec!["1:x:1".to_owned()],
                vec!["C".to_owned()],
                vec!["1:y:2".to_owned()],
                vec!["A".to_owned(), "B".to_owned(), "D".to_owned()],
            ]
        );
        let mut flat = vec!["before".to_owned()];
        let f = flat_filter(&q, 2, &mut flat)
            .map(|f| f.arms.into_iter().map(|a| a.tag).collect::<Vec<_>>());
        assert_eq!(
            f,
            Some(vec![
                None,
                Some("$2[2]".to_owned()),
                Some("$2[4]".to_owned())
            ])
        );
        assert_eq!(flat, ["before", "1:x:1", "C", "1:y:2", "A", "B", "D"]);
        let all = flat_filter(&Query::all(), 2, &mut flat);
        assert_eq!(all.map(|f| f.arms.len()), Some(0));
        assert!(flat_filter(&Query::none(), 2, &mut flat).is_none());
    }

    #[test]
    fn nul_characters_match_nothing() {
        let nul = Tag::new("x", "a\0b");
        let only: Query = [QueryItem::any().with_tags([nul.clone()])]
            .into_iter()
            .collect();
        assert!(filter(&only, 1).is_none());
        let q: Query = [
            QueryItem::types(["A", "B\0"]).with_tags([Tag::new("x", "1")]),
            QueryItem::types(["C\0"]),
            QueryItem::types(["D"]).with_tags([nul]),
        ]
        .into_iter()
        .collect();
        let f = filter(&q, 1).map(|f| (f.arms.len(), f.params));
        assert_eq!(
            f,
            Some((1, vec![vec!["1:x:1".to_owned()], vec!["A".to_owned()]]))
        );
    }
}
