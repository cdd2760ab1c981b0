//! Noisy-neighbour interference (after the Isolation Benchmark Suite of
//! Matthews et al.): the victim workloads (`cpu`, `mem`) run alone, then
//! beside a neighbour instance of the same platform running a stress of the
//! workload program (`stress-cpu`, `stress-mem`, `stress-fork`). Each
//! `interference.<stress>` sample is one victim time under that stress
//! divided by the median victim time alone (ratio; 1.0 = no interference).
//!
//! Everything is bounded in time: the neighbour stops by itself at the end
//! of its window (sized from the victims' time alone, capped by
//! [`Config::max_window`]), and the victims run only while it is alive. The
//! fork bomb is bounded by the platform's pids limit and by
//! [`Config::max_procs`]; versus counts the processes running the platform's
//! workload binary before and after each neighbour, and reports any left.
//! Every neighbour gets the same CPU: it is launched with
//! [`CgroupNeeds::cpu`], so a process neighbour (and a VMM process) gets the
//! one-CPU quota of [`crate::platform::Limits::cpus`] that a container's
//! cgroup always has, and a VM neighbour has one vCPU besides.
//!
//! A platform that cannot run a stress refuses it with
//! `LaunchError::Unsupported` (vm-bare: `stress-fork`, there is no kernel to
//! fork in); that stress is then recorded in
//! [`Interference::not_applicable`] and has no rows.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use crate::error::{LaunchError, Result};
use crate::model::{Metric, Sample};
use crate::platform::{CgroupNeeds, Instance, LaunchSpec, Platform};
use crate::workload::{GuestMode, StressKind, Workload, WorkloadSpec};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Config {
    /// The victims (benchmark workloads that report `elapsed_ns`).
    pub victims: Vec<WorkloadSpec>,
    pub stresses: Vec<StressKind>,
    /// Victim runs alone and under each stress.
    pub reps: u32,
    /// Upper bound on one neighbour's lifetime.
    pub max_window: Duration,
    /// Most processes the fork bomb keeps alive (above the container's pids
    /// limit, so that the limit is what stops it there).
    pub max_procs: u32,
    /// Bound on every launch and wait.
    pub timeout: Duration,
    /// `max_window` was cut by the run's time budget: a window too short
    /// for one run of each victim is then not measured (and said so), not
    /// a failure.
    pub budget_limited: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            victims: vec![WorkloadSpec::Bench(Workload::Cpu { rounds: 50_000 }), WorkloadSpec::Bench(Workload::Mem { mib: 32 })],
            stresses: StressKind::ALL.to_vec(),
            reps: 3,
            max_window: Duration::from_secs(10),
            max_procs: 256,
            timeout: Duration::from_secs(30),
            budget_limited: false,
        }
    }
}

/// What one neighbour did.
#[derive(Debug, Clone)]
pub struct Neighbour {
    pub stress: StressKind,
    /// The window it was given, in ms.
    pub window_ms: u64,
    /// Its own count of work: SHA-256 rounds, MiB copied, or (fork) the
    /// peak number of live processes of the bomb.
    pub work: u64,
    /// Processes running the platform's workload binary before the
    /// neighbour started and after it ended (should be equal: zero).
    pub procs_before: usize,
    pub procs_after: usize,
    /// Victim runs that fit in the window, per victim.
    pub victim_runs: BTreeMap<String, u32>,
}

/// The result of one platform's interference measurement.
#[derive(Debug, Clone, Default)]
pub struct Interference {
    /// `interference.<stress>` samples (unit `ratio`), plus
    /// `interference.alone` (ms) for the victims' time alone.
    pub samples: Vec<Sample>,
    pub neighbours: Vec<Neighbour>,
    /// Stresses the platform refused to run (`LaunchError::Unsupported`:
    /// a fork bomb in a guest with no kernel), with its reason. They have
    /// no rows: not applicable, never a stand-in measurement.
    pub not_applicable: Vec<(StressKind, String)>,
    /// Why nothing was measured under a neighbour: the budget's window
    /// cannot hold one run of each victim (see [`Config::budget_limited`]).
    pub not_measured: Option<String>,
}

/// The (device, inode) of a process's executable.
fn exe_id(pid: i32) -> Option<(u64, u64)> {
    std::fs::metadata(format!("/proc/{pid}/exe")).ok().map(|m| (m.dev(), m.ino()))
}

