//! A [`Query`] as a SQL condition on the events table.

use std::fmt::Write;

use factum::Query;
use tokio_postgres::types::ToSql;

use crate::tags;

/// A query as SQL: `sql` refers to `params` as `$first`, `$first + 1`, ...
pub(crate) struct Filter {
    /// A boolean expression over the columns `type` and `tags`.
    pub sql: String,
    /// One `text[]` per placeholder.
    pub params: Vec<Vec<String>>,
    /// Whether the condition is `TRUE` (the query matches every event).
    pub everything: bool,
}

impl Filter {
    /// The `ORDER BY` key for a query that stops after a few rows (`LIMIT`).
    ///
    /// With a filter, `position + 0`: the planner then cannot walk the primary key in
    /// order hoping to meet a match early (with a rare tag, that walk reads the whole
    /// table); it picks the cheapest way to find all matches (the tags' GIN index, the
    /// `(type, position)` index, or the primary key range when it is short) and sorts
    /// them. Without a filter, the primary key order is the best plan.
    pub(crate) fn limited_order(&self) -> &'static str {
        limited_order(self.everything)
    }

    /// The parameters as the driver takes them.
    pub(crate) fn refs(&self) -> impl Iterator<Item = &(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p as &(dyn ToSql + Sync))
    }
}

/// [`Filter::limited_order`] for a condition that is `TRUE` (`everything`) or not.
pub(crate) fn limited_order(everything: bool) -> &'static str {
    if everything {
        "position"
    } else {
        "position + 0"
    }
}

/// The condition matching `query`, with placeholders numbered from `first`; `None` when
/// the query matches nothing.
///
/// Items with only types are merged into one `type = ANY(...)` (the `(type, position)`
/// index answers it); an item with tags becomes `tags @> ...` on the GIN index, its types
/// (if any) checked on the rows found; an item with neither makes the whole condition `TRUE`.
pub(crate) fn filter(query: &Query, first: usize) -> Option<Filter> {
    let mut params: Vec<Vec<String>> = Vec::new();
    let (sql, everything) = condition(query, |values| {
        params.push(values);
        format!("${}::text[]", first + params.len() - 1)
    })?;
    Some(Filter {
        sql,
        params,
        everything,
    })
}

/// The condition matching `query` with every `text[]` value in one array, `flat`, which
/// the condition refers to as `$param`, each value a slice of it (`$2[3:4]`); `None` when
/// the query matches nothing. The boolean says whether it matches every event (see
/// [`Filter::limited_order`] for the order to use).
pub(crate) fn flat_filter(
    query: &Query,
    param: usize,
    flat: &mut Vec<String>,
) -> Option<(String, bool)> {
    condition(query, |values| {
        let start = flat.len() + 1;
        flat.extend(values);
        format!("${param}[{start}:{}]", flat.len())
    })
}

/// The SQL condition of [`filter`], with `placeholder` turning each `text[]` value into
/// SQL; and whether it is `TRUE`.
fn condition(
    query: &Query,
    mut placeholder: impl FnMut(Vec<String>) -> String,
) -> Option<(String, bool)> {
    if query.is_none() {
        return None;
    }
    if query.is_all() {
        return Some(("TRUE".to_owned(), true));
    }
    let mut parts: Vec<String> = Vec::new();
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
        let mut part = format!("tags @> {}", placeholder(tags));
        if !types.is_empty() {
            // `type || ''` keeps the planner off the `(type, position)` index here: the
            // tags find the few candidates, and combining them with every event of the
            // type (which a planner without fresh statistics does) reads the whole type.
            let _ = write!(part, " AND (type || '') = ANY({})", placeholder(types));
        }
        parts.push(format!("({part})"));
    }
    if !only_types.is_empty() {
        parts.insert(0, format!("type = ANY({})", placeholder(only_types)));
    }
    if parts.is_empty() {
        return None;
    }
    Some((format!("({})", parts.join(" OR ")), false))
}

#[cfg(test)]
mod tests {
    use factum::{QueryItem, Tag};

    use super::*;

    #[test]
    fn queries_become_conditions() {
        assert!(filter(&Query::none(), 1).is_none());
        let all = filter(&Query::all().union(Query::item(QueryItem::types(["A"]))), 1);
        assert_eq!(
            all.map(|f| (f.sql, f.params.len())),
            Some(("TRUE".into(), 0))
        );
        let q: Query = [
            QueryItem::types(["A", "B"]),
            QueryItem::types(["C"]).with_tags([Tag::new("x", "1"), Tag::new("x", "1")]),
            QueryItem::types(["B", "D"]),
            QueryItem::any().with_tags([Tag::new("y", "2")]),
        ]
        .into_iter()
        .collect();
        let f = filter(&q, 3).map(|f| (f.sql, f.params));
        assert_eq!(
            f,
            Some((
                "(type = ANY($6::text[]) OR (tags @> $3::text[] AND (type || '') = ANY($4::text[])) \
                 OR (tags @> $5::text[]))"
                    .to_owned(),
                vec![
                    vec!["1:x:1".to_owned()],
                    vec!["C".to_owned()],
                    vec!["1:y:2".to_owned()],
                    vec!["A".to_owned(), "B".to_owned(), "D".to_owned()],
                ]
            ))
        );
        let mut flat = vec!["before".to_owned()];
        let f = flat_filter(&q, 2, &mut flat);
        assert_eq!(
            f,
            Some((
                "(type = ANY($2[5:7]) OR (tags @> $2[2:2] AND (type || '') = ANY($2[3:3])) \
                 OR (tags @> $2[4:4]))"
                    .to_owned(),
                false
            ))
        );
        assert_eq!(flat, ["before", "1:x:1", "C", "1:y:2", "A", "B", "D"]);
        assert_eq!(
            flat_filter(&Query::all(), 2, &mut flat),
            Some(("TRUE".into(), true))
        );
        assert_eq!(flat_filter(&Query::none(), 2, &mut flat), None);
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
        let f = filter(&q, 1).map(|f| (f.sql, f.params));
        assert_eq!(
            f,
            Some((
                "((tags @> $1::text[] AND (type || '') = ANY($2::text[])))".to_owned(),
                vec![vec!["1:x:1".to_owned()], vec!["A".to_owned()]]
            ))
        );
    }
}
