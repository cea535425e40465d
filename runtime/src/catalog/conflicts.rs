//! Static conflict analysis: which decisions can invalidate which, and where that costs.
//!
//! A decision's append is refused when an event matching its validation query was
//! committed after it read. So decision `W` can invalidate decision `R` when `W` may emit
//! a type that one of `R`'s states folds (any type, for a state with an `#[any]` handler;
//! and `R` does not exclude — unless `R` runs in
//! serial lanes, its default with a partition key, where exclusions do not apply),
//! carrying that state's id tags: the two meet on those tags (a coupon, a cart). Whether that costs a
//! retry depends on where they run: two decisions partitioned by the same one of those
//! tags go to the same serial lane for any instance they share, and are decided one after
//! another; otherwise each commit of one can fail the other's append.
//!
//! The macros cannot see which tag a field's value ends up in, so the analysis takes a
//! decision's partition key to be a value of the tag named like its field
//! (`partition = coupon` holds a `coupon`), or of the tag `partition_tag` names
//! (`partition = from, partition_tag = "account"`).

use super::{Catalog, DecisionInfo, StateInfo};

/// One way a decision can invalidate another (or itself, with another command).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The decision whose events can fail the other's append.
    pub writer: &'static str,
    /// The decision whose validation query covers those events.
    pub reader: &'static str,
    /// The reader's state whose part of the validation query covers them.
    pub state: &'static str,
    /// The tags they meet on: the state's ids (empty: every event of the types counts).
    pub keys: &'static [&'static str],
    /// The writer's event types that fall in the reader's validation query.
    pub types: Vec<&'static str>,
    /// The tag whose value, as both decisions' partition key, sends both to one serial
    /// lane for any instance they share; `None` when nothing orders them and a commit
    /// of one fails the other's append (also when either reads several states of the
    /// kind, as one key covers only one of them).
    pub serialized_by: Option<&'static str>,
}

/// Something in the model worth a look before production.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// Two decisions (or two commands of one) may invalidate each other through one
    /// state but are not routed to one lane for it: retries will happen.
    DifferentLanes {
        /// The conflicts between the two through that state: one, or one each way,
        /// ordered by writer.
        conflicts: Vec<Conflict>,
        /// The partition key of each of the two, in the order of their names.
        partitions: [(&'static str, Option<&'static str>); 2],
        /// Those of the two that read several states of the kind (no key covers them).
        several: Vec<&'static str>,
    },
    /// An exclusion lets concurrent decisions pass one check: overbooking is possible.
    Overbooking {
        /// The decision with the exclusion.
        decision: &'static str,
        /// The state whose part of the validation query loses the types.
        state: &'static str,
        /// That state's id tags: what can be overbooked (one coupon, one course).
        keys: &'static [&'static str],
        /// The excluded event types.
        excluded: Vec<&'static str>,
        /// The decisions that emit them, whose concurrent commits are not seen.
        emitted_by: Vec<&'static str>,
        /// Whether the decision runs in serial lanes by default, where exclusions do
        /// not apply (overbooking then needs an optimistic or store-lock run).
        in_lanes: bool,
    },
    /// A decision is partitioned by a key none of its validated states is identified by.
    PartitionNotValidated {
        /// The decision.
        decision: &'static str,
        /// The tag its partition key is a value of (see
        /// [`DecisionMeta::partition_tag_key`](crate::decide::DecisionMeta::partition_tag_key)).
        partition: &'static str,
        /// The tags it does validate on (its validated states' ids).
        validated_keys: Vec<&'static str>,
    },
    /// An optimistic decision validates a state without ids (one for the whole store,
    /// such as the last invoice number) and emits into it: any two of its commands
    /// conflict, so `n` at once commit one at a time and the last takes up to `n`
    /// attempts. Given an id its events carry (a series, even a single one) and a
    /// partition key on it, the decision runs in serial lanes, one after another,
    /// without retries.
    HotGlobalState {
        /// The decision.
        decision: &'static str,
        /// The state without ids.
        state: &'static str,
        /// The decision's event types that the state folds.
        types: Vec<&'static str>,
        /// The decision's retry limit: how many others at once it outlasts.
        retries: u32,
    },
}

impl Warning {
    /// A short name for the kind of warning, as tables print it.
    pub fn kind(&self) -> &'static str {
        match self {
            Warning::DifferentLanes { .. } => "different lanes",
            Warning::Overbooking { .. } => "overbooking",
            Warning::PartitionNotValidated { .. } => "partition not validated",
            Warning::HotGlobalState { .. } => "hot global state",
        }
    }
}

/// Everything the analysis found, in a fixed order (by decision names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Every pair of decisions where one can invalidate the other.
    pub conflicts: Vec<Conflict>,
    /// What deserves a look.
    pub warnings: Vec<Warning>,
}

