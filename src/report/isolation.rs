//! Section 4, isolation: the probe matrix, the attack surface and the
//! noisy-neighbour interference.

use std::fmt::Write as _;

use super::{and_list, chart_ref, table, Ctx};
use crate::model::{Metric, Outcome, ProbeRow, SummaryRow, SurfaceKind};
use crate::platform::registry;

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
    headline(o, rows_in, &plats);
    chart_ref(o, ctx.charts, "probes", "isolation probe matrix");
}

/// A probe's verdict on a platform, when it was judged (isolated or exposed).
fn verdict<'a>(rows: &'a [ProbeRow], platform: &str, probe: &str) -> Option<&'a ProbeRow> {
    rows.iter().find(|r| r.platform == platform && r.probe == probe && matches!(r.result, Outcome::Isolated | Outcome::Exposed))
}

/// The isolation headline: each platform against the baseline on the probes
/// judged on both, overall and per category (a probe that does not apply to
/// one of them, or erred, is left out of that comparison).
fn headline(o: &mut String, rows: &[ProbeRow], plats: &[String]) {
    let base = registry::baseline();
    let mut cats: Vec<String> = Vec::new();
    for r in rows {
        if !cats.contains(&r.category) {
            cats.push(r.category.clone());
        }
    }
    let others: Vec<&String> = plats.iter().filter(|p| *p != base).collect();
    let compare = |pl: &str, cat: Option<&str>| -> (usize, usize, usize) {
        let (mut n, mut mine, mut theirs) = (0, 0, 0);
        for r in rows.iter().filter(|r| r.platform == pl && cat.is_none_or(|c| r.category == c)) {
            let (Some(a), Some(b)) = (verdict(rows, pl, &r.probe), verdict(rows, base, &r.probe)) else { continue };
            n += 1;
            mine += (a.result == Outcome::Exposed) as usize;
            theirs += (b.result == Outcome::Exposed) as usize;
        }
        (n, mine, theirs)
    };
    if !plats.iter().any(|p| p == base) || others.is_empty() {
        let parts: Vec<String> = plats
            .iter()
            .map(|pl| {
                let exposed = rows.iter().filter(|r| r.platform == *pl && r.result == Outcome::Exposed).count();
                let total = rows.iter().filter(|r| r.platform == *pl && r.result != Outcome::NotApplicable).count();
                format!("{pl} is exposed on {exposed} of {total} applicable probes")
            })
            .collect();
        let _ = writeln!(o, "**Finding.** {}.\n", and_list(&parts));
        return;
    }
    let parts: Vec<String> = others
        .iter()
        .map(|pl| {
            let (n, mine, theirs) = compare(pl, None);
            if n == 0 {
                format!("{pl} shares no judged probe with the {base}")
            } else {
                format!("{pl} is exposed on {mine} of the {n} probes judged on both it and the {base} ({base}: {theirs})")
            }
        })
        .collect();
    let _ = writeln!(o, "**Finding.** {}. Per category, on the probes judged on both (exposed / compared):\n", and_list(&parts));
    let mut header = vec!["category".to_string()];
    header.extend(others.iter().map(|p| format!("{p} vs {base}")));
    let trows: Vec<Vec<String>> = cats
        .iter()
        .map(|c| {
            let mut row = vec![c.clone()];
            for pl in &others {
                let (n, mine, theirs) = compare(pl, Some(c));
                row.push(if n == 0 { "-".into() } else { format!("{mine} vs {theirs} of {n}") });
            }
            row
        })
        .collect();
    let hdr: Vec<&str> = header.iter().map(String::as_str).collect();
    table(o, &hdr, &trows);
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
    let ir: Vec<&SummaryRow> = ctx.f.summary.iter().filter(|r| r.metric == Metric::InterferenceAlone || r.metric.is_interference_ratio()).collect();
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
    let parts: Vec<String> = worst.iter().map(|(pl, v, what)| format!("{pl}'s victims slowed down at most {v:.1}x, beside a {what}")).collect();
    let _ = writeln!(o, "**Finding.** {}.{}\n", and_list(&parts), fork_sentence(ctx));
}

/// What the fork bomb neighbours did, from this run's rows: their peak
/// process count (against the pids limit instances ran with) and the
/// slowdown they caused.
fn fork_sentence(ctx: &Ctx<'_>) -> String {
    let limit = ctx.f.env.as_ref().and_then(|e| e.limits).map(|l| l.pids);
    let mut parts = Vec::new();
    for r in ctx.f.summary.iter().filter(|r| r.metric == Metric::InterferenceForkPeak) {
        let slow = ctx.f.summary.iter().filter(|x| x.platform == r.platform && x.metric == Metric::InterferenceFork).map(|x| x.median).fold(f64::NAN, f64::max);
        let held = match limit {
            Some(l) if r.max <= l as f64 + 1.0 && registry::info(&r.platform).is_some_and(|i| i.isolation != crate::platform::Isolation::None) => {
                format!(", held by its pids limit of {l}")
            }
            _ => String::new(),
        };
        let slowed = if slow.is_finite() { format!(" and slowed its neighbour's victims at most {slow:.1}x") } else { String::new() };
        parts.push(format!("in {} it peaked at {:.0} processes{held}{slowed}", r.platform, r.max));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" The fork bomb: {}", and_list(&parts)) + "."
    }
}
