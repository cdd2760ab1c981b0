//! The five-way report: `report.md` of a run, with the host fingerprint
//! (including how KVM is provided), the five differences of docs/design.md
//! as sections (a table, a chart and a finding computed from the numbers),
//! and what was not measured and why. Everything is derived from the run's
//! files (`samples.csv`, `summary.csv`, `probes.csv`, `env.json`), so
//! [`render_report`] re-renders the same report without re-running.
//!
//! One file per section: [`host`], [`os`] (1, OS and hardware), [`size`]
//! (2), [`boot`] (3), [`isolation`] (4), [`maintenance`] (5), and
//! [`not_measured`].

mod boot;
mod host;
pub mod html;
mod isolation;
mod maintenance;
mod not_measured;
mod os;
mod plan;
mod size;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::chart::{self, ChartError};
use crate::export::json::{read_env, EnvDoc};
use crate::export::{read_probes, read_samples, read_summary, summarize_samples, ExportError};
use crate::model::{Metric, ProbeRow, RunStatus, Sample, SummaryRow};
use crate::platform::registry;
use crate::platform::Group;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0} has no samples.csv: give the directory of a run written by `versus run`")]
    NotARun(PathBuf),
    #[error(transparent)]
    Files(#[from] ExportError),
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
}

/// Everything a report is made from.
#[derive(Debug, Clone)]
pub struct RunFiles {
    pub samples: Vec<Sample>,
    pub summary: Vec<SummaryRow>,
    pub env: Option<EnvDoc>,
    pub probes: Vec<ProbeRow>,
    /// The capacity plan's rows (plan.csv), when `versus plan` made one.
    pub plan: Vec<crate::plan::PlanRow>,
    /// plan.md, when there is one.
    pub plan_md: Option<String>,
}

impl RunFiles {
    /// Reads a run directory. `samples.csv` is required; `summary.csv` is
    /// recomputed from the samples when absent; `env.json` and `probes.csv`
    /// are optional (the report says what is missing).
    pub fn read(run_dir: &Path) -> Result<RunFiles, ReportError> {
        let sp = run_dir.join("samples.csv");
        if !sp.exists() {
            return Err(ReportError::NotARun(run_dir.to_path_buf()));
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
        let plan = crate::plan::read_rows(run_dir)?;
        let plan_md = if plan.is_empty() { None } else { std::fs::read_to_string(run_dir.join("plan.md")).ok() };
        Ok(RunFiles { samples, summary, env, probes, plan, plan_md })
    }
}

/// Re-renders `charts/*.svg|png|csv`, `report.md` and `report.html` of a
/// run directory from its CSVs, env.json and plan.csv. Returns the path of
/// report.md.
pub fn render_report(run_dir: &Path) -> Result<PathBuf, ReportError> {
    let files = RunFiles::read(run_dir)?;
    let charts_dir = run_dir.join("charts");
    let charts = chart::render_all(&files.samples, &files.probes, &plan::bars(&files.plan), &charts_dir)?;
    let md = report_markdown(&files, &charts);
    let out = run_dir.join("report.md");
    std::fs::write(&out, &md).map_err(|source| ReportError::Write { path: out.clone(), source })?;
    let page = html::report_html(&md, &charts_dir);
    let html_path = run_dir.join("report.html");
    std::fs::write(&html_path, page).map_err(|source| ReportError::Write { path: html_path.clone(), source })?;
    Ok(out)
}

/// What every section sees: the run's files, the charts drawn, the
/// platforms whose numbers are not representative here, and the list of
/// what was not measured that sections add to.
pub(crate) struct Ctx<'a> {
    pub f: &'a RunFiles,
    pub charts: &'a [&'a str],
    pub not_representative: BTreeMap<String, String>,
}

impl Ctx<'_> {
    /// A platform's name, marked when its numbers are not representative.
    pub fn flag(&self, p: &str) -> String {
        if self.not_representative.contains_key(p) {
            format!("{p} (not representative here)")
        } else {
            p.to_string()
        }
    }
    /// The summary row of a platform and metric.
    pub fn summary_of(&self, platform: &str, metric: &Metric) -> Option<&SummaryRow> {
        self.f.summary.iter().find(|r| r.platform == platform && r.metric == *metric)
    }
}

