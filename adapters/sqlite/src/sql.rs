//! Queries → SQL over the indexes.
//!
//! A [`Query`] becomes a set of *arms*, each an ordered range of one index:
//! - an item with tags reads the tag index (`event_tags`, keyed by tag key, tag value,
//!   position) for its first tag, and checks its other tags and its types with index
//!   look-ups by position;
//! - an item with types only becomes one arm per type over `events_by_type` (type,
//!   position);
//! - an item with neither matches everything: a range of `events` by position.
//!
//! The arms are joined with `UNION` under one `ORDER BY position ... LIMIT`, which SQLite
//! runs as a merge of the already-ordered arms, stopping at the limit. So a page of a read,
//! or the first conflicting event of a condition, costs a few index range look-ups and
//! never a scan of the log.

use std::collections::HashSet;

use factum::Query;
use rusqlite::types::Value;
use rusqlite::{Connection, params_from_iter};

use crate::row::EVENT_COLUMNS;

/// The most arms one statement merges; a larger query runs as several statements whose
/// results are merged here (SQLite caps compound selects at 500 terms).
const MAX_ARMS_PER_STATEMENT: usize = 200;

/// One ordered index range of a query.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Arm {
    /// Every event.
    All,
    /// The events of one type.
    Type(String),
    /// The events carrying the `first` tag and every one of `more`, of any of `types`
    /// (none: any type).
    Tags {
        first: (String, String),
        more: Vec<(String, String)>,
        types: Vec<String>,
    },
}

/// A query compiled into index arms, owned so it can travel to a worker thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CompiledQuery {
    arms: Vec<Arm>,
}

/// Which way positions are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Lowest first.
    Forward,
    /// Highest first.
    Backward,
}

impl Direction {
    fn sql(self) -> &'static str {
        match self {
            Direction::Forward => "ASC",
            Direction::Backward => "DESC",
        }
    }
}

/// The SQL of one page of a read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Page {
    /// One statement returning the events ([`EVENT_COLUMNS`]) in order: the positions
    /// merged from the indexes, joined with the log.
    Rows(String, Vec<Value>),
    /// A query of too many items for one statement: statements of positions, each ordered
    /// and limited, whose union's first positions the caller takes and looks up.
    Positions(Vec<(String, Vec<Value>)>),
}

fn dedup<T: Clone + Eq + std::hash::Hash>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}

impl CompiledQuery {
    /// Compiles `query`.
    pub(crate) fn new(query: &Query) -> Self {
        let mut arms = Vec::new();
        for item in query.items() {
            let types = dedup(item.types.iter().cloned());
            let tags = dedup(item.tags.iter().map(|t| (t.key.clone(), t.value.clone())));
            let mut tags = tags.into_iter();
            match tags.next() {
                Some(first) => arms.push(Arm::Tags {
                    first,
                    more: tags.collect(),
                    types,
                }),
                None if types.is_empty() => {
                    // Matches everything: no other arm can add anything.
                    return CompiledQuery {
                        arms: vec![Arm::All],
                    };
                }
                None => arms.extend(types.into_iter().map(Arm::Type)),
            }
        }
        CompiledQuery { arms: dedup(arms) }
    }

    /// Whether the query matches nothing (it has no items).
    pub(crate) fn is_none(&self) -> bool {
        self.arms.is_empty()
    }

    /// How to fetch one page of the events matching the query in `[low, high]`, ordered in
    /// `direction`, at most `limit` of them.
    pub(crate) fn page(&self, direction: Direction, low: i64, high: i64, limit: i64) -> Page {
        if !self.arms.is_empty() && self.arms.len() <= MAX_ARMS_PER_STATEMENT {
            let (positions, params) = statement(&self.arms, direction, low, high, limit);
            let order = direction.sql();
            Page::Rows(
                // A left join, so an index entry without its event is an error, not a skip.
                format!(
                    "SELECT m.position, {EVENT_COLUMNS} FROM ({positions}) AS m \
                     LEFT JOIN events AS e ON e.position = m.position ORDER BY m.position {order}"
                ),
                params,
            )
        } else {
            Page::Positions(self.statements(direction, low, high, limit))
        }
    }

    /// The statements of the positions matching the query in `[low, high]`, ordered in
    /// `direction`, at most `limit` each: the SQL and its parameters.
    fn statements(
        &self,
        direction: Direction,
        low: i64,
        high: i64,
        limit: i64,
    ) -> Vec<(String, Vec<Value>)> {
        self.arms
            .chunks(MAX_ARMS_PER_STATEMENT)
            .map(|arms| statement(arms, direction, low, high, limit))
            .collect()
    }

