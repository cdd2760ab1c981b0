//! Section 5, maintenance: the patch drill on a real OS image (`--image`).

use std::fmt::Write as _;

use super::{and_list, chart_ref, grouped_table, Ctx};
use crate::chart::fmt_bytes;
use crate::model::{Metric, Sample};

fn value(s: &[Sample], p: &str, w: &str, m: &Metric, n: u32) -> Option<f64> {
    s.iter().find(|x| x.platform == p && x.workload == w && x.metric == *m && x.iteration == n).map(|x| x.value)
}

pub(super) fn section(ctx: &Ctx<'_>, o: &mut String, missing: &mut Vec<String>) {
    let _ = writeln!(o, "## 5. Maintenance: patching N instances\n");
    let s = &ctx.f.samples;
    let mut keys: Vec<(String, String)> = Vec::new();
    for x in s.iter().filter(|x| x.metric.family() == "patch") {
        let k = (x.platform.clone(), x.workload.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    if keys.is_empty() {
        missing.push("patch drill (no `patch.*` rows: run with `--image debian`)".into());
        let _ = writeln!(o, "Not measured in this run (the patch drill runs with `versus run --image debian`).\n");
        return;
    }
    let _ = writeln!(
        o,
        "With N instances of each platform running on the Debian image, a real package update is applied the way that platform is patched and the instances are restarted on it (the commands are in each platform's notes). Artefacts are counted by content digest before and after; bytes written are the kernel's write accounting of the fix's commands; *unavailable* is the sum over the instances of stop to ready again; *verified* counts instances that reported the new version from inside (blank: the instance does not read the image); *package copies* are the image's packages times the artefacts that carry them.\n"
    );
    let mut rows = Vec::new();
    let mut ns_all: Vec<u32> = Vec::new();
    for (p, w) in &keys {
        let mut ns: Vec<u32> = s.iter().filter(|x| x.platform == *p && x.workload == *w && x.metric == Metric::PatchArtifacts).map(|x| x.iteration).collect();
        ns.sort();
        ns.dedup();
        for n in ns {
            ns_all.push(n);
            let get = |m: Metric| value(s, p, w, &m, n);
            let cell = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_default();
            let is_host_kernel = w == "kernel/host";
            rows.push((
                p.clone(),
                vec![
                    ctx.flag(p),
                    w.clone(),
                    if is_host_kernel { "any".into() } else { n.to_string() },
                    cell(get(Metric::PatchArtifacts), &|v| format!("{v:.0}")),
                    cell(get(Metric::PatchBytesWritten), &|v| fmt_bytes(v)),
                    if is_host_kernel { "the host's (not measured)".into() } else { cell(get(Metric::PatchMs), &|v| format!("{v:.0} ms")) },
                    cell(get(Metric::PatchUnavailable), &|v| format!("{v:.3} s")),
                    cell(get(Metric::PatchVerifiedInstances), &|v| format!("{v:.0}")),
                    cell(get(Metric::PatchPackages), &|v| format!("{v:.0}")),
                    cell(get(Metric::PatchPackageBytes), &|v| fmt_bytes(v)),
                ],
            ));
        }
    }
    grouped_table(
        o,
        &[
            "platform",
            "fix / storage",
            "N",
            "artefacts changed",
            "bytes written",
            "all N patched and ready",
            "unavailable",
            "verified",
            "package copies",
            "their bytes",
        ],
        rows,
    );
    chart_ref(o, ctx.charts, "patch", "patch drill vs N");
    // The finding: growth from the smallest to the largest N, per line.
    let (nmin, nmax) = (ns_all.iter().copied().min().unwrap_or(1), ns_all.iter().copied().max().unwrap_or(1));
    let mut parts = Vec::new();
    for (p, w) in keys.iter().filter(|(_, w)| w.starts_with("userland/")) {
        let (Some(a0), Some(a1)) = (value(s, p, w, &Metric::PatchArtifacts, nmin), value(s, p, w, &Metric::PatchArtifacts, nmax)) else { continue };
        let b1 = value(s, p, w, &Metric::PatchBytesWritten, nmax).unwrap_or(0.0);
        let (t0, t1) = (value(s, p, w, &Metric::PatchMs, nmin).unwrap_or(0.0), value(s, p, w, &Metric::PatchMs, nmax).unwrap_or(0.0));
        let pk = value(s, p, w, &Metric::PatchPackages, nmax).unwrap_or(0.0);
        parts.push(format!(
            "{p} ({}) changed {a0:.0} artefact(s) at N={nmin} and {a1:.0} at N={nmax}, wrote {} at N={nmax}, and took {t0:.0} ms at N={nmin} and {t1:.0} ms at N={nmax} ({pk:.0} package copies to keep patched)",
            w.trim_start_matches("userland/"),
            fmt_bytes(b1)
        ));
    }
    if !parts.is_empty() {
        let _ = writeln!(o, "**Finding.** For the userland fix, {}.\n", and_list(&parts));
    }
    if keys.iter().any(|(_, w)| w == "kernel/host") {
        let _ = writeln!(
            o,
            "For a kernel fix, the instances that share the host's kernel (process, container) have one artefact whatever N: the host's kernel, whose update versus does not perform (it reboots the host and every instance on it), so its restart cost is the host's and is not measured here. VMs that boot their own kernel each need it swapped in and a restart; see the platform notes for what this run measured.\n"
        );
    }
    if keys.iter().any(|(p, w)| {
        w.starts_with("userland/") && s.iter().any(|x| x.platform == *p && x.workload == *w && x.metric == Metric::PatchArtifacts) && p == "vm-bare"
    }) {
        let _ = writeln!(
            o,
            "vm-bare's rows patch real disks, but its kernel-less guest does not read them: its restart times are its own, and no instance verifies the version from inside.\n"
        );
    }
}
