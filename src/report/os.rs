//! Section 1, OS and hardware implementation: memory per idle instance,
//! density, and compute and call overhead against the baseline.

use std::fmt::Write as _;

use super::{and_list, chart_ref, grouped_table, ratio, table, Ctx};
use crate::chart::data::{by_iteration, median_of, platforms_with, values};
use crate::chart::fmt_bytes;
use crate::model::Metric;
use crate::platform::registry;
use crate::stats;

pub(super) fn section(ctx: &Ctx<'_>, o: &mut String, missing: &mut Vec<String>) {
    let _ = writeln!(o, "## 1. OS and hardware implementation: own kernel or shared kernel\n");
    let _ = writeln!(
        o,
        "What a platform costs the host beyond the workload itself: memory per idle instance, how many fit, and compute or system-call overhead against the plain process.\n"
    );
    memory(ctx, o, missing);
    density(ctx, o, missing);
    compute(ctx, o, missing);
}

fn memory(ctx: &Ctx<'_>, o: &mut String, missing: &mut Vec<String>) {
    let s = &ctx.f.samples;
    let baseline = registry::baseline();
    let mem_platforms = platforms_with(s, &Metric::MemHost);
    if mem_platforms.is_empty() {
        missing.push("memory per instance (no `mem.host` rows: run with an `idle` workload and memory measurement)".into());
        return;
    }
    let _ = writeln!(o, "### Memory per idle instance\n");
    let mut rows = Vec::new();
    let mut finding_parts = Vec::new();
    let base = median_of(s, baseline, None, &Metric::MemHost, None);
    for p in &mem_platforms {
        let host = values(s, p, None, &Metric::MemHost, None);
        let med = stats::median(&host);
        let over = median_of(s, p, None, &Metric::MemOverhead, None);
        let cg = median_of(s, p, None, &Metric::MemCgroup, None);
        let vmm = median_of(s, p, None, &Metric::MemVmm, None);
        let w = s.iter().find(|x| x.platform == *p && x.metric == Metric::MemHost).map(|x| x.workload.clone()).unwrap_or_default();
        let or_dash = |v: Option<f64>| v.map(fmt_bytes).unwrap_or_else(|| "-".into());
        rows.push((p.clone(), vec![ctx.flag(p), w, fmt_bytes(med), or_dash(over), or_dash(cg), or_dash(vmm), host.len().to_string()]));
        if p != baseline {
            if let Some(ov) = over {
                finding_parts.push(format!("{} adds {} per instance", p, fmt_bytes(ov)));
            }
        }
    }
    grouped_table(o, &["platform", "workload", "mem.host (median PSS)", "mem.overhead", "mem.cgroup", "mem.vmm", "n"], rows);
    chart_ref(o, ctx.charts, "memory", "memory per instance");
    let mut finding = String::from("**Finding.** ");
    match base {
        Some(b) => {
            let _ = write!(finding, "An idle instance as a plain process costs the host {} (PSS)", fmt_bytes(b));
            if finding_parts.is_empty() {
                finding.push_str("; no other platform's memory was measured.");
            } else {
                let _ = write!(finding, "; on top of that, {}.", and_list(&finding_parts));
            }
        }
        None => finding.push_str("The process baseline was not measured, so overheads are not available."),
    }
    if let Some(e) = &ctx.f.env {
        let unknown = || "unknown".to_string();
        let _ = write!(
            finding,
            " KSM was {} and transparent huge pages `{}` during the run.",
            e.host.ksm.clone().unwrap_or_else(unknown),
            e.host.transparent_hugepages.clone().unwrap_or_else(unknown)
        );
    }
    let _ = writeln!(o, "{finding}\n");
}

