//! The capacity plan (`versus plan`): from a run's measured figures, per
//! platform, how many instances fit on a given host, how many hosts M
//! instances need, how long starting them takes on one host and across the
//! fleet, and the disk they need; each figure with the measured inputs it
//! came from (and their 95% confidence intervals) and the limit that binds.
//!
//! The inputs, all from the run's `samples.csv` (and the measuring host's
//! core count from `env.json`):
//!
//! | input | from |
//! |---|---|
//! | fixed and per-instance memory | the least-squares line of the density ramp (`density.pss_total` by default, `--basis host` for `density.mem_available_drop`, `cgroup` for `density.cgroup_total`), its 95% CI from the fit's standard errors |
//! | start throughput | `storm.launch_rate` at the storm's largest N: the median over its storms, the bootstrap CI of that median |
//! | disk | `image.shared` and the median `image.per_instance` of the storage the platform really uses |
//! | interference | `interference.cpu`: reported beside the CPU limit |
//!
//! The formulas (`reserve` is kept back from the host's memory, cores and disk):
//!
//! - per-instance memory `m` = the fitted slope, minus the measured
//!   instance's own workload memory plus `--instance-memory` when given;
//! - instances per host = min over the limits of: memory
//!   `floor((host_memory * (1 - reserve) - fixed) / m)`, CPU
//!   `floor(host_cores * (1 - reserve) / instance_cpu)` (with
//!   `--instance-cpu`), disk `floor((host_disk * (1 - reserve) - shared) /
//!   per_instance_disk)` (with `--host-disk`);
//! - a host's start rate = the storm's rate scaled by cores
//!   (`rate * host_cores / measured_cores`: launches are CPU-bound work),
//!   or `--start-rate` when lower (the start-rate limit binds);
//! - hosts for M = `ceil(M / per_host)`; start on one host =
//!   `min(M, per_host) / host_rate`; across the fleet (hosts in parallel) =
//!   `ceil(M / hosts) / host_rate`; disk for M = `hosts * shared + M *
//!   per_instance_disk`.
//!
//! Each figure's range is the formula evaluated at its inputs' CI bounds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::chart::fmt_bytes;
pub use crate::chart::group_digits;
use crate::export::json::read_env;
use crate::export::read_samples;
use crate::model::{DensityBasis, Metric, Sample};
use crate::platform::registry;
use crate::stats::{self, linear_fit};

/// What the plan is for.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// Memory of one host, bytes.
    pub host_memory: u64,
    pub host_cores: u32,
    /// Memory each instance's workload holds (replaces the measured
    /// instance's own); `None`: as measured.
    pub instance_memory: Option<u64>,
    /// The fleet: M instances.
    pub instances: Option<u64>,
    /// The most launches per second one host may be given.
    pub start_rate: Option<f64>,
    /// Fraction of each host kept for its own use.
    pub reserve: f64,
    /// Disk of one host, bytes (the disk limit applies when given).
    pub host_disk: Option<u64>,
    /// CPUs each instance needs (the CPU limit applies when given).
    pub instance_cpu: Option<f64>,
    /// What the memory line is fitted to.
    pub basis: DensityBasis,
    /// Use the density rows measured with KSM on.
    pub ksm: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            host_memory: 0,
            host_cores: 0,
            instance_memory: None,
            instances: None,
            start_rate: None,
            reserve: 0.1,
            host_disk: None,
            instance_cpu: None,
            basis: DensityBasis::Pss,
            ksm: false,
        }
    }
}

/// Why a plan cannot be made. One line each, saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0} has no samples.csv: give the directory of a run written by `versus run` (reports/<run-id>)")]
    NotARun(PathBuf),
    #[error("{dir} has no `{metric}` rows: the plan needs {what}; measure it with `{command}`")]
    Missing { dir: PathBuf, metric: String, what: &'static str, command: &'static str },
    #[error("{0}")]
    Input(String),
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
}

/// A value with its 95% range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

impl Estimate {
    pub fn exact(v: f64) -> Estimate {
        Estimate { value: v, low: v, high: v }
    }
    /// `f` of the value and of both bounds, the range reordered (for
    /// decreasing `f`).
    pub fn map(self, f: impl Fn(f64) -> f64) -> Estimate {
        let (a, b) = (f(self.low), f(self.high));
        Estimate { value: f(self.value), low: a.min(b), high: a.max(b) }
    }
}

/// A limit on a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    Memory,
    Cpu,
    Disk,
    StartRate,
}

impl Limit {
    pub fn name(self) -> &'static str {
        match self {
            Limit::Memory => "memory",
            Limit::Cpu => "CPU",
            Limit::Disk => "disk",
            Limit::StartRate => "start rate",
        }
    }
}

/// A measured input of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub what: &'static str,
    pub value: Estimate,
    pub unit: &'static str,
    /// Where it came from: metric, N, points, residual.
    pub source: String,
}

