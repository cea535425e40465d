//! The statements reading a [`Filter`](super::Filter)'s events.

use super::Arm;

/// What a statement of [`Filter::select`](super::Filter::select) reads and how.
pub(crate) struct Scan<'a> {
    /// The schema, quoted.
    pub schema: &'a str,
    /// The columns returned, of the events table, unqualified.
    pub columns: &'a str,
    /// The bound on positions, as `>= $1` or `> $1` (after) or `<= $1` (backwards).
    pub bound: &'a str,
    /// More conditions every event returned meets, each over the events' columns
    /// qualified as `e` (`e.tx < $4::text::xid8`).
    pub also: &'a [String],
    /// Newest first.
    pub descending: bool,
    /// At most this many events (SQL: a placeholder or a number).
    pub limit: Option<&'a str>,
    /// Whether each event is returned once (a read). A check, which takes only the first
    /// event, lets the arms overlap: each arm's condition is then its own, without the
    /// exclusion of the earlier arms' events, which PostgreSQL plans on every check
    /// (about 0.1 ms less for two arms).
    pub once: bool,
}

impl Scan<'_> {
    /// The scan of an append's condition check: the position and type of the first
    /// event after `$1` that matches, among those meeting `also`. Arms may overlap
    /// ([`Scan::once`]).
    pub(crate) fn check<'a>(schema: &'a str, also: &'a [String]) -> Scan<'a> {
        Scan {
            schema,
            columns: "position, type",
            bound: "> $1",
            also,
            descending: false,
            limit: Some("1"),
            once: false,
        }
    }

    /// ` AND c` for each condition `c` of `also`.
    fn also_sql(&self) -> String {
        self.also.iter().map(|c| format!(" AND {c}")).collect()
    }

    /// ` DESC` or nothing.
    fn order_sql(&self) -> &'static str {
        if self.descending { " DESC" } else { "" }
    }

    /// ` LIMIT n` or nothing.
    fn limit_sql(&self) -> String {
        self.limit
            .map(|l| format!(" LIMIT {l}"))
            .unwrap_or_default()
    }
}

/// A query of more arms than this is read as one condition ([`select_planned`]): each arm
/// excludes the events of every arm before it, so the statement grows with the square of
/// the arms, and planning it costs more than walking saves: the read of a lane batch's
/// cold states, one item per state for up to 64 states, made the peer benchmark's hot
/// coupon with serial lanes four times slower (600 against 2,400 decisions/s).
const MAX_ARMS: usize = 4;

/// The statement of [`Filter::select`](super::Filter::select) for `arms` (none: every event).
///
/// A tag's arm walks the tag's entries in `event_tags` from the bound, in position order,
/// and fetches each event by its position: a read starting late in a long-lived state's
/// history starts there, not at the state's first event; a decision's check stops at the
/// first conflicting event; a whole state streams in order, without a sort. The fetch is
/// a lateral subquery the planner cannot flatten (`OFFSET 0`): left to itself, with the
/// estimates a cached plan has, it joined the tag's entries to the GIN index's and
/// sorted (4 ms to find no event after a snapshot, against 0.2 ms). Each arm is its own
/// ordered subquery (with the limit: none needs more), and the arms are merged in
/// position order; for a read they are disjoint ([`exclusive`]), so no event comes twice
/// and the limit counts events. No arm, or more than [`MAX_ARMS`]: [`select_planned`].
pub(super) fn select(arms: &[Arm], scan: &Scan<'_>) -> String {
    if arms.is_empty() || arms.len() > MAX_ARMS {
        return select_planned(arms, scan);
    }
    let (also, order, limit) = (scan.also_sql(), scan.order_sql(), scan.limit_sql());
    let qualified = qualified(scan.columns);
    let arm = |i: usize| {
        let condition = if scan.once {
            exclusive(arms, i)
        } else {
            arms[i].condition.clone()
        };
        match &arms[i].tag {
            Some(tag) => format!(
                "SELECT {qualified} FROM {schema}.event_tags t CROSS JOIN LATERAL \
                 (SELECT * FROM {schema}.events e WHERE e.position = t.position{also} \
                 AND {condition} OFFSET 0) e \
                 WHERE t.tag = {tag} AND t.position {bound} ORDER BY t.position{order}{limit}",
                schema = scan.schema,
                bound = scan.bound,
            ),
            // With a limit, `position + 0`: the planner then cannot walk the primary key
            // in order hoping to meet an event of the types early (with a rare type, that
            // walk reads the whole table); it finds them all by the `(type, position)`
            // index, within the bound, and sorts them.
            None => format!(
                "SELECT {qualified} FROM {schema}.events e \
                 WHERE e.position {bound}{also} AND {condition} \
                 ORDER BY e.position{plus}{order}{limit}",
                schema = scan.schema,
                bound = scan.bound,
                plus = if scan.limit.is_some() { " + 0" } else { "" },
            ),
        }
    };
    if arms.len() == 1 {
        return arm(0);
    }
    let arms: Vec<String> = (0..arms.len()).map(|i| format!("({})", arm(i))).collect();
    format!(
        "SELECT {columns} FROM ({arms}) e ORDER BY position{order}{limit}",
        columns = scan.columns,
        arms = arms.join(" UNION ALL "),
    )
}

/// Arm `i`'s condition, and none of the earlier arms': every condition is TRUE or FALSE,
/// never NULL (the columns are NOT NULL, the parameters hold no NULL), so NOT leaves out
/// exactly the earlier arms' events, and no event is found twice.
pub(super) fn exclusive(arms: &[Arm], i: usize) -> String {
    let earlier: Vec<&str> = arms[..i].iter().map(|a| a.condition.as_str()).collect();
    if earlier.is_empty() {
        arms[i].condition.clone()
    } else {
        format!("{} AND NOT ({})", arms[i].condition, earlier.join(" OR "))
    }
}

