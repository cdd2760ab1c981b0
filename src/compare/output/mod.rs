//! What a comparison is written as: a terminal table, Markdown for a CI
//! step summary, JSON and JUnit XML.

pub mod json;
pub mod junit;
pub mod markdown;
pub mod table;

use super::verdict::{MetricResult, ProbeResult, Reason, Verdict};

/// A value in its unit, readable: bytes as KiB/MiB/GiB, others with four
/// significant digits.
pub fn fmt_value(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    if unit.starts_with("bytes") {
        let a = v.abs();
        return if a >= (1u64 << 30) as f64 {
            format!("{:.2} GiB", v / (1u64 << 30) as f64)
        } else if a >= (1u64 << 20) as f64 {
            format!("{:.2} MiB", v / (1u64 << 20) as f64)
        } else if a >= 1024.0 {
            format!("{:.1} KiB", v / 1024.0)
        } else {
            format!("{v:.0} B")
        };
    }
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else if a >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}

/// A relative change as a signed percentage.
pub fn fmt_change(c: Option<f64>) -> String {
    match c {
        Some(c) if c.is_finite() => format!("{:+.1}%", c * 100.0),
        _ => "-".into(),
    }
}

/// An interval of relative changes.
pub fn fmt_ci(ci: Option<(f64, f64)>) -> String {
    match ci {
        Some((lo, hi)) => format!("[{:+.1}%, {:+.1}%]", lo * 100.0, hi * 100.0),
        None => "-".into(),
    }
}

/// A (BH-adjusted) p-value.
pub fn fmt_p(p: Option<f64>) -> String {
    match p {
        Some(p) if p < 0.001 => format!("{p:.1e}"),
        Some(p) => format!("{p:.3}"),
        None => "-".into(),
    }
}

/// The verdict column: gated verdicts in capitals when they matter.
pub fn fmt_verdict(m: &MetricResult) -> String {
    let v = m.verdict.as_str();
    if !m.gated() && m.verdict != Verdict::Ignored {
        format!("{v} (reported only)")
    } else {
        v.to_string()
    }
}

/// Whether a verdict is inconclusive only because the hosts differ or the
/// host was busy, and would otherwise be unchanged: the summary says that
/// once, so such rows are folded with the unchanged ones.
pub fn only_host_reason(verdict: Verdict, reasons: &[Reason]) -> bool {
    verdict == Verdict::Inconclusive
        && reasons.len() == 1
        && matches!(reasons[0], Reason::HostDiffers { otherwise: Verdict::Unchanged, .. } | Reason::HostBusy { otherwise: Verdict::Unchanged, .. })
}

/// Whether a metric is worth a line of its own (not folded as unchanged).
pub fn is_changed(m: &MetricResult) -> bool {
    match m.verdict {
        Verdict::Regression | Verdict::Improvement => true,
        Verdict::Inconclusive => m.gated() && !only_host_reason(m.verdict, &m.reasons),
        Verdict::Unchanged | Verdict::Added | Verdict::Ignored => false,
    }
}

/// Whether a probe is worth a line of its own.
pub fn probe_changed(p: &ProbeResult) -> bool {
    !matches!(p.verdict, Verdict::Unchanged | Verdict::Ignored) && !only_host_reason(p.verdict, &p.reasons)
}

/// The reasons and notes of a metric, one line.
pub fn fmt_reasons(m: &MetricResult) -> String {
    m.reasons.iter().map(|r| r.describe()).chain(m.notes.iter().cloned()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_well() {
        assert_eq!(fmt_value(17_981_440.0, "bytes"), "17.15 MiB");
        assert_eq!(fmt_value(2048.0, "bytes_apparent"), "2.0 KiB");
        assert_eq!(fmt_value(1.10123, "ms"), "1.101");
        assert_eq!(fmt_value(74.531, "ms"), "74.53");
        assert_eq!(fmt_value(0.0001, "ms"), "1.00e-4");
        assert_eq!(fmt_change(Some(0.1)), "+10.0%");
        assert_eq!(fmt_ci(Some((-0.012, 0.034))), "[-1.2%, +3.4%]");
        assert_eq!(fmt_p(Some(0.00002)), "2.0e-5");
        assert_eq!(fmt_p(Some(1.0)), "1.000");
    }
}