impl Input {
    fn describe(&self) -> String {
        if self.value.low == self.value.high {
            format!("{} {} ({})", self.what, fmt_unit(self.value.value, self.unit), self.source)
        } else {
            format!("{} {} (95% CI; {})", self.what, fmt_range(self.value, self.unit), self.source)
        }
    }
}

/// One figure of a platform's plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Name in plan.csv (`instances_per_host`, `hosts`, ...).
    pub name: &'static str,
    pub value: Estimate,
    pub unit: &'static str,
    /// The limit that binds, where one does.
    pub bound_by: Option<Limit>,
    /// The inputs it came from, in words with their CI.
    pub inputs: Vec<String>,
}

/// The plan of one platform.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformPlan {
    pub platform: String,
    pub inputs: Vec<Input>,
    pub figures: Vec<Figure>,
    pub notes: Vec<String>,
}

impl PlatformPlan {
    pub fn figure(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }
}

/// A whole plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub run_id: String,
    pub opts: PlanOptions,
    /// Cores of the host that measured the run.
    pub measured_cores: usize,
    pub platforms: Vec<PlatformPlan>,
}

/// A row of plan.csv.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRow {
    pub run_id: String,
    pub platform: String,
    pub figure: String,
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub unit: String,
    pub bound_by: String,
    pub inputs: String,
}

/// Checks the options: one line saying what is wrong.
pub fn validate(o: &PlanOptions) -> Result<(), PlanError> {
    let bad = |s: &str| Err(PlanError::Input(s.to_string()));
    if o.host_cores == 0 {
        return bad("--host-cores must be at least 1");
    }
    if o.host_memory == 0 {
        return bad("--host-memory must be more than 0 bytes (e.g. 512GiB)");
    }
    if o.instances == Some(0) {
        return bad("--instances must be at least 1");
    }
    if o.instance_memory == Some(0) {
        return bad("--instance-memory must be more than 0 bytes (e.g. 64MiB)");
    }
    if o.host_disk == Some(0) {
        return bad("--host-disk must be more than 0 bytes (e.g. 2TiB)");
    }
    if o.instance_cpu.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
        return bad("--instance-cpu must be a positive number of CPUs (e.g. 0.25)");
    }
    if !(0.0..1.0).contains(&o.reserve) {
        return bad("--reserve must be a percentage from 0 to below 100");
    }
    Ok(())
}

/// Makes the plan of a run directory.
pub fn plan_run(dir: &Path, opts: &PlanOptions) -> Result<Plan, PlanError> {
    validate(opts)?;
    let sp = dir.join("samples.csv");
    if !sp.is_file() {
        return Err(PlanError::NotARun(dir.to_path_buf()));
    }
    let samples = read_samples(&sp).map_err(|e| PlanError::Read { path: sp.clone(), reason: e.to_string() })?;
    let ep = dir.join("env.json");
    let env = read_env(&ep)
        .map_err(|e| PlanError::Read { path: ep.clone(), reason: format!("{e} (the plan needs the measuring host's core count from env.json)") })?;
    let platforms = compute(&samples, env.host.cores.max(1), opts, dir)?;
    Ok(Plan { run_id: env.run_id, opts: opts.clone(), measured_cores: env.host.cores.max(1), platforms })
}

/// The workload memory of an `idle:<MiB>` (or `mem:<MiB>`) spec, bytes.
fn workload_bytes(w: &str) -> Option<u64> {
    let base = w.strip_suffix("+ksm").unwrap_or(w);
    let (name, mib) = base.split_once(':')?;
    matches!(name, "idle" | "mem").then(|| mib.parse::<u64>().ok().map(|m| m << 20))?
}