/// Host processes whose executable is `id` (the platform's workload binary).
pub fn count_running(id: (u64, u64)) -> usize {
    let Ok(d) = std::fs::read_dir("/proc") else { return 0 };
    d.flatten().filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok())).filter(|pid| exe_id(*pid) == Some(id)).count()
}

/// One victim run: its own elapsed ns, the wall time around it, and the
/// (device, inode) of the binary its process ran, when it had its own.
type VictimRun = (f64, Duration, Option<(u64, u64)>);

/// Runs one victim to the end.
fn run_victim(platform: &dyn Platform, spec: &LaunchSpec) -> Result<VictimRun> {
    let t = Instant::now();
    let mut inst = platform.launch(spec)?;
    // The workload's own binary (not versus itself, for instances that
    // live inside versus: there is no separate process to count).
    let me = std::process::id() as i32;
    let exe = inst.pids().into_iter().find(|p| *p != me).and_then(exe_id);
    let finished = inst.finish();
    let stopped = inst.stop();
    let finished = finished?;
    stopped?;
    let name = spec.workload.name();
    let el = finished
        .results
        .iter()
        .find(|r| r.get("workload") == Some(name))
        .and_then(|r| r.elapsed_ns())
        .ok_or_else(|| LaunchError::Aborted(format!("the {name} victim finished without reporting elapsed_ns")))?;
    Ok((el as f64, t.elapsed(), exe))
}

fn sample(platform: &str, workload: &WorkloadSpec, metric: Metric, iteration: u32, value: f64) -> Sample {
    Sample::new(platform, &workload.to_string(), metric, iteration, value)
}

/// The `interference.<stress>` metric of a stress.
pub fn metric_of(stress: StressKind) -> Metric {
    match stress {
        StressKind::Cpu => Metric::InterferenceCpu,
        StressKind::Mem => Metric::InterferenceMem,
        StressKind::Fork => Metric::InterferenceFork,
    }
}

