//! Selecting chart and report data from sample rows.

use crate::model::{Metric, Sample};
use crate::platform::registry;
use crate::stats;

/// Platforms that have rows of `metric`, in report order (known platforms
/// in registry order, then others in first-seen order).
pub fn platforms_with(samples: &[Sample], metric: &Metric) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for s in samples.iter().filter(|s| s.metric == *metric) {
        if !seen.contains(&s.platform) {
            seen.push(s.platform.clone());
        }
    }
    seen.sort_by_key(|p| registry::order(p));
    seen
}

/// Points of a curve: (N, value).
pub type Curve = Vec<(u32, f64)>;

/// Values of `metric` for `platform` (and `workload`, `unit` when given).
pub fn values(samples: &[Sample], platform: &str, workload: Option<&str>, metric: &Metric, unit: Option<&str>) -> Vec<f64> {
    samples
        .iter()
        .filter(|s| s.platform == platform && s.metric == *metric && workload.is_none_or(|w| s.workload == w) && unit.is_none_or(|u| s.unit == u))
        .map(|s| s.value)
        .filter(|v| v.is_finite())
        .collect()
}

/// The workload to chart `metric` for: the first of `prefer` that has rows,
/// else the first workload seen with that metric.
pub fn pick_workload(samples: &[Sample], metric: &Metric, prefer: &[&str]) -> Option<String> {
    for p in prefer {
        if samples.iter().any(|s| s.metric == *metric && s.workload == *p) {
            return Some(p.to_string());
        }
    }
    samples.iter().find(|s| s.metric == *metric).map(|s| s.workload.clone())
}

/// The five numbers of a box plot: whisker low, q1, median, q3, whisker
/// high (Tukey: the furthest points within 1.5 IQR), plus the outliers.
#[derive(Debug, Clone, PartialEq)]
pub struct BoxStats {
    pub low: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub high: f64,
    pub outliers: Vec<f64>,
    pub n: usize,
}

pub fn box_stats(xs: &[f64]) -> Option<BoxStats> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let q1 = stats::percentile_sorted(&v, 25.0);
    let q3 = stats::percentile_sorted(&v, 75.0);
    let median = stats::percentile_sorted(&v, 50.0);
    let iqr = q3 - q1;
    let (lo_f, hi_f) = (q1 - 1.5 * iqr, q3 + 1.5 * iqr);
    let low = v.iter().copied().find(|x| *x >= lo_f).unwrap_or(q1);
    let high = v.iter().rev().copied().find(|x| *x <= hi_f).unwrap_or(q3);
    let outliers = v.iter().copied().filter(|x| *x < lo_f || *x > hi_f).collect();
    Some(BoxStats { low, q1, median, q3, high, outliers, n: v.len() })
}

/// Median of `metric` for a platform and workload, if any rows.
pub fn median_of(samples: &[Sample], platform: &str, workload: Option<&str>, metric: &Metric, unit: Option<&str>) -> Option<f64> {
    let v = values(samples, platform, workload, metric, unit);
    (!v.is_empty()).then(|| stats::median(&v))
}

/// `(iteration, value)` pairs of a metric, sorted by iteration (the curve
/// rows: density and image growth use iteration = N).
pub fn by_iteration(samples: &[Sample], platform: &str, workload: Option<&str>, metric: &Metric, unit: Option<&str>) -> Vec<(u32, f64)> {
    let mut v: Vec<(u32, f64)> = samples
        .iter()
        .filter(|s| s.platform == platform && s.metric == *metric && workload.is_none_or(|w| s.workload == w) && unit.is_none_or(|u| s.unit == u))
        .map(|s| (s.iteration, s.value))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_stats_follow_tukey() {
        let b = box_stats(&[1.0, 2.0, 3.0, 4.0, 100.0]).unwrap();
        assert_eq!((b.q1, b.median, b.q3), (2.0, 3.0, 4.0));
        assert_eq!((b.low, b.high), (1.0, 4.0));
        assert_eq!(b.outliers, vec![100.0]);
        assert!(box_stats(&[]).is_none());
    }
}