/// The plan of every platform with density rows. `dir` names the run in errors.
pub fn compute(samples: &[Sample], measured_cores: usize, o: &PlanOptions, dir: &Path) -> Result<Vec<PlatformPlan>, PlanError> {
    validate(o)?;
    let total = o.basis.total_metric();
    let want_ksm = o.ksm;
    let density_rows =
        |p: &str| -> Vec<&Sample> { samples.iter().filter(|s| s.platform == p && s.metric == total && s.workload.ends_with("+ksm") == want_ksm).collect() };
    let mut platforms: Vec<String> = Vec::new();
    for s in samples.iter().filter(|s| s.metric == total && s.workload.ends_with("+ksm") == want_ksm) {
        if !platforms.contains(&s.platform) {
            platforms.push(s.platform.clone());
        }
    }
    platforms.sort_by_key(|p| registry::order(p));
    if platforms.is_empty() {
        let (what, command) = match (o.ksm, o.basis) {
            (true, _) => ("the density ramp with KSM on", "versus run --density-budget 2GiB --ksm"),
            (false, DensityBasis::Cgroup) => ("the density ramp of instances with a memory cgroup of their own", "versus run --density-budget 2GiB"),
            _ => ("the density ramp (fixed and per-instance memory)", "versus run --density-budget 2GiB"),
        };
        return Err(PlanError::Missing { dir: dir.to_path_buf(), metric: total.to_string(), what, command });
    }
    if !samples.iter().any(|s| s.metric == Metric::StormLaunchRate) {
        return Err(PlanError::Missing {
            dir: dir.to_path_buf(),
            metric: Metric::StormLaunchRate.to_string(),
            what: "the boot storm (start throughput)",
            command: "versus run --storm-max 64 --storm-reps 3",
        });
    }
    let mut out = Vec::new();
    for p in &platforms {
        let rows = density_rows(p);
        let workload = rows.first().map(|r| r.workload.clone()).unwrap_or_default();
        let pts: Vec<(f64, f64)> = rows.iter().map(|r| (r.iteration as f64, r.value)).collect();
        let mut plan = PlatformPlan { platform: p.clone(), inputs: Vec::new(), figures: Vec::new(), notes: Vec::new() };
        let Some(fit) = linear_fit(&pts) else {
            plan.notes.push(format!("its density ramp has fewer than two points of `{total}`: no line to plan from"));
            out.push(plan);
            continue;
        };
        let n_max = pts.iter().map(|q| q.0 as u64).max().unwrap_or(0);
        let src = format!("`{total}` of `{workload}`, least squares over {} points N=1..{n_max}, residual {}", fit.n, fmt_bytes(fit.rmse));
        // A line through a handful of points splits fixed and per-instance
        // memory arbitrarily (a sandbox's fixed cost can pass for a low
        // slope): say so beside the figures.
        const FEW_POINTS: usize = 8;
        if fit.n < FEW_POINTS {
            plan.notes.push(format!(
                "its density ramp has only {} points (N=1..{n_max}): the split between fixed and per-instance memory is not reliable (see the ranges); measure a longer ramp (`versus run --max-time none --density-budget SIZE -p {p}`)",
                fit.n
            ));
        }
        let (slo, shi) = fit.slope_ci95();
        let (ilo, ihi) = fit.intercept_ci95();
        let fixed = Estimate { value: fit.intercept.max(0.0), low: ilo.max(0.0), high: ihi.max(0.0) };
        let mut per = Estimate { value: fit.slope, low: slo, high: shi };
        let measured_workload = workload_bytes(&workload);
        plan.inputs.push(Input { what: "per-instance memory (fitted)", value: per, unit: "bytes", source: src.clone() });
        plan.inputs.push(Input { what: "fixed memory (fitted)", value: fixed, unit: "bytes", source: src });
        if let Some(x) = o.instance_memory {
            match measured_workload {
                Some(w) => {
                    let shift = x as f64 - w as f64;
                    per = per.map(|v| v + shift);
                    plan.notes.push(format!(
                        "per-instance memory: the fitted {} minus the measured instance's own {} plus --instance-memory {}",
                        fmt_bytes(fit.slope),
                        fmt_bytes(w as f64),
                        fmt_bytes(x as f64)
                    ));
                }
                None => plan.notes.push(format!("--instance-memory ignored: the workload `{workload}` does not say how much memory it holds")),
            }
        }
        if per.value <= 0.0 {
            plan.notes.push(format!("the fitted per-instance memory is {} (not positive): no memory limit can be computed", fmt_bytes(per.value)));
            out.push(plan);
            continue;
        }
        let keep = 1.0 - o.reserve;
        let usable = o.host_memory as f64 * keep;
        // More per instance gives fewer instances: the CI's high bound
        // gives the low count. A bound at or below zero has no count.
        let count = |usable: f64, fixed: f64, per: f64| if per > 0.0 { ((usable - fixed) / per).floor().max(0.0) } else { f64::INFINITY };
        let by_memory =
            Estimate { value: count(usable, fixed.value, per.value), low: count(usable, fixed.high, per.high), high: count(usable, fixed.low, per.low) };
        let mem_inputs = vec![
            format!("host memory {} less {:.0}% reserve", fmt_bytes(o.host_memory as f64), o.reserve * 100.0),
            format!("per-instance memory {}", fmt_range(per, "bytes")),
            format!("fixed memory {}", fmt_range(fixed, "bytes")),
        ];
        let mut candidates: Vec<(Limit, Estimate, Vec<String>)> = vec![(Limit::Memory, by_memory, mem_inputs)];
        if let Some(cpu) = o.instance_cpu {
            let v = (o.host_cores as f64 * keep / cpu).floor();
            let mut inputs = vec![format!("{} cores less {:.0}% reserve, {cpu} CPU per instance", o.host_cores, o.reserve * 100.0)];
            if let Some(i) = interference(samples, p) {
                inputs.push(format!("a CPU-hog neighbour slowed a victim {:.2}x (`interference.cpu`, n={})", i.0, i.1));
            }
            candidates.push((Limit::Cpu, Estimate::exact(v), inputs));
        }
        let disk = disk_inputs(samples, p);
        if let Some(d) = &disk {
            plan.inputs.push(Input { what: "shared disk", value: d.shared, unit: "bytes", source: d.source.clone() });
            plan.inputs.push(Input { what: "disk per instance", value: d.per, unit: "bytes", source: d.source.clone() });
            if let Some(hd) = o.host_disk {
                let c = |shared: f64, per: f64| if per > 0.0 { ((hd as f64 * keep - shared) / per).floor().max(0.0) } else { f64::INFINITY };
                let v = Estimate { value: c(d.shared.value, d.per.value), low: c(d.shared.high, d.per.high), high: c(d.shared.low, d.per.low) };
                candidates.push((
                    Limit::Disk,
                    v,
                    vec![format!("host disk {} less reserve", fmt_bytes(hd as f64)), format!("disk per instance {}", fmt_range(d.per, "bytes"))],
                ));
            }
        } else {
            plan.notes.push("disk: not measured in this run (no `image.per_instance` rows; `versus run` measures the footprint)".into());
        }
        if let Some(i) = interference(samples, p) {
            plan.notes.push(format!(
                "interference: beside a CPU-hog neighbour of the same platform a victim took {:.2}x its time alone (`interference.cpu`, median of {}): instances that compute slow each other down once the cores are busy",
                i.0, i.1
            ));
        }
        let Some((bound, per_host, inputs)) = candidates.into_iter().min_by(|a, b| a.1.value.total_cmp(&b.1.value)) else {
            out.push(plan);
            continue;
        };
        plan.figures.push(Figure { name: "instances_per_host", value: per_host, unit: "instances", bound_by: Some(bound), inputs });
        // Start throughput.
        let rate = storm_rate(samples, p, &workload);
        let host_rate = match &rate {
            Some(r) => {
                plan.inputs.push(Input { what: "start throughput (measured)", value: r.rate, unit: "instances/s", source: r.source.clone() });
                let scale = o.host_cores as f64 / measured_cores as f64;
                let cpu = r.rate.map(|v| v * scale);
                let mut inputs =
                    vec![format!("storm throughput {} on {measured_cores} cores, scaled to {} cores", fmt_range(r.rate, "instances/s"), o.host_cores)];
                let (v, limit) = match o.start_rate {
                    Some(cap) if cap < cpu.value => {
                        inputs.push(format!("--start-rate {cap}/s"));
                        (Estimate { value: cap, low: cap.min(cpu.low), high: cap }, Limit::StartRate)
                    }
                    _ => (cpu, Limit::Cpu),
                };
                plan.figures.push(Figure { name: "host_start_rate", value: v, unit: "instances/s", bound_by: Some(limit), inputs });
                Some((v, limit))
            }
            None => {
                plan.notes.push("start figures: no `storm.launch_rate` rows for this platform (`versus run --storm-max 64` measures them)".into());
                None
            }
        };
        if let Some((rate, limit)) = host_rate {
            let m = o.instances.map(|m| m as f64).unwrap_or(per_host.value);
            let t = |n: f64, r: f64| if r > 0.0 { n / r } else { f64::INFINITY };
            let one = Estimate { value: t(m.min(per_host.value), rate.value), low: t(m.min(per_host.low), rate.high), high: t(m.min(per_host.high), rate.low) };
            let what = if o.instances.is_some() && m > per_host.value { "a full host" } else { "the instances" };
            plan.figures.push(Figure {
                name: "start_one_host",
                value: one,
                unit: "s",
                bound_by: Some(limit),
                inputs: vec![format!("{what} ({:.0}) at {}", m.min(per_host.value), fmt_range(rate, "instances/s"))],
            });
        }
        if let Some(m) = o.instances {
            let m = m as f64;
            let hosts = |ph: f64| if ph >= 1.0 { (m / ph).ceil() } else { f64::INFINITY };
            let h = Estimate { value: hosts(per_host.value), low: hosts(per_host.high), high: hosts(per_host.low) };
            plan.figures.push(Figure {
                name: "hosts",
                value: h,
                unit: "hosts",
                bound_by: Some(bound),
                inputs: vec![format!("{m:.0} instances at {} per host", fmt_range(per_host, "instances"))],
            });
            if let Some((rate, limit)) = host_rate {
                let t = |hosts: f64, r: f64| if r > 0.0 && hosts.is_finite() { (m / hosts).ceil() / r } else { f64::INFINITY };
                let fleet = Estimate { value: t(h.value, rate.value), low: t(h.high, rate.high), high: t(h.low, rate.low) };
                plan.figures.push(Figure {
                    name: "start_fleet",
                    value: fleet,
                    unit: "s",
                    bound_by: Some(limit),
                    inputs: vec![format!(
                        "{m:.0} instances over {:.0} host{} starting in parallel, each at {}",
                        h.value,
                        if h.value == 1.0 { "" } else { "s" },
                        fmt_range(rate, "instances/s")
                    )],
                });
            }
            if let Some(d) = &disk {
                let dv = |hosts: f64, shared: f64, per: f64| hosts * shared + m * per;
                let v = Estimate {
                    value: dv(h.value, d.shared.value, d.per.value),
                    low: dv(h.low, d.shared.low, d.per.low),
                    high: dv(h.high, d.shared.high, d.per.high),
                };
                plan.figures.push(Figure {
                    name: "disk",
                    value: v,
                    unit: "bytes",
                    bound_by: None,
                    inputs: vec![format!("{:.0} x shared {} + {m:.0} x {} per instance", h.value, fmt_bytes(d.shared.value), fmt_range(d.per, "bytes"))],
                });
            }
        }
        out.push(plan);
    }
    Ok(out)
}

