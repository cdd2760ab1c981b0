//! The five-way report: `report.md` of a run, with the host fingerprint
//! (including how KVM is provided), the five differences of DESIGN.md as
//! sections (a table, a chart and a finding computed from the numbers), and
//! what was not measured and why. Everything is derived from the run's
//! files (`samples.csv`, `summary.csv`, `probes.csv`, `env.json`), so
//! [`render_report`] re-renders the same report without re-running.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use crate::chart::data::{by_iteration, median_of, platforms_with, values};
use crate::chart::{self, fmt_bytes, fmt_ms};
use crate::export::json::{read_env, EnvDoc};
use crate::export::{read_probes, read_samples, read_summary, summarize_samples, Sample, SummaryRow};
use crate::measure::probes::{Outcome, ProbeRow};
use crate::stats;

/// Everything a report is made from.
#[derive(Debug, Clone)]
pub struct RunFiles {
    pub samples: Vec<Sample>,
    pub summary: Vec<SummaryRow>,
    pub env: Option<EnvDoc>,
    pub probes: Vec<ProbeRow>,
}

impl RunFiles {
    /// Reads a run directory. `samples.csv` is required; `summary.csv` is
    /// recomputed from the samples when absent; `env.json` and `probes.csv`
    /// are optional (the report says what is missing).
    pub fn read(run_dir: &Path) -> anyhow::Result<RunFiles> {
        let sp = run_dir.join("samples.csv");
        if !sp.exists() {
            anyhow::bail!("{} has no samples.csv: give the directory of a run written by `versus run`", run_dir.display());
        }
        let samples = read_samples(&sp)?;
        let summary = match run_dir.join("summary.csv") {
            p if p.exists() => read_summary(&p)?,
            _ => summarize_samples(&samples),
        };
        let env = match run_dir.join("env.json") {
            p if p.exists() => Some(read_env(&p)?),
            _ => None,
        };
        let probes = match run_dir.join("probes.csv") {
            p if p.exists() => read_probes(&p)?,
            _ => Vec::new(),
        };
        Ok(RunFiles { samples, summary, env, probes })
    }
}

/// Re-renders `charts/*.svg|png` and `report.md` of a run directory from
/// its CSVs and env.json. Returns the path of report.md.
pub fn render_report(run_dir: &Path) -> anyhow::Result<PathBuf> {
    let files = RunFiles::read(run_dir)?;
    let charts = chart::render_all(&files.samples, &files.probes, &run_dir.join("charts"))?;
    let md = report_markdown(&files, &charts);
    let out = run_dir.join("report.md");
    std::fs::write(&out, md).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}

fn summary_of<'a>(s: &'a [SummaryRow], platform: &str, metric: &str) -> Option<&'a SummaryRow> {
    s.iter().find(|r| r.platform == platform && r.metric == metric)
}

fn civil(secs: u64) -> String {
    let [y, m, d, hh, mm, ss] = crate::measure::clock::utc_fields(secs);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
}

fn jstr(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "unknown".into(),
        other => other.to_string(),
    }
}

/// How KVM is provided, in words, from env.json's host.kvm_mode.
pub fn kvm_words(host: &Value) -> String {
    let k = &host["kvm_mode"];
    match k["kind"].as_str() {
        Some("pvm") => "kvm_pvm (PVM): guest user-mode code runs natively, guest kernel-mode code is emulated (about 1000x slower); a VM running a guest kernel is not representative here".into(),
        Some("hardware") => format!(
            "hardware-assisted ({}){}",
            jstr(&k["module"]),
            if k["nested_host"].as_bool() == Some(true) { ", nested: this host is itself a guest" } else { "" }
        ),
        Some("absent") => "no /dev/kvm: VM platforms cannot run".into(),
        Some("unknown") => "/dev/kvm present, provider not recognised".into(),
        _ => "not recorded".into(),
    }
}

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        header.iter().map(|h| if h.is_empty() { "---" } else { "---" }).collect::<Vec<_>>().join("|")
    );
    for r in rows {
        let _ = writeln!(out, "| {} |", r.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | "));
    }
    out.push('\n');
}

fn chart_ref(out: &mut String, charts: &[&str], stem: &str, alt: &str) {
    if charts.contains(&stem) {
        let _ = writeln!(out, "![{alt}](charts/{stem}.png)\n\n(SVG: [charts/{stem}.svg](charts/{stem}.svg))\n");
    }
}

