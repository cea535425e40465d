//! The analysis's findings as text: what `describe` prints and `Display` shows.

use std::fmt;

use super::{Conflict, Warning};

/// `a, b and c`, each in backticks.
fn names(items: &[&str]) -> String {
    listed(items, "and")
}

/// `a, b or c`, each in backticks.
fn alternatives(items: &[&str]) -> String {
    listed(items, "or")
}

fn listed(items: &[&str], conjunction: &str) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    match quoted.as_slice() {
        [] => "nothing".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conjunction} {last}", init.join(", ")),
    }
}

/// `by coupon`, `by course and student`, or `as a whole` for a state without ids.
fn instance(keys: &[&str]) -> String {
    if keys.is_empty() {
        "as a whole".to_owned()
    } else {
        format!("by {}", names(keys))
    }
}

fn runs(partition: Option<&str>) -> String {
    match partition {
        Some(p) => format!("serial lanes by `{p}`"),
        None => "optimistic".to_owned(),
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` emits {}, which `{}` validates in `{}` {}",
            self.writer,
            names(&self.types),
            self.reader,
            self.state,
            instance(self.keys)
        )
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::DifferentLanes {
                conflicts,
                partitions,
                several,
            } => {
                let Some(first) = conflicts.first() else {
                    return Ok(());
                };
                let fix = match (first.keys, several.as_slice()) {
                    (_, [_, ..]) => format!(
                        "{} {} several `{}` states, which one partition key cannot cover: accept the retries, or split the work into one decision per state",
                        names(several),
                        if several.len() == 1 { "reads" } else { "read" },
                        first.state
                    ),
                    ([], _) => "run them optimistically, or accept the retries".to_owned(),
                    (keys, _) => format!(
                        "partition both by {} to decide them one after another, or accept the retries",
                        alternatives(keys)
                    ),
                };
                let [(a, a_partition), (b, b_partition)] = *partitions;
                let partition_of = |name: &str| if name == a { a_partition } else { b_partition };
                let who = if a == b {
                    format!(
                        "two `{a}` commands ({}) can invalidate each other",
                        runs(a_partition)
                    )
                } else if conflicts.len() > 1 {
                    format!(
                        "`{a}` ({}) and `{b}` ({}) can invalidate each other",
                        runs(a_partition),
                        runs(b_partition)
                    )
                } else {
                    format!(
                        "`{}` ({}) can invalidate `{}` ({})",
                        first.writer,
                        runs(partition_of(first.writer)),
                        first.reader,
                        runs(partition_of(first.reader))
                    )
                };
                let through: Vec<String> = conflicts
                    .iter()
                    .map(|c| format!("`{}` emits {}", c.writer, names(&c.types)))
                    .collect();
                write!(
                    f,
                    "{who} in `{}` {} ({}), but do not share a lane for it: a commit of one fails the other's append, which retries; {fix}",
                    first.state,
                    instance(first.keys),
                    through.join("; ")
                )
            }
            Warning::Overbooking {
                decision,
                state,
                keys,
                excluded,
                emitted_by,
                in_lanes,
            } => {
                write!(
                    f,
                    "`{decision}` excludes {} from `{state}`: concurrent {} commits on one `{state}` {} pass its check together, so `{state}` can be overbooked by up to one per decision in flight",
                    names(excluded),
                    names(emitted_by),
                    instance(keys),
                )?;
                if *in_lanes {
                    write!(
                        f,
                        " (only when it runs optimistically or under a store lock: serial lanes, its default, ignore exclusions)"
                    )?;
                }
                Ok(())
            }
            Warning::PartitionNotValidated {
                decision,
                partition,
                validated_keys,
            } => {
                if validated_keys.is_empty() {
                    write!(
                        f,
                        "`{decision}` is partitioned by `{partition}`, but validates no state identified by a tag: the key orders nothing it relies on; drop `partition`"
                    )
                } else {
                    write!(
                        f,
                        "`{decision}` is partitioned by `{partition}`, which is not a tag it validates on ({}): two commands on one state can land in different lanes and conflict; partition by {}",
                        names(validated_keys),
                        alternatives(validated_keys)
                    )
                }
            }
            Warning::HotGlobalState {
                decision,
                state,
                types,
                retries,
            } => write!(
                f,
                "`{decision}` (optimistic) validates `{state}` as a whole and emits {} into it: any two `{decision}` commands conflict, so n at once commit one per round and the last retries up to n - 1 times (its {retries} retries cover {} at once, slowly); give `{state}` an id its events carry as a tag (such as the series of the numbers: one series for the whole store is one value) and partition `{decision}` by it, so that one serial lane decides them one after another without retries",
                names(types),
                retries.saturating_add(1)
            ),
        }
    }
}
