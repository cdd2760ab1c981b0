//! The hyperfine-like summary table printed at the end of a run: median,
//! p95, min and max per platform, and the ratio of medians to the baseline.
//! Rows are grouped by workload spec; `call` is grouped by workload name,
//! as its metric is per round trip and a sized run gives each platform its
//! own number of round trips (shown beside the platform).

use versus::model::{Metric, SummaryRow};
use versus::platform::registry;

/// Metrics shown in the table, in order (others are in summary.csv).
const SHOWN: [Metric; 5] = [Metric::Boot, Metric::Cpu, Metric::MemTouch, Metric::Call, Metric::Teardown];

/// The group a row is shown in.
fn group_of(r: &SummaryRow) -> String {
    if r.metric == Metric::Call {
        r.workload.split(':').next().unwrap_or(&r.workload).to_string()
    } else {
        r.workload.clone()
    }
}

/// Renders the table for `rows` (as text, for printing and the README).
pub fn render(rows: &[SummaryRow]) -> String {
    let mut out = String::new();
    let mut groups: Vec<String> = Vec::new();
    for r in rows.iter().filter(|r| SHOWN.contains(&r.metric)) {
        let g = group_of(r);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    for g in groups {
        for m in SHOWN {
            let group: Vec<&SummaryRow> = rows.iter().filter(|r| group_of(r) == g && r.metric == m).collect();
            if group.is_empty() {
                continue;
            }
            let mixed = group.iter().any(|r| r.workload != group[0].workload);
            let base = group.iter().find(|r| r.platform == registry::baseline()).map(|r| r.median);
            out.push_str(&format!("{g} / {m} [{}]\n", group[0].unit));
            out.push_str(&format!("  {:<16}{:>11}{:>11}{:>11}{:>11}{:>6}{:>14}\n", "platform", "median", "p95", "min", "max", "n", "vs process"));
            for r in group {
                let ratio = match base {
                    Some(b) if b > 0.0 => format!("{:.2}x", r.median / b),
                    _ => "-".into(),
                };
                let mut tail = String::new();
                if mixed {
                    tail.push_str(&format!("  ({})", r.workload));
                }
                if r.outliers > 0 {
                    tail.push_str(&format!("  ({} outlier{})", r.outliers, if r.outliers == 1 { "" } else { "s" }));
                }
                out.push_str(&format!("  {:<16}{:>11.3}{:>11.3}{:>11.3}{:>11.3}{:>6}{:>14}{tail}\n", r.platform, r.median, r.p95, r.min, r.max, r.n, ratio));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(p: &str, w: &str, m: Metric, median: f64) -> SummaryRow {
        SummaryRow {
            run_id: String::new(),
            platform: p.into(),
            workload: w.into(),
            unit: m.unit().into(),
            metric: m,
            n: 5,
            mean: median,
            stddev: 0.0,
            median,
            p95: median,
            p99: median,
            min: median,
            max: median,
            mad: 0.0,
            outliers: 0,
            ci95_low: median,
            ci95_high: median,
        }
    }

    #[test]
    fn calls_sized_per_platform_are_compared_per_round_trip() {
        let t = render(&[
            row("process", "call:600000", Metric::Call, 0.1),
            row("vm-bare", "call:2600", Metric::Call, 20.0),
            row("process", "cpu:1000", Metric::Cpu, 5.0),
        ]);
        assert!(t.contains("call / call [us]"), "{t}");
        assert!(t.contains("200.00x") && t.contains("(call:2600)"), "{t}");
        assert!(t.contains("cpu:1000 / cpu [ms]"), "{t}");
    }
}
