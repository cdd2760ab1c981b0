//! The benchmark loop (after hyperfine's `benchmark/`): for every platform
//! and workload, warm-up launches and measured launches; every measured
//! launch yields `boot`, `boot.<phase>`, `teardown` and the workload's own
//! rows, as [`Sample`]s. Then, per platform that ran, the experiments
//! (memory, density, probes, interference, footprint). The `cpu` checksum
//! is checked against the host's own computation on every launch: a
//! mismatch fails the run loudly.
//!
//! The runner knows platforms only through [`Platform`] and their
//! [`crate::platform::PlatformInfo`]; a test drives it with a fake one.

pub mod image;
mod launch;
mod plan;

use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use launch::{launch_once, workload_rows, LaunchOnceError, LaunchRecord, RunError};
pub use plan::{scaled, Order, Sizing, WorkloadPlan};

use crate::error::LaunchError;
use crate::experiment::density::DensityOptions;
use crate::experiment::interference;
use crate::experiment::probes::HostFacts;
use crate::experiment::storm::StormOptions;
use crate::experiment::{self, ExperimentError};
use crate::model::{self, Metric, PlatformStatus, ProbeRow, RunStatus, Sample, SizeRecord};
use crate::platform::registry::{self, NotRun, PlatformOptions};
use crate::platform::{CgroupNeeds, LaunchSpec, Limits, Platform};
use crate::workload::{Workload, WorkloadSpec};

/// What `versus run` does.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub platforms: Vec<String>,
    /// The workloads and how each is sized.
    pub workloads: Vec<WorkloadPlan>,
    pub runs: u32,
    pub warmup: u32,
    pub timeout: Duration,
    pub limits: Limits,
    pub platform_options: PlatformOptions,
    /// In which order the platforms' launches are made.
    pub order: Order,
    /// The time the whole run may take (`None`: as long as it takes). The
    /// launches get part of it, the measurements after them the rest; what
    /// would overrun is shortened, and the run says so.
    pub max_time: Option<Duration>,
    /// What is measured after the launches (memory, density, footprint,
    /// isolation); `CostOptions::none()` for launches only.
    pub costs: CostOptions,
}

/// The measurements of a run beyond launch latency.
#[derive(Debug, Clone)]
pub struct CostOptions {
    /// `mem.host` / `mem.vmm` of an idle instance holding this many MiB,
    /// measured on this many fresh instances (0: not measured).
    pub memory_mib: u32,
    pub memory_iterations: u32,
    /// The density ramp to the memory budget (and its KSM pass), when set.
    pub density: Option<DensityOptions>,
    /// The boot storm, when set.
    pub storm: Option<StormOptions>,
    /// Footprint with this many instances (0: not measured).
    pub footprint_instances: usize,
    /// The isolation probe matrix.
    pub probes: bool,
    /// Noisy-neighbour interference, when set.
    pub interference: Option<interference::Config>,
    /// The OS-image experiments (`--image`), when set.
    pub image: Option<image::ImageOptions>,
}

impl CostOptions {
    /// Launch latency only.
    pub fn none() -> CostOptions {
        CostOptions { memory_mib: 0, memory_iterations: 0, density: None, storm: None, footprint_instances: 0, probes: false, interference: None, image: None }
    }
}

/// Bytes each footprint instance writes into its own storage.
const FOOTPRINT_WRITE_BYTES: u64 = 1 << 20;
/// Size of the VM disk image the footprint builds.
const FOOTPRINT_DISK_BYTES: u64 = 64 << 20;

/// Progress reporting, so the runner does not depend on a terminal.
pub trait Progress {
    fn start(&self, total: u64);
    fn set_message(&self, msg: String);
    fn inc(&self);
    fn println(&self, line: String);
    fn finish(&self);
    /// Steps that were planned and will not be made (a run shortened to
    /// its time budget).
    fn skip(&self, steps: u64) {
        for _ in 0..steps {
            self.inc();
        }
    }
}

/// No progress output (tests, --json).
pub struct Silent;
impl Progress for Silent {
    fn start(&self, _: u64) {}
    fn set_message(&self, _: String) {}
    fn inc(&self) {}
    fn println(&self, _: String) {}
    fn finish(&self) {}
}