fn density(ctx: &Ctx<'_>, o: &mut String, missing: &mut Vec<String>) {
    let s = &ctx.f.samples;
    let dens_platforms = platforms_with(s, &Metric::DensityMemPerInstance);
    if dens_platforms.is_empty() {
        missing.push("density (no `density.*` rows)".into());
        return;
    }
    let _ = writeln!(o, "### Density: N idle instances at once\n");
    let mut rows = Vec::new();
    let mut parts = Vec::new();
    for p in &dens_platforms {
        let mem = by_iteration(s, p, None, &Metric::DensityMemPerInstance, None);
        let rate = by_iteration(s, p, None, &Metric::DensityLaunchRate, None);
        let pss = by_iteration(s, p, None, &Metric::DensityPssPerInstance, None);
        for (n, v) in &mem {
            let r = rate.iter().find(|x| x.0 == *n).map(|x| format!("{:.1}", x.1)).unwrap_or_else(|| "-".into());
            let ps = pss.iter().find(|x| x.0 == *n).map(|x| fmt_bytes(x.1)).unwrap_or_else(|| "-".into());
            rows.push((p.clone(), vec![ctx.flag(p), n.to_string(), fmt_bytes(*v), ps, r]));
        }
        if let Some((n, v)) = mem.last() {
            let r = rate.iter().find(|x| x.0 == *n).map(|x| x.1).unwrap_or(0.0);
            parts.push(format!("{p}: {} each at N={n}, launched at {r:.0}/s", fmt_bytes(*v)));
        }
    }
    grouped_table(o, &["platform", "N", "MemAvailable drop per instance", "PSS per instance", "launches per second"], rows);
    chart_ref(o, ctx.charts, "density", "density curve");
    let _ = writeln!(
        o,
        "**Finding.** With the largest N tried, MemAvailable dropped by {}. MemAvailable is host-wide: other activity on the host during the run adds noise to these figures, which the per-instance PSS above does not have.\n",
        and_list(&parts)
    );
}

fn compute(ctx: &Ctx<'_>, o: &mut String, missing: &mut Vec<String>) {
    let s = &ctx.f.samples;
    let baseline = registry::baseline();
    let mut rows = Vec::new();
    let mut parts = Vec::new();
    for m in [Metric::Cpu, Metric::MemTouch, Metric::Call] {
        let unit = m.unit();
        for p in platforms_with(s, &m) {
            if let Some(r) = ctx.summary_of(&p, &m) {
                let vs = ctx.summary_of(baseline, &m).map(|b| ratio(r.median, b.median)).unwrap_or_else(|| "-".into());
                rows.push(vec![m.to_string(), ctx.flag(&p), format!("{:.3} {unit}", r.median), format!("{:.3} {unit}", r.p95), vs.clone(), r.n.to_string()]);
                if m == Metric::Call && p != baseline {
                    // On kvm_pvm a VM exit is a trap plus instruction
                    // emulation: say so beside the number.
                    let emulated = ctx.f.env.as_ref().is_some_and(|e| e.host.kvm_mode == crate::host::KvmMode::Pvm)
                        && registry::info(&p).is_some_and(|i| i.isolation == crate::platform::Isolation::Vm);
                    let note = if emulated { " (an exit emulated by kvm_pvm, dearer than a hardware VM exit)" } else { "" };
                    parts.push(format!("a round trip from {p} costs {vs} of the process's system call{note}"));
                }
            }
        }
    }
    if rows.is_empty() {
        missing.push("compute and call overhead (no `cpu`, `mem_touch` or `call` rows)".into());
        return;
    }
    let _ = writeln!(o, "### Compute and calls against the plain process\n");
    if let Some(e) = &ctx.f.env {
        let sized: Vec<String> = e
            .workload_sizes
            .iter()
            .filter(|r| r.target_ms.is_some())
            .map(|r| format!("`{}` on {} ran as `{}` ({} launches)", r.workload, r.platform, r.chosen, r.runs))
            .collect();
        if !sized.is_empty() {
            let target = e.workload_sizes.iter().find_map(|r| r.target_ms).unwrap_or(0.0);
            let _ = writeln!(
                o,
                "Sizes were chosen by calibration so that one launch's workload takes about {target:.0} ms (`cpu` and `mem` the same on every platform, `call` per platform, its metric being per round trip): {}.\n",
                and_list(&sized)
            );
        }
    }
    table(o, &["metric", "platform", "median", "p95", "vs process", "n"], &rows);
    if !parts.is_empty() {
        let _ = writeln!(
            o,
            "**Finding.** {}. See each platform's notes for what its `call` is (a host system call, or a VM exit to the VMM).\n",
            capitalize(&and_list(&parts))
        );
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