/// The storm throughput of a platform: `storm.launch_rate` at its largest N.
struct Rate {
    rate: Estimate,
    source: String,
}

fn storm_rate(samples: &[Sample], platform: &str, workload: &str) -> Option<Rate> {
    let base = workload.strip_suffix("+ksm").unwrap_or(workload);
    let rows: Vec<&Sample> = samples.iter().filter(|s| s.platform == platform && s.metric == Metric::StormLaunchRate).collect();
    let rows: Vec<&Sample> = if rows.iter().any(|s| s.workload == base) { rows.into_iter().filter(|s| s.workload == base).collect() } else { rows };
    let n = rows.iter().map(|s| s.iteration).max()?;
    let v: Vec<f64> = rows.iter().filter(|s| s.iteration == n).map(|s| s.value).collect();
    let sum = stats::summarize(&v)?;
    let w = rows.first().map(|s| s.workload.clone()).unwrap_or_default();
    Some(Rate {
        rate: Estimate { value: sum.median, low: sum.ci95_low, high: sum.ci95_high },
        source: format!("`storm.launch_rate` of `{w}` at N={n}, median of {} storm{}", v.len(), if v.len() == 1 { " (one storm: no CI)" } else { "s" }),
    })
}

/// Disk of a platform's instances: the storage it really uses.
struct Disk {
    shared: Estimate,
    per: Estimate,
    source: String,
}

