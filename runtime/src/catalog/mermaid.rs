//! The catalog as a Mermaid flowchart: decisions and event types as nodes, what a
//! decision emits and what its validation query covers as edges, conflicts in colour.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Catalog;
use super::conflicts::Analysis;

/// How an edge takes part in conflicts, worst last so `max` picks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Cost {
    /// In no conflict.
    None,
    /// In a conflict that one serial lane orders.
    Serialized,
    /// In a conflict between optimistic decisions: retries, as expected of them.
    Retries,
    /// In a conflict a warning is about (different lanes).
    Warned,
}

const STYLES: [(Cost, &str); 3] = [
    (Cost::Serialized, "stroke:#188038,stroke-width:2px"),
    (Cost::Retries, "stroke:#e37400,stroke-width:2px"),
    (Cost::Warned, "stroke:#d93025,stroke-width:3px"),
];
const EXCLUDES_STYLE: &str = "stroke:#e37400,stroke-width:2px,stroke-dasharray:6 4";

impl Catalog {
    /// The known event types `d`'s validation query covers: its states' named types, and
    /// for a state that reads every type, each catalog type carrying its ids.
    fn validated_known_types(&self, d: &super::DecisionInfo) -> Vec<&'static str> {
        let mut types = d.validated_types();
        for state in d.states.iter().filter(|s| s.any_type) {
            types.extend(
                self.event_types()
                    .filter(|e| state.id_keys.iter().all(|k| e.tag_keys.contains(k)))
                    .map(|e| e.name),
            );
        }
        types.sort_unstable();
        types.dedup();
        types
    }

    /// The catalog as a Mermaid `flowchart`, to paste into Markdown inside a ```` ```mermaid ````
    /// block: a solid edge from a decision to each type it may emit, a dotted edge from a
    /// decision to each type its validation query covers, and a dashed one labelled
    /// `excludes` for each type an exclusion removes from it. (Emits and validates edges
    /// carry no label: with dozens of them, labels overlap.) Edges in a conflict are coloured: green when one serial lane
    /// orders the two decisions, orange when both are optimistic (retries), red when a
    /// [`Warning::DifferentLanes`](super::Warning::DifferentLanes) is about them; decisions
    /// with a warning have a red border.
    pub fn mermaid(&self) -> String {
        let analysis = self.analyze();
        let decisions: BTreeMap<&str, String> = self
            .decisions()
            .enumerate()
            .map(|(i, d)| (d.meta.name, format!("d{i}")))
            .collect();
        let events: BTreeMap<&str, String> = self
            .event_types()
            .enumerate()
            .map(|(i, e)| (e.name, format!("e{i}")))
            .collect();

        let mut out = String::from("flowchart LR\n");
        for d in self.decisions() {
            let how = match d.meta.partition {
                Some(p) => format!("{} by {p}", d.strategy()),
                None => d.strategy().to_string(),
            };
            let _ = writeln!(
                out,
                "  {}[\"{}<br/><i>{}</i>\"]",
                decisions[d.meta.name],
                label(d.meta.name),
                label(&how)
            );
        }
        for e in self.event_types() {
            let _ = writeln!(out, "  {}([\"{}\"])", events[e.name], label(e.name));
        }

        let costs = edge_costs(&analysis);
        let mut styles: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut edge = 0usize;
        let mut push = |out: &mut String, line: String, style: Option<&'static str>| {
            let _ = writeln!(out, "  {line}");
            if let Some(style) = style {
                styles.entry(style).or_default().push(edge);
            }
            edge += 1;
        };
        let style_of = |cost: Cost| STYLES.iter().find(|(c, _)| *c == cost).map(|(_, s)| *s);
        for d in self.decisions() {
            let from = &decisions[d.meta.name];
            for t in d.emitted_types() {
                let Some(to) = events.get(t) else { continue };
                let cost = costs
                    .get(&(d.meta.name, *t, Role::Emits))
                    .copied()
                    .unwrap_or(Cost::None);
                push(&mut out, format!("{from} --> {to}"), style_of(cost));
            }
            for t in self.validated_known_types(d) {
                let Some(to) = events.get(t) else { continue };
                let cost = costs
                    .get(&(d.meta.name, t, Role::Validates))
                    .copied()
                    .unwrap_or(Cost::None);
                push(&mut out, format!("{from} -.-> {to}"), style_of(cost));
            }
            let mut excluded: Vec<&str> = d
                .states
                .iter()
                .flat_map(|s| d.excluded_types_of(s))
                .collect();
            excluded.sort_unstable();
            excluded.dedup();
            for t in excluded {
                let Some(to) = events.get(t) else { continue };
                push(
                    &mut out,
                    format!("{from} -.->|excludes| {to}"),
                    Some(EXCLUDES_STYLE),
                );
            }
        }

        out.push_str("  classDef decision fill:#e8f0fe,stroke:#3367d6\n");
        out.push_str("  classDef event fill:#fef7e0,stroke:#b06000\n");
        out.push_str("  classDef public fill:#e6f4ea,stroke:#188038\n");
        out.push_str("  classDef warned stroke:#d93025,stroke-width:3px\n");
        class(&mut out, "decision", decisions.values());
        let (public, private): (Vec<_>, Vec<_>) = self.event_types().partition(|e| e.public);
        class(&mut out, "event", private.iter().map(|e| &events[e.name]));
        class(&mut out, "public", public.iter().map(|e| &events[e.name]));
        let mut warned: Vec<&String> = analysis
            .warnings
            .iter()
            .flat_map(warned_decisions)
            .filter_map(|name| decisions.get(name))
            .collect();
        warned.sort_unstable();
        warned.dedup();
        class(&mut out, "warned", warned.into_iter());
        for (style, edges) in styles {
            let edges: Vec<String> = edges.iter().map(ToString::to_string).collect();
            let _ = writeln!(out, "  linkStyle {} {style}", edges.join(","));
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Emits,
    Validates,
}

