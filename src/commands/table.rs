//! The hyperfine-like summary table printed at the end of a run: median,
//! p95, min and max per platform, and the ratio of medians to `process`.

use versus::export::SummaryRow;

/// Metrics shown in the table, in order (others are in summary.csv).
const SHOWN: [&str; 5] = ["boot", "cpu", "mem_touch", "call", "teardown"];

/// Renders the table for `rows` (as text, for printing and the README).
pub fn render(rows: &[SummaryRow]) -> String {
    let mut out = String::new();
    let mut workloads: Vec<&str> = Vec::new();
    for r in rows {
        if !workloads.contains(&r.workload.as_str()) {
            workloads.push(&r.workload);
        }
    }
    for w in workloads {
        for m in SHOWN {
            let group: Vec<&SummaryRow> = rows.iter().filter(|r| r.workload == w && r.metric == m).collect();
            if group.is_empty() {
                continue;
            }
            let base = group.iter().find(|r| r.platform == "process").map(|r| r.median);
            out.push_str(&format!("{w} / {m} [{}]\n", group[0].unit));
            out.push_str(&format!("  {:<11}{:>11}{:>11}{:>11}{:>11}{:>6}{:>14}\n", "platform", "median", "p95", "min", "max", "n", "vs process"));
            for r in group {
                let ratio = match base {
                    Some(b) if b > 0.0 => format!("{:.2}x", r.median / b),
                    _ => "-".into(),
                };
                out.push_str(&format!(
                    "  {:<11}{:>11.3}{:>11.3}{:>11.3}{:>11.3}{:>6}{:>14}{}\n",
                    r.platform,
                    r.median,
                    r.p95,
                    r.min,
                    r.max,
                    r.n,
                    ratio,
                    if r.outliers > 0 { format!("  ({} outlier{})", r.outliers, if r.outliers == 1 { "" } else { "s" }) } else { String::new() }
                ));
            }
            out.push('\n');
        }
    }
    out
}
