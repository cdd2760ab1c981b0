//! Section 3, boot speed: launch-to-ready distribution and phases.

use std::fmt::Write as _;

use super::{and_list, chart_ref, grouped_table, ratio, table, Ctx};
use crate::chart::data::{by_iteration, median_of, pick_workload, platforms_with, values};
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
    storm(ctx, o, missing);
}

/// The boot storm: N launches at once.
fn storm(ctx: &Ctx<'_>, o: &mut String, missing: &mut Vec<String>) {
    let s = &ctx.f.samples;
    let platforms = platforms_with(s, &Metric::StormFailures);
    if platforms.is_empty() {
        missing.push("boot storm (no `storm.*` rows: `versus run --storm-max 64`)".into());
        return;
    }
    let _ = writeln!(o, "### Boot storm: N launches at once\n");
    let _ = writeln!(
        o,
        "N launches requested at once (N = 1, 2, 4, ...), each from a launcher thread of its own, all N kept running until every launch ended. Times run from the storm's start to each instance's READY; at each N the median over the storms made. The harness CPU is what versus' launcher threads spent per launch: well under the time between launches means versus is not the bottleneck (for a VMM inside versus it includes running the guest to READY).\n"
    );
    let mut rows = Vec::new();
    let mut parts = Vec::new();
    let mut cpu_parts = Vec::new();
    for p in &platforms {
        let at = |m: Metric| crate::chart::storm::median_by_n(&by_iteration(s, p, None, &m, None));
        let p50 = at(Metric::StormReadyP50);
        let p99 = at(Metric::StormReadyP99);
        let all = at(Metric::StormReadyAll);
        let rate = at(Metric::StormLaunchRate);
        let cpu = at(Metric::StormHarnessCpuPerLaunch);
        let fails: f64 = s.iter().filter(|x| x.platform == *p && x.metric == Metric::StormFailures).map(|x| x.value).sum();
        let storms = s.iter().filter(|x| x.platform == *p && x.metric == Metric::StormFailures).count();
        let n_max = cpu.last().map_or(0, |x| x.0);
        let get = |c: &[(u32, f64)], n: u32| c.iter().find(|x| x.0 == n).map(|x| x.1);
        let ms = |v: Option<f64>| v.map(fmt_ms).unwrap_or_else(|| "-".into());
        let one = get(&p50, 1);
        rows.push(vec![
            ctx.flag(p),
            n_max.to_string(),
            ms(one),
            ms(get(&p50, n_max)),
            ms(get(&p99, n_max)),
            ms(get(&all, n_max)),
            get(&rate, n_max).map(|r| format!("{r:.0}/s")).unwrap_or_else(|| "-".into()),
            format!("{fails:.0} of {storms} storms' launches"),
            ms(get(&cpu, n_max)),
        ]);
        if let (Some(r), Some(all)) = (get(&rate, n_max), get(&all, n_max)) {
            parts.push(format!("{} ready in {} ({r:.0}/s)", p, fmt_ms(all)));
        }
        if let (Some(c), Some(r)) = (get(&cpu, n_max), get(&rate, n_max)) {
            cpu_parts.push(format!("{p} {} of every {}", fmt_ms(c), fmt_ms(1000.0 / r)));
        }
    }
    table(
        o,
        &["platform", "largest N", "p50 at N=1", "p50 at largest N", "p99 at largest N", "all ready", "launches/s", "failures", "harness CPU per launch"],
        &rows,
    );
    chart_ref(o, ctx.charts, "storm", "boot storm: p50 and p99 against N");
    let _ = writeln!(
        o,
        "**Finding.** At the largest N: {}. The launcher threads spent {} between two instances becoming ready.\n",
        and_list(&parts),
        and_list(&cpu_parts)
    );
    let notes: Vec<String> = ctx
        .f
        .env
        .iter()
        .flat_map(|e| e.platforms.iter())
        .flat_map(|p| p.notes.iter().filter(|n| n.starts_with("storm N=")).map(move |n| format!("{}: {n}", p.platform)))
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(o, "Failed launches, with their reasons:\n");
        for n in notes {
            let _ = writeln!(o, "- {n}");
        }
        o.push('\n');
    }
}
