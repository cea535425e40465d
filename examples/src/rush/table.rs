//! One row per run: the figures of the table and the checks a run must pass.

use std::time::Duration;

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use factum::EngineStats;

use super::audit::Audit;
use super::scenario::{Answer, Kind, Observed, Run, Rush};

/// The figures of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Which run.
    pub run: Run,
    /// Commands answered (opens, applications, background items).
    pub decisions: u64,
    /// From the doors opening to the last answer.
    pub elapsed: Duration,
    /// Median latency of an application of the coupon, from handing it to the
    /// dispatcher to its answer.
    pub p50: Duration,
    /// 99th percentile of that latency.
    pub p99: Duration,
    /// Appends refused by their condition ([`EngineStats::conflicts`]).
    pub conflicts: u64,
    /// Attempts beyond the first, summed over the commands that committed.
    pub retries: u64,
    /// The most attempts a command that committed took.
    pub max_attempts: u32,
    /// The most attempts the application's retry policy allows.
    pub allowed_attempts: u32,
    /// How many uses the coupon has.
    pub uses: u32,
    /// Applications of the coupon in the log.
    pub applied: u64,
    /// The most applications a tolerant run may commit: the uses, plus one per
    /// concurrent submitter (an application commits over the uses only if it read the
    /// coupon before the last use was taken, and was still in flight then).
    pub bound: u64,
    /// The most applications in flight at once.
    pub peak_in_flight: usize,
    /// Commands lost (see [`audit`](super::audit)).
    pub lost: u64,
    /// Events duplicated (see [`audit`](super::audit)).
    pub duplicated: u64,
    /// The engine's counters over the rush.
    pub stats: EngineStats,
    /// Commits the commands were told of, replays of an earlier commit excluded.
    pub committed: u64,
    /// Domain refusals the commands were told of.
    pub refused: u64,
    /// Of those, applications refused because the coupon was used up.
    pub used_up: u64,
    /// Serial lanes the dispatcher ran.
    pub lanes: usize,
    /// What else the audit found wrong, and its details on lost and duplicated commands.
    pub findings: Vec<String>,
}

impl Summary {
    /// The figures of `observed`, a run of `rush`, as `audit` checked it.
    pub fn new(rush: &Rush, observed: &Observed, audit: &Audit) -> Self {
        let mut waits: Vec<Duration> = observed
            .commands
            .iter()
            .filter(|c| c.kind == Kind::ApplyCoupon)
            .map(|c| c.latency)
            .collect();
        waits.sort_unstable();
        let mut retries = 0;
        let mut max_attempts = 0;
        let mut committed = 0;
        for command in &observed.commands {
            if let Answer::Committed {
                attempts, replayed, ..
            } = &command.answer
            {
                retries += u64::from(attempts.saturating_sub(1));
                max_attempts = max_attempts.max(*attempts);
                committed += u64::from(!replayed);
            }
        }
        let mut findings = audit.problems.clone();
        findings.extend(audit.details.iter().cloned());
        Summary {
            run: observed.run,
            decisions: observed.commands.len() as u64,
            elapsed: observed.elapsed,
            p50: percentile(&waits, 0.50),
            p99: percentile(&waits, 0.99),
            conflicts: observed.stats.conflicts,
            retries,
            max_attempts,
            allowed_attempts: observed.run.allowed_attempts(),
            uses: rush.uses,
            applied: audit.applied,
            bound: u64::from(rush.uses) + rush.submitters as u64,
            peak_in_flight: observed.peak_in_flight,
            lost: audit.lost,
            duplicated: audit.duplicated,
            stats: observed.stats,
            committed,
            refused: audit.refused,
            used_up: audit.used_up,
            lanes: observed.lanes,
            findings,
        }
    }