impl Catalog {
    /// Finds which decisions can invalidate which and what that will cost; see
    /// [the catalog's module docs](crate::catalog) for the rules.
    pub fn analyze(&self) -> Analysis {
        let mut analysis = Analysis::default();
        for writer in self.decisions() {
            for reader in self.decisions() {
                for state in distinct_states(reader) {
                    analysis
                        .conflicts
                        .extend(self.conflict(writer, reader, state));
                }
            }
        }
        // One warning per pair of decisions and state, whichever way the conflicts go.
        let mut groups: Vec<Vec<Conflict>> = Vec::new();
        for c in analysis
            .conflicts
            .iter()
            .filter(|c| c.serialized_by.is_none())
        {
            let partition = |name: &str| self.decision_info(name).and_then(|d| d.meta.partition);
            if partition(c.writer).is_none() && partition(c.reader).is_none() {
                // Both optimistic: conflicts and retries are what they chose.
                continue;
            }
            let pair = |c: &Conflict| (c.writer.min(c.reader), c.writer.max(c.reader), c.state);
            match groups.iter_mut().find(|g| pair(&g[0]) == pair(c)) {
                Some(group) => group.push(c.clone()),
                None => groups.push(vec![c.clone()]),
            }
        }
        for conflicts in groups {
            let (a, b, _) = {
                let c = &conflicts[0];
                (c.writer.min(c.reader), c.writer.max(c.reader), c.state)
            };
            let state = conflicts[0].state;
            let partition = |name: &'static str| {
                (
                    name,
                    self.decision_info(name).and_then(|d| d.meta.partition),
                )
            };
            let mut several: Vec<&'static str> = [a, b]
                .into_iter()
                .filter(|d| {
                    self.decision_info(d)
                        .is_some_and(|d| d.several.contains(&state))
                })
                .collect();
            several.dedup();
            analysis.warnings.push(Warning::DifferentLanes {
                conflicts,
                partitions: [partition(a), partition(b)],
                several,
            });
        }
        for decision in self.decisions() {
            analysis.warnings.extend(self.overbooking(decision));
            analysis.warnings.extend(partition_not_validated(decision));
            analysis.warnings.extend(self.hot_global_states(decision));
        }
        analysis
    }

    /// How `writer` can invalidate `reader` through `state`, if it can.
    fn conflict(
        &self,
        writer: &DecisionInfo,
        reader: &DecisionInfo,
        state: &StateInfo,
    ) -> Option<Conflict> {
        let types = self.meeting_types(writer.emitted_types(), |t| reader.guards(state, t), state);
        if types.is_empty() {
            return None;
        }
        // One lane per value of a tag of the state orders the two for each instance,
        // unless one of them touches several instances of the state, as its key can
        // cover only one.
        let serialized_by = match (
            writer.meta.partition_tag_key(),
            reader.meta.partition_tag_key(),
        ) {
            (Some(w), Some(r))
                if w == r
                    && state.id_keys.contains(&w)
                    && !writer.several.contains(&state.name)
                    && !reader.several.contains(&state.name) =>
            {
                Some(w)
            }
            _ => None,
        };
        Some(Conflict {
            writer: writer.meta.name,
            reader: reader.meta.name,
            state: state.name,
            keys: state.id_keys,
            types,
            serialized_by,
        })
    }

    /// The types of `emitted` that `state`'s query covers among those `covered` says:
    /// those that carry every one of the state's id tags (an event without one never
    /// matches it). A type the catalog does not know is kept: better a warning too many
    /// than one missed.
    fn meeting_types(
        &self,
        emitted: &[&'static str],
        covered: impl Fn(&str) -> bool,
        state: &StateInfo,
    ) -> Vec<&'static str> {
        emitted
            .iter()
            .copied()
            .filter(|t| covered(t))
            .filter(|t| {
                self.event_info(t)
                    .is_none_or(|e| state.id_keys.iter().all(|k| e.tag_keys.contains(k)))
            })
            .collect()
    }

    /// The states without ids an optimistic `decision` writes into itself: every two of
    /// its commands conflict there (the pair analysis leaves optimistic decisions to
    /// their retries, which for such a state grow with the number of writers).
    fn hot_global_states(&self, decision: &DecisionInfo) -> Vec<Warning> {
        if decision.meta.partition.is_some() {
            // A lane's key cannot serialize a state without ids: `DifferentLanes` says so.
            return Vec::new();
        }
        distinct_states(decision)
            .filter(|state| state.id_keys.is_empty())
            .filter_map(|state| self.conflict(decision, decision, state))
            .map(|c| Warning::HotGlobalState {
                decision: decision.meta.name,
                state: c.state,
                types: c.types,
                retries: decision.meta.retry.max_retries,
            })
            .collect()
    }

    /// The overbooking `decision`'s exclusions make possible, one warning per state.
    fn overbooking(&self, decision: &DecisionInfo) -> Vec<Warning> {
        let mut warnings = Vec::new();
        for state in distinct_states(decision) {
            let excluded = decision.excluded_types_of(state);
            if excluded.is_empty() {
                continue;
            }
            let emitted_by: Vec<&'static str> = self
                .decisions()
                .filter(|w| {
                    !self
                        .meeting_types(w.emitted_types(), |t| excluded.contains(&t), state)
                        .is_empty()
                })
                .map(|w| w.meta.name)
                .collect();
            // Nothing in the model emits them: nothing to overbook with.
            if emitted_by.is_empty() {
                continue;
            }
            warnings.push(Warning::Overbooking {
                decision: decision.meta.name,
                state: state.name,
                keys: state.id_keys,
                excluded,
                emitted_by,
                in_lanes: decision.meta.partition.is_some(),
            });
        }
        warnings
    }
}

fn partition_not_validated(decision: &DecisionInfo) -> Option<Warning> {
    let partition = decision.meta.partition_tag_key()?;
    let mut validated_keys: Vec<&'static str> = distinct_states(decision)
        .filter(|s| s.any_type || !decision.guarded_types_of(s).is_empty())
        .flat_map(|s| s.id_keys.iter().copied())
        .collect();
    validated_keys.sort_unstable();
    validated_keys.dedup();
    if validated_keys.contains(&partition) {
        return None;
    }
    Some(Warning::PartitionNotValidated {
        decision: decision.meta.name,
        partition,
        validated_keys,
    })
}

/// A decision's states, each kind once (a `Vec<Price>` or a tuple may name one twice).
fn distinct_states(decision: &DecisionInfo) -> impl Iterator<Item = &StateInfo> {
    decision
        .states
        .iter()
        .enumerate()
        .filter(|(i, s)| !decision.states[..*i].iter().any(|t| t.name == s.name))
        .map(|(_, s)| s)
}
