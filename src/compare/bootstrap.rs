//! Percentile bootstrap confidence interval of the relative change of a
//! statistic, `statistic(new) / statistic(base) - 1`: each side is
//! resampled with replacement on its own, as the two runs were measured
//! independently.

use super::rng::SplitMix64;
use super::statistic::Statistic;

/// A two-sided interval `(low, high)` of the relative change at `level`
/// (0.95 for 95%); `None` when no resample had a non-zero base statistic.
pub fn relative_change_ci(base: &[f64], new: &[f64], stat: Statistic, resamples: usize, level: f64, seed: u64) -> Option<(f64, f64)> {
    if base.is_empty() || new.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = SplitMix64::new(seed);
    let mut a = vec![0.0; base.len()];
    let mut b = vec![0.0; new.len()];
    let mut changes = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        for x in a.iter_mut() {
            *x = base[rng.below(base.len())];
        }
        for x in b.iter_mut() {
            *x = new[rng.below(new.len())];
        }
        let sa = stat.of(&mut a);
        let sb = stat.of(&mut b);
        if sa != 0.0 && sa.is_finite() && sb.is_finite() {
            changes.push(sb / sa - 1.0);
        }
    }
    if changes.is_empty() {
        return None;
    }
    changes.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0 * 100.0;
    Some((crate::stats::percentile_sorted(&changes, tail), crate::stats::percentile_sorted(&changes, 100.0 - tail)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_a_known_shift_and_is_deterministic() {
        let base: Vec<f64> = (0..50).map(|i| 10.0 + (i % 7) as f64 * 0.1).collect();
        let new: Vec<f64> = base.iter().map(|x| x * 1.10).collect();
        let (lo, hi) = relative_change_ci(&base, &new, Statistic::Median, 5_000, 0.95, 9).unwrap();
        assert!(lo < 0.10 + 1e-9 && hi > 0.10 - 1e-9 && lo > 0.05 && hi < 0.15, "({lo}, {hi})");
        assert_eq!(Some((lo, hi)), relative_change_ci(&base, &new, Statistic::Median, 5_000, 0.95, 9));
    }

    #[test]
    fn identical_constant_samples_give_a_zero_interval_and_zero_base_gives_none() {
        assert_eq!(relative_change_ci(&[2.0; 20], &[2.0; 20], Statistic::Median, 100, 0.95, 1), Some((0.0, 0.0)));
        assert_eq!(relative_change_ci(&[0.0; 20], &[1.0; 20], Statistic::Median, 100, 0.95, 1), None);
    }
}