fn disk_inputs(samples: &[Sample], platform: &str) -> Option<Disk> {
    let rows: Vec<&Sample> = samples.iter().filter(|s| s.platform == platform && s.unit == "bytes" && s.metric == Metric::ImagePerInstance).collect();
    let mut methods: Vec<&str> = Vec::new();
    for r in &rows {
        if !methods.contains(&r.workload.as_str()) {
            methods.push(&r.workload);
        }
    }
    let method = methods.iter().find(|m| !m.contains("synthetic")).or(methods.first())?.to_string();
    let of = |m: &Metric| -> Vec<f64> {
        samples.iter().filter(|s| s.platform == platform && s.unit == "bytes" && s.metric == *m && s.workload == method).map(|s| s.value).collect()
    };
    let per = stats::summarize(&of(&Metric::ImagePerInstance))?;
    let shared = stats::summarize(&of(&Metric::ImageShared)).map(|s| Estimate { value: s.median, low: s.ci95_low, high: s.ci95_high });
    Some(Disk {
        shared: shared.unwrap_or(Estimate::exact(0.0)),
        per: Estimate { value: per.median, low: per.ci95_low, high: per.ci95_high },
        source: format!("`image.shared` and `image.per_instance` of storage `{method}`, median of {} instances", per.n),
    })
}

/// `interference.cpu` of a platform: median ratio and its count.
fn interference(samples: &[Sample], platform: &str) -> Option<(f64, usize)> {
    let v: Vec<f64> = samples.iter().filter(|s| s.platform == platform && s.metric == Metric::InterferenceCpu).map(|s| s.value).collect();
    (!v.is_empty()).then(|| (stats::median(&v), v.len()))
}

/// A value in its unit, for people.
pub fn fmt_unit(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        return "unbounded".into();
    }
    match unit {
        "bytes" => fmt_bytes(v),
        "s" => fmt_secs(v),
        "instances/s" => format!("{v:.1}/s"),
        "instances" | "hosts" => group_digits(v),
        _ => format!("{v:.3} {unit}"),
    }
}

/// Seconds for people: ms below a second, minutes and hours above.
pub fn fmt_secs(v: f64) -> String {
    if v < 1.0 {
        format!("{:.0} ms", v * 1000.0)
    } else if v < 120.0 {
        format!("{v:.1} s")
    } else if v < 7200.0 {
        format!("{:.1} min", v / 60.0)
    } else {
        format!("{:.1} h", v / 3600.0)
    }
}

