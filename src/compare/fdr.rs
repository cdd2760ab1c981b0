//! Benjamini-Hochberg control of the false discovery rate across the
//! metrics compared: a run has dozens of metrics, and at α = 0.01 each,
//! testing them one by one would flag a false regression in a good share of
//! A/A comparisons. BH-adjusted p-values (q-values) compared with α keep
//! the expected share of false regressions among those flagged below α.

/// BH-adjusted p-values, in the order of `p`: q(i) = min over j >= i of
/// m p(j) / j for the p-values sorted ascending, capped at 1.
pub fn bh_adjust(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut q = vec![1.0; m];
    let mut running = 1.0f64;
    for (rank0, &i) in order.iter().enumerate().rev() {
        let rank = rank0 + 1;
        running = running.min(p[i] * m as f64 / rank as f64).min(1.0);
        q[i] = running;
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_example() {
        // m = 5: sorted p (0.01, 0.02, 0.03, 0.04, 0.5) -> 5p/rank =
        // (0.05, 0.05, 0.05, 0.05, 0.5), monotone from the top.
        let q = bh_adjust(&[0.5, 0.02, 0.01, 0.04, 0.03]);
        let want = [0.5, 0.05, 0.05, 0.05, 0.05];
        for (a, b) in q.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{q:?}");
        }
    }

    #[test]
    fn never_below_p_never_above_one_and_empty_is_empty() {
        let p = [0.001, 0.9, 0.2, 0.2, 1.0, 0.0004];
        let q = bh_adjust(&p);
        for (pi, qi) in p.iter().zip(&q) {
            assert!(qi >= pi && *qi <= 1.0);
        }
        assert!(bh_adjust(&[]).is_empty());
        assert_eq!(bh_adjust(&[0.3]), vec![0.3]);
    }
}
