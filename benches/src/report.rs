//! The report: one row per measure, one column per store, medians, and each durable
//! store's ratio to the in-memory one; the contention scenarios' medians and their target
//! ratios.

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::scenarios::RunFigures;

/// One measure across stores: the medians, in the order of the report's stores.
pub struct Row {
    /// What was measured, with its unit.
    pub measure: String,
    /// Per store, the median rate (or `None` when the store was not run).
    pub medians: Vec<Option<f64>>,
}

/// Prints the table.
pub fn print(stores: &[&str], runs: usize, rows: &[Row]) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec![Cell::new(format!("median of {runs} runs"))];
    header.extend(stores.iter().map(Cell::new));
    header.extend(
        stores
            .iter()
            .skip(1)
            .map(|s| Cell::new(format!("{s} / {}", stores[0]))),
    );
    table.set_header(header);
    for row in rows {
        let mut cells = vec![Cell::new(&row.measure)];
        cells.extend(row.medians.iter().map(|m| {
            Cell::new(m.map_or_else(|| "-".to_owned(), human)).set_alignment(CellAlignment::Right)
        }));
        let base = row.medians.first().copied().flatten();
        cells.extend(row.medians.iter().skip(1).map(|m| {
            let ratio = match (m, base) {
                (Some(m), Some(b)) if b > 0.0 => format!("{:.3}", m / b),
                _ => "-".to_owned(),
            };
            Cell::new(ratio).set_alignment(CellAlignment::Right)
        }));
        table.add_row(cells);
    }
    println!("{table}");
}

/// Each durable store's decisions on distinct keys from 8 submitters against its
/// reference row (the commits/s of single-row INSERTs with no store): above 1, decisions
/// share commits.
pub fn print_against_ceiling(stores: &[&str], rows: &[Row]) {
    let find = |prefix: &str| rows.iter().find(|r| r.measure.starts_with(prefix));
    let (Some(decisions), Some(ceiling)) = (
        find("decisions/s, distinct keys, 8 submitters"),
        find("reference: commits/s"),
    ) else {
        return;
    };
    for (s, store) in stores.iter().enumerate() {
        if let (Some(Some(d)), Some(Some(c))) = (decisions.medians.get(s), ceiling.medians.get(s)) {
            println!(
                "{store}: decisions/s on distinct keys from 8 submitters / the reference row: {:.2}",
                d / c
            );
        }
    }
}

/// 1234567.8 → "1.23 M".
fn human(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2} M", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} k", value / 1e3)
    } else {
        format!("{value:.0}")
    }
}

/// The medians over runs of one contention scenario on one store.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Medians {
    /// Committed decisions per second.
    pub decisions_per_s: f64,
    /// Retries (appends refused by their condition).
    pub retries: f64,
    /// Median decision latency, in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile decision latency, in milliseconds.
    pub p99_ms: f64,
    /// Store transactions the lanes committed.
    pub lane_batches: f64,
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median_of(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

impl Medians {
    /// The medians of `runs`, figure by figure.
    pub fn of(runs: &[RunFigures]) -> Medians {
        Medians {
            decisions_per_s: median_of(runs.iter().map(|r| r.decisions_per_s)),
            retries: median_of(runs.iter().map(|r| r.retries as f64)),
            p50_ms: median_of(runs.iter().map(|r| r.p50_ms)),
            p99_ms: median_of(runs.iter().map(|r| r.p99_ms)),
            lane_batches: median_of(runs.iter().map(|r| r.lane_batches as f64)),
        }
    }
}

/// One contention scenario across stores.
pub struct ContentionRow {
    /// The workload's name.
    pub workload: String,
    /// The strategy's name.
    pub strategy: String,
    /// Per store, the medians (`None` when the store was not run).
    pub medians: Vec<Option<Medians>>,
    /// What a cell without medians says: `-`, or `n/a` for a strategy that was skipped
    /// (the distributed lanes without a NATS server).
    pub missing: &'static str,
}

/// Prints the contention table: per store, decisions/s, retries, p50 and p99.
pub fn print_contention(stores: &[&str], runs: usize, rows: &[ContentionRow]) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    let mut header = vec![Cell::new(format!("median of {runs} runs"))];
    for store in stores {
        header.push(Cell::new(format!("{store}\ndecisions/s")));
        header.push(Cell::new(format!("{store}\nretries")));
        header.push(Cell::new(format!("{store}\np50 / p99 ms")));
    }
    table.set_header(header);
    for row in rows {
        let mut cells = vec![Cell::new(format!("{} · {}", row.workload, row.strategy))];
        for m in &row.medians {
            let right = |text: String| Cell::new(text).set_alignment(CellAlignment::Right);
            match m {
                Some(m) => {
                    cells.push(right(human(m.decisions_per_s)));
                    cells.push(right(format!("{:.0}", m.retries)));
                    cells.push(right(format!(
                        "{} / {}",
                        millis(m.p50_ms),
                        millis(m.p99_ms)
                    )));
                }
                None => cells.extend((0..3).map(|_| right(row.missing.to_owned()))),
            }
        }
        table.add_row(cells);
    }
    println!("{table}");
}