/// The result of a run, before export.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    pub samples: Vec<Sample>,
    pub probes: Vec<ProbeRow>,
    pub statuses: Vec<PlatformStatus>,
    /// Launches or measurements that failed, in words.
    pub failures: Vec<String>,
    /// What was not measured on this host, and why.
    pub not_measured: Vec<String>,
    /// The size each workload ran at on each platform, and its launches.
    pub sizes: Vec<SizeRecord>,
}

/// A platform of a run: created, or the reason it was not.
pub type Candidate = (String, Result<Box<dyn Platform>, NotRun>);

/// Runs every platform and workload of `opts` (platforms created from the
/// registry). Returns `Err` only for failures of the whole run (checksum
/// mismatch, interrupt); a platform that cannot run or fails is recorded in
/// `statuses` and `failures`.
pub fn run(run_id: &str, opts: &RunOptions, progress: &dyn Progress) -> Result<RunResult, LaunchOnceError> {
    let candidates: Vec<Candidate> = opts.platforms.iter().map(|n| (n.clone(), registry::create(n, &opts.platform_options))).collect();
    run_with(run_id, candidates, opts, progress)
}

/// [`run`] with the platforms given (a test passes fakes).
pub fn run_with(run_id: &str, candidates: Vec<Candidate>, opts: &RunOptions, progress: &dyn Progress) -> Result<RunResult, LaunchOnceError> {
    let started = Instant::now();
    let mut out = RunResult::default();
    let sized = opts.workloads.iter().filter(|w| w.sizing != Sizing::Fixed).count() as u64;
    let per_platform = opts.workloads.len() as u64 * (opts.warmup + opts.runs) as u64 + sized;
    let mut created: Vec<Box<dyn Platform>> = Vec::new();
    for (name, c) in candidates {
        match c {
            Ok(p) => created.push(p),
            Err(why) => {
                progress.println(format!("skipping {name}: {why}"));
                out.statuses.push(PlatformStatus::skipped(&name, why.to_string()));
            }
        }
    }
    let c = &opts.costs;
    // Read once per run: the host the probes compare with, including the
    // (slow to count) number of host system calls.
    let host_facts = c.probes.then(|| {
        let h = HostFacts::collect();
        HostFacts { syscalls: experiment::probes::host_syscalls(), ..h }
    });
    let cost_steps =
        (c.memory_iterations > 0) as u64 + c.storm.is_some() as u64 + c.density.is_some() as u64 + c.probes as u64 + c.interference.is_some() as u64;
    progress.start((per_platform + cost_steps) * created.len() as u64);
    let mut statuses: Vec<PlatformStatus> = created
        .iter()
        .map(|p| {
            // On a host whose CPU is itself emulated (harness/kvm-host), no
            // figure is that of real hardware, whatever the platform.
            let note = match (p.representative().err(), crate::host::cpu_emulated_here()) {
                (Some(a), Some(b)) => Some(format!("{a}; {b}")),
                (a, b) => a.or(b.map(String::from)),
            };
            PlatformStatus {
                platform: p.name().into(),
                status: RunStatus::Ran,
                reason: None,
                representative: note.is_none(),
                representative_note: note,
                notes: p.notes(),
            }
        })
        .collect();
    // The launches get most of a launch-only run's time budget, under half
    // of a full run's (the measurements after them take the rest).
    let has_costs = cost_steps > 0 || opts.costs.footprint_instances > 0;
    let launch_budget = opts.max_time.map(|t| t.mul_f64(if has_costs { 0.45 } else { 0.9 }));
    let t = std::time::Instant::now();
    plan::launch_all(&created, &mut statuses, opts, launch_budget, progress, &mut out)?;
    tracing::info!("launches: {:.1} s (budget {:?})", t.elapsed().as_secs_f64(), launch_budget);
    let ran_count = statuses.iter().filter(|s| s.status == RunStatus::Ran).count().max(1) as u32;
    // What is left, shared among the platforms that ran (footprint keeps a
    // tenth).
    let per_platform_budget = opts.max_time.map(|t| (t.saturating_sub(started.elapsed()).mul_f64(0.9) / ran_count).max(Duration::from_secs(1)));
    let mut ran: Vec<&dyn Platform> = Vec::new();
    let mut ran_idx: Vec<(&dyn Platform, usize)> = Vec::new();
    for (i, (p, status)) in created.iter().zip(statuses.iter_mut()).enumerate() {
        if status.status == RunStatus::Ran {
            measure_costs(p.as_ref(), opts, per_platform_budget, host_facts.as_ref(), progress, &mut out, status)?;
            ran.push(p.as_ref());
            ran_idx.push((p.as_ref(), i));
        }
    }
    if let Some(io) = &opts.costs.image {
        check_interrupt()?;
        image::run_image(io, &ran_idx, &mut statuses, progress, &mut out)?;
    }
    out.statuses.extend(statuses);
    if opts.costs.memory_iterations > 0 {
        experiment::memory::add_overhead_rows(&mut out.samples);
    }
    if opts.costs.footprint_instances > 0 {
        progress.set_message("footprint".into());
        let t = std::time::Instant::now();
        for p in &ran {
            check_interrupt()?;
            let (rows, notes) =
                experiment::footprint::measure_storage(p.name(), &p.storage(), opts.costs.footprint_instances, FOOTPRINT_WRITE_BYTES, FOOTPRINT_DISK_BYTES);
            out.samples.extend(rows);
            out.not_measured.extend(notes);
        }
        tracing::info!("footprint: {:.1} s", t.elapsed().as_secs_f64());
        check_interrupt()?;
    }
    progress.finish();
    // Keep statuses in the order the user gave.
    out.statuses.sort_by_key(|s| opts.platforms.iter().position(|p| *p == s.platform).unwrap_or(usize::MAX));
    model::stamp_run_id(run_id, &mut out.samples, &mut out.probes);
    Ok(out)
}

