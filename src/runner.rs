//! The benchmark loop (after hyperfine's `benchmark/`): for every platform
//! and workload, warm-up launches and measured launches; every measured
//! launch yields `boot`, `boot.<phase>`, `teardown` and the workload's own
//! rows, as [`Sample`]s. The `cpu` checksum is checked against the host's
//! own computation on every launch: a mismatch fails the run loudly.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::LaunchError;
use crate::export::json::PlatformStatus;
use crate::export::Sample;
use crate::measure::Boot;
use crate::platform::registry::{self, NotRun, PlatformOptions};
use crate::platform::{Finished, LaunchSpec, Limits, Platform};
use crate::workload::{expected_cpu_checksum, Workload, WorkloadResult, WorkloadSpec};

/// What `versus run` does.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub platforms: Vec<String>,
    pub workloads: Vec<WorkloadSpec>,
    pub runs: u32,
    pub warmup: u32,
    pub timeout: Duration,
    pub limits: Limits,
    pub platform_options: PlatformOptions,
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
    /// The density curve, when set.
    pub density: Option<crate::measure::density::DensityOptions>,
    /// Footprint with this many instances (0: not measured).
    pub footprint_instances: usize,
    /// The isolation probe matrix.
    pub probes: bool,
    /// Noisy-neighbour interference, when set.
    pub interference: Option<crate::measure::interference::Config>,
}

impl CostOptions {
    /// Launch latency only.
    pub fn none() -> CostOptions {
        CostOptions {
            memory_mib: 0,
            memory_iterations: 0,
            density: None,
            footprint_instances: 0,
            probes: false,
            interference: None,
        }
    }
}

/// One measured value before it gets a run id and iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub metric: String,
    pub unit: &'static str,
    pub value: f64,
}

/// Everything one launch produced.
#[derive(Debug, Clone)]
pub struct LaunchRecord {
    pub boot: Boot,
    pub finished: Finished,
    pub teardown_ms: f64,
    pub rows: Vec<Row>,
}

/// A run-level failure that must fail the run, not only its platform.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "{platform} reported cpu checksum {got} for {rounds} rounds, but the workload's checksum is {expected}: the platforms did not run the same computation"
    )]
    ChecksumMismatch {
        platform: String,
        rounds: u32,
        got: String,
        expected: String,
    },
    #[error("{platform}: the `{workload}` workload finished without reporting a result")]
    NoResult { platform: String, workload: String },
}

/// The workload's own rows from its RESULT, checked.
pub fn workload_rows(platform: &str, w: Workload, r: &WorkloadResult) -> Result<Vec<Row>, RunError> {
    let el = r.elapsed_ns().unwrap_or(0) as f64;
    Ok(match w {
        Workload::Cpu { rounds } => {
            let got = r.checksum().unwrap_or("").to_string();
            let expected = expected_cpu_checksum(rounds);
            if got != expected {
                return Err(RunError::ChecksumMismatch {
                    platform: platform.into(),
                    rounds,
                    got,
                    expected,
                });
            }
            vec![Row {
                metric: "cpu".into(),
                unit: "ms",
                value: el / 1e6,
            }]
        }
        Workload::Mem { .. } => vec![Row {
            metric: "mem_touch".into(),
            unit: "ms",
            value: el / 1e6,
        }],
        Workload::Call { n } if n > 0 => vec![Row {
            metric: "call".into(),
            unit: "us",
            value: el / n as f64 / 1e3,
        }],
        Workload::Idle { .. } => vec![Row {
            metric: "mem_touch".into(),
            unit: "ms",
            value: el / 1e6,
        }],
        _ => vec![],
    })
}

