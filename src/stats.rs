//! Summary statistics of repeated measurements, as hyperfine reports them
//! and a little more: mean, standard deviation, median, p95, p99, min, max,
//! median absolute deviation, outliers by the modified Z-score (flagged,
//! never dropped), and a bootstrap 95% confidence interval of the median.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub stddev: f64,
    pub median: f64,
    pub p95: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
    /// Median absolute deviation (unscaled).
    pub mad: f64,
    /// Samples whose modified Z-score exceeds [`OUTLIER_Z`].
    pub outliers: usize,
    pub ci95_low: f64,
    pub ci95_high: f64,
}

/// The modified Z-score threshold of Iglewicz and Hoaglin, as hyperfine uses.
pub const OUTLIER_Z: f64 = 3.5;
/// Bootstrap resamples for the median's confidence interval.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;

/// Percentile with linear interpolation between closest ranks (p in 0..=100)
/// of sorted data.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let rank = (p / 100.0).clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = rank.floor() as usize;
            let hi = rank.ceil() as usize;
            sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
        }
    }
}

fn sorted(xs: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

pub fn median(xs: &[f64]) -> f64 {
    percentile_sorted(&sorted(xs), 50.0)
}

/// Modified Z-scores: 0.6745 (x - median) / MAD. With a MAD of zero, every
/// sample equal to the median scores 0 and any other scores infinity.
pub fn modified_z_scores(xs: &[f64]) -> Vec<f64> {
    let med = median(xs);
    let mad = median(&xs.iter().map(|x| (x - med).abs()).collect::<Vec<_>>());
    xs.iter()
        .map(|x| {
            let d = x - med;
            if mad > 0.0 {
                0.6745 * d / mad
            } else if d == 0.0 {
                0.0
            } else {
                f64::INFINITY.copysign(d)
            }
        })
        .collect()
}

/// A small deterministic PRNG (xorshift64*) so that summaries are
/// reproducible from the same samples.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Percentile bootstrap 95% interval of the median.
pub fn bootstrap_median_ci(xs: &[f64], resamples: usize) -> (f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    if n == 1 {
        return (xs[0], xs[0]);
    }
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
    let mut meds = Vec::with_capacity(resamples);
    let mut buf = vec![0.0; n];
    for _ in 0..resamples {
        for b in buf.iter_mut() {
            *b = xs[rng.below(n)];
        }
        buf.sort_by(f64::total_cmp);
        meds.push(percentile_sorted(&buf, 50.0));
    }
    meds.sort_by(f64::total_cmp);
    (percentile_sorted(&meds, 2.5), percentile_sorted(&meds, 97.5))
}

/// Summarises samples (non-finite values are ignored). `None` when empty.
pub fn summarize(xs: &[f64]) -> Option<Summary> {
    let s = sorted(xs);
    let n = s.len();
    if n == 0 {
        return None;
    }
    let mean = s.iter().sum::<f64>() / n as f64;
    let stddev = if n > 1 { (s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
    let median = percentile_sorted(&s, 50.0);
    let mad = percentile_sorted(&sorted(&s.iter().map(|x| (x - median).abs()).collect::<Vec<_>>()), 50.0);
    let outliers = modified_z_scores(&s).iter().filter(|z| z.abs() > OUTLIER_Z).count();
    let (ci95_low, ci95_high) = bootstrap_median_ci(&s, BOOTSTRAP_RESAMPLES);
    Some(Summary {
        n,
        mean,
        stddev,
        median,
        p95: percentile_sorted(&s, 95.0),
        p99: percentile_sorted(&s, 99.0),
        min: s[0],
        max: s[n - 1],
        mad,
        outliers,
        ci95_low,
        ci95_high,
    })
}

/// A least-squares line `y = intercept + slope * x`, with what it leaves
/// unexplained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LinearFit {
    /// Points fitted.
    pub n: usize,
    pub intercept: f64,
    pub slope: f64,
    /// Residual standard error: sqrt(sum of squared residuals / (n - 2));
    /// 0 for two points (a line through them leaves nothing).
    pub rmse: f64,
    /// Standard errors of the intercept and the slope (0 below 3 points).
    pub se_intercept: f64,
    pub se_slope: f64,
}

impl LinearFit {
    /// The fitted value at `x`.
    pub fn at(&self, x: f64) -> f64 {
        self.intercept + self.slope * x
    }
    /// 95% confidence interval of the slope (Student's t with n - 2
    /// degrees of freedom); the slope itself when there are fewer than 3 points.
    pub fn slope_ci95(&self) -> (f64, f64) {
        let h = t975(self.n.saturating_sub(2)) * self.se_slope;
        (self.slope - h, self.slope + h)
    }
    /// 95% confidence interval of the intercept.
    pub fn intercept_ci95(&self) -> (f64, f64) {
        let h = t975(self.n.saturating_sub(2)) * self.se_intercept;
        (self.intercept - h, self.intercept + h)
    }
}

/// Ordinary least squares over `(x, y)` points (non-finite ones ignored).
/// `None` with fewer than two points or when every x is the same.
pub fn linear_fit(points: &[(f64, f64)]) -> Option<LinearFit> {
    let p: Vec<(f64, f64)> = points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
    let n = p.len();
    if n < 2 {
        return None;
    }
    let nf = n as f64;
    let mx = p.iter().map(|q| q.0).sum::<f64>() / nf;
    let my = p.iter().map(|q| q.1).sum::<f64>() / nf;
    let sxx: f64 = p.iter().map(|q| (q.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = p.iter().map(|q| (q.0 - mx) * (q.1 - my)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    let ssr: f64 = p.iter().map(|q| (q.1 - intercept - slope * q.0).powi(2)).sum();
    let (rmse, se_slope, se_intercept) = if n > 2 {
        let s2 = ssr / (nf - 2.0);
        (s2.sqrt(), (s2 / sxx).sqrt(), (s2 * (1.0 / nf + mx * mx / sxx)).sqrt())
    } else {
        (0.0, 0.0, 0.0)
    };
    Some(LinearFit { n, intercept, slope, rmse, se_intercept, se_slope })
}

/// The 97.5% quantile of Student's t with `df` degrees of freedom (a table
/// to 30, then a close approximation); 0 for df = 0.
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080,
        2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => 0.0,
        d if d <= 30 => T[d - 1],
        d => 1.95996 + 2.37 / d as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fit_recovers_a_known_line_and_reports_its_residual() {
        // 3 MiB fixed + 17 MiB per instance, with a deterministic wobble
        // of +-64 KiB around the line.
        let mib = 1048576.0;
        let pts: Vec<(f64, f64)> = (1..=40).map(|n| (n as f64, 3.0 * mib + 17.0 * mib * n as f64 + if n % 2 == 0 { 65536.0 } else { -65536.0 })).collect();
        let f = linear_fit(&pts).unwrap();
        assert_eq!(f.n, 40);
        assert!((f.slope - 17.0 * mib).abs() < 0.01 * mib, "{f:?}");
        assert!((f.intercept - 3.0 * mib).abs() < 0.1 * mib, "{f:?}");
        assert!((f.rmse - 65536.0).abs() < 2000.0, "the residual is the wobble: {f:?}");
        let (lo, hi) = f.slope_ci95();
        assert!(lo < 17.0 * mib && 17.0 * mib < hi);
        // Exact points leave no residual.
        let exact = linear_fit(&[(1.0, 5.0), (2.0, 7.0), (4.0, 11.0)]).unwrap();
        assert!((exact.slope - 2.0).abs() < 1e-12 && (exact.intercept - 3.0).abs() < 1e-12 && exact.rmse < 1e-9);
        assert!(linear_fit(&[(1.0, 1.0)]).is_none());
        assert!(linear_fit(&[(2.0, 1.0), (2.0, 3.0)]).is_none(), "one x: no line");
        assert_eq!(t975(0), 0.0);
        assert!((t975(1000) - 1.962).abs() < 0.01);
    }

    #[test]
    fn known_values() {
        let s = summarize(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert_eq!(s.n, 5);
        assert_eq!(s.mean, 3.0);
        assert_eq!(s.median, 3.0);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 5.0);
        assert_eq!(s.mad, 1.0);
        assert!((s.stddev - 2.5f64.sqrt()).abs() < 1e-12);
        assert!((s.p95 - 4.8).abs() < 1e-12);
        assert_eq!(s.outliers, 0);
        assert!(s.ci95_low <= s.median && s.median <= s.ci95_high);
        assert!(s.ci95_low >= 1.0 && s.ci95_high <= 5.0);
    }

    #[test]
    fn flags_outliers_without_dropping_them() {
        let mut xs = vec![10.0, 10.1, 9.9, 10.0, 10.2, 9.8, 10.0];
        xs.push(50.0);
        let s = summarize(&xs).unwrap();
        assert_eq!(s.outliers, 1);
        assert_eq!(s.n, 8);
        assert_eq!(s.max, 50.0);
    }

    #[test]
    fn degenerate_inputs() {
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[f64::NAN]).is_none());
        let one = summarize(&[7.0]).unwrap();
        assert_eq!((one.median, one.stddev, one.ci95_low, one.ci95_high), (7.0, 0.0, 7.0, 7.0));
        let flat = summarize(&[2.0, 2.0, 2.0, 3.0]).unwrap();
        assert_eq!(flat.mad, 0.0);
        assert_eq!(flat.outliers, 1, "with MAD 0 a differing sample is an outlier");
    }

    #[test]
    fn bootstrap_is_deterministic() {
        let xs: Vec<f64> = (0..50).map(|i| (i * 37 % 11) as f64).collect();
        assert_eq!(bootstrap_median_ci(&xs, 500), bootstrap_median_ci(&xs, 500));
    }
}