/// Joins "a", "b and c".
fn and_list(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b <= 0.0 {
        return "n/a".into();
    }
    let r = a / b;
    if r >= 10.0 {
        format!("{r:.0}x")
    } else {
        format!("{r:.1}x")
    }
}

/// The whole report.md text. Deterministic: the same files give the same text.
pub fn report_markdown(f: &RunFiles, charts: &[&str]) -> String {
    let mut o = String::new();
    let s = &f.samples;
    let run_id = f
        .env
        .as_ref()
        .map(|e| e.run_id.clone())
        .or_else(|| s.first().map(|x| x.run_id.clone()))
        .unwrap_or_default();
    let _ = writeln!(o, "# versus report: run {run_id}\n");
    let _ = writeln!(
        o,
        "Containers or virtual machines, measured on this host: the same workload as a plain process, a namespace container and KVM guests, compared along the five classic differences. Every number below comes from this run's `samples.csv` / `summary.csv`; `versus report <dir>` re-renders this file and the charts from them.\n"
    );
    let not_representative: BTreeMap<String, String> = f
        .env
        .iter()
        .flat_map(|e| e.platforms.iter())
        .filter(|p| p.status == "ran" && !p.representative)
        .map(|p| {
            (
                p.platform.clone(),
                p.representative_note.clone().unwrap_or_else(|| "not representative on this host".into()),
            )
        })
        .collect();
    let flag = |p: &str| {
        if not_representative.contains_key(p) {
            format!("{p} (not representative here)")
        } else {
            p.to_string()
        }
    };

    // Host.
    let _ = writeln!(o, "## Host\n");
    match &f.env {
        Some(e) => {
            let h = &e.host;
            let mem = h["memory_bytes"].as_f64().map(fmt_bytes).unwrap_or_else(|| "unknown".into());
            let peers: Vec<String> = h["peers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| !p["path"].is_null())
                .map(|p| jstr(&p["name"]))
                .collect();
            let rows = vec![
                vec!["KVM".into(), kvm_words(h)],
                vec!["kernel".into(), jstr(&h["kernel"])],
                vec!["distribution".into(), jstr(&h["distribution"])],
                vec!["CPU".into(), format!("{} ({} cores)", jstr(&h["cpu_model"]), jstr(&h["cores"]))],
                vec!["memory".into(), mem],
                vec![
                    "cgroups".into(),
                    format!(
                        "{} ({})",
                        jstr(&h["cgroup_mode"]),
                        h["cgroup_controllers"]
                            .as_array()
                            .map(|a| a.iter().map(jstr).collect::<Vec<_>>().join(", "))
                            .unwrap_or_default()
                    ),
                ],
                vec!["KSM".into(), jstr(&h["ksm"])],
                vec!["transparent huge pages".into(), jstr(&h["transparent_hugepages"])],
                vec![
                    "root / user namespaces / overlayfs".into(),
                    format!("{} / {} / {}", jstr(&h["is_root"]), jstr(&h["user_namespaces"]), jstr(&h["overlayfs"])),
                ],
                vec!["peers installed".into(), if peers.is_empty() { "none".into() } else { peers.join(", ") }],
                vec![
                    "versus".into(),
                    format!("{} ({})", e.versus_version, e.git_revision.clone().unwrap_or_else(|| "revision unknown".into())),
                ],
                vec!["started".into(), civil(e.started_at_unix)],
                vec!["command".into(), format!("`{}`", e.command_line.join(" "))],
            ];
            table(&mut o, &["", ""], &rows);
            if let Some(m) = e.host_measurements.as_object().filter(|m| !m.is_empty()) {
                let _ = writeln!(o, "Host measurements:\n");
                for (k, v) in m {
                    let _ = writeln!(o, "- `{k}`: {}", jstr(v));
                }
                o.push('\n');
            }
            let _ = writeln!(o, "### Platforms\n");
            let rows: Vec<Vec<String>> = e
                .platforms
                .iter()
                .map(|p| {
                    vec![
                        p.platform.clone(),
                        p.status.clone(),
                        if p.status != "ran" {
                            "-".into()
                        } else if p.representative {
                            "yes".into()
                        } else {
                            format!("no: {}", p.representative_note.clone().unwrap_or_default())
                        },
                        p.reason.clone().unwrap_or_else(|| p.notes.join("; ")),
                    ]
                })
                .collect();
            table(&mut o, &["platform", "status", "representative", "notes / reason"], &rows);
        }
        None => {
            let _ = writeln!(o, "No env.json in this run: the host fingerprint is unknown.\n");
        }
    }

    let mut missing: Vec<String> = Vec::new();

    // 1. OS and hardware implementation.
    let _ = writeln!(o, "## 1. OS and hardware implementation: own kernel or shared kernel\n");
    let _ = writeln!(o, "What a platform costs the host beyond the workload itself: memory per idle instance, how many fit, and compute or system-call overhead against the plain process.\n");
    let mem_platforms = platforms_with(s, "mem.host");
    if mem_platforms.is_empty() {
        missing.push("memory per instance (no `mem.host` rows: run with an `idle` workload and memory measurement)".into());
    } else {
        let _ = writeln!(o, "### Memory per idle instance\n");
        let mut rows = Vec::new();
        let mut finding_parts = Vec::new();
        let base = median_of(s, "process", None, "mem.host", None);
        for p in &mem_platforms {
            let host = values(s, p, None, "mem.host", None);
            let med = stats::median(&host);
            let over = median_of(s, p, None, "mem.overhead", None);
            let cg = median_of(s, p, None, "mem.cgroup", None);
            let vmm = median_of(s, p, None, "mem.vmm", None);
            let w = s
                .iter()
                .find(|x| x.platform == *p && x.metric == "mem.host")
                .map(|x| x.workload.clone())
                .unwrap_or_default();
            rows.push(vec![
                flag(p),
                w,
                fmt_bytes(med),
                over.map(fmt_bytes).unwrap_or_else(|| "-".into()),
                cg.map(fmt_bytes).unwrap_or_else(|| "-".into()),
                vmm.map(fmt_bytes).unwrap_or_else(|| "-".into()),
                host.len().to_string(),
            ]);
            if p != "process" {
                if let Some(ov) = over {
                    finding_parts.push(format!("{} adds {} per instance", p, fmt_bytes(ov)));
                }
            }
        }
        table(
            &mut o,
            &["platform", "workload", "mem.host (median PSS)", "mem.overhead", "mem.cgroup", "mem.vmm", "n"],
            &rows,
        );
        chart_ref(&mut o, charts, "memory", "memory per instance");
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
        if let Some(e) = &f.env {
            let _ = write!(
                finding,
                " KSM was {} and transparent huge pages `{}` during the run.",
                jstr(&e.host["ksm"]),
                jstr(&e.host["transparent_hugepages"])
            );
        }
        let _ = writeln!(o, "{finding}\n");
    }
    let dens_platforms = platforms_with(s, "density.mem_per_instance");
    if dens_platforms.is_empty() {
        missing.push("density (no `density.*` rows)".into());
    } else {
        let _ = writeln!(o, "### Density: N idle instances at once\n");
        let mut rows = Vec::new();
        let mut parts = Vec::new();
        for p in &dens_platforms {
            let mem = by_iteration(s, p, None, "density.mem_per_instance", None);
            let rate = by_iteration(s, p, None, "density.launch_rate", None);
            let pss = by_iteration(s, p, None, "density.pss_per_instance", None);
            for (n, v) in &mem {
                let r = rate.iter().find(|x| x.0 == *n).map(|x| format!("{:.1}", x.1)).unwrap_or_else(|| "-".into());
                let ps = pss.iter().find(|x| x.0 == *n).map(|x| fmt_bytes(x.1)).unwrap_or_else(|| "-".into());
                rows.push(vec![flag(p), n.to_string(), fmt_bytes(*v), ps, r]);
            }
            if let Some((n, v)) = mem.last() {
                let r = rate.iter().find(|x| x.0 == *n).map(|x| x.1).unwrap_or(0.0);
                parts.push(format!("{p}: {} each at N={n}, launched at {r:.0}/s", fmt_bytes(*v)));
            }
        }
        table(
            &mut o,
            &["platform", "N", "MemAvailable drop per instance", "PSS per instance", "launches per second"],
            &rows,
        );
        chart_ref(&mut o, charts, "density", "density curve");
        let _ = writeln!(
            o,
            "**Finding.** With the largest N tried, MemAvailable dropped by {}. MemAvailable is host-wide: other activity on the host during the run adds noise to these figures, which the per-instance PSS above does not have.\n",
            and_list(&parts)
        );
    }
    let compute: Vec<(&str, &str)> = vec![("cpu", "ms"), ("mem_touch", "ms"), ("call", "us")];
    let mut rows = Vec::new();
    let mut parts = Vec::new();
    for (m, unit) in &compute {
        for p in platforms_with(s, m) {
            if let Some(r) = summary_of(&f.summary, &p, m) {
                let vs = summary_of(&f.summary, "process", m)
                    .map(|b| ratio(r.median, b.median))
                    .unwrap_or_else(|| "-".into());
                rows.push(vec![
                    m.to_string(),
                    flag(&p),
                    format!("{:.3} {unit}", r.median),
                    format!("{:.3} {unit}", r.p95),
                    vs.clone(),
                    r.n.to_string(),
                ]);
                if *m == "call" && p != "process" {
                    parts.push(format!("a round trip from {p} costs {vs} of the process's system call"));
                }
            }
        }
    }
    if rows.is_empty() {
        missing.push("compute and call overhead (no `cpu`, `mem_touch` or `call` rows)".into());
    } else {
        let _ = writeln!(o, "### Compute and calls against the plain process\n");
        table(&mut o, &["metric", "platform", "median", "p95", "vs process", "n"], &rows);
        if !parts.is_empty() {
            let _ = writeln!(
                o,
                "**Finding.** {}. See each platform's notes for what its `call` is (a host system call, or a VM exit to the VMM).\n",
                and_list(&parts)
            );
        }
    }

    // 2. Size.
    let _ = writeln!(o, "## 2. Size: image and disk footprint\n");
    let fp: Vec<(String, String)> = {
        let mut k: Vec<(String, String)> = Vec::new();
        for x in s.iter().filter(|x| x.metric == "image.total" && x.unit == "bytes") {
            let key = (x.platform.clone(), x.workload.clone());
            if !k.contains(&key) {
                k.push(key);
            }
        }
        k
    };
    if fp.is_empty() {
        missing.push("image footprint (no `image.*` rows)".into());
        let _ = writeln!(o, "Not measured in this run.\n");
    } else {
        let mut rows = Vec::new();
        let mut parts = Vec::new();
        for (p, m) in &fp {
            let get = |metric: &str, unit: &str| median_of(s, p, Some(m), metric, Some(unit)).unwrap_or(0.0);
            let curve = by_iteration(s, p, Some(m), "image.n_instances", Some("bytes"));
            let (nmax, tmax) = curve.last().copied().unwrap_or((1, get("image.total", "bytes")));
            rows.push(vec![
                flag(p),
                m.clone(),
                format!(
                    "{} ({})",
                    fmt_bytes(get("image.shared", "bytes")),
                    fmt_bytes(get("image.shared", "bytes_apparent"))
                ),
                format!(
                    "{} ({})",
                    fmt_bytes(get("image.per_instance", "bytes")),
                    fmt_bytes(get("image.per_instance", "bytes_apparent"))
                ),
                fmt_bytes(get("image.total", "bytes")),
                format!("{} at N={nmax}", fmt_bytes(tmax)),
            ]);
            parts.push(format!("{p} ({m}) adds {} per instance", fmt_bytes(get("image.per_instance", "bytes"))));
        }
        table(
            &mut o,
            &[
                "platform",
                "storage",
                "shared: allocated (apparent)",
                "per instance: allocated (apparent)",
                "1 instance",
                "N instances",
            ],
            &rows,
        );
        chart_ref(&mut o, charts, "footprint", "footprint vs N");
        let _ = writeln!(
            o,
            "**Finding.** On disk, {}. Allocated bytes are what the filesystem holds (`st_blocks`); apparent bytes (in parentheses) are file sizes as `ls` shows them, larger for sparse disk images.\n",
            and_list(&parts)
        );
    }

    // 3. Boot.
    let _ = writeln!(o, "## 3. Boot speed\n");
    let boot_platforms = platforms_with(s, "boot");
    if boot_platforms.is_empty() {
        missing.push("boot latency (no `boot` rows)".into());
        let _ = writeln!(o, "Not measured in this run.\n");
    } else {
        let w = crate::chart::data::pick_workload(s, "boot", &["ready"]).unwrap_or_default();
        let mut rows = Vec::new();
        let mut parts = Vec::new();
        let base = median_of(s, "process", Some(&w), "boot", None);
        for p in &boot_platforms {
            let v = values(s, p, Some(&w), "boot", None);
            if let Some(st) = stats::summarize(&v) {
                rows.push(vec![
                    flag(p),
                    fmt_ms(st.median),
                    format!("{} - {}", fmt_ms(st.ci95_low), fmt_ms(st.ci95_high)),
                    fmt_ms(st.p95),
                    fmt_ms(st.min),
                    fmt_ms(st.max),
                    st.outliers.to_string(),
                    st.n.to_string(),
                ]);
                let vs = match (p.as_str(), base) {
                    ("process", _) | (_, None) => String::new(),
                    (_, Some(b)) => format!(" ({} the process)", ratio(st.median, b)),
                };
                parts.push(format!("{} in {}{vs}", article(p), fmt_ms(st.median)));
            }
        }
        table(&mut o, &["platform", "median", "95% CI of median", "p95", "min", "max", "outliers", "n"], &rows);
        chart_ref(&mut o, charts, "boot", "boot latency distribution");
        chart_ref(&mut o, charts, "phases", "boot phase breakdown");
        let _ = writeln!(
            o,
            "**Finding.** On this host (workload `{w}`, median launch-to-ready), {}.",
            and_list(&parts).replacen(" in ", " starts in ", 1)
        );
        if let Some((p, note)) = not_representative.iter().find(|(p, _)| boot_platforms.contains(p)) {
            let _ = writeln!(o, "{p}'s figure is not representative of a typical host: {note}.");
        }
        o.push('\n');
    }

    // 4. Isolation.
    let _ = writeln!(o, "## 4. Isolation\n");
    let interference = s.iter().any(|x| x.metric.starts_with("interference."));
    if f.probes.is_empty() {
        missing.push("isolation probes (no probes.csv in this run)".into());
        let _ = writeln!(o, "No isolation probes in this run.\n");
    } else {
        let mut plats: Vec<String> = Vec::new();
        let mut probes: Vec<String> = Vec::new();
        for r in &f.probes {
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
                    row.push(
                        f.probes
                            .iter()
                            .find(|r| r.platform == *pl && r.probe == *pr)
                            .map(|r| r.result.to_string())
                            .unwrap_or_else(|| "-".into()),
                    );
                }
                row
            })
            .collect();
        table(&mut o, &header, &rows);
        let parts: Vec<String> = plats
            .iter()
            .map(|pl| {
                let exposed = f.probes.iter().filter(|r| r.platform == *pl && r.result == Outcome::Exposed).count();
                let total = f.probes.iter().filter(|r| r.platform == *pl && r.result != Outcome::NotApplicable).count();
                format!("{pl} is exposed on {exposed} of {total} applicable probes")
            })
            .collect();
        let _ = writeln!(o, "**Finding.** {}.\n", and_list(&parts));
        chart_ref(&mut o, charts, "probes", "isolation probe matrix");
    }
    let surface: Vec<&SummaryRow> = f.summary.iter().filter(|r| r.metric.starts_with("surface.")).collect();
    if !surface.is_empty() {
        let _ = writeln!(o, "### Attack surface\n\nHow much of the host the workload can call into. Workloads on the host kernel count host system calls (all of them when no seccomp filter is installed); the kernel-less VM counts the kinds of VM exit and the host calls its VMM serves (every other exit ends the guest). These count different things.\n");
        let rows: Vec<Vec<String>> = surface
            .iter()
            .map(|r| {
                let what = match r.metric.as_str() {
                    "surface.host_syscalls" => "host system calls reachable",
                    "surface.vm_exit_kinds" => "VM-exit kinds served by the VMM",
                    "surface.vmm_host_calls" => "host calls served by the VMM",
                    other => other,
                };
                vec![flag(&r.platform), what.to_string(), format!("{:.0}", r.median)]
            })
            .collect();
        table(&mut o, &["platform", "counted", "number"], &rows);
    }
    if interference {
        let _ = writeln!(o, "### Noisy neighbour\n\nThe victim's time beside a neighbour of the same platform running a stress, divided by its time alone (median; 1.0x = no interference).\n");
        let ir: Vec<&SummaryRow> = f.summary.iter().filter(|r| r.metric.starts_with("interference.")).collect();
        let mut keys: Vec<(&str, &str)> = Vec::new();
        for r in &ir {
            if !keys.contains(&(r.platform.as_str(), r.workload.as_str())) {
                keys.push((&r.platform, &r.workload));
            }
        }
        let get = |pl: &str, w: &str, m: &str| ir.iter().find(|r| r.platform == pl && r.workload == w && r.metric == m).map(|r| r.median);
        let mut rows = Vec::new();
        let mut worst: Vec<(String, f64, String)> = Vec::new();
        for (pl, w) in &keys {
            let mut row = vec![
                flag(pl),
                w.to_string(),
                get(pl, w, "interference.alone").map(|v| format!("{v:.2} ms")).unwrap_or_else(|| "-".into()),
            ];
            for (m, label) in [
                ("interference.cpu", "cpu hog"),
                ("interference.mem", "memory hog"),
                ("interference.fork", "fork bomb"),
            ] {
                let v = get(pl, w, m);
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
        table(&mut o, &["platform", "victim", "alone", "cpu hog", "memory hog", "fork bomb"], &rows);
        let parts: Vec<String> = worst
            .iter()
            .map(|(pl, v, what)| format!("{pl} slowed down at most {v:.1}x, beside a {what}"))
            .collect();
        let _ = writeln!(
            o,
            "**Finding.** {}. A fork bomb in a container is stopped by its pids limit; a plain process has none.\n",
            and_list(&parts)
        );
    } else {
        missing.push("noisy-neighbour interference (no `interference.*` rows)".into());
    }

    // 5. Maintenance.
    let _ = writeln!(o, "## 5. Maintenance: patch fan-out\n");
    let patch: Vec<&SummaryRow> = f.summary.iter().filter(|r| r.metric.starts_with("patch.")).collect();
    if patch.is_empty() {
        missing.push("patch fan-out (no `patch.*` rows: not implemented in this version of versus)".into());
        let _ = writeln!(o, "Not measured in this run.\n");
    } else {
        let rows: Vec<Vec<String>> = patch
            .iter()
            .map(|r| {
                vec![
                    flag(&r.platform),
                    r.workload.clone(),
                    r.metric.clone(),
                    format!("{:.3} {}", r.median, r.unit),
                    r.n.to_string(),
                ]
            })
            .collect();
        table(&mut o, &["platform", "case", "metric", "median", "n"], &rows);
    }

    // Not measured.
    let _ = writeln!(o, "## Not measured, and why\n");
    let mut any = false;
    if let Some(e) = &f.env {
        for p in &e.platforms {
            if p.status != "ran" {
                let _ = writeln!(
                    o,
                    "- `{}` {}: {}",
                    p.platform,
                    p.status,
                    p.reason.clone().unwrap_or_else(|| "no reason recorded".into())
                );
                any = true;
            }
        }
        for n in &e.not_measured {
            let _ = writeln!(o, "- {n}");
            any = true;
        }
    }
    for (p, note) in &not_representative {
        let _ = writeln!(o, "- `{p}` ran, but its numbers are not representative of a typical host: {note}");
        any = true;
    }
    for m in &missing {
        let _ = writeln!(o, "- {m}");
        any = true;
    }
    if !any {
        let _ = writeln!(o, "- nothing: every platform and measurement ran.");
    }
    o
}

fn article(p: &str) -> String {
    match p {
        "process" => "a plain process".into(),
        "container" => "a container".into(),
        "oci" => "an OCI-runtime container".into(),
        "vm-bare" => "a kernel-less VM".into(),
        "vm-linux" => "a Linux VM".into(),
        "qemu" => "a QEMU VM".into(),
        other => format!("`{other}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_lists() {
        assert_eq!(civil(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(civil(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(and_list(&["a".into(), "b".into(), "c".into()]), "a, b and c");
        assert_eq!(ratio(3.0, 1.0), "3.0x");
    }

    #[test]
    fn kvm_modes_in_words() {
        assert!(kvm_words(&serde_json::json!({"kvm_mode": {"kind": "pvm"}})).contains("emulated"));
        assert!(kvm_words(&serde_json::json!({"kvm_mode": {"kind": "hardware", "module": "kvm_intel", "nested_host": true}})).contains("nested"));
    }
}