fn check_interrupt() -> Result<(), LaunchOnceError> {
    if crate::interrupt::requested() {
        Err(LaunchError::Interrupted.into())
    } else {
        Ok(())
    }
}

/// Records a failed measurement step: the run goes on, the failure is
/// reported and makes the run exit non-zero. An interrupt ends the run.
fn step_failed(out: &mut RunResult, status: &mut PlatformStatus, platform: &str, step: &str, e: ExperimentError) -> Result<(), LaunchOnceError> {
    if e.is_interrupt() {
        return Err(LaunchError::Interrupted.into());
    }
    let why = format!("{platform} {step}: {e}");
    status.notes.push(format!("{step} failed: {e}"));
    out.failures.push(why);
    Ok(())
}

/// Notes for memory rows that came out negative: kept as measured (other
/// activity on the host or in versus moved the figure), and said so, once
/// per metric and workload with the iterations it happened at.
fn flag_negative(rows: &[Sample], status: &mut PlatformStatus) {
    let mut groups: Vec<(Metric, String, Vec<u32>, f64)> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.value < 0.0 && matches!(r.metric, Metric::MemHost | Metric::MemRss | Metric::DensityMemPerInstance | Metric::DensityMemAvailableDrop))
    {
        match groups.iter_mut().find(|g| g.0 == r.metric && g.1 == r.workload) {
            Some(g) => {
                g.2.push(r.iteration);
                g.3 = g.3.min(r.value);
            }
            None => groups.push((r.metric.clone(), r.workload.clone(), vec![r.iteration], r.value)),
        }
    }
    for (metric, workload, its, lowest) in groups {
        let total = rows.iter().filter(|r| r.metric == metric && r.workload == workload).count();
        let list: Vec<String> = its.iter().map(|i| i.to_string()).collect();
        status.notes.push(format!(
            "{metric} of {workload} is negative at iteration {} ({} of {total} rows; lowest {:.0} bytes): the host (or versus itself) freed memory during the measurement; kept as measured",
            list.join(", "),
            its.len(),
            lowest
        ));
    }
}

