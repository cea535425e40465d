//! The catalog and its analysis as Markdown tables: readable in a terminal, and pasted as
//! they are into a README or a design review.

use std::time::Duration;

use comfy_table::presets::ASCII_MARKDOWN;
use comfy_table::{ContentArrangement, Table};

use super::conflicts::Conflict;
use super::{Catalog, DecisionInfo};

impl Catalog {
    /// Every event type, state and decision with its metadata, the conflicts between
    /// decisions and the warnings of [`Catalog::analyze`], as Markdown.
    ///
    /// The output depends only on the catalog, so it can be kept in the docs and
    /// compared in a test.
    pub fn describe(&self) -> String {
        let analysis = self.analyze();
        let mut out = String::new();
        section(&mut out, "Events", self.events_table());
        section(&mut out, "States", self.states_table());
        section(&mut out, "Decisions", self.decisions_table());
        if analysis.conflicts.is_empty() {
            out.push_str("## Conflicts\n\nNo decision can invalidate another.\n\n");
        } else {
            section(&mut out, "Conflicts", conflicts_table(&analysis.conflicts));
        }
        out.push_str("## Warnings\n\n");
        if analysis.warnings.is_empty() {
            out.push_str("None.\n");
        }
        for (i, warning) in analysis.warnings.iter().enumerate() {
            out.push_str(&format!("{}. {}: {warning}.\n", i + 1, warning.kind()));
        }
        out
    }

    fn events_table(&self) -> Table {
        let mut table = table(&["event", "version", "tags", "groups", "public"]);
        for e in self.event_types() {
            table.add_row(escaped(vec![
                format!("`{}`", e.name),
                e.version.to_string(),
                list(e.tag_keys),
                list(e.groups),
                if e.public { "yes" } else { "no" }.to_owned(),
            ]));
        }
        table
    }

    fn states_table(&self) -> Table {
        let mut table = table(&["state", "ids", "folds"]);
        for s in self.states() {
            table.add_row(escaped(vec![
                format!("`{}`", s.name),
                list(s.id_keys),
                folds(s.types, s.any_type),
            ]));
        }
        table
    }

    fn decisions_table(&self) -> Table {
        let mut table = table(&[
            "decision",
            "validates (after exclusions)",
            "emits",
            "partition",
            "idempotency",
            "retries",
            "strategy",
        ]);
        for d in self.decisions() {
            let m = &d.meta;
            table.add_row(escaped(vec![
                format!("`{}`", m.name),
                validation(d),
                list(d.emitted_types()),
                match (m.partition, m.partition_tag) {
                    (Some(field), Some(tag)) if field != tag => format!("{field} (tag {tag})"),
                    (Some(field), _) => field.to_owned(),
                    (None, _) => "-".to_owned(),
                },
                m.idempotency.unwrap_or("-").to_owned(),
                format!(
                    "{} ({}..{})",
                    m.retry.max_retries,
                    millis(m.retry.min_delay),
                    millis(m.retry.max_delay)
                ),
                d.strategy().to_string(),
            ]));
        }
        table
    }
}

/// How to read the graph of [`Catalog::mermaid`].
const LEGEND: &str = "Boxes are decisions (with the strategy they run under), rounded nodes event \
types (green: public). A solid arrow: the decision may emit the type; a dotted arrow: its \
validation query covers the type; a dashed orange arrow: an exclusion removes the type \
from it. Coloured arrows take part in a conflict between decisions: green when one serial \
lane orders the two, orange when both are optimistic (retries), red when they run in \
different lanes (see the warnings). A red border marks a decision with a warning.";

fn conflicts_table(conflicts: &[Conflict]) -> Table {
    let mut table = table(&["writer", "invalidates", "in state", "through", "serialized"]);
    for c in conflicts {
        table.add_row(escaped(vec![
            format!("`{}`", c.writer),
            format!("`{}`", c.reader),
            format!("`{}` {}", c.state, by(c.keys)),
            list(&c.types),
            match c.serialized_by {
                Some(key) => format!("yes: one lane per `{key}`"),
                None => "no: retries".to_owned(),
            },
        ]));
    }
    table
}

/// Each state the decision reads, with the types its validation query keeps of it.
fn validation(d: &DecisionInfo) -> String {
    let mut parts: Vec<String> = Vec::new();
    for s in &d.states {
        let mut part = format!(
            "`{}` {}: {}",
            s.name,
            by(s.id_keys),
            folds(&d.validated_types_of(s), s.any_type)
        );
        let excluded = d.excluded_types_of(s);
        if !excluded.is_empty() {
            part.push_str(&format!(" (excludes {})", list(&excluded)));
        }
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join("; ")
    }
}

fn by(keys: &[&str]) -> String {
    if keys.is_empty() {
        "(whole)".to_owned()
    } else {
        format!("by {}", keys.join(", "))
    }
}

/// Cells safe in a Markdown table: a `|` in a (renamed) type name would end the cell.
fn escaped(cells: Vec<String>) -> Vec<String> {
    cells.into_iter().map(|c| c.replace('|', "\\|")).collect()
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

/// The types a state folds, and, when it reads every type, that it does.
fn folds(types: &[&str], any_type: bool) -> String {
    match (types, any_type) {
        (_, false) => list(types),
        ([], true) => "any type".to_owned(),
        (_, true) => format!("{}, any other type", list(types)),
    }
}

fn millis(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    // No wrapping: the output must not depend on the terminal it is printed in.
    table
        .load_preset(ASCII_MARKDOWN)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    table
}

fn section(out: &mut String, title: &str, table: Table) {
    out.push_str(&format!("## {title}\n\n{table}\n\n"));
}

impl Catalog {
    /// A Markdown page for the docs: `title` as its heading, the graph of
    /// [`Catalog::mermaid`] in a `mermaid` block (rendered by most Markdown viewers),
    /// then [`Catalog::describe`].
    pub fn document(&self, title: &str) -> String {
        format!(
            "# {title}\n\n```mermaid\n{}```\n\n{LEGEND}\n\n{}",
            self.mermaid(),
            self.describe()
        )
    }
}