/// The whole report.md text. Deterministic: the same files give the same text.
pub fn report_markdown(f: &RunFiles, charts: &[&str]) -> String {
    let mut o = String::new();
    let run_id = f.env.as_ref().map(|e| e.run_id.clone()).or_else(|| f.samples.first().map(|x| x.run_id.clone())).unwrap_or_default();
    let _ = writeln!(o, "# versus report: run {run_id}\n");
    let _ = writeln!(
        o,
        "Containers or virtual machines, measured on this host: the same workload as a plain process, a namespace container and KVM guests, compared along the five classic differences. Every number below comes from this run's `samples.csv` / `summary.csv`; `versus report <dir>` re-renders this file and the charts from them.\n"
    );
    let not_representative: BTreeMap<String, String> = f
        .env
        .iter()
        .flat_map(|e| e.platforms.iter())
        .filter(|p| p.status == RunStatus::Ran && !p.representative)
        .map(|p| (p.platform.clone(), p.representative_note.clone().unwrap_or_else(|| "not representative on this host".into())))
        .collect();
    let ctx = Ctx { f, charts, not_representative };
    let mut missing: Vec<String> = Vec::new();
    host::section(&ctx, &mut o);
    os::section(&ctx, &mut o, &mut missing);
    size::section(&ctx, &mut o, &mut missing);
    boot::section(&ctx, &mut o, &mut missing);
    isolation::section(&ctx, &mut o, &mut missing);
    maintenance::section(&ctx, &mut o, &mut missing);
    plan::section(&ctx, &mut o, &mut missing);
    not_measured::section(&ctx, &mut o, &missing);
    o
}

// Helpers the sections share.

pub(crate) fn civil(secs: u64) -> String {
    let [y, m, d, hh, mm, ss] = crate::measure::clock::utc_fields(secs);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC")
}

pub(crate) fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}|", header.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
    for r in rows {
        let _ = writeln!(out, "| {} |", r.iter().map(|c| c.replace('|', "\\|")).collect::<Vec<_>>().join(" | "));
    }
    out.push('\n');
}

/// How the report names a group of platforms.
pub(crate) fn group_label(g: Option<Group>) -> &'static str {
    match g {
        Some(Group::Versus) => "versus' own launchers and VMM",
        Some(Group::ContainerRuntime) => "container runtimes and engines",
        Some(Group::Vmm) => "VMMs",
        None => "other",
    }
}

/// A platform's group, for names versus knows.
pub(crate) fn group_of(platform: &str) -> Option<Group> {
    registry::info(platform).map(|i| i.group)
}

/// A table of per-platform rows (`(platform, cells)`), grouped: rows in
/// group order (versus' own, container runtimes, VMMs; then names versus
/// does not know), registry order within a group, the order given within a
/// platform; and a heading row before each group when there is more than
/// one.
pub(crate) fn grouped_table(out: &mut String, header: &[&str], mut rows: Vec<(String, Vec<String>)>) {
    rows.sort_by_key(|(p, _)| (group_of(p).map_or(usize::MAX, |g| g as usize), registry::order(p)));
    let mut groups: Vec<Option<Group>> = rows.iter().map(|(p, _)| group_of(p)).collect();
    groups.dedup();
    let mut cells = Vec::new();
    let mut last: Option<Option<Group>> = None;
    for (p, r) in rows {
        let g = group_of(&p);
        if groups.len() > 1 && last != Some(g) {
            let mut heading = vec![format!("**{}**", group_label(g))];
            heading.resize(header.len(), String::new());
            cells.push(heading);
        }
        last = Some(g);
        cells.push(r);
    }
    table(out, header, &cells);
}

pub(crate) fn chart_ref(out: &mut String, charts: &[&str], stem: &str, alt: &str) {
    if charts.contains(&stem) {
        let _ = writeln!(out, "![{alt}](charts/{stem}.png)\n\n(SVG: [charts/{stem}.svg](charts/{stem}.svg))\n");
    }
}