/// `value [low to high]`; `value ± half-width` when the bounds would
/// print as the value; the value alone when the range is a point.
pub fn fmt_range(e: Estimate, unit: &str) -> String {
    let v = fmt_unit(e.value, unit);
    let (l, h) = (fmt_unit(e.low, unit), fmt_unit(e.high, unit));
    if e.low == e.high {
        v
    } else if l == v && h == v {
        let half = (e.high - e.low) / 2.0;
        let half = if unit == "bytes" { fmt_bytes(half) } else { format!("{half:.3}") };
        format!("{v} ± {half}")
    } else {
        format!("{v} [{l} to {h}]")
    }
}

impl Plan {
    /// The host the plan is for, in words.
    pub fn host_line(&self) -> String {
        let o = &self.opts;
        let mut s = format!("a host of {} and {} cores, {:.0}% kept in reserve", fmt_bytes(o.host_memory as f64), o.host_cores, o.reserve * 100.0);
        if let Some(d) = o.host_disk {
            let _ = write!(s, ", {} of disk", fmt_bytes(d as f64));
        }
        if let Some(m) = o.instances {
            let _ = write!(s, "; a fleet of {} instances", group_digits(m as f64));
        }
        if let Some(x) = o.instance_memory {
            let _ = write!(s, " holding {} each", fmt_bytes(x as f64));
        }
        if let Some(c) = o.instance_cpu {
            let _ = write!(s, ", {c} CPU each");
        }
        if let Some(r) = o.start_rate {
            let _ = write!(s, "; at most {r}/s launches per host");
        }
        let _ = write!(s, "; memory per instance from {}{}", o.basis.describe(), if o.ksm { " with KSM on" } else { "" });
        s
    }

    fn cell(p: &PlatformPlan, name: &str) -> String {
        p.figure(name).map(|f| fmt_unit(f.value.value, f.unit)).unwrap_or_else(|| "-".into())
    }

    /// The table printed on stdout.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "capacity plan from run {} for {}", self.run_id, self.host_line());
        let m = self.opts.instances.map(|m| group_digits(m as f64));
        let hdr = [
            "platform".to_string(),
            "instances/host".into(),
            "bound by".into(),
            match &m {
                Some(m) => format!("hosts for {m}"),
                None => "hosts".into(),
            },
            "host start rate".into(),
            "start on 1 host".into(),
            "start fleet".into(),
            "disk".into(),
        ];
        let mut rows = vec![hdr.to_vec()];
        for p in &self.platforms {
            let bound = p.figure("instances_per_host").and_then(|f| f.bound_by).map_or("-", |l| l.name());
            let start_bound = p.figure("host_start_rate").and_then(|f| f.bound_by).map(|l| format!(" ({})", l.name())).unwrap_or_default();
            rows.push(vec![
                p.platform.clone(),
                Self::cell(p, "instances_per_host"),
                bound.to_string(),
                Self::cell(p, "hosts"),
                format!("{}{start_bound}", Self::cell(p, "host_start_rate")),
                Self::cell(p, "start_one_host"),
                Self::cell(p, "start_fleet"),
                Self::cell(p, "disk"),
            ]);
        }
        let widths: Vec<usize> = (0..hdr.len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        for r in &rows {
            let line: Vec<String> =
                r.iter().enumerate().map(|(i, c)| if i == 0 { format!("{c:<w$}", w = widths[i]) } else { format!("{c:>w$}", w = widths[i]) }).collect();
            let _ = writeln!(o, "  {}", line.join("  "));
        }
        for p in &self.platforms {
            for n in &p.notes {
                if !n.starts_with("interference") {
                    let _ = writeln!(o, "{}: {n}", p.platform);
                }
            }
        }
        o
    }