/// The worst conflict each (decision, type, role) edge takes part in.
fn edge_costs(analysis: &Analysis) -> BTreeMap<(&'static str, &'static str, Role), Cost> {
    let mut costs = BTreeMap::new();
    for c in &analysis.conflicts {
        let warned = analysis.warnings.iter().any(|w| match w {
            super::Warning::DifferentLanes { conflicts, .. } => conflicts.contains(c),
            super::Warning::HotGlobalState {
                decision, state, ..
            } => c.writer == *decision && c.reader == *decision && c.state == *state,
            _ => false,
        });
        let cost = if warned {
            Cost::Warned
        } else if c.serialized_by.is_some() {
            Cost::Serialized
        } else {
            Cost::Retries
        };
        for t in &c.types {
            for key in [(c.writer, *t, Role::Emits), (c.reader, *t, Role::Validates)] {
                let entry = costs.entry(key).or_insert(Cost::None);
                *entry = (*entry).max(cost);
            }
        }
    }
    costs
}

fn warned_decisions(warning: &super::Warning) -> Vec<&'static str> {
    match warning {
        super::Warning::DifferentLanes { partitions, .. } => {
            partitions.iter().map(|(d, _)| *d).collect()
        }
        super::Warning::Overbooking { decision, .. }
        | super::Warning::PartitionNotValidated { decision, .. }
        | super::Warning::HotGlobalState { decision, .. } => vec![*decision],
    }
}

fn class<'a>(out: &mut String, class: &str, nodes: impl Iterator<Item = &'a String>) {
    let nodes: Vec<&str> = nodes.map(String::as_str).collect();
    if !nodes.is_empty() {
        let _ = writeln!(out, "  class {} {class}", nodes.join(","));
    }
}

/// Text safe inside a quoted Mermaid label.
fn label(text: &str) -> String {
    text.replace('#', "#35;")
        .replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}
