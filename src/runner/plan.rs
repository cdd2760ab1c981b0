//! The order and the size of a run's launches, and the time they may take.
//!
//! - Order: interleaved (workload by workload, the platforms take turns in
//!   blocks) or sequential (platform after platform).
//! - Size: a workload given without its parameter (`call`, `cpu`, `mem`) is
//!   sized by a short calibration so that one measured launch takes a
//!   target time, like criterion's sampling: a call's round trips per
//!   platform (the metric is per round trip), the `cpu` rounds and `mem`
//!   MiB the same on every platform (their metrics are totals, compared
//!   across platforms, and the checksum must be the same computation). The
//!   chosen size is in the rows' workload column (`call:2400`) and in
//!   env.json, so that runs stay comparable; `-w call:N` fixes N.
//! - Time: with a budget, the measured launches of each unit (a workload,
//!   interleaved; a workload of one platform, sequential) get an equal share
//!   of what is left; a unit that would overrun it runs fewer iterations
//!   (at least one), and the run says so.

use std::time::{Duration, Instant};

use super::launch::{launch_once, LaunchOnceError, RunError};
use super::{check_interrupt, Progress, RunResult};
use crate::error::LaunchError;
use crate::model::{PlatformStatus, RunStatus, Sample, SizeRecord};
use crate::platform::{LaunchSpec, Platform};
use crate::workload::{Workload, WorkloadSpec};

/// The order of the launches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Workload by workload: each platform's warm-ups, then the measured
    /// launches in blocks of this many that take turns, so that host drift
    /// (other load, the kernel's cgroup RCU wait) falls on all alike.
    Interleaved { block: u32 },
    /// Every launch of one platform (all workloads), then the next
    /// platform's: the order before interleaving.
    Sequential,
}

impl Default for Order {
    fn default() -> Order {
        Order::Interleaved { block: 5 }
    }
}

/// How a workload's size is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sizing {
    /// As given.
    Fixed,
    /// So that one measured launch's workload takes about this long.
    Target(Duration),
}

/// A workload of a run and how it is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadPlan {
    pub spec: WorkloadSpec,
    pub sizing: Sizing,
}

impl From<WorkloadSpec> for WorkloadPlan {
    fn from(spec: WorkloadSpec) -> WorkloadPlan {
        WorkloadPlan { spec, sizing: Sizing::Fixed }
    }
}

/// The calibration size of a sizable workload, small enough to be quick on
/// the slowest host (a VM exit of 1.4 ms makes 100 calls 0.14 s).
fn probe_of(w: Workload) -> Option<Workload> {
    match w {
        Workload::Cpu { .. } => Some(Workload::Cpu { rounds: 2_000 }),
        Workload::Call { .. } => Some(Workload::Call { n: 100 }),
        Workload::Mem { .. } => Some(Workload::Mem { mib: 2 }),
        Workload::Ready | Workload::Idle { .. } => None,
    }
}

/// The size that makes the workload take `target`, from a probe run of
/// `probe` that took `probe_ns`, within sane bounds.
pub fn scaled(probe: Workload, probe_ns: u64, target: Duration) -> Workload {
    let f = target.as_nanos() as f64 / probe_ns.max(1) as f64;
    let n = |p: u32, lo: u32, hi: u32| ((p as f64 * f).round() as u64).clamp(lo as u64, hi as u64) as u32;
    match probe {
        Workload::Cpu { rounds } => Workload::Cpu { rounds: n(rounds, 100, 50_000_000) },
        Workload::Call { n: c } => Workload::Call { n: n(c, 10, 50_000_000) },
        Workload::Mem { mib } => Workload::Mem { mib: n(mib, 1, 1024) },
        other => other,
    }
}

/// One planning unit: a workload on some platforms.
struct Unit {
    workload: usize,
    platforms: Vec<usize>,
}

fn units(platforms: usize, workloads: usize, order: Order) -> Vec<Unit> {
    match order {
        Order::Interleaved { .. } => (0..workloads).map(|w| Unit { workload: w, platforms: (0..platforms).collect() }).collect(),
        Order::Sequential => (0..platforms).flat_map(|p| (0..workloads).map(move |w| Unit { workload: w, platforms: vec![p] })).collect(),
    }
}

/// What one launch told the planner.
struct Done {
    wall: Duration,
    /// The workload's own elapsed ns, when it reported one.
    elapsed_ns: Option<u64>,
}

