//! Timing helpers: rates and medians.

use std::time::{Duration, Instant};

/// A measured rate: `count` operations in `elapsed`.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    /// Operations done.
    pub count: u64,
    /// Time taken.
    pub elapsed: Duration,
}

impl Rate {
    /// Operations per second.
    pub fn per_second(self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Times `f`, which does `count` operations.
pub async fn rate<F: std::future::Future<Output = ()>>(count: u64, f: F) -> Rate {
    let started = Instant::now();
    f.await;
    Rate {
        count,
        elapsed: started.elapsed(),
    }
}

/// The median of the rates per second (the mean of the middle two for an even count).
pub fn median(rates: &[Rate]) -> f64 {
    let mut values: Vec<f64> = rates.iter().map(|r| r.per_second()).collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
