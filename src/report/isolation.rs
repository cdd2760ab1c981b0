//! Section 4, isolation: the probe matrix, the attack surface and the
//! noisy-neighbour interference.

use std::fmt::Write as _;

use super::{and_list, chart_ref, table, Ctx};
use crate::model::{Metric, Outcome, SummaryRow, SurfaceKind};

pub(super) fn section(ctx: &Ctx<'_>, o: &mut String, missing: &mut Vec<String>) {
    let _ = writeln!(o, "## 4. Isolation\n");
    probes(ctx, o, missing);
    surface(ctx, o);
    interference(ctx, o, missing);
}

fn probes(ctx: &Ctx<'_>, o: &mut String, missing: &mut Vec<String>) {
    let rows_in = &ctx.f.probes;
    if rows_in.is_empty() {
        missing.push("isolation probes (no probes.csv in this run)".into());
        let _ = writeln!(o, "No isolation probes in this run.\n");
        return;
    }
    let mut plats: Vec<String> = Vec::new();
    let mut probes: Vec<String> = Vec::new();
    for r in rows_in {
        if !plats.contains(&r.platform) {
            plats.push(r.platform.clone());
        }
        if !probes.contains(&r.probe) {
            probes.push(r.probe.clone());
        }
    }
    let mut header = vec!["probe"];
    header.extend(plats.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = probes
        .iter()
        .map(|pr| {
            let mut row = vec![pr.clone()];
            for pl in &plats {
                row.push(rows_in.iter().find(|r| r.platform == *pl && r.probe == *pr).map(|r| r.result.to_string()).unwrap_or_else(|| "-".into()));
            }
            row
        })
        .collect();
    table(o, &header, &rows);
    let parts: Vec<String> = plats
        .iter()
        .map(|pl| {
            let exposed = rows_in.iter().filter(|r| r.platform == *pl && r.result == Outcome::Exposed).count();
            let total = rows_in.iter().filter(|r| r.platform == *pl && r.result != Outcome::NotApplicable).count();
            format!("{pl} is exposed on {exposed} of {total} applicable probes")
        })
        .collect();
    let _ = writeln!(o, "**Finding.** {}.\n", and_list(&parts));
    chart_ref(o, ctx.charts, "probes", "isolation probe matrix");
}

fn surface(ctx: &Ctx<'_>, o: &mut String) {
    let surface: Vec<(&SummaryRow, SurfaceKind)> = ctx.f.summary.iter().filter_map(|r| SurfaceKind::of(&r.metric).map(|k| (r, k))).collect();
    if surface.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "### Attack surface\n\nHow much of the host the workload can call into. Workloads on the host kernel count host system calls (all of them when no seccomp filter is installed); the kernel-less VM counts the kinds of VM exit and the host calls its VMM serves (every other exit ends the guest). These count different things.\n"
    );
    let rows: Vec<Vec<String>> = surface.iter().map(|(r, k)| vec![ctx.flag(&r.platform), k.describe().to_string(), format!("{:.0}", r.median)]).collect();
    table(o, &["platform", "counted", "number"], &rows);
}

fn interference(ctx: &Ctx<'_>, o: &mut String, missing: &mut Vec<String>) {
    if !ctx.f.samples.iter().any(|x| x.metric.family() == "interference") {
        missing.push("noisy-neighbour interference (no `interference.*` rows)".into());
        return;
    }
    let _ = writeln!(
        o,
        "### Noisy neighbour\n\nThe victim's time beside a neighbour of the same platform running a stress, divided by its time alone (median; 1.0x = no interference).\n"
    );
    let ir: Vec<&SummaryRow> = ctx.f.summary.iter().filter(|r| r.metric.family() == "interference").collect();
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for r in &ir {
        if !keys.contains(&(r.platform.as_str(), r.workload.as_str())) {
            keys.push((&r.platform, &r.workload));
        }
    }
    let get = |pl: &str, w: &str, m: &Metric| ir.iter().find(|r| r.platform == pl && r.workload == w && r.metric == *m).map(|r| r.median);
    let mut rows = Vec::new();
    let mut worst: Vec<(String, f64, String)> = Vec::new();
    for (pl, w) in &keys {
        let mut row = vec![ctx.flag(pl), w.to_string(), get(pl, w, &Metric::InterferenceAlone).map(|v| format!("{v:.2} ms")).unwrap_or_else(|| "-".into())];
        for (m, label) in [(Metric::InterferenceCpu, "cpu hog"), (Metric::InterferenceMem, "memory hog"), (Metric::InterferenceFork, "fork bomb")] {
            let v = get(pl, w, &m);
            row.push(v.map(|v| format!("{v:.2}x")).unwrap_or_else(|| "-".into()));
            if let Some(v) = v {
                match worst.iter_mut().find(|x| x.0 == *pl) {
                    Some(x) if x.1 < v => *x = (pl.to_string(), v, format!("{label} ({w})")),
                    Some(_) => {}
                    None => worst.push((pl.to_string(), v, format!("{label} ({w})"))),
                }
            }
        }
        rows.push(row);
    }
    table(o, &["platform", "victim", "alone", "cpu hog", "memory hog", "fork bomb"], &rows);
    let parts: Vec<String> = worst.iter().map(|(pl, v, what)| format!("{pl} slowed down at most {v:.1}x, beside a {what}")).collect();
    let _ = writeln!(o, "**Finding.** {}. A fork bomb in a container is stopped by its pids limit; a plain process has none.\n", and_list(&parts));
}