/// Joins "a", "b and c".
pub(crate) fn and_list(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} and {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

pub(crate) fn ratio(a: f64, b: f64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Outcome, ProbeRow};

    /// A made-up run whose every number scales with `k`: every section has
    /// rows, and every finding has numbers to compute from.
    fn made_up(k: f64) -> RunFiles {
        let mut s: Vec<Sample> = Vec::new();
        let mut add = |p: &str, w: &str, m: Metric, unit: &str, it: u32, v: f64| s.push(Sample::with_unit(p, w, m, unit, it, v));
        for (p, f) in [("process", 1.0), ("container", 2.0), ("vm-bare", 3.0)] {
            for i in 0..10 {
                let v = k * f * (1.0 + i as f64 / 100.0);
                add(p, "ready", Metric::Boot, "ms", i, v);
                add(p, "ready", Metric::phase("ready"), "ms", i, v);
                add(p, "cpu:1000", Metric::Cpu, "ms", i, 50.0 * k * f);
                add(p, "call:1000", Metric::Call, "us", i, 0.2 * f.powf(1.0 + k));
                add(p, "idle:16", Metric::MemHost, "bytes", i, (16.0 + k * f) * 1048576.0);
            }
            for n in 1..=8u32 {
                let held = (1.0 + (17.0 + k * f) * n as f64) * 1048576.0;
                add(p, "idle:16", Metric::DensityPssTotal, "bytes", n, held);
                add(p, "idle:16", Metric::DensityMemAvailableDrop, "bytes", n, held * 1.02);
                add(p, "idle:16", Metric::DensityLaunchRate, "instances/s", n, 100.0 / (k * f));
                add(p, "idle:16+ksm", Metric::DensityPssTotal, "bytes", n, held / (4.0 * k));
            }
            for n in [1u32, 2, 4] {
                let t = k * f * n as f64;
                add(p, "idle:16", Metric::StormReadyP50, "ms", n, t);
                add(p, "idle:16", Metric::StormReadyP99, "ms", n, 1.5 * t);
                add(p, "idle:16", Metric::StormReadyAll, "ms", n, 1.6 * t);
                add(p, "idle:16", Metric::StormLaunchRate, "instances/s", n, n as f64 / (1.6 * t / 1000.0));
                add(p, "idle:16", Metric::StormFailures, "count", n, 0.0);
                add(p, "idle:16", Metric::StormHarnessCpuPerLaunch, "ms", n, 0.1 * k);
            }
            for (m, u) in [(Metric::ImageShared, "bytes"), (Metric::ImageTotal, "bytes"), (Metric::ImagePerInstance, "bytes")] {
                add(p, "shared", m.clone(), u, 0, 1e6 * k * f);
                add(p, "shared", m, "bytes_apparent", 0, 1e6 * k * f);
            }
            if p != "vm-bare" {
                for i in 0..3 {
                    add(p, "cpu:50000", Metric::InterferenceAlone, "ms", i, 30.0);
                    add(p, "cpu:50000", Metric::InterferenceCpu, "ratio", i, 1.0 + k * f);
                    add(p, "cpu:50000", Metric::InterferenceFork, "ratio", i, 1.0 + 2.0 * k * f);
                }
                add(p, "stress-fork:1000", Metric::InterferenceForkPeak, "count", 0, 50.0 * k * f);
            }
        }
        crate::experiment::memory::add_overhead_rows(&mut s);
        let mut probes = Vec::new();
        for (i, probe) in ["proc.a", "proc.b", "fs.a", "net.a"].iter().enumerate() {
            for p in ["process", "container", "vm-bare"] {
                // More exposure on the container as k grows.
                let exposed = p == "process" || (p == "container" && (i as f64) < k);
                let result = if p == "vm-bare" && i > 1 {
                    Outcome::NotApplicable
                } else if exposed {
                    Outcome::Exposed
                } else {
                    Outcome::Isolated
                };
                probes.push(ProbeRow {
                    run_id: "r".into(),
                    platform: p.into(),
                    probe: probe.to_string(),
                    category: probe.split('.').next().unwrap_or("").into(),
                    result,
                    evidence: String::new(),
                });
            }
        }
        RunFiles { summary: summarize_samples(&s), samples: s, env: None, probes, plan: Vec::new(), plan_md: None }
    }

    fn findings(md: &str) -> Vec<String> {
        md.lines().filter(|l| l.starts_with("**Finding.**")).map(String::from).collect()
    }

    #[test]
    fn every_finding_is_computed_from_the_run() {
        let (a, b) = (report_markdown(&made_up(1.0), &[]), report_markdown(&made_up(2.0), &[]));
        let (fa, fb) = (findings(&a), findings(&b));
        assert!(fa.len() >= 6, "a finding per section: {fa:#?}");
        assert_eq!(fa.len(), fb.len());
        for (x, y) in fa.iter().zip(&fb) {
            assert_ne!(x, y, "this finding did not change with its numbers: {x}");
        }
        // The fork bomb and the per-category isolation comparison are there.
        assert!(a.contains("The fork bomb:") && a.contains("peaked at"), "{a}");
        assert!(a.contains("| category | container vs process | vm-bare vs process |"), "{a}");
        // The storm and the density ramp (with KSM) have their sections.
        assert!(a.contains("### Boot storm: N launches at once") && a.contains("### Density to the memory budget"), "{a}");
        assert!(a.contains("KSM is a known side channel"), "{a}");
    }

    #[test]
    fn dates_and_lists() {
        assert_eq!(civil(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(civil(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(and_list(&["a".into(), "b".into(), "c".into()]), "a, b and c");
        assert_eq!(ratio(3.0, 1.0), "3.0x");
    }

    #[test]
    fn tables_are_grouped_with_headings() {
        let row = |p: &str| (p.to_string(), vec![p.to_string(), "1".to_string()]);
        let mut o = String::new();
        grouped_table(&mut o, &["platform", "x"], vec![row("qemu"), row("oci-runc"), row("process"), row("container"), row("zz")]);
        let lines: Vec<&str> = o.lines().collect();
        assert_eq!(
            &lines[2..],
            [
                "| **versus' own launchers and VMM** |  |",
                "| process | 1 |",
                "| container | 1 |",
                "| **container runtimes and engines** |  |",
                "| oci-runc | 1 |",
                "| **VMMs** |  |",
                "| qemu | 1 |",
                "| **other** |  |",
                "| zz | 1 |",
                "",
            ]
        );
        let mut o = String::new();
        grouped_table(&mut o, &["platform", "x"], vec![row("container"), row("process")]);
        assert!(!o.contains("**"), "one group: no headings\n{o}");
        assert!(o.find("| process").unwrap() < o.find("| container").unwrap());
    }
}