/// Memory, boot storm, density, probes and interference of one platform,
/// within `budget` when there is one: the storm gets up to 15% of it, the
/// density ramp 25%, the interference windows 35% (shared among the
/// stresses, as before the storm came).
fn measure_costs(
    p: &dyn Platform,
    opts: &RunOptions,
    budget: Option<Duration>,
    host_facts: Option<&HostFacts>,
    progress: &dyn Progress,
    out: &mut RunResult,
    status: &mut PlatformStatus,
) -> Result<(), LaunchOnceError> {
    let c = &opts.costs;
    let name = p.name();
    // `-v` shows where a run's time goes, step by step.
    let took = |step: &str, t: std::time::Instant| tracing::info!("{name} {step}: {:.1} s", t.elapsed().as_secs_f64());
    let idle = LaunchSpec {
        workload: WorkloadSpec::Bench(Workload::Idle { mib: c.memory_mib }),
        timeout: opts.timeout,
        limits: opts.limits,
        cgroup: CgroupNeeds { memory: true, cpu: false },
        ksm_merge: false,
        root: None,
    };
    // What one idle instance costs to launch and to tear down, from this
    // run's launches (when it launched idle instances): the memory, density
    // and storm steps launch such instances and must stop them within the
    // budget too (gVisor's teardown takes seven times its boot).
    let median_of = |metric: Metric| {
        let v: Vec<f64> = out.samples.iter().filter(|s| s.platform == name && s.metric == metric && s.workload.starts_with("idle")).map(|s| s.value).collect();
        (!v.is_empty()).then(|| Duration::from_secs_f64(crate::stats::median(&v) / 1e3))
    };
    let instance_cost = match (median_of(Metric::Boot), median_of(Metric::Teardown)) {
        (Some(l), Some(t)) => Some((l, t)),
        _ => None,
    };
    let mut memory_iterations = c.memory_iterations;
    if let (Some(b), Some((l, t))) = (budget, instance_cost) {
        let fit = (b.mul_f64(0.15).as_secs_f64() / (l + t).as_secs_f64().max(1e-6)) as u32;
        if fit < memory_iterations {
            memory_iterations = fit.max(1);
            status.notes.push(format!(
                "memory: {memory_iterations} idle instances measured instead of {} to stay within the run's time budget (one launch and teardown takes {:.0} ms here)",
                c.memory_iterations,
                (l + t).as_secs_f64() * 1e3
            ));
        }
    }
    if memory_iterations > 0 {
        check_interrupt()?;
        progress.set_message(format!("{name} memory"));
        let t = std::time::Instant::now();
        match experiment::memory::measure_memory(p, &idle, memory_iterations) {
            Ok(rows) => {
                flag_negative(&rows, status);
                out.samples.extend(rows);
            }
            Err(e) => step_failed(out, status, name, "memory", e)?,
        }
        took("memory", t);
        progress.inc();
    }
    let storm = c.storm.clone().map(|mut st| {
        if let Some(b) = budget {
            st.time_budget = st.time_budget.min(b.mul_f64(0.15));
        }
        st
    });
    let density = c.density.clone().map(|mut d| {
        if let Some(b) = budget {
            // The ramp's time goes to launches; stopping its instances
            // afterwards takes teardown/launch as long again.
            let share = match instance_cost {
                Some((l, t)) => l.as_secs_f64() / (l + t).as_secs_f64().max(1e-6),
                None => 1.0,
            };
            d.time_budget = d.time_budget.min(b.mul_f64(0.25 * share));
        }
        d
    });
    // A neighbour's window holds its launch, a 200 ms warm-up and then the
    // victims' runs: under MIN_WINDOW no victim fits, and a window that
    // measures nothing would be a failure. Too short a budget leaves
    // interference out, and says so.
    const MIN_WINDOW: Duration = Duration::from_millis(900);
    let interference = c.interference.clone().and_then(|mut cfg| {
        if let Some(b) = budget {
            let per_window = b.mul_f64(0.35) / (cfg.stresses.len() as u32 + 1);
            if per_window < MIN_WINDOW {
                out.not_measured.push(format!(
                    "{name} interference: the run's time budget leaves {} ms per neighbour window, under the {} ms a window needs (give --max-time more, or fewer platforms with -p)",
                    per_window.as_millis(),
                    MIN_WINDOW.as_millis()
                ));
                progress.inc();
                return None;
            }
            if per_window < cfg.max_window {
                cfg.max_window = per_window;
                cfg.reps = 1;
                cfg.budget_limited = true;
                status.notes.push(format!("interference windows limited to {} ms by the run's time budget", cfg.max_window.as_millis()));
            }
        }
        Some(cfg)
    });
    if let Some(st) = &storm {
        check_interrupt()?;
        progress.set_message(format!("{name} boot storm"));
        let t = std::time::Instant::now();
        match experiment::storm::measure_storm(p, &idle, st) {
            Ok(r) => {
                if let Some(why) = &r.stopped_early {
                    status.notes.push(format!("boot storm stopped before N={}: {why}", st.max_n));
                }
                status.notes.extend(r.failure_notes());
                out.samples.extend(r.samples(name, &idle.workload.to_string()));
            }
            Err(e) => step_failed(out, status, name, "boot storm", e)?,
        }
        took("boot storm", t);
        progress.inc();
    }
    if let Some(d) = &density {
        check_interrupt()?;
        progress.set_message(format!("{name} density"));
        let t = std::time::Instant::now();
        match experiment::density::measure_density(p, &idle, d) {
            Ok(r) => {
                let n = r.off.points.last().map_or(0, |x| x.n);
                status.notes.push(format!("density ramp ended at N={n}: {}", r.off.stop));
                if let Some(on) = &r.on {
                    let n = on.points.last().map_or(0, |x| x.n);
                    status.notes.push(format!("density ramp with KSM on ended at N={n}: {}", on.stop));
                    status.notes.extend(on.notes.iter().map(|x| format!("density with KSM on: {x}")));
                }
                if let Some(why) = &r.ksm_skipped {
                    status.notes.push(format!("density with KSM on not measured: {why}"));
                }
                let rows = r.samples(name, &idle.workload.to_string());
                flag_negative(&rows, status);
                out.samples.extend(rows);
            }
            Err(e) => step_failed(out, status, name, "density", e)?,
        }
        took("density", t);
        progress.inc();
    }
    if let Some(host) = host_facts {
        check_interrupt()?;
        progress.set_message(format!("{name} probes"));
        let t = std::time::Instant::now();
        match experiment::probes::run_probes_with(p, opts.timeout, host) {
            Ok(rows) => {
                for s in experiment::probes::surface_rows(name, &p.attack_surface(), &rows, host) {
                    status.notes.push(format!("attack surface, {}: {}", s.counted.describe(), s.note));
                    if let Some(v) = s.value {
                        out.samples.push(Sample::new(name, "probe", s.counted.metric(), 0, v as f64));
                    }
                }
                out.probes.extend(rows);
            }
            Err(e) => step_failed(out, status, name, "probes", ExperimentError::Launch { context: "running the probe matrix".into(), source: e })?,
        }
        took("probes", t);
        progress.inc();
    }
    if let Some(cfg) = &interference {
        check_interrupt()?;
        progress.set_message(format!("{name} interference"));
        let t = std::time::Instant::now();
        match experiment::interference::run_interference(p, cfg) {
            Ok(r) => {
                if let Some(why) = &r.not_measured {
                    out.not_measured.push(format!("{name} interference: {why}"));
                }
                for (stress, why) in &r.not_applicable {
                    status.notes.push(format!("interference.{}: not applicable: {why}", stress.name()));
                }
                out.samples.extend(r.samples);
            }
            Err(e) => step_failed(out, status, name, "interference", ExperimentError::Launch { context: "measuring interference".into(), source: e })?,
        }
        took("interference", t);
        progress.inc();
    }
    Ok(())
}