    /// plan.md: the table, then each platform's figures with their inputs.
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# Capacity plan: run {}\n", self.run_id);
        let _ = writeln!(
            o,
            "For {}. Measured on a host with {} cores; `versus plan` recomputes this from the run's `samples.csv`.\n",
            self.host_line(),
            self.measured_cores
        );
        let m = self.opts.instances.map(|m| group_digits(m as f64)).unwrap_or_default();
        let _ =
            writeln!(o, "| platform | instances per host | bound by | hosts for {m} | host start rate | start on one host | start the fleet | disk for {m} |");
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
        for p in &self.platforms {
            let cell = |n: &str| p.figure(n).map(|f| fmt_range(f.value, f.unit)).unwrap_or_else(|| "-".into());
            let bound = |n: &str| p.figure(n).and_then(|f| f.bound_by).map_or("-".to_string(), |l| l.name().to_string());
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} ({}) | {} | {} | {} |",
                p.platform,
                cell("instances_per_host"),
                bound("instances_per_host"),
                cell("hosts"),
                cell("host_start_rate"),
                bound("host_start_rate"),
                cell("start_one_host"),
                cell("start_fleet"),
                cell("disk")
            );
        }
        let _ = writeln!(o, "\nRanges in brackets are the figure at its inputs' 95% confidence bounds.\n");
        for p in &self.platforms {
            let _ = writeln!(o, "## {}\n", p.platform);
            let _ = writeln!(o, "| figure | value | 95% range | bound by | from |");
            let _ = writeln!(o, "|---|---|---|---|---|");
            for f in &p.figures {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} to {} | {} | {} |",
                    f.name,
                    fmt_unit(f.value.value, f.unit),
                    fmt_unit(f.value.low, f.unit),
                    fmt_unit(f.value.high, f.unit),
                    f.bound_by.map_or("-", |l| l.name()),
                    f.inputs.join("; ").replace('|', "\\|")
                );
            }
            let _ = writeln!(o, "\nMeasured inputs:\n");
            for i in &p.inputs {
                let _ = writeln!(o, "- {}", i.describe());
            }
            for n in &p.notes {
                let _ = writeln!(o, "- {n}");
            }
            o.push('\n');
        }
        let _ = writeln!(
            o,
            "How: instances per host is the smallest of the limits that apply (memory: (host memory less reserve less the fixed cost) over the per-instance cost; CPU with `--instance-cpu`; disk with `--host-disk`). A host's start rate is the boot storm's throughput at its largest N scaled by cores (launching is CPU work), or `--start-rate` when lower. Hosts start their share in parallel. These are extrapolations from one small host: a larger host has more memory bandwidth, NUMA and kernel locks that this run did not exercise."
        );
        o
    }

    /// The rows of plan.csv.
    pub fn rows(&self) -> Vec<PlanRow> {
        let mut out = Vec::new();
        for p in &self.platforms {
            for f in &p.figures {
                out.push(PlanRow {
                    run_id: self.run_id.clone(),
                    platform: p.platform.clone(),
                    figure: f.name.to_string(),
                    value: f.value.value,
                    low: f.value.low,
                    high: f.value.high,
                    unit: f.unit.to_string(),
                    bound_by: f.bound_by.map_or(String::new(), |l| l.name().to_string()),
                    inputs: f.inputs.join("; "),
                });
            }
            for i in &p.inputs {
                out.push(PlanRow {
                    run_id: self.run_id.clone(),
                    platform: p.platform.clone(),
                    figure: format!("input: {}", i.what),
                    value: i.value.value,
                    low: i.value.low,
                    high: i.value.high,
                    unit: i.unit.to_string(),
                    bound_by: String::new(),
                    inputs: i.source.clone(),
                });
            }
        }
        out
    }

    /// Writes plan.md and plan.csv into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf), PlanError> {
        let md = dir.join("plan.md");
        std::fs::write(&md, self.markdown()).map_err(|source| PlanError::Write { path: md.clone(), source })?;
        let csv_path = dir.join("plan.csv");
        let werr = |e: csv::Error| PlanError::Write { path: csv_path.clone(), source: std::io::Error::other(e.to_string()) };
        let mut w = csv::Writer::from_path(&csv_path).map_err(werr)?;
        for r in self.rows() {
            w.serialize(&r).map_err(werr)?;
        }
        w.flush().map_err(|source| PlanError::Write { path: csv_path.clone(), source })?;
        Ok((md, csv_path))
    }
}