/// Launch errors and run errors together.
#[derive(Debug, thiserror::Error)]
pub enum LaunchOnceError {
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// One launch: start, wait for ready, let the workload finish (an `idle`
/// workload is stopped right away), tear down; rows for everything measured.
pub fn launch_once(platform: &dyn Platform, spec: &LaunchSpec) -> Result<LaunchRecord, LaunchOnceError> {
    let mut inst = platform.launch(spec)?;
    let boot = inst.boot().clone();
    let finished = match spec.workload {
        WorkloadSpec::Bench(Workload::Idle { .. }) => Finished::default(),
        _ => inst.finish()?,
    };
    let teardown_ms = inst.stop()?;
    let mut rows = vec![Row {
        metric: "boot".into(),
        unit: "ms",
        value: boot.total_ms(),
    }];
    rows.extend(boot.phases.iter().map(|(p, ms)| Row {
        metric: format!("boot.{p}"),
        unit: "ms",
        value: *ms,
    }));
    rows.push(Row {
        metric: "teardown".into(),
        unit: "ms",
        value: teardown_ms,
    });
    if let Some(w) = spec.workload.bench().filter(|w| !matches!(w, Workload::Ready | Workload::Idle { .. })) {
        let r = finished
            .results
            .iter()
            .find(|r| r.get("workload") == Some(w.name()))
            .ok_or_else(|| RunError::NoResult {
                platform: platform.name().into(),
                workload: w.name().into(),
            })?;
        rows.extend(workload_rows(platform.name(), w, r)?);
    }
    Ok(LaunchRecord {
        boot,
        finished,
        teardown_ms,
        rows,
    })
}

/// Progress reporting, so the runner does not depend on a terminal.
pub trait Progress {
    fn start(&self, total: u64);
    fn set_message(&self, msg: String);
    fn inc(&self);
    fn println(&self, line: String);
    fn finish(&self);
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
    pub probes: Vec<crate::measure::probes::ProbeRow>,
    pub statuses: Vec<PlatformStatus>,
    /// Launches or measurements that failed, in words.
    pub failures: Vec<String>,
    /// What was not measured on this host, and why.
    pub not_measured: Vec<String>,
}

/// Runs every platform and workload. Returns `Err` only for failures of the
/// whole run (checksum mismatch, interrupt); a platform that cannot run or
/// fails is recorded in `statuses` and `failures`.
pub fn run(run_id: &str, opts: &RunOptions, progress: &dyn Progress) -> Result<RunResult, LaunchOnceError> {
    let mut out = RunResult::default();
    let per_platform = opts.workloads.len() as u64 * (opts.warmup + opts.runs) as u64;
    let mut created: Vec<Box<dyn Platform>> = Vec::new();
    for name in &opts.platforms {
        match registry::create(name, &opts.platform_options) {
            Ok(p) => created.push(p),
            Err(NotRun::Skipped(why)) | Err(NotRun::Unknown(why)) => {
                progress.println(format!("skipping {name}: {why}"));
                out.statuses.push(PlatformStatus {
                    platform: name.clone(),
                    status: "skipped".into(),
                    reason: Some(why),
                    representative: false,
                    representative_note: None,
                    notes: vec![],
                });
            }
        }
    }
    let c = &opts.costs;
    // Read once per run: the host the probes compare with, including the
    // (slow to count) number of host system calls.
    let host_facts = c.probes.then(|| {
        let h = crate::measure::probes::HostFacts::collect();
        crate::measure::probes::HostFacts {
            syscalls: crate::measure::probes::host_syscalls(),
            ..h
        }
    });
    let cost_steps = (c.memory_iterations > 0) as u64 + c.density.is_some() as u64 + c.probes as u64 + c.interference.is_some() as u64;
    progress.start((per_platform + cost_steps) * created.len() as u64);
    for p in &created {
        let mut status = PlatformStatus {
            platform: p.name().into(),
            status: "ran".into(),
            reason: None,
            representative: p.representative().is_ok(),
            representative_note: p.representative().err(),
            notes: p.notes(),
        };
        'workloads: for w in &opts.workloads {
            let spec = LaunchSpec {
                workload: *w,
                timeout: opts.timeout,
                limits: opts.limits,
            };
            for i in 0..(opts.warmup + opts.runs) {
                if crate::interrupt::requested() {
                    return Err(LaunchError::Interrupted.into());
                }
                progress.set_message(format!("{} {}", p.name(), w));
                match launch_once(p.as_ref(), &spec) {
                    Ok(rec) if i >= opts.warmup => {
                        let iteration = i - opts.warmup;
                        out.samples.extend(rec.rows.into_iter().map(|r| Sample {
                            run_id: run_id.into(),
                            platform: p.name().into(),
                            workload: w.name().into(),
                            metric: r.metric,
                            unit: r.unit.into(),
                            iteration,
                            value: r.value,
                        }));
                    }
                    Ok(_) => {}
                    Err(LaunchOnceError::Launch(LaunchError::Interrupted)) => return Err(LaunchError::Interrupted.into()),
                    Err(e @ LaunchOnceError::Run(RunError::ChecksumMismatch { .. })) => return Err(e),
                    Err(e) => {
                        let why = format!("{} {}: {e}", p.name(), w);
                        progress.println(format!("error: {why}"));
                        status.status = "failed".into();
                        status.reason = Some(why.clone());
                        out.failures.push(why);
                        break 'workloads;
                    }
                }
                progress.inc();
            }
        }
        if status.status == "ran" {
            measure_costs(run_id, p.as_ref(), opts, host_facts.as_ref(), progress, &mut out, &mut status)?;
        }
        out.statuses.push(status);
    }
    if opts.costs.memory_iterations > 0 {
        crate::measure::memory::add_overhead_rows(&mut out.samples);
    }
    if opts.costs.footprint_instances > 0 {
        progress.set_message("footprint".into());
        measure_footprint(run_id, opts, &mut out);
    }
    progress.finish();
    // Keep statuses in the order the user gave.
    out.statuses
        .sort_by_key(|s| opts.platforms.iter().position(|p| *p == s.platform).unwrap_or(usize::MAX));
    Ok(out)
}