    /// Decisions answered per second.
    pub fn per_second(&self) -> f64 {
        self.decisions as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Why the run fails, if it does: a strict run applies the coupon exactly `uses`
    /// times, a tolerant one at least `uses` and at most [`Summary::bound`] times;
    /// nothing is lost or duplicated; the log reads back and folds; the engine counted
    /// the commits and refusals the commands were told of.
    pub fn problems(&self) -> Vec<String> {
        let name = self.run.name();
        let mut problems: Vec<String> = self
            .findings
            .iter()
            .map(|f| format!("{name}: {f}"))
            .collect();
        if self.lost > 0 {
            problems.push(format!("{name}: {} commands lost", self.lost));
        }
        if self.duplicated > 0 {
            problems.push(format!("{name}: {} events duplicated", self.duplicated));
        }
        let uses = u64::from(self.uses);
        if !self.run.tolerant() && self.applied != uses {
            problems.push(format!(
                "{name}: the coupon was applied {} times, not exactly {uses}",
                self.applied
            ));
        }
        if self.run.tolerant() && !(uses..=self.bound).contains(&self.applied) {
            problems.push(format!(
                "{name}: the coupon was applied {} times, outside {uses}..={}",
                self.applied, self.bound
            ));
        }
        if self.decisions > 0
            && (self.stats.committed, self.stats.rejected) != (self.committed, self.refused)
        {
            problems.push(format!(
                "{name}: the engine counted {} commits and {} refusals, the commands were \
                 told of {} and {}",
                self.stats.committed, self.stats.rejected, self.committed, self.refused
            ));
        }
        problems
    }
}

/// The value below which a `fraction` of the sorted `values` lie (nearest rank).
fn percentile(values: &[Duration], fraction: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = (fraction * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

/// 0.42 ms, 12.3 ms, 345 ms, 1.23 s.
fn human(wait: Duration) -> String {
    let ms = wait.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// The table of the runs: decisions/s, the applications' p50 and p99 latencies, conflicts,
/// retries, coupons applied, lost and duplicated commands.
pub fn table(summaries: &[Summary]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "strategy",
        "decisions/s",
        "p50 apply",
        "p99 apply",
        "conflicts",
        "retries",
        "coupons applied",
        "lost",
        "duplicated",
    ]);
    for s in summaries {
        let over = s.applied.saturating_sub(u64::from(s.uses));
        let short = u64::from(s.uses).saturating_sub(s.applied);
        let applied = if over > 0 {
            format!("{} ({over} over)", s.applied)
        } else if short > 0 {
            format!("{} ({short} short)", s.applied)
        } else {
            s.applied.to_string()
        };
        let right = |text: String| Cell::new(text).set_alignment(CellAlignment::Right);
        table.add_row([
            Cell::new(s.run.name()),
            right(format!("{:.0}", s.per_second())),
            right(human(s.p50)),
            right(human(s.p99)),
            right(s.conflicts.to_string()),
            right(s.retries.to_string()),
            right(applied),
            right(s.lost.to_string()),
            right(s.duplicated.to_string()),
        ]);
    }
    table
}

/// What the table does not show, one line per run: refusals, the unluckiest commit's
/// attempts, the batches of serial lanes, the overbooking bound of the tolerant run.
pub fn notes(summaries: &[Summary]) -> Vec<String> {
    summaries
        .iter()
        .map(|s| {
            let mut note = format!(
                "{}: {} refused ({} found the coupon used up)",
                s.run.name(),
                s.refused,
                s.used_up
            );
            if s.retries > 0 {
                note.push_str(&format!(
                    "; the unluckiest commit took {} of the {} attempts allowed",
                    s.max_attempts, s.allowed_attempts
                ));
            }
            match s.run {
                Run::SerialLanes => note.push_str(&format!(
                    "; {} commits in {} store transactions on {} lanes",
                    s.stats.committed, s.stats.batches, s.lanes
                )),
                Run::Tolerant => note.push_str(&format!(
                    "; {} submitters, so at most {} may commit (peak {} applications in flight)",
                    s.bound - u64::from(s.uses),
                    s.bound,
                    s.peak_in_flight
                )),
                _ => {}
            }
            note
        })
        .collect()
}