/// A run id from the current UTC time: `YYYYMMDD-HHMMSS`.
pub fn new_run_id() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let [y, m, d, hh, mm, ss] = crate::measure::clock::utc_fields(secs);
    format!("{y:04}{m:02}{d:02}-{hh:02}{mm:02}{ss:02}")
}

/// The directory a run writes to.
pub fn run_dir(out: &std::path::Path, run_id: &str) -> PathBuf {
    out.join(run_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{expected_cpu_checksum, WorkloadResult};

    #[test]
    fn run_id_has_the_documented_shape() {
        let id = new_run_id();
        assert_eq!(id.len(), 15, "{id}");
        assert_eq!(&id[8..9], "-");
        assert!(id[..8].chars().all(|c| c.is_ascii_digit()) && id[9..].chars().all(|c| c.is_ascii_digit()));
        assert!(id.starts_with("20"));
    }

    use std::sync::Arc;

    use crate::platform::fake::{FakePlatform, Fault, Log, FAKE_A, FAKE_B};
    use crate::platform::info::Unavailable;

    /// The fake runs share the process-wide interrupt flag: one at a time.
    fn serial() -> std::sync::MutexGuard<'static, ()> {
        crate::interrupt::test_serial()
    }

    fn opts(workloads: &[&str], warmup: u32, runs: u32) -> RunOptions {
        RunOptions {
            platforms: vec!["fake-a".into(), "fake-b".into()],
            workloads: workloads.iter().map(|w| w.parse::<WorkloadSpec>().unwrap().into()).collect(),
            runs,
            warmup,
            timeout: Duration::from_secs(5),
            limits: Limits::default(),
            platform_options: PlatformOptions::default(),
            order: Order::Sequential,
            max_time: None,
            costs: CostOptions::none(),
        }
    }

    fn two(a: FakePlatform, b: FakePlatform) -> Vec<Candidate> {
        vec![("fake-a".into(), Ok(Box::new(a) as Box<dyn Platform>)), ("fake-b".into(), Ok(Box::new(b) as Box<dyn Platform>))]
    }

    #[test]
    fn launches_in_order_and_discards_warmups() {
        let _g = serial();
        let log = Arc::new(Log::default());
        let (a, b) = (FakePlatform::new(&FAKE_A, log.clone()), FakePlatform::new(&FAKE_B, log.clone()));
        let out = run_with("run-1", two(a, b), &opts(&["ready", "cpu:10"], 2, 3), &Silent).unwrap();
        // One platform after the other, each workload warm-ups first.
        let l = log.launches();
        assert_eq!(l.len(), 2 * 2 * 5);
        assert_eq!(&l[..6], ["fake-a ready #0", "fake-a ready #1", "fake-a ready #2", "fake-a ready #3", "fake-a ready #4", "fake-a cpu:10 #5"]);
        assert_eq!(l[10], "fake-b ready #0", "sequential: every launch of one platform, then the next's");
        // Only measured launches have rows: launches 2, 3 and 4 of `ready`
        // (boot 1 + k ms), as iterations 0, 1, 2.
        let boots: Vec<(u32, f64)> = out
            .samples
            .iter()
            .filter(|s| s.platform == "fake-a" && s.workload == "ready" && s.metric == Metric::Boot)
            .map(|s| (s.iteration, s.value))
            .collect();
        assert_eq!(boots, vec![(0, 3.0), (1, 4.0), (2, 5.0)]);
        // Every launch yields boot, its phases (adding up) and the
        // workload's own row, under the full spec; all stamped with the run id.
        for it in 0..3 {
            let rows: Vec<&Sample> = out.samples.iter().filter(|s| s.platform == "fake-b" && s.workload == "cpu:10" && s.iteration == it).collect();
            let metrics: Vec<String> = rows.iter().map(|s| s.metric.to_string()).collect();
            assert_eq!(metrics, ["boot", "boot.setup", "boot.ready", "cpu"]);
            let phases: f64 = rows.iter().filter(|s| matches!(s.metric, Metric::BootPhase(_))).map(|s| s.value).sum();
            assert!((phases - rows[0].value).abs() < 1e-9);
        }
        assert!(out.samples.iter().all(|s| s.run_id == "run-1"));
        assert_eq!(out.statuses.iter().map(|s| (s.platform.as_str(), s.status)).collect::<Vec<_>>(), [("fake-a", RunStatus::Ran), ("fake-b", RunStatus::Ran)]);
        assert!(out.failures.is_empty());
        assert_eq!(log.live.load(std::sync::atomic::Ordering::SeqCst), 0, "every instance stopped");
        // The summary of the samples: one group per (platform, workload, metric, unit).
        let summary = crate::export::summarize_samples(&out.samples);
        let cpu = summary.iter().find(|r| r.platform == "fake-a" && r.metric == Metric::Cpu).unwrap();
        assert_eq!((cpu.n, cpu.median, cpu.unit.as_str()), (3, 2.0, "ms"));
    }

    #[test]
    fn interleaved_platforms_take_turns_in_blocks() {
        let _g = serial();
        let log = Arc::new(Log::default());
        let (a, b) = (FakePlatform::new(&FAKE_A, log.clone()), FakePlatform::new(&FAKE_B, log.clone()));
        let o = RunOptions { order: Order::Interleaved { block: 2 }, ..opts(&["ready"], 1, 5) };
        let out = run_with("r", two(a, b), &o, &Silent).unwrap();
        let who: Vec<String> = log.launches().iter().map(|l| l.split(' ').next().unwrap_or("").to_string()).collect();
        // Warm-ups, then blocks of 2, 2 and the last 1 measured launch, in turns.
        assert_eq!(who, ["fake-a", "fake-b", "fake-a", "fake-a", "fake-b", "fake-b", "fake-a", "fake-a", "fake-b", "fake-b", "fake-a", "fake-b"]);
        for p in ["fake-a", "fake-b"] {
            let its: Vec<u32> = out.samples.iter().filter(|s| s.platform == p && s.metric == Metric::Boot).map(|s| s.iteration).collect();
            assert_eq!(its, [0, 1, 2, 3, 4], "{p}");
        }
    }

    #[test]
    fn teardown_is_measured_on_idle_instances_and_rows_carry_the_full_spec() {
        let _g = serial();
        let log = Arc::new(Log::default());
        let (a, b) = (FakePlatform::new(&FAKE_A, log.clone()), FakePlatform::new(&FAKE_B, log.clone()));
        let out = run_with("r", two(a, b), &opts(&["cpu:10", "idle:2"], 0, 2), &Silent).unwrap();
        let keys: std::collections::BTreeSet<(String, String)> = out.samples.iter().map(|s| (s.workload.clone(), s.metric.to_string())).collect();
        assert!(keys.contains(&("cpu:10".into(), "cpu".into())) && keys.contains(&("idle:2".into(), "teardown".into())), "{keys:?}");
        assert!(!keys.contains(&("cpu:10".into(), "teardown".into())), "a finished workload has no teardown row");
    }

    #[test]
    fn a_slow_platform_is_sized_and_the_run_stays_within_its_budget() {
        let _g = serial();
        let log = Arc::new(Log::default());
        // One call round trip costs 1 ms on both fakes (a slow VM exit).
        let mut a = FakePlatform::new(&FAKE_A, log.clone());
        a.call_ns = 1_000_000;
        let mut b = FakePlatform::new(&FAKE_B, log.clone());
        b.call_ns = 1_000_000;
        let target = Duration::from_millis(50);
        let budget = Duration::from_secs(2);
        let plan = WorkloadPlan { spec: "call".parse().unwrap(), sizing: Sizing::Target(target) };
        let o = RunOptions { workloads: vec![plan], runs: 40, warmup: 1, max_time: Some(budget), order: Order::default(), ..opts(&[], 0, 1) };
        let t = Instant::now();
        let out = run_with("r", two(a, b), &o, &Silent).unwrap();
        let took = t.elapsed();
        assert!(took <= budget.mul_f64(1.1), "the run took {took:?} with a budget of {budget:?}");
        for rec in &out.sizes {
            // 100 calls took at least 100 ms: about 50 make 50 ms.
            let n: u32 = rec.chosen.strip_prefix("call:").and_then(|n| n.parse().ok()).unwrap_or(0);
            assert!((30..=50).contains(&n), "{rec:?}");
            assert!(rec.runs < 40 && rec.runs >= 1, "the runs were reduced and recorded: {rec:?}");
            assert_eq!((rec.workload.as_str(), rec.runs_asked, rec.target_ms), ("call:10000", 40, Some(50.0)));
            let rows = out.samples.iter().filter(|s| s.platform == rec.platform && s.workload == rec.chosen && s.metric == Metric::Call).count();
            assert_eq!(rows as u32, rec.runs);
        }
        assert_eq!(out.sizes.len(), 2);
        assert!(out.statuses.iter().all(|s| s.notes.iter().any(|n| n.contains("instead of 40"))), "{:?}", out.statuses);
    }

    #[test]
    fn the_sizing_launch_is_the_first_warm_up() {
        let _g = serial();
        let log = Arc::new(Log::default());
        let (a, b) = (FakePlatform::new(&FAKE_A, log.clone()), FakePlatform::new(&FAKE_B, log.clone()));
        let plan = WorkloadPlan { spec: "cpu".parse().unwrap(), sizing: Sizing::Target(Duration::from_millis(5)) };
        let o = RunOptions { workloads: vec![plan, "ready".parse::<WorkloadSpec>().unwrap().into()], runs: 3, warmup: 2, max_time: None, ..opts(&[], 0, 1) };
        let out = run_with("r", two(a, b), &o, &Silent).unwrap();
        let count = |prefix: &str| log.launches().iter().filter(|l| l.starts_with(prefix)).count();
        // cpu: one sizing launch (also the first warm-up), one more warm-up,
        // three measured; ready: two warm-ups, three measured.
        assert_eq!(count("fake-a cpu"), 1 + 1 + 3, "{:?}", log.launches());
        assert_eq!(count("fake-a ready"), 2 + 3, "{:?}", log.launches());
        assert_eq!(out.samples.iter().filter(|s| s.platform == "fake-a" && s.metric == Metric::Boot).count(), 6);
    }

    #[test]
    fn a_failing_platform_does_not_stop_the_others() {
        let _g = serial();
        let log = Arc::new(Log::default());
        let a = FakePlatform::new(&FAKE_A, log.clone()).with_fault(3, Fault::Fail);
        let b = FakePlatform::new(&FAKE_B, log.clone());
        let out = run_with("r", two(a, b), &opts(&["ready", "cpu:10"], 1, 3), &Silent).unwrap();
        let st: Vec<_> = out.statuses.iter().map(|s| (s.platform.as_str(), s.status)).collect();
        assert_eq!(st, [("fake-a", RunStatus::Failed), ("fake-b", RunStatus::Ran)]);
        assert!(out.statuses[0].reason.as_deref().unwrap_or("").contains("fake launch 3 fails"), "{:?}", out.statuses[0]);
        assert_eq!(out.failures.len(), 1);
        // fake-a stopped at its failing launch (no cpu launches); fake-b ran it all.
        assert!(!log.launches().iter().any(|l| l.starts_with("fake-a cpu")));
        assert_eq!(out.samples.iter().filter(|s| s.platform == "fake-b" && s.metric == Metric::Boot).count(), 6);
        assert_eq!(log.live.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[test]
    fn a_wrong_checksum_fails_the_whole_run() {
        let _g = serial();
        let log = Arc::new(Log::default());
        let a = FakePlatform::new(&FAKE_A, log.clone()).with_fault(1, Fault::WrongChecksum);
        let b = FakePlatform::new(&FAKE_B, log.clone());
        let e = run_with("r", two(a, b), &opts(&["cpu:10"], 0, 3), &Silent).unwrap_err();
        assert!(matches!(e, LaunchOnceError::Run(RunError::ChecksumMismatch { .. })), "{e}");
        assert!(!log.launches().iter().any(|l| l.starts_with("fake-b")), "the run stops at the mismatch");
        assert_eq!(log.live.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[test]
    fn an_interrupt_ends_the_run_and_releases_everything() {
        let _g = serial();
        let log = Arc::new(Log::default());
        let a = FakePlatform::new(&FAKE_A, log.clone()).with_fault(2, Fault::Interrupt);
        let b = FakePlatform::new(&FAKE_B, log.clone());
        let e = run_with("r", two(a, b), &opts(&["ready"], 0, 5), &Silent).unwrap_err();
        crate::interrupt::clear();
        assert!(matches!(e, LaunchOnceError::Launch(LaunchError::Interrupted)), "{e}");
        assert_eq!(log.launches().len(), 3, "no launch after the interrupt: {:?}", log.launches());
        assert_eq!(log.live.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[test]
    fn platforms_that_cannot_run_are_recorded_as_skipped() {
        let _g = serial();
        let log = Arc::new(Log::default());
        let cands: Vec<Candidate> = vec![
            ("fake-a".into(), Err(NotRun::Skipped(Unavailable::NoKvm("no /dev/kvm here".into())))),
            ("fake-b".into(), Ok(Box::new(FakePlatform::new(&FAKE_B, log.clone())) as Box<dyn Platform>)),
        ];
        let out = run_with("r", cands, &opts(&["ready"], 0, 2), &Silent).unwrap();
        assert_eq!(out.statuses[0].status, RunStatus::Skipped);
        assert_eq!(out.statuses[0].reason.as_deref(), Some("no /dev/kvm here"));
        assert_eq!(out.statuses[1].status, RunStatus::Ran);
        assert!(out.samples.iter().all(|s| s.platform == "fake-b"));
    }

    #[test]
    fn checksum_mismatch_is_an_error() {
        let mut r = WorkloadResult::default();
        r.fields.insert("checksum".into(), "0000000000000000".into());
        r.fields.insert("elapsed_ns".into(), "1000000".into());
        let e = workload_rows("x", Workload::Cpu { rounds: 3 }, &r).unwrap_err();
        assert!(matches!(e, RunError::ChecksumMismatch { .. }));
        r.fields.insert("checksum".into(), expected_cpu_checksum(3));
        let rows = workload_rows("x", Workload::Cpu { rounds: 3 }, &r).unwrap();
        assert_eq!(rows, vec![(Metric::Cpu, 1.0)]);
        r.fields.insert("elapsed_ns".into(), "2000000".into());
        let rows = workload_rows("x", Workload::Call { n: 1000 }, &r).unwrap();
        assert_eq!(rows[0].1, 2.0, "2 ms over 1000 calls is 2 us per call");
    }
}