/// Reads plan.csv back (for the report); empty when there is none.
pub fn read_rows(dir: &Path) -> Result<Vec<PlanRow>, PlanError> {
    let p = dir.join("plan.csv");
    if !p.is_file() {
        return Ok(Vec::new());
    }
    let mut r = csv::Reader::from_path(&p).map_err(|e| PlanError::Read { path: p.clone(), reason: e.to_string() })?;
    r.deserialize().collect::<Result<Vec<PlanRow>, _>>().map_err(|e| PlanError::Read { path: p.clone(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1048576.0;

    fn run(per_mib: f64, fixed_mib: f64) -> Vec<Sample> {
        let mut s = Vec::new();
        for p in ["process", "vm-bare"] {
            let k = if p == "process" { 1.0 } else { 1.5 };
            for n in 1..=20u32 {
                s.push(Sample::new(p, "idle:16", Metric::DensityPssTotal, n, fixed_mib * MIB + per_mib * k * MIB * n as f64));
            }
            for r in [100.0, 110.0, 120.0] {
                s.push(Sample::new(p, "idle:16", Metric::StormLaunchRate, 64, r / k));
                s.push(Sample::new(p, "idle:16", Metric::StormLaunchRate, 32, 1.0));
            }
            s.push(Sample::new(p, "shared", Metric::ImageShared, 0, 4.0 * MIB));
            s.push(Sample::new(p, "shared", Metric::ImagePerInstance, 1, 0.0));
        }
        s
    }

    fn opts() -> PlanOptions {
        PlanOptions { host_memory: 512 << 30, host_cores: 64, instances: Some(10_000), ..PlanOptions::default() }
    }

    #[test]
    fn figures_follow_the_formulas() {
        let plans = compute(&run(17.0, 2.0), 2, &opts(), Path::new("r")).unwrap();
        let p = &plans[0];
        assert_eq!(p.platform, "process");
        let per_host = p.figure("instances_per_host").unwrap();
        let expect: f64 = ((512.0f64 * 1024.0 * 0.9 - 2.0) / 17.0).floor();
        assert_eq!(per_host.value.value, expect);
        assert_eq!(per_host.bound_by, Some(Limit::Memory));
        let rate = p.figure("host_start_rate").unwrap();
        assert!((rate.value.value - 110.0 * 32.0).abs() < 1e-6, "the median at the largest N, scaled from 2 to 64 cores: {rate:?}");
        let hosts = p.figure("hosts").unwrap().value.value;
        assert_eq!(hosts, (10_000.0 / expect).ceil());
        let fleet = p.figure("start_fleet").unwrap().value.value;
        assert!((fleet - (10_000.0 / hosts).ceil() / (110.0 * 32.0)).abs() < 1e-9);
        assert_eq!(p.figure("disk").unwrap().value.value, hosts * 4.0 * MIB);
        // vm-bare needs 1.5x the memory: fewer per host.
        assert!(plans[1].figure("instances_per_host").unwrap().value.value < expect);
        // A start-rate cap below the throughput binds.
        let capped = compute(&run(17.0, 2.0), 2, &PlanOptions { start_rate: Some(10.0), ..opts() }, Path::new("r")).unwrap();
        let r = capped[0].figure("host_start_rate").unwrap();
        assert_eq!((r.value.value, r.bound_by), (10.0, Some(Limit::StartRate)));
        // A CPU need binds when it allows fewer than memory does.
        let cpu = compute(&run(17.0, 2.0), 2, &PlanOptions { instance_cpu: Some(0.5), ..opts() }, Path::new("r")).unwrap();
        let f = cpu[0].figure("instances_per_host").unwrap();
        assert_eq!((f.value.value, f.bound_by), ((64.0 * 0.9 / 0.5f64).floor(), Some(Limit::Cpu)));
        // --instance-memory swaps the measured 16 MiB for 64 MiB.
        let big = compute(&run(17.0, 2.0), 2, &PlanOptions { instance_memory: Some(64 << 20), ..opts() }, Path::new("r")).unwrap();
        assert_eq!(big[0].figure("instances_per_host").unwrap().value.value, ((512.0f64 * 1024.0 * 0.9 - 2.0) / (17.0 - 16.0 + 64.0)).floor());
    }

    #[test]
    fn missing_metrics_and_bad_inputs_are_one_line_errors() {
        let mut s = run(17.0, 2.0);
        s.retain(|x| x.metric != Metric::StormLaunchRate);
        let e = compute(&s, 2, &opts(), Path::new("reports/x")).unwrap_err().to_string();
        assert!(e.contains("`storm.launch_rate`") && e.contains("versus run --storm-max") && !e.contains('\n'), "{e}");
        let e = compute(&[], 2, &opts(), Path::new("reports/x")).unwrap_err().to_string();
        assert!(e.contains("`density.pss_total`") && e.contains("--density-budget"), "{e}");
        let e = compute(&run(17.0, 2.0), 2, &PlanOptions { ksm: true, ..opts() }, Path::new("r")).unwrap_err().to_string();
        assert!(e.contains("--ksm"), "{e}");
        for bad in [PlanOptions { host_cores: 0, ..opts() }, PlanOptions { host_memory: 0, ..opts() }, PlanOptions { instances: Some(0), ..opts() }] {
            let e = validate(&bad).unwrap_err().to_string();
            assert!(!e.contains('\n') && e.starts_with("--"), "{e}");
        }
    }

    #[test]
    fn formats() {
        assert_eq!(fmt_range(Estimate { value: 16.0 * MIB, low: 16.0 * MIB - 2048.0, high: 16.0 * MIB + 2048.0 }, "bytes"), "16.0 MiB ± 2.0 KiB");
        assert_eq!(fmt_range(Estimate { value: 5.0, low: 4.0, high: 6.0 }, "s"), "5.0 s [4.0 s to 6.0 s]");
        assert_eq!(fmt_range(Estimate::exact(3.0), "hosts"), "3");
        assert_eq!(group_digits(1234567.0), "1 234 567");
        assert_eq!(group_digits(12.0), "12");
        assert_eq!(fmt_secs(0.25), "250 ms");
        assert_eq!(fmt_secs(3600.0), "60.0 min");
        assert_eq!(workload_bytes("idle:16+ksm"), Some(16 << 20));
        assert_eq!(workload_bytes("cpu:16"), None);
    }
}
