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

/// Why a platform's density ramp ended (from its notes), in a few words.
fn ramp_stop(ctx: &Ctx<'_>, platform: &str, ksm: bool) -> String {
    let prefix = if ksm { "density ramp with KSM on ended at" } else { "density ramp ended at" };
    ctx.f
        .env
        .iter()
        .flat_map(|e| e.platforms.iter())
        .filter(|p| p.platform == platform)
        .flat_map(|p| p.notes.iter())
        .find_map(|n| n.strip_prefix(prefix))
        .and_then(|rest| rest.split_once(": ").map(|(_, why)| why.split(':').next().unwrap_or(why).to_string()))
        .unwrap_or_else(|| "-".into())
}

fn density(ctx: &Ctx<'_>, o: &mut String, missing: &mut Vec<String>) {
    if platforms_with(&ctx.f.samples, &Metric::DensityPssTotal).is_empty() {
        return density_curve(ctx, o, missing);
    }
    let s = &ctx.f.samples;
    let _ = writeln!(
        o,
        "### Density to the memory budget
"
    );
    let _ = writeln!(
        o,
        "Idle instances launched one after another and kept running until the next would pass the memory budget, bring MemAvailable below the floor, or pass the count or time limit; read after each launch. The lines are least-squares fits `memory = fixed + per_instance x N` (95% CI of the slope from its standard error; the residual is the fit's residual standard error). PSS counts each process once and shares shared pages out; MemAvailable is host-wide (kernel memory included, other activity on the host too); the cgroup charge exists where the instance has a memory cgroup of its own.\n"
    );
    let mut rows = Vec::new();
    let mut per: Vec<(String, bool, f64)> = Vec::new();
    let mut ksm_parts = Vec::new();
    for p in platforms_with(s, &Metric::DensityPssTotal) {
        let mut workloads: Vec<String> = Vec::new();
        for r in s.iter().filter(|r| r.platform == p && r.metric == Metric::DensityPssTotal) {
            if !workloads.contains(&r.workload) {
                workloads.push(r.workload.clone());
            }
        }
        workloads.sort_by_key(|w| w.ends_with("+ksm"));
        for w in &workloads {
            let ksm = w.ends_with("+ksm");
            let fit_of = |m: &Metric| {
                let pts: Vec<(f64, f64)> = by_iteration(s, &p, Some(w), m, None).into_iter().map(|(n, v)| (n as f64, v)).collect();
                crate::stats::linear_fit(&pts)
            };
            let pss = by_iteration(s, &p, Some(w), &Metric::DensityPssTotal, None);
            let n_max = pss.last().map_or(0, |x| x.0);
            let fit = fit_of(&Metric::DensityPssTotal);
            let host = fit_of(&Metric::DensityMemAvailableDrop);
            let cg = fit_of(&Metric::DensityCgroupTotal);
            let per_cell = |f: Option<crate::stats::LinearFit>| match f {
                Some(f) => {
                    let (lo, hi) = f.slope_ci95();
                    format!("{} ({} - {})", fmt_bytes(f.slope), fmt_bytes(lo), fmt_bytes(hi))
                }
                None => "-".into(),
            };
            let rate = by_iteration(s, &p, Some(w), &Metric::DensityLaunchRate, None).last().map(|x| format!("{:.0}/s", x.1)).unwrap_or_else(|| "-".into());
            let sharing =
                by_iteration(s, &p, Some(w), &Metric::DensityKsmPagesSharing, None).last().map(|x| format!("{:.0}", x.1)).unwrap_or_else(|| "-".into());
            rows.push(vec![
                ctx.flag(&p),
                if ksm { "on".into() } else { "off".into() },
                n_max.to_string(),
                ramp_stop(ctx, &p, ksm),
                per_cell(fit),
                fit.map(|f| fmt_bytes(f.intercept)).unwrap_or_else(|| "-".into()),
                fit.map(|f| fmt_bytes(f.rmse)).unwrap_or_else(|| "-".into()),
                host.map(|f| format!("{} (residual {})", fmt_bytes(f.slope), fmt_bytes(f.rmse))).unwrap_or_else(|| "-".into()),
                per_cell(cg),
                rate,
                sharing,
            ]);
            if let Some(f) = fit {
                per.push((p.clone(), ksm, f.slope));
            }
            if ksm {
                let last_on = pss.last().copied();
                let off = workloads
                    .iter()
                    .find(|x| !x.ends_with("+ksm"))
                    .and_then(|x| by_iteration(s, &p, Some(x), &Metric::DensityPssTotal, None).into_iter().find(|q| Some(q.0) == last_on.map(|l| l.0)));
                if let (Some((n, on_v)), Some((_, off_v))) = (last_on, off) {
                    ksm_parts.push(format!("{p}: {} instead of {} at N={n}", fmt_bytes(on_v), fmt_bytes(off_v)));
                }
            }
        }
    }
    table(
        o,
        &[
            "platform",
            "KSM",
            "N reached",
            "stopped by",
            "PSS per instance (95% CI)",
            "PSS fixed",
            "PSS residual",
            "MemAvailable per instance",
            "cgroup per instance (95% CI)",
            "launches/s",
            "KSM pages sharing",
        ],
        &rows,
    );
    chart_ref(o, ctx.charts, "density", "density: memory against N with the fitted lines");
    let off: Vec<String> = per.iter().filter(|x| !x.1).map(|(p, _, v)| format!("{} for {}", fmt_bytes(*v), registry::article(p))).collect();
    let mut finding = format!("**Finding.** Each further idle instance costs {} of PSS.", and_list(&off));
    if !ksm_parts.is_empty() {
        let _ = write!(
            finding,
            " With KSM on and their memory mergeable, the same instances held {} (PSS, once KSM settled or its bounded wait ran out: the platform notes say where it had not settled).",
            and_list(&ksm_parts)
        );
    }
    let _ = writeln!(o, "{finding}\n");
    if per.iter().any(|x| x.1) {
        let _ = writeln!(
            o,
            "KSM is a known side channel: a page merged with another instance's identical page is copy-on-write, so writing to it takes measurably longer, which lets one instance learn whether another holds a given page (and KSM has been used to flip bits across VMs with Rowhammer). Clouds that run untrusted tenants side by side keep it off or merge only within a tenant; the KSM figures show what it would save, not a recommendation.\n"
        );
    } else {
        missing.push("density with KSM on (run with `--ksm`)".into());
    }
}

/// The doubling curve of runs made before the density ramp (N = 1, 2, 4,
/// ... relaunched each time): read back from older run directories.
fn density_curve(ctx: &Ctx<'_>, o: &mut String, missing: &mut Vec<String>) {
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
