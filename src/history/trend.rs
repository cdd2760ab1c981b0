//! A metric over time: each run's median per host fingerprint, and a drift
//! flag when the last run's median falls outside median ± k·IQR of the
//! previous N runs on the same fingerprint (the runs' medians).

use serde::Serialize;

use super::store::RunValues;
use crate::compare::data::{HostFingerprint, MetricKey};
use crate::compare::statistic::median;

/// Defaults of the drift flag.
pub const DEFAULT_WINDOW: usize = 10;
/// k = 3: with IQR ≈ 1.35σ for a normal spread of run medians, ±3 IQR is
/// about ±4σ, so a stable host flags well under one run in a thousand, and
/// a step of a few IQRs (a real change) is flagged at once.
pub const DEFAULT_K: f64 = 3.0;
/// Fewer previous runs than this: no flag (no band to judge by).
pub const MIN_PREVIOUS: usize = 3;

/// One run's point.
#[derive(Debug, Clone, Serialize)]
pub struct TrendPoint {
    pub run_id: String,
    pub started_at: u64,
    pub versus_version: String,
    pub git_revision: Option<String>,
    pub n: usize,
    pub median: f64,
}

/// The band the last run is judged by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    /// Previous runs the band comes from.
    pub previous: usize,
    pub center: f64,
    pub iqr: f64,
    pub low: f64,
    pub high: f64,
    pub last: f64,
    /// The last run lies outside the band.
    pub drifted: bool,
}

/// A metric's series on one host fingerprint.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub host_id: String,
    pub host: HostFingerprint,
    pub key: MetricKey,
    pub points: Vec<TrendPoint>,
    pub drift: Option<Drift>,
}

/// The band of `previous` (median ± k·IQR) and where `last` lies.
pub fn drift(previous: &[f64], last: f64, k: f64) -> Option<Drift> {
    if previous.len() < MIN_PREVIOUS {
        return None;
    }
    let mut s = previous.to_vec();
    s.sort_by(f64::total_cmp);
    let center = median(&s);
    let iqr = crate::stats::percentile_sorted(&s, 75.0) - crate::stats::percentile_sorted(&s, 25.0);
    let (low, high) = (center - k * iqr, center + k * iqr);
    Some(Drift { previous: s.len(), center, iqr, low, high, last, drifted: last < low || last > high })
}

/// Builds the series of a metric from the store's rows.
pub fn series(rows: std::collections::BTreeMap<(HostFingerprint, MetricKey), Vec<RunValues>>, window: usize, k: f64) -> Vec<Series> {
    rows.into_iter()
        .map(|((host, key), runs)| {
            let points: Vec<TrendPoint> = runs
                .into_iter()
                .filter(|r| !r.values.is_empty())
                .map(|r| TrendPoint {
                    n: r.values.len(),
                    median: median(&r.values),
                    run_id: r.run_id,
                    started_at: r.started_at,
                    versus_version: r.versus_version,
                    git_revision: r.git_revision,
                })
                .collect();
            let drift = match points.split_last() {
                Some((last, before)) => {
                    let prev: Vec<f64> = before.iter().rev().take(window).map(|p| p.median).collect();
                    drift(&prev, last.median, k)
                }
                None => None,
            };
            Series { host_id: host.id(), host, key, points, drift }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_a_step_not_the_noise() {
        let prev = [10.0, 10.2, 9.9, 10.1, 10.0, 9.8, 10.3];
        let d = drift(&prev, 10.25, 3.0).unwrap();
        assert!(!d.drifted, "{d:?}");
        let d = drift(&prev, 12.0, 3.0).unwrap();
        assert!(d.drifted, "{d:?}");
        assert_eq!(d.previous, 7);
        assert!(drift(&prev[..2], 50.0, 3.0).is_none(), "too few previous runs to judge");
        // Deterministic metrics: IQR 0, any change is drift.
        assert!(drift(&[5.0, 5.0, 5.0], 5.5, 3.0).unwrap().drifted);
        assert!(!drift(&[5.0, 5.0, 5.0], 5.0, 3.0).unwrap().drifted);
    }
}