    /// The positions matching the query in `[low, high]`, ordered in `direction`, at most
    /// `limit` of them.
    pub(crate) fn positions(
        &self,
        conn: &Connection,
        direction: Direction,
        low: i64,
        high: i64,
        limit: usize,
    ) -> rusqlite::Result<Vec<i64>> {
        if self.is_none() || limit == 0 || low > high {
            return Ok(Vec::new());
        }
        let sql_limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let statements = self.statements(direction, low, high, sql_limit);
        run_positions(conn, &statements, direction, limit)
    }
}

/// Runs statements of positions, each ordered in `direction` and limited, and returns
/// the first `limit` positions of their union, in order.
pub(crate) fn run_positions(
    conn: &Connection,
    statements: &[(String, Vec<Value>)],
    direction: Direction,
    limit: usize,
) -> rusqlite::Result<Vec<i64>> {
    let mut positions = Vec::new();
    for (sql, params) in statements {
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params_from_iter(params), |row| row.get::<_, i64>(0))?;
        for position in rows {
            positions.push(position?);
        }
    }
    if statements.len() > 1 {
        // Each statement is ordered and limited; the union's first `limit` are among
        // theirs.
        positions.sort_unstable();
        positions.dedup();
        if direction == Direction::Backward {
            positions.reverse();
        }
        positions.truncate(limit);
    }
    Ok(positions)
}

/// One `UNION` of `arms` with `?1` = low, `?2` = high, `?3` = limit, then the arms'
/// parameters.
fn statement(
    arms: &[Arm],
    direction: Direction,
    low: i64,
    high: i64,
    limit: i64,
) -> (String, Vec<Value>) {
    let mut params = vec![
        Value::Integer(low),
        Value::Integer(high),
        Value::Integer(limit),
    ];
    let mut bind = |value: &str| -> String {
        params.push(Value::Text(value.to_owned()));
        format!("?{}", params.len())
    };
    let mut selects = Vec::with_capacity(arms.len());
    for arm in arms {
        let select = match arm {
            Arm::All => "SELECT position AS position FROM events WHERE position BETWEEN ?1 AND ?2"
                .to_owned(),
            Arm::Type(event_type) => format!(
                "SELECT position AS position FROM events INDEXED BY events_by_type \
                 WHERE type = {} AND position BETWEEN ?1 AND ?2",
                bind(event_type)
            ),
            Arm::Tags { first, more, types } => {
                let (first_key, first_value) = first;
                let mut sql = format!(
                    "SELECT t0.position AS position FROM event_tags AS t0 \
                     WHERE t0.tag_key = {} AND t0.tag_value = {} AND t0.position BETWEEN ?1 AND ?2",
                    bind(first_key),
                    bind(first_value)
                );
                for (n, (key, value)) in more.iter().enumerate() {
                    let n = n + 1;
                    sql.push_str(&format!(
                        " AND EXISTS (SELECT 1 FROM event_tags AS t{n} WHERE t{n}.tag_key = {} \
                         AND t{n}.tag_value = {} AND t{n}.position = t0.position)",
                        bind(key),
                        bind(value)
                    ));
                }
                if !types.is_empty() {
                    let list: Vec<String> = types.iter().map(|t| bind(t)).collect();
                    sql.push_str(&format!(
                        " AND EXISTS (SELECT 1 FROM events AS ty WHERE ty.position = t0.position \
                         AND ty.type IN ({}))",
                        list.join(", ")
                    ));
                }
                sql
            }
        };
        selects.push(select);
    }
    let order = direction.sql();
    let sql = format!(
        "{} ORDER BY position {order} LIMIT ?3",
        selects.join(" UNION ")
    );
    (sql, params)
}

#[cfg(test)]
mod tests {
    use factum::{QueryItem, Tag};

    use super::*;

    #[test]
    fn an_item_of_nothing_but_any_makes_the_query_all() {
        let query = Query::item(QueryItem::types(["A"])).union(Query::all());
        assert_eq!(CompiledQuery::new(&query).arms, vec![Arm::All]);
    }

    #[test]
    fn types_only_items_give_one_arm_per_distinct_type() {
        let query = Query::item(QueryItem::types(["A", "B", "A"]))
            .union(Query::item(QueryItem::types(["B", "C"])));
        assert_eq!(
            CompiledQuery::new(&query).arms,
            vec![
                Arm::Type("A".into()),
                Arm::Type("B".into()),
                Arm::Type("C".into())
            ]
        );
    }

    #[test]
    fn query_none_has_no_arm() {
        assert!(CompiledQuery::new(&Query::none()).is_none());
        assert!(!CompiledQuery::new(&Query::all()).is_none());
    }

    #[test]
    fn tags_keep_key_and_value_apart() {
        let query =
            Query::item(QueryItem::any().with_tags([Tag::new("a", "b"), Tag::new("a", "b")]));
        assert_eq!(
            CompiledQuery::new(&query).arms,
            vec![Arm::Tags {
                first: ("a".into(), "b".into()),
                more: vec![],
                types: vec![]
            }]
        );
    }
}
