//! Section 3, boot speed: launch-to-ready distribution and phases.

use std::fmt::Write as _;

use super::{and_list, chart_ref, grouped_table, ratio, Ctx};
use crate::chart::data::{median_of, pick_workload, platforms_with, values};
use crate::chart::fmt_ms;
use crate::model::Metric;
use crate::platform::registry;
use crate::stats;

pub(super) fn section(ctx: &Ctx<'_>, o: &mut String, missing: &mut Vec<String>) {
    let s = &ctx.f.samples;
    let _ = writeln!(o, "## 3. Boot speed\n");
    let boot_platforms = platforms_with(s, &Metric::Boot);
    if boot_platforms.is_empty() {
        missing.push("boot latency (no `boot` rows)".into());
        let _ = writeln!(o, "Not measured in this run.\n");
        return;
    }
    let baseline = registry::baseline();
    let w = pick_workload(s, &Metric::Boot, &["ready"]).unwrap_or_default();
    let mut rows = Vec::new();
    let mut parts = Vec::new();
    let base = median_of(s, baseline, Some(&w), &Metric::Boot, None);
    for p in &boot_platforms {
        let v = values(s, p, Some(&w), &Metric::Boot, None);
        if let Some(st) = stats::summarize(&v) {
            rows.push((
                p.clone(),
                vec![
                    ctx.flag(p),
                    fmt_ms(st.median),
                    format!("{} - {}", fmt_ms(st.ci95_low), fmt_ms(st.ci95_high)),
                    fmt_ms(st.p95),
                    fmt_ms(st.min),
                    fmt_ms(st.max),
                    st.outliers.to_string(),
                    st.n.to_string(),
                ],
            ));
            let vs = match base {
                Some(b) if p != baseline => format!(" ({} the process)", ratio(st.median, b)),
                _ => String::new(),
            };
            parts.push(format!("{} in {}{vs}", registry::article(p), fmt_ms(st.median)));
        }
    }
    grouped_table(o, &["platform", "median", "95% CI of median", "p95", "min", "max", "outliers", "n"], rows);
    chart_ref(o, ctx.charts, "boot", "boot latency distribution");
    chart_ref(o, ctx.charts, "phases", "boot phase breakdown");
    let _ = writeln!(o, "**Finding.** On this host (workload `{w}`, median launch-to-ready), {}.", and_list(&parts).replacen(" in ", " starts in ", 1));
    if let Some((p, note)) = ctx.not_representative.iter().find(|(p, _)| boot_platforms.contains(p)) {
        let _ = writeln!(o, "{p}'s figure is not representative of a typical host: {note}.");
    }
    o.push('\n');
}