/// A target ratio between two strategies on one store.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    /// The store.
    pub store: String,
    /// Which ratio, as an identifier.
    pub id: &'static str,
    /// What it compares.
    pub description: &'static str,
    /// The ratio aimed at (at least); `None` for a ratio reported without a target.
    pub target: Option<f64>,
    /// The ratio in each run (both strategies measured in that run on that store).
    pub per_run: Vec<f64>,
    /// The median of `per_run`.
    pub median: f64,
    /// For targets that also ask for no retries: the retries of the faster strategy in
    /// each run.
    pub retries_per_run: Option<Vec<u64>>,
    /// Whether the median reaches the target (and no run had retries, where asked);
    /// `None` without a target.
    pub met: Option<bool>,
}

/// Prints the target ratios.
pub fn print_ratios(runs: usize, ratios: &[Ratio]) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec![
        Cell::new("store"),
        Cell::new(format!("ratio (median of {runs} runs, each in one run)")),
        Cell::new("median"),
        Cell::new("per run"),
        Cell::new("target"),
        Cell::new("met"),
    ]);
    for r in ratios {
        let per_run: Vec<String> = r.per_run.iter().map(|&x| per_run_ratio(x)).collect();
        let target = match (r.target, &r.retries_per_run) {
            (None, _) => "-".to_owned(),
            (Some(t), Some(_)) => format!("≥ {t}×, 0 retries"),
            (Some(t), None) => format!("≥ {t}×"),
        };
        let met = match r.met {
            None => "-",
            Some(true) => "yes",
            Some(false) => "no",
        };
        table.add_row(vec![
            Cell::new(&r.store),
            Cell::new(r.description),
            Cell::new(ratio(r.median)).set_alignment(CellAlignment::Right),
            Cell::new(per_run.join(" ")),
            Cell::new(target),
            Cell::new(met),
        ]);
    }
    println!("{table}");
}

/// 12.34 → "12.3×", 0.1234 → "0.12×": two significant digits below 1.
fn ratio(x: f64) -> String {
    format!("{}×", per_run_ratio(x))
}

/// 12.34 → "12.3", 0.1234 → "0.12".
fn per_run_ratio(x: f64) -> String {
    if x >= 1.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// 12.345 → "12.3", 0.1234 → "0.12".
fn millis(ms: f64) -> String {
    if ms >= 10.0 {
        format!("{ms:.0}")
    } else if ms >= 1.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

/// Prints one contention run's figures (and its store calls, when profiled) to stderr.
pub fn log_run(label: &str, f: &RunFigures) {
    let failed = if f.failed > 0 {
        format!(", {} FAILED", f.failed)
    } else {
        String::new()
    };
    eprintln!(
        "{label}: {:.0} decisions/s, {} retries, {} batches, p50 {:.2} ms, p99 {:.2} ms{failed}",
        f.decisions_per_s, f.retries, f.lane_batches, f.p50_ms, f.p99_ms,
    );
    for c in f.calls.iter().flatten() {
        eprintln!(
            "    {:<22} {:>6} calls, {:>5.2}/decision, {:>8.3} ms each, {:>9.1} ms in all",
            c.call, c.count, c.per_decision, c.mean_ms, c.total_ms
        );
    }
    if f.batched_requests > 0 {
        eprintln!(
            "    {:.1} requests per append_batch",
            f.batched_requests as f64 / f.lane_batches.max(1) as f64
        );
    }
}
