//! The statistic a metric is compared on, and the spread measure that
//! decides whether a metric is too noisy to call unchanged.

use serde::{Deserialize, Serialize};

/// Which statistic of the samples is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Statistic {
    /// The median: robust to the outliers launch latencies have (a page
    /// fault storm, a scheduler hiccup); the default.
    Median,
    /// The mean: for metrics whose every sample counts (throughput).
    Mean,
}

impl Statistic {
    /// The statistic of `xs` (reorders `xs`; `NaN` when empty).
    pub fn of(self, xs: &mut [f64]) -> f64 {
        match self {
            Statistic::Median => median_in_place(xs),
            Statistic::Mean => {
                if xs.is_empty() {
                    f64::NAN
                } else {
                    xs.iter().sum::<f64>() / xs.len() as f64
                }
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Statistic::Median => "median",
            Statistic::Mean => "mean",
        }
    }
}

/// The median (mean of the two middle values for an even count, as
/// `versus::stats::median`), by selection: O(n), reorders `xs`.
pub fn median_in_place(xs: &mut [f64]) -> f64 {
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    let mid = n / 2;
    let (lower, m, _) = xs.select_nth_unstable_by(mid, f64::total_cmp);
    let hi = *m;
    if n % 2 == 1 {
        hi
    } else {
        let lo = lower.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo + hi) / 2.0
    }
}

/// The median of `xs` (copies).
pub fn median(xs: &[f64]) -> f64 {
    median_in_place(&mut xs.to_vec())
}

/// Median absolute deviation (unscaled).
pub fn mad(xs: &[f64]) -> f64 {
    let m = median(xs);
    let mut dev: Vec<f64> = xs.iter().map(|x| (x - m).abs()).collect();
    median_in_place(&mut dev)
}

/// Relative spread: MAD / |median| (0 when every sample is equal; infinite
/// when the median is 0 and the samples are not all 0).
pub fn spread(xs: &[f64]) -> f64 {
    let m = median(xs);
    let d = mad(xs);
    if d == 0.0 {
        0.0
    } else if m == 0.0 {
        f64::INFINITY
    } else {
        d / m.abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_matches_the_stats_module() {
        for xs in [vec![3.0, 1.0, 2.0], vec![4.0, 1.0, 3.0, 2.0], vec![5.0], vec![2.0, 2.0, 9.0, -1.0, 0.5, 7.0]] {
            assert_eq!(median(&xs), crate::stats::median(&xs), "{xs:?}");
        }
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn spread_is_mad_over_median() {
        assert_eq!(spread(&[1.0, 2.0, 3.0, 4.0, 5.0]), 1.0 / 3.0);
        assert_eq!(spread(&[7.0, 7.0, 7.0]), 0.0);
        assert_eq!(spread(&[0.0, 0.0, 1.0, -1.0, 0.0]), 0.0);
        assert!(spread(&[0.0, 1.0, -1.0]).is_infinite());
        assert_eq!(Statistic::Mean.of(&mut [1.0, 2.0, 6.0]), 3.0);
    }
}
