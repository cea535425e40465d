//! The report: one row per measure, one column per store, medians, and each durable
//! store's ratio to the in-memory one.

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

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
