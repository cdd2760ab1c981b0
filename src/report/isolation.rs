//! Section 4, isolation: the probe matrix, the attack surface and the
//! noisy-neighbour interference.

use std::fmt::Write as _;

use super::{and_list, chart_ref, group_label, group_of, grouped_table, table, Ctx};
use crate::model::{Metric, Outcome, ProbeRow, SummaryRow, SurfaceKind};
use crate::platform::registry;
use crate::platform::Isolation;

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
    // Columns in group order; say which columns form which group.
    plats.sort_by_key(|p| (group_of(p).map_or(usize::MAX, |g| g as usize), registry::order(p)));
    let mut groups: Vec<(&'static str, Vec<String>)> = Vec::new();
    for p in &plats {
        let label = group_label(group_of(p));
        match groups.last_mut() {
            Some((l, v)) if *l == label => v.push(p.clone()),
            _ => groups.push((label, vec![p.clone()])),
        }
    }
    if groups.len() > 1 {
        let g: Vec<String> = groups.iter().map(|(l, v)| format!("{l}: {}", v.join(", "))).collect();
        let _ = writeln!(o, "Columns by group: {}.\n", g.join("; "));
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
    let reach: Vec<(String, f64)> = ctx.f.summary.iter().filter(|r| r.metric == Metric::SurfaceHostSyscalls).map(|r| (r.platform.clone(), r.median)).collect();
    for line in between(rows_in, &reach) {
        let _ = writeln!(o, "{line}\n");
    }
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

/// The isolation class of a platform versus knows.
fn isolation_of(p: &str) -> Option<Isolation> {
    registry::info(p).map(|i| i.isolation)
}

/// For each platform with a user-space kernel (gVisor) in the probe rows:
/// where it falls between the namespace containers and the VMs of the
/// same run, computed from the rows: the probes it closes that a container
/// leaves exposed (with its evidence), and those it leaves exposed, with
/// whether a VM closes them.
pub(super) fn between(rows: &[ProbeRow], reach: &[(String, f64)]) -> Vec<String> {
    let mut plats: Vec<&str> = Vec::new();
    for r in rows {
        if !plats.contains(&r.platform.as_str()) {
            plats.push(&r.platform);
        }
    }
    let of = |class: Isolation| -> Vec<&str> { plats.iter().copied().filter(|p| isolation_of(p) == Some(class)).collect() };
    let (containers, vms) = (of(Isolation::Namespaces), of(Isolation::Vm));
    let get = |p: &str, probe: &str| rows.iter().find(|r| r.platform == p && r.probe == probe);
    let mut out = Vec::new();
    for sandbox in of(Isolation::UserspaceKernel) {
        let mine: Vec<&ProbeRow> = rows.iter().filter(|r| r.platform == sandbox).collect();
        let mut closes = Vec::new();
        let mut open = Vec::new();
        for r in &mine {
            let exposed_in: Vec<&str> = containers.iter().copied().filter(|c| get(c, &r.probe).is_some_and(|x| x.result == Outcome::Exposed)).collect();
            match r.result {
                Outcome::Isolated if !exposed_in.is_empty() => {
                    closes.push(format!("`{}` (exposed in {}; here: {})", r.probe, exposed_in.join(", "), r.evidence))
                }
                Outcome::Exposed => {
                    let closed_by: Vec<&str> = vms.iter().copied().filter(|v| get(v, &r.probe).is_some_and(|x| x.result == Outcome::Isolated)).collect();
                    let vm = match closed_by.is_empty() {
                        true if vms.is_empty() => "no VM ran to compare".to_string(),
                        true => "no VM of this run closes it either".to_string(),
                        false => format!("closed in {}", closed_by.join(", ")),
                    };
                    open.push(format!("`{}` ({vm}; here: {})", r.probe, r.evidence))
                }
                _ => {}
            }
        }
        if containers.is_empty() {
            out.push(format!(
                "**Where {sandbox} falls.** No namespace container ran beside it, so its probes cannot be placed between a container and a VM in this run."
            ));
            continue;
        }
        let mut line = format!(
            "**Where {sandbox} falls.** Its user-space kernel closes {} probe(s) that a namespace container of this run ({}) leaves exposed: {}.",
            closes.len(),
            containers.join(", "),
            if closes.is_empty() { "none".to_string() } else { closes.join("; ") }
        );
        if open.is_empty() {
            line.push_str(" It is exposed on no probe.");
        } else {
            line.push_str(&format!(" It stays exposed on {}: {}.", open.len(), open.join("; ")));
        }
        let exposed_any = rows
            .iter()
            .filter(|r| containers.contains(&r.platform.as_str()) && r.result == Outcome::Exposed)
            .map(|r| &r.probe)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        line.push_str(&format!(
            " So it sits between a container and a VM: of the {exposed_any} probes a container of this run is exposed on, it closes {} and leaves {} open.",
            closes.len(),
            open.len()
        ));
        let n_of = |p: &str| reach.iter().find(|(q, _)| q == p).map(|(_, v)| *v);
        if let Some(n) = n_of(sandbox) {
            let theirs: Vec<String> = containers.iter().filter_map(|c| n_of(c).map(|v| format!("{c}: {v:.0}"))).collect();
            line.push_str(&format!(
                " Host system-call reach: the host system calls its sentry's seccomp filter lets through number {n:.0}{}.",
                if theirs.is_empty() { String::new() } else { format!(", against a container's workload reaching them directly ({})", theirs.join(", ")) }
            ));
        }
        out.push(line);
    }
    out
}

fn surface(ctx: &Ctx<'_>, o: &mut String) {
    let surface: Vec<(&SummaryRow, SurfaceKind)> = ctx.f.summary.iter().filter_map(|r| SurfaceKind::of(&r.metric).map(|k| (r, k))).collect();
    if surface.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "### Attack surface\n\nHow much of the host the workload can call into. Workloads on the host kernel count host system calls (all of them when no seccomp filter is installed); gVisor counts the host system calls its sentry's seccomp filter lets through (read from the running sentry); the kernel-less VM counts the kinds of VM exit and the host calls its VMM serves (every other exit ends the guest). These count different things.\n"
    );
    let rows: Vec<(String, Vec<String>)> =
        surface.iter().map(|(r, k)| (r.platform.clone(), vec![ctx.flag(&r.platform), k.describe().to_string(), format!("{:.0}", r.median)])).collect();
    grouped_table(o, &["platform", "counted", "number"], rows);
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
        let mut row = (
            pl.to_string(),
            vec![ctx.flag(pl), w.to_string(), get(pl, w, &Metric::InterferenceAlone).map(|v| format!("{v:.2} ms")).unwrap_or_else(|| "-".into())],
        );
        for (m, label) in [(Metric::InterferenceCpu, "cpu hog"), (Metric::InterferenceMem, "memory hog"), (Metric::InterferenceFork, "fork bomb")] {
            let v = get(pl, w, &m);
            row.1.push(v.map(|v| format!("{v:.2}x")).unwrap_or_else(|| "-".into()));
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
    grouped_table(o, &["platform", "victim", "alone", "cpu hog", "memory hog", "fork bomb"], rows);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(p: &str, probe: &str, r: Outcome, ev: &str) -> ProbeRow {
        ProbeRow { run_id: String::new(), platform: p.into(), probe: probe.into(), category: "kernel".into(), result: r, evidence: ev.into() }
    }

    #[test]
    fn gvisor_is_placed_between_containers_and_vms_from_the_rows() {
        use Outcome::*;
        let rows = vec![
            row("oci-runc", "kernel.shared", Exposed, "boot id is the host's"),
            row("oci-runc", "dev.cpu_identity", Exposed, "host CPU"),
            row("oci-runc", "fs.host_root", Isolated, "-"),
            row("oci-runsc", "kernel.shared", Isolated, "uname 4.4.0"),
            row("oci-runsc", "dev.cpu_identity", Exposed, "host CPU"),
            row("oci-runsc", "fs.host_root", Isolated, "-"),
            row("vm-bare", "dev.cpu_identity", Isolated, "no CPUID"),
        ];
        let l = between(&rows, &[("oci-runc".into(), 471.0), ("oci-runsc".into(), 69.0)]);
        assert_eq!(l.len(), 1);
        assert!(l[0].contains("closes 1 probe(s)") && l[0].contains("`kernel.shared` (exposed in oci-runc; here: uname 4.4.0)"), "{}", l[0]);
        assert!(l[0].contains("stays exposed on 1: `dev.cpu_identity` (closed in vm-bare; here: host CPU)"), "{}", l[0]);
        assert!(!l[0].contains("fs.host_root"), "a probe both isolate is not the sandbox's doing");
        assert!(l[0].contains("of the 2 probes a container of this run is exposed on, it closes 1 and leaves 1 open"), "{}", l[0]);
        assert!(l[0].contains("number 69, against a container's workload reaching them directly (oci-runc: 471)"), "{}", l[0]);
        assert!(between(&rows[..3], &[]).is_empty(), "no user-space kernel: no sentence");
    }
}
