//! Two-sided permutation test on the difference of a statistic (the median
//! by default) between two samples.
//!
//! Under the null hypothesis (BASE and NEW come from the same distribution)
//! the labels are exchangeable: every split of the pooled samples into
//! groups of the original sizes is as likely as the observed one. The
//! p-value is the share of random splits whose |difference| is at least the
//! observed one, counting the observed split itself ((k + 1) / (R + 1), so
//! it is never 0). It makes no assumption about the shape of the
//! distribution, which for launch latencies is skewed and often bimodal.

use super::rng::SplitMix64;
use super::statistic::Statistic;

/// What a permutation test found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PermutationResult {
    /// statistic(new) - statistic(base).
    pub observed: f64,
    /// Two-sided p-value, in (0, 1].
    pub p_value: f64,
    /// Random splits drawn.
    pub resamples: usize,
    /// Splits at least as extreme as the observed one.
    pub extreme: usize,
}

/// Tests `base` against `new` with `resamples` random splits drawn from
/// `seed`. Both must be non-empty.
pub fn permutation_test(base: &[f64], new: &[f64], stat: Statistic, resamples: usize, seed: u64) -> PermutationResult {
    let n_base = base.len();
    let observed = stat.of(&mut new.to_vec()) - stat.of(&mut base.to_vec());
    let mut pool: Vec<f64> = base.iter().chain(new.iter()).copied().collect();
    let n = pool.len();
    // Splits whose difference equals the observed one up to rounding count
    // as extreme: floating-point noise must not make a tie look significant.
    let scale = pool.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let threshold = observed.abs() - scale * 1e-12;
    let mut rng = SplitMix64::new(seed);
    let mut extreme = 0usize;
    for _ in 0..resamples {
        // A partial Fisher-Yates shuffle: the first n_base positions become
        // a uniformly random subset, whatever order the pool is in.
        for i in 0..n_base {
            let j = i + rng.below(n - i);
            pool.swap(i, j);
        }
        let (a, b) = pool.split_at_mut(n_base);
        let d = stat.of(b) - stat.of(a);
        if d.abs() >= threshold {
            extreme += 1;
        }
    }
    PermutationResult { observed, p_value: (extreme + 1) as f64 / (resamples + 1) as f64, resamples, extreme }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(center: f64, spread: f64, n: usize, seed: u64) -> Vec<f64> {
        let mut r = SplitMix64::new(seed);
        (0..n).map(|_| center * (1.0 + spread * ((r.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5))).collect()
    }

    #[test]
    fn identical_samples_give_p_one() {
        let a = sample(10.0, 0.2, 50, 1);
        let r = permutation_test(&a, &a, Statistic::Median, 10_000, 3);
        assert_eq!(r.observed, 0.0);
        assert_eq!(r.p_value, 1.0);
        assert_eq!(r.extreme, 10_000);
    }

    #[test]
    fn a_clear_shift_is_significant_and_the_result_is_reproducible() {
        let a = sample(10.0, 0.1, 50, 1);
        let b = sample(11.0, 0.1, 50, 2);
        let r = permutation_test(&a, &b, Statistic::Median, 10_000, 3);
        assert!(r.observed > 0.5, "{r:?}");
        assert!(r.p_value < 0.001, "{r:?}");
        assert_eq!(r, permutation_test(&a, &b, Statistic::Median, 10_000, 3));
    }

    #[test]
    fn same_distribution_is_not_significant() {
        let a = sample(10.0, 0.2, 40, 11);
        let b = sample(10.0, 0.2, 40, 12);
        let r = permutation_test(&a, &b, Statistic::Median, 5_000, 3);
        assert!(r.p_value > 0.05, "{r:?}");
        let m = permutation_test(&a, &b, Statistic::Mean, 5_000, 3);
        assert!(m.p_value > 0.05, "{m:?}");
    }
}
