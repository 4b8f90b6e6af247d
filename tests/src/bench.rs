//! Statistics the benchmarks (`tests/examples/bench_*.rs`) report: nearest-rank percentiles and
//! the p50 / p95 / p99 / max summary of a series of timings.

use std::time::Duration;

/// The nearest-rank `p`-th percentile of `sorted` (ascending); NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A series of values, summarized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub n: usize,
}

pub fn summary(mut values: Vec<f64>) -> Summary {
    values.sort_by(|a, b| a.total_cmp(b));
    Summary {
        p50: percentile(&values, 50.0),
        p95: percentile(&values, 95.0),
        p99: percentile(&values, 99.0),
        max: values.last().copied().unwrap_or(f64::NAN),
        n: values.len(),
    }
}

/// Milliseconds of `d`, fractional.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 95.0), 95.0);
        assert_eq!(summary(values).max, 100.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