/// The statement of [`Filter::select_planned`](super::Filter::select_planned): the whole condition on the events table,
/// the plan the planner's.
///
/// With a limit and a condition, `position + 0`: the planner then cannot walk the primary
/// key in order hoping to meet a match early (with a rare tag, that walk reads the whole
/// table); it finds all matches through the indexes and sorts them.
pub(super) fn select_planned(arms: &[Arm], scan: &Scan<'_>) -> String {
    let condition = if arms.is_empty() {
        String::new()
    } else {
        let each: Vec<&str> = arms.iter().map(|a| a.condition.as_str()).collect();
        format!(" AND ({})", each.join(" OR "))
    };
    format!(
        "SELECT {qualified} FROM {schema}.events e WHERE e.position {bound}{also}{condition} \
         ORDER BY e.position{plus}{order}{limit}",
        qualified = qualified(scan.columns),
        plus = if scan.limit.is_some() && !arms.is_empty() {
            " + 0"
        } else {
            ""
        },
        schema = scan.schema,
        bound = scan.bound,
        also = scan.also_sql(),
        order = scan.order_sql(),
        limit = scan.limit_sql(),
    )
}

/// `columns` (`a, b`) as columns of `e` (`e.a, e.b`).
fn qualified(columns: &str) -> String {
    let qualified: Vec<String> = columns
        .split(',')
        .map(|c| format!("e.{}", c.trim()))
        .collect();
    qualified.join(", ")
}

#[cfg(test)]
pub(super) mod tests {
    use factum::{Query, QueryItem, Tag};

    use super::*;
    use crate::sql::filter;

    /// A forward read of `position, type` in schema `s`, each event once.
    pub(in crate::sql) fn scan(limit: Option<&str>) -> Scan<'_> {
        Scan {
            schema: "s",
            columns: "position, type",
            bound: ">= $1",
            also: &[],
            descending: false,
            limit,
            once: true,
        }
    }

    #[test]
    fn arms_are_merged_in_order() {
        let q: Query = [
            QueryItem::types(["A"]),
            QueryItem::any().with_tags([Tag::new("y", "2")]),
        ]
        .into_iter()
        .collect();
        let select = filter(&q, 2).map(|f| {
            f.select(&Scan {
                descending: true,
                also: &["e.tx < $5".to_owned()],
                bound: "<= $1",
                ..scan(Some("$4"))
            })
        });
        assert_eq!(
            select.as_deref(),
            Some(
                "SELECT position, type FROM (\
                 (SELECT e.position, e.type FROM s.events e WHERE e.position <= $1 AND e.tx < $5 \
                 AND (e.type = ANY($3::text[])) ORDER BY e.position + 0 DESC LIMIT $4) \
                 UNION ALL \
                 (SELECT e.position, e.type FROM s.event_tags t CROSS JOIN LATERAL \
                 (SELECT * FROM s.events e WHERE e.position = t.position AND e.tx < $5 \
                 AND (e.tags @> $2::text[]) AND NOT ((e.type = ANY($3::text[]))) OFFSET 0) e \
                 WHERE t.tag = ($2::text[])[1] AND t.position <= $1 \
                 ORDER BY t.position DESC LIMIT $4)) e ORDER BY position DESC LIMIT $4"
            )
        );
    }

    #[test]
    fn a_planned_select_is_one_condition() {
        let q: Query = [
            QueryItem::types(["A"]),
            QueryItem::any().with_tags([Tag::new("y", "2")]),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            filter(&q, 2)
                .map(|f| f.select_planned(&scan(None)))
                .as_deref(),
            Some(
                "SELECT e.position, e.type FROM s.events e WHERE e.position >= $1 \
                 AND ((e.type = ANY($3::text[])) OR (e.tags @> $2::text[])) ORDER BY e.position"
            )
        );
        assert_eq!(
            filter(&Query::all(), 2)
                .map(|f| f.select_planned(&scan(Some("$3"))))
                .as_deref(),
            Some(
                "SELECT e.position, e.type FROM s.events e WHERE e.position >= $1 ORDER BY e.position LIMIT $3"
            )
        );
    }

    #[test]
    fn checks_let_arms_overlap_and_many_arms_are_one_condition() {
        let q: Query = [
            QueryItem::any().with_tags([Tag::new("x", "1")]),
            QueryItem::any().with_tags([Tag::new("y", "2")]),
        ]
        .into_iter()
        .collect();
        let check = filter(&q, 2).map(|f| {
            f.select(&Scan {
                once: false,
                ..scan(Some("1"))
            })
        });
        let check = check.unwrap_or_default();
        assert!(check.contains("UNION ALL"), "{check}");
        assert!(!check.contains("NOT"), "{check}");
        let read = filter(&q, 2)
            .map(|f| f.select(&scan(None)))
            .unwrap_or_default();
        assert!(read.contains("AND NOT ((e.tags @> $2::text[]))"), "{read}");

        let many: Query = (0..=MAX_ARMS)
            .map(|i| QueryItem::any().with_tags([Tag::new("k", i.to_string())]))
            .collect();
        let f = filter(&many, 2);
        assert_eq!(
            f.as_ref().map(|f| f.select(&scan(Some("$9")))),
            f.as_ref().map(|f| f.select_planned(&scan(Some("$9"))))
        );
        assert!(
            f.map(|f| f.select(&scan(Some("$9"))))
                .unwrap_or_default()
                .contains("ORDER BY e.position + 0 LIMIT $9")
        );
    }
}