/// Records a failed measurement step: the run goes on, the failure is
/// reported and makes the run exit non-zero.
fn step_failed(out: &mut RunResult, status: &mut PlatformStatus, platform: &str, step: &str, e: impl std::fmt::Display) {
    let why = format!("{platform} {step}: {e:#}");
    status.notes.push(format!("{step} failed: {e:#}"));
    out.failures.push(why);
}

/// Memory, density, probes and interference of one platform.
fn measure_costs(
    run_id: &str,
    p: &dyn Platform,
    opts: &RunOptions,
    host_facts: Option<&crate::measure::probes::HostFacts>,
    progress: &dyn Progress,
    out: &mut RunResult,
    status: &mut PlatformStatus,
) -> Result<(), LaunchOnceError> {
    let c = &opts.costs;
    let name = p.name();
    let idle = LaunchSpec {
        workload: WorkloadSpec::Bench(Workload::Idle { mib: c.memory_mib }),
        timeout: opts.timeout,
        limits: opts.limits,
    };
    let check_interrupt = || {
        if crate::interrupt::requested() {
            Err(LaunchOnceError::from(LaunchError::Interrupted))
        } else {
            Ok(())
        }
    };

    // The `vm-bare` VMM normally runs inside versus; for memory and density
    // it runs in its own small `versus-vmm` process, so that each
    // instance's PSS is its own.
    let vmm_process = if name == "vm-bare" && (c.memory_iterations > 0 || c.density.is_some()) {
        match crate::platform::vm::vmm_process::VmBareProcessPlatform::new() {
            Ok(v) => Some(v),
            Err(e) => {
                step_failed(out, status, name, "memory", e);
                None
            }
        }
    } else {
        None
    };
    let mem_platform: Option<&dyn Platform> = match (&vmm_process, name) {
        (Some(v), _) => Some(v),
        (None, "vm-bare") => None,
        (None, _) => Some(p),
    };
    if let (true, Some(mp)) = (c.memory_iterations > 0, mem_platform) {
        check_interrupt()?;
        progress.set_message(format!("{name} memory"));
        match memory_rows(run_id, mp, vmm_process.as_ref(), &idle, c.memory_iterations) {
            Ok(rows) => out.samples.extend(rows),
            Err(e) => step_failed(out, status, name, "memory", e),
        }
        progress.inc();
    }
    if let (Some(d), Some(mp)) = (&c.density, mem_platform) {
        check_interrupt()?;
        progress.set_message(format!("{name} density"));
        match crate::measure::density::measure_density(mp, &idle, d) {
            Ok(r) => {
                if let Some(why) = &r.stopped_early {
                    status.notes.push(format!("density curve stopped early: {why}"));
                }
                out.samples.extend(r.samples(run_id, name, idle.workload.name()));
            }
            Err(e) => step_failed(out, status, name, "density", e),
        }
        progress.inc();
    }
    if let Some(host) = host_facts {
        check_interrupt()?;
        progress.set_message(format!("{name} probes"));
        match crate::measure::probes::run_probes_with(p, opts.timeout, host) {
            Ok(rows) => {
                for s in surface_rows(name, &rows, host) {
                    status.notes.push(format!("attack surface, {}: {}", s.counted, s.note));
                    if let Some(v) = s.value {
                        out.samples.push(Sample {
                            run_id: run_id.into(),
                            platform: name.into(),
                            workload: "probe".into(),
                            metric: format!("surface.{}", s.counted),
                            unit: "count".into(),
                            iteration: 0,
                            value: v as f64,
                        });
                    }
                }
                out.probes.extend(crate::measure::probes::with_run_id(rows, run_id));
            }
            Err(e) => step_failed(out, status, name, "probes", e),
        }
        progress.inc();
    }
    if let Some(cfg) = &c.interference {
        check_interrupt()?;
        progress.set_message(format!("{name} interference"));
        match crate::measure::interference::run_interference(p, cfg) {
            Ok(r) => {
                for (stress, why) in &r.not_applicable {
                    status.notes.push(format!("interference.{}: not applicable: {why}", stress.name()));
                }
                out.samples.extend(r.samples.into_iter().map(|mut s| {
                    s.run_id = run_id.into();
                    s
                }));
            }
            Err(e) => step_failed(out, status, name, "interference", e),
        }
        progress.inc();
    }
    Ok(())
}