/// The launches of a run, with the options' order, sizing and `budget` for
/// the whole launch phase (`None`: unbounded). A platform whose launch fails
/// is marked failed and leaves the rotation; an interrupt or a checksum
/// mismatch ends the run.
pub(super) fn launch_all(
    platforms: &[Box<dyn Platform>],
    statuses: &mut [PlatformStatus],
    opts: &super::RunOptions,
    budget: Option<Duration>,
    progress: &dyn Progress,
    out: &mut RunResult,
) -> Result<(), LaunchOnceError> {
    let started = Instant::now();
    let spec_of =
        |w: WorkloadSpec| LaunchSpec { workload: w, timeout: opts.timeout, limits: opts.limits, cgroup: Default::default(), ksm_merge: false, root: None };
    // One launch of platform k: rows recorded when `iteration` is given.
    let one =
        |k: usize, w: WorkloadSpec, iteration: Option<u32>, out: &mut RunResult, statuses: &mut [PlatformStatus]| -> Result<Option<Done>, LaunchOnceError> {
            if statuses[k].status != RunStatus::Ran {
                return Ok(None);
            }
            check_interrupt()?;
            let p = platforms[k].as_ref();
            progress.set_message(format!("{} {}", p.name(), w));
            let t = Instant::now();
            let r = launch_once(p, &spec_of(w));
            let wall = t.elapsed();
            progress.inc();
            match r {
                Ok(rec) => {
                    let elapsed_ns =
                        w.bench().and_then(|b| rec.finished.results.iter().find(|r| r.get("workload") == Some(b.name()))).and_then(|r| r.elapsed_ns());
                    if let Some(it) = iteration {
                        let key = w.to_string();
                        out.samples.extend(rec.rows.into_iter().map(|(m, v)| Sample::new(p.name(), &key, m, it, v)));
                    }
                    Ok(Some(Done { wall, elapsed_ns }))
                }
                Err(LaunchOnceError::Launch(LaunchError::Interrupted)) => Err(LaunchError::Interrupted.into()),
                Err(e @ LaunchOnceError::Run(RunError::ChecksumMismatch { .. })) => Err(e),
                Err(e) => {
                    let why = format!("{} {}: {e}", p.name(), w);
                    progress.println(format!("error: {why}"));
                    statuses[k].status = RunStatus::Failed;
                    statuses[k].reason = Some(why.clone());
                    out.failures.push(why);
                    Ok(None)
                }
            }
        };

    // Sizing: one calibration launch per platform of each sized workload.
    let n = platforms.len();
    let mut specs: Vec<Vec<WorkloadSpec>> = Vec::new();
    // Per workload and platform: the estimated cost of one launch, when a
    // sizing launch ran (it stands in for the first warm-up).
    let mut probed: Vec<Vec<Option<Duration>>> = vec![vec![None; n]; opts.workloads.len()];
    for plan in &opts.workloads {
        let mut per = vec![plan.spec; n];
        if let (Sizing::Target(target), Some(probe)) = (plan.sizing, plan.spec.bench().and_then(probe_of)) {
            let mut chosen: Vec<Option<Workload>> = vec![None; n];
            for (k, c) in chosen.iter_mut().enumerate() {
                if let Some(Done { elapsed_ns: Some(ns), wall }) = one(k, WorkloadSpec::Bench(probe), None, out, statuses)? {
                    *c = Some(scaled(probe, ns, target));
                    // The sizing launch is a launch of this platform whose
                    // figures are dropped: it serves as the first warm-up,
                    // and its cost (plus the target) as the estimate.
                    probed[specs.len()][k] = Some(wall + target);
                }
            }
            // cpu and mem: one size for every platform (the smallest, so the
            // slowest platform meets the target); call: each its own.
            let common = match probe {
                Workload::Call { .. } => None,
                _ => chosen.iter().flatten().map(|w| w.param()).min().and_then(|p| Workload::from_name(probe.name(), Some(p))),
            };
            for k in 0..n {
                if let Some(w) = common.or(chosen[k]) {
                    per[k] = WorkloadSpec::Bench(w);
                }
            }
        }
        specs.push(per);
    }

    let all = units(n, opts.workloads.len(), opts.order);
    let unit_count = all.len();
    let block = match opts.order {
        Order::Interleaved { block } => block.max(1),
        Order::Sequential => u32::MAX,
    };
    for (u, unit) in all.into_iter().enumerate() {
        let w = unit.workload;
        // Warm-ups, timed: they tell what one launch of each costs.
        let mut cost: Vec<Duration> = vec![Duration::ZERO; n];
        for &k in &unit.platforms {
            let mut warmup = opts.warmup;
            if let (Some(c), true) = (probed[w][k], warmup > 0) {
                cost[k] = c;
                warmup -= 1;
            }
            for i in 0..warmup {
                // Past the budget, warm-ups are the first thing to go: the
                // measured launches that follow are what the run is for.
                if budget.is_some_and(|b| started.elapsed() > b) {
                    if statuses[k].status == RunStatus::Ran {
                        statuses[k].notes.push(format!(
                            "{}: {} of {} warm-up launches skipped: the run's time budget was spent",
                            specs[w][k],
                            warmup - i,
                            opts.warmup
                        ));
                    }
                    break;
                }
                if let Some(d) = one(k, specs[w][k], None, out, statuses)? {
                    cost[k] = cost[k].max(d.wall);
                }
            }
        }
        // The share of the budget left for this unit, and the runs it allows.
        let runs = match budget {
            Some(b) => {
                let left = b.saturating_sub(started.elapsed());
                let share = left / (unit_count - u) as u32;
                let round: Duration = unit.platforms.iter().filter(|k| statuses[**k].status == RunStatus::Ran).map(|k| cost[*k]).sum();
                if round.is_zero() {
                    // No launch to estimate from: all of them when time is
                    // left, one when it is spent.
                    if left.is_zero() {
                        1.min(opts.runs)
                    } else {
                        opts.runs
                    }
                } else {
                    ((share.as_secs_f64() / round.as_secs_f64()) as u32).clamp(1, opts.runs)
                }
            }
            None => opts.runs,
        };
        let mut done = 0;
        while done < runs {
            // A hard stop when the estimate was wrong: past a quarter over
            // the budget, no new block starts.
            if budget.is_some_and(|b| started.elapsed() > b.mul_f64(1.25)) && done > 0 {
                break;
            }
            let end = done.saturating_add(block).min(runs);
            for &k in &unit.platforms {
                for it in done..end {
                    one(k, specs[w][k], Some(it), out, statuses)?;
                }
            }
            done = end;
        }
        let skipped = (opts.runs - done) as u64 * unit.platforms.len() as u64;
        progress.skip(skipped);
        for &k in &unit.platforms {
            out.sizes.push(SizeRecord {
                workload: opts.workloads[w].spec.to_string(),
                platform: platforms[k].name().into(),
                chosen: specs[w][k].to_string(),
                target_ms: match opts.workloads[w].sizing {
                    Sizing::Target(t) => Some(t.as_secs_f64() * 1e3),
                    Sizing::Fixed => None,
                },
                runs: done,
                runs_asked: opts.runs,
            });
            if done < opts.runs && statuses[k].status == RunStatus::Ran {
                statuses[k].notes.push(format!(
                    "{}: {done} measured launches instead of {} to stay within the run's time budget{}",
                    specs[w][k],
                    opts.runs,
                    budget.map(|b| format!(" ({:.0} s for launches)", b.as_secs_f64())).unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_scale_to_the_target_within_bounds() {
        let t = Duration::from_millis(50);
        // 100 calls took 1 ms: 5000 reach 50 ms.
        assert_eq!(scaled(Workload::Call { n: 100 }, 1_000_000, t), Workload::Call { n: 5_000 });
        // 100 calls of 1.36 ms each (a slow exit) took 136 ms: 37 reach 50 ms.
        assert_eq!(scaled(Workload::Call { n: 100 }, 136_000_000, t), Workload::Call { n: 37 });
        // Bounds: never below 10 calls, 1 MiB, 100 rounds.
        assert_eq!(scaled(Workload::Call { n: 100 }, u64::MAX, t), Workload::Call { n: 10 });
        assert_eq!(scaled(Workload::Mem { mib: 2 }, 1, t), Workload::Mem { mib: 1024 });
        assert_eq!(scaled(Workload::Cpu { rounds: 2000 }, 0, t).param(), 50_000_000);
    }

    #[test]
    fn units_follow_the_order() {
        let u = units(2, 3, Order::Sequential);
        assert_eq!(u.iter().map(|u| (u.workload, u.platforms.clone())).collect::<Vec<_>>()[..4], [(0, vec![0]), (1, vec![0]), (2, vec![0]), (0, vec![1])]);
        let u = units(2, 3, Order::default());
        assert_eq!(u.len(), 3);
        assert!(u.iter().all(|u| u.platforms == [0, 1]));
    }
}