/// Measures interference on `platform`. Every instance it starts is
/// stopped on every path (instances release themselves when dropped).
pub fn run_interference(platform: &dyn Platform, cfg: &Config) -> Result<Interference> {
    let mut out = Interference::default();
    let mut alone = BTreeMap::new();
    let mut wall_total = Duration::ZERO;
    let mut longest = Duration::ZERO;
    let mut exe = None;
    for v in &cfg.victims {
        let mut spec = LaunchSpec::new(*v);
        spec.timeout = cfg.timeout;
        let mut times = Vec::new();
        for i in 0..cfg.reps.max(1) {
            let (el, wall, id) = run_victim(platform, &spec)?;
            exe = exe.or(id);
            wall_total += wall;
            longest = longest.max(wall);
            out.samples.push(sample(platform.name(), v, Metric::InterferenceAlone, i, el / 1e6));
            times.push(el);
        }
        alone.insert(v.to_string(), crate::stats::median(&times));
    }
    let warmup = Duration::from_millis(200);
    // Room for every victim run at up to 12x its time alone (launch
    // included: a fork bomb slows launches most), plus margin.
    let window = (warmup + wall_total * 12 + Duration::from_millis(500)).min(cfg.max_window);
    // One run of each victim, each allowed twice the longest alone (the
    // loop's own guard below), after the neighbour's warm-up: a window cut
    // by the budget below that measures nothing, which is the budget's
    // doing (a slow platform's victim runs include its launch and
    // teardown: 1.7 s under runsc here).
    let need = warmup + wall_total + longest * 2 + Duration::from_millis(100);
    if cfg.budget_limited && window < need {
        out.samples.clear();
        out.not_measured = Some(format!(
            "the run's time budget limits a neighbour's window to {} ms, and one run of each victim needs about {} ms here (alone, launch and teardown included: {} ms in all); give --max-time more, or fewer platforms with -p",
            window.as_millis(),
            need.as_millis(),
            wall_total.as_millis()
        ));
        return Ok(out);
    }
    for &stress in &cfg.stresses {
        // A fork bomb slows launches far more than the other stresses (36x
        // for `cpu` on the process platform here): give it the whole bound.
        let window = if stress == StressKind::Fork { cfg.max_window } else { window };
        let before = exe.map(count_running).unwrap_or(0);
        let mut spec = LaunchSpec::new(WorkloadSpec::mode(GuestMode::Stress { kind: stress, ms: window.as_millis() as u32, max_procs: cfg.max_procs }));
        spec.timeout = cfg.timeout.max(window * 2);
        // The same one-CPU quota for every platform's neighbour.
        spec.cgroup = CgroupNeeds { memory: false, cpu: true };
        let started = Instant::now();
        let mut neighbour: Box<dyn Instance> = match platform.launch(&spec) {
            Ok(n) => n,
            Err(LaunchError::Unsupported(why)) => {
                out.not_applicable.push((stress, why));
                continue;
            }
            Err(e) => return Err(e),
        };
        std::thread::sleep(warmup);
        let mut runs = BTreeMap::new();
        let mut last_wall = Duration::ZERO;
        // Round-robin over the victims, so each gets runs even when the
        // stress slows them more than expected.
        'victims: for i in 0..cfg.reps.max(1) {
            for v in &cfg.victims {
                // Only while the neighbour is certainly still running.
                if started.elapsed() + last_wall * 2 + Duration::from_millis(100) >= window {
                    break 'victims;
                }
                let mut vspec = LaunchSpec::new(*v);
                vspec.timeout = cfg.timeout;
                let (el, wall, _) = run_victim(platform, &vspec)?;
                last_wall = last_wall.max(wall);
                let base = alone[&v.to_string()];
                out.samples.push(sample(platform.name(), v, metric_of(stress), i, el / base));
                *runs.entry(v.to_string()).or_insert(0) += 1;
            }
        }
        let finished = neighbour.finish();
        let stopped = neighbour.stop();
        let finished = finished?;
        stopped?;
        let work = finished
            .results
            .first()
            .and_then(|r| r.checksum())
            .and_then(|c| u64::from_str_radix(c, 16).ok())
            .ok_or_else(|| LaunchError::Aborted(format!("the {} neighbour finished without reporting its work", stress.mode_name())))?;
        let after = exe.map(count_running).unwrap_or(0);
        // A window in which no victim ran measured nothing: that is an
        // error, never an empty row.
        if let Some(v) = cfg.victims.iter().find(|v| runs.get(&v.to_string()).copied().unwrap_or(0) == 0) {
            return Err(LaunchError::Aborted(format!(
                "no `{v}` victim run fitted in the {} ms window of the {} neighbour (a victim took {} ms); raise the window (max_window) or shorten the victims",
                window.as_millis(),
                stress.mode_name(),
                last_wall.as_millis()
            )));
        }
        if stress == StressKind::Fork {
            out.samples.push(sample(platform.name(), &spec.workload, Metric::InterferenceForkPeak, out.neighbours.len() as u32, work as f64));
        }
        out.neighbours.push(Neighbour { stress, window_ms: window.as_millis() as u64, work, procs_before: before, procs_after: after, victim_runs: runs });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_own_exe_count() {
        use crate::stats::median;
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        let me = exe_id(std::process::id() as i32).expect("own exe");
        assert!(count_running(me) >= 1);
    }

    /// A window the budget cut below one run of each victim measures
    /// nothing and says why; the same victims in a long enough window are
    /// measured (here the fake neighbour then fails on its missing work,
    /// which is not the budget's doing).
    #[test]
    fn a_budget_window_too_short_for_the_victims_is_not_measured() {
        use crate::platform::fake::{FakePlatform, Log, FAKE_A};
        let mut fake = FakePlatform::new(&FAKE_A, std::sync::Arc::new(Log::default()));
        fake.call_ns = 300_000; // a call:1000 victim takes 300 ms
        let cfg = Config {
            victims: vec!["call:1000".parse().unwrap()],
            stresses: vec![StressKind::Cpu],
            reps: 1,
            max_window: Duration::from_millis(900),
            budget_limited: true,
            ..Config::default()
        };
        let r = run_interference(&fake, &cfg).expect("not measured is not a failure");
        let why = r.not_measured.expect("said why");
        assert!(why.contains("900 ms") && why.contains("--max-time"), "{why}");
        assert!(r.samples.is_empty() && r.neighbours.is_empty());
        let roomy = Config { max_window: Duration::from_secs(5), ..cfg.clone() };
        assert!(!matches!(run_interference(&fake, &roomy), Ok(Interference { not_measured: Some(_), .. })));
        let unlimited = Config { budget_limited: false, ..cfg };
        assert!(
            !matches!(run_interference(&fake, &unlimited), Ok(Interference { not_measured: Some(_), .. })),
            "without the budget a short window stays an error"
        );
    }
}