/// The attack surface a platform exposes to its workload: host system calls
/// for workloads on the host kernel; VM-exit kinds and host calls served
/// by the VMM for the kernel-less guest. They count different things; each
/// row says what it counts.
fn surface_rows(
    platform: &str,
    probes: &[crate::measure::probes::ProbeRow],
    host: &crate::measure::probes::HostFacts,
) -> Vec<crate::measure::probes::SurfaceRow> {
    if platform == "vm-bare" {
        return crate::platform::vm::bare::attack_surface();
    }
    crate::measure::probes::syscall_surface(platform, probes, host).into_iter().collect()
}

/// `mem.host` of idle instances; for the kernel-less VM in its
/// `versus-vmm` process also `mem.vmm`, the VMM's resident memory outside
/// the guest RAM, read from the same instance.
fn memory_rows(
    run_id: &str,
    p: &dyn Platform,
    vmm: Option<&crate::platform::vm::vmm_process::VmBareProcessPlatform>,
    idle: &LaunchSpec,
    iterations: u32,
) -> anyhow::Result<Vec<Sample>> {
    use crate::measure::memory::{measure_memory, sample};
    let workload = idle.workload.name();
    let Some(vmm) = vmm else {
        let mut rows = measure_memory(p, idle, iterations, run_id)?;
        // Rows carry the workload's name, as the launch rows do.
        for r in &mut rows {
            r.workload = workload.into();
        }
        return Ok(rows);
    };
    let mut rows = Vec::new();
    for i in 0..iterations {
        let m = vmm.measure_memory(idle)?;
        let row = |metric: &str, v: u64| sample(run_id, p.name(), workload, metric, "bytes", i, v as f64);
        rows.extend([row("mem.host", m.host_pss), row("mem.rss", m.vmm_rss), row("mem.vmm", m.vmm_rss_excl_guest)]);
    }
    Ok(rows)
}

/// Footprint rows: built for real with N instances per platform.
fn measure_footprint(run_id: &str, opts: &RunOptions, out: &mut RunResult) {
    use crate::measure::footprint;
    let n = opts.costs.footprint_instances;
    let kernel = crate::platform::vm::linux::find_kernel(opts.platform_options.kernel.as_deref()).ok();
    let artefacts: Vec<PathBuf> = kernel.iter().cloned().collect();
    if kernel.is_none() {
        out.not_measured
            .push("footprint of vm-linux's kernel: no kernel found (harness/fetch-kernel, or --kernel)".into());
    }
    match footprint::standard_footprints(run_id, n, 1 << 20, "vm-linux", &artefacts, 64 << 20) {
        Ok((rows, notes)) => {
            out.samples.extend(rows);
            out.not_measured.extend(notes);
        }
        Err(e) => out.failures.push(format!("footprint: {e:#}")),
    }
    let bare = tempfile::Builder::new().prefix("versus-footprint-").tempdir().and_then(|d| {
        let img = d.path().join("vm-bare-guest.elf");
        std::fs::write(&img, crate::platform::vm::bare::BARE_BINARY)?;
        Ok((d, img))
    });
    match bare
        .map_err(anyhow::Error::from)
        .and_then(|(_d, img)| footprint::footprint_shared("vm-bare", &[img], n))
    {
        Ok(r) => out.samples.extend(r.samples(run_id)),
        Err(e) => out.failures.push(format!("footprint of vm-bare: {e:#}")),
    }
}

/// A run id from the current UTC time: `YYYYMMDD-HHMMSS`.
pub fn new_run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
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

    #[test]
    fn run_id_has_the_documented_shape() {
        let id = new_run_id();
        assert_eq!(id.len(), 15, "{id}");
        assert_eq!(&id[8..9], "-");
        assert!(id[..8].chars().all(|c| c.is_ascii_digit()) && id[9..].chars().all(|c| c.is_ascii_digit()));
        assert!(id.starts_with("20"));
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
        assert_eq!(
            rows,
            vec![Row {
                metric: "cpu".into(),
                unit: "ms",
                value: 1.0
            }]
        );
        r.fields.insert("elapsed_ns".into(), "2000000".into());
        let rows = workload_rows("x", Workload::Call { n: 1000 }, &r).unwrap();
        assert_eq!(rows[0].value, 2.0, "2 ms over 1000 calls is 2 us per call");
    }
}
