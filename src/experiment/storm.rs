//! Boot storm: N launches at once (N = 1, 2, 4, ... up to a maximum), as a
//! fleet manager starting many instances on one host does.
//!
//! Each launch runs on a thread of its own (a pool of N launcher threads,
//! made before the storm and released together at a gate), so the
//! harness does not serialise them: the platform's own shared resources
//! (the kernel's locks, KVM, the disk) are what the storm measures. The
//! threads share the one [`Platform`] (which is `Send + Sync`: its
//! launches only read its state, and every concurrent clone takes a child
//! stack of its own from the spawn pool); each thread keeps the
//! instance it launched until every launch of the step has ended, then
//! stops it, so the N instances run together and every one is stopped on
//! every path (a panicking thread drops, and so releases, its instance).
//!
//! Per step: the time from the storm's start (the first launch begins)
//! until every instance is ready; each instance's time from that start to
//! its READY (p50, p95, p99); the instances ready per second; the failed
//! launches, each with its reason; and the CPU time the launcher threads
//! spent per launch (`CLOCK_THREAD_CPUTIME_ID`), which shows whether the
//! harness could be the bottleneck. For a VMM inside versus that CPU time
//! includes running the guest to READY: there the harness is the VMM.
//!
//! A step is not started when its instances could bring MemAvailable below
//! the floor, or when the time budget would not hold it.

use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{ExperimentError, Result};
use crate::error::LaunchError;
use crate::measure::clock::now_ns;
use crate::model::{Metric, Sample};
use crate::platform::{LaunchSpec, Platform};
use crate::stats;

/// Bounds of a boot storm.
#[derive(Debug, Clone)]
pub struct StormOptions {
    /// The largest N (N doubles from 1; the last step is `max_n` itself).
    pub max_n: usize,
    /// Storms per N.
    pub reps: u32,
    /// Start no step after this long, nor one the rest would not hold.
    pub time_budget: Duration,
    /// Start no step whose instances could bring MemAvailable below this.
    pub floor_bytes: u64,
}

impl Default for StormOptions {
    fn default() -> Self {
        StormOptions { max_n: 64, reps: 1, time_budget: Duration::from_secs(20), floor_bytes: super::density::default_floor() }
    }
}

/// The N of the steps: 1, 2, 4, ... and `max` itself.
pub fn steps(max: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut n = 1;
    while n < max {
        v.push(n);
        n *= 2;
    }
    if max > 0 {
        v.push(max);
    }
    v
}

/// One storm of N launches.
#[derive(Debug, Clone, PartialEq)]
pub struct StormStep {
    pub n: usize,
    /// Which storm of this N (0-based).
    pub rep: u32,
    /// Per instance that became ready: ms from the storm's start to its READY.
    pub ready_ms: Vec<f64>,
    /// Why each failed launch failed.
    pub failures: Vec<String>,
    /// CPU time of the launcher threads during their launches, ms in all.
    pub harness_cpu_ms: f64,
    /// MemAvailable drop with every instance of the step running, bytes.
    pub mem_drop: f64,
}

impl StormStep {
    /// From the storm's start until the last instance was ready, ms.
    pub fn ready_all_ms(&self) -> Option<f64> {
        self.ready_ms.iter().copied().reduce(f64::max)
    }
    /// Instances ready per second.
    pub fn launch_rate(&self) -> Option<f64> {
        self.ready_all_ms().filter(|t| *t > 0.0).map(|t| self.ready_ms.len() as f64 / (t / 1000.0))
    }
    /// A percentile (0-100) of the instances' ready times.
    pub fn ready_percentile(&self, p: f64) -> Option<f64> {
        let mut v = self.ready_ms.clone();
        v.sort_by(f64::total_cmp);
        (!v.is_empty()).then(|| stats::percentile_sorted(&v, p))
    }
    /// Harness CPU per launch attempted, ms.
    pub fn harness_cpu_per_launch(&self) -> f64 {
        self.harness_cpu_ms / self.n.max(1) as f64
    }
}

/// A whole storm series.
#[derive(Debug, Clone, Default)]
pub struct StormResult {
    pub steps: Vec<StormStep>,
    /// Why the series stopped before `max_n`, if it did.
    pub stopped_early: Option<String>,
}

impl StormResult {
    /// Rows for samples.csv, iteration = N: `storm.ready_all`,
    /// `storm.ready_p50|p95|p99`, `storm.launch_rate` (only when an
    /// instance became ready), `storm.failures` and
    /// `storm.harness_cpu_per_launch` (always).
    pub fn samples(&self, platform: &str, workload: &str) -> Vec<Sample> {
        let mut rows = Vec::new();
        for s in &self.steps {
            let row = |m: Metric, v: f64| Sample::new(platform, workload, m, s.n as u32, v);
            if let (Some(all), Some(rate)) = (s.ready_all_ms(), s.launch_rate()) {
                rows.push(row(Metric::StormReadyAll, all));
                for (m, p) in [(Metric::StormReadyP50, 50.0), (Metric::StormReadyP95, 95.0), (Metric::StormReadyP99, 99.0)] {
                    if let Some(v) = s.ready_percentile(p) {
                        rows.push(row(m, v));
                    }
                }
                rows.push(row(Metric::StormLaunchRate, rate));
            }
            rows.push(row(Metric::StormFailures, s.failures.len() as f64));
            rows.push(row(Metric::StormHarnessCpuPerLaunch, s.harness_cpu_per_launch()));
        }
        rows
    }

    /// Every failure in words, grouped by step and reason.
    pub fn failure_notes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.steps {
            let mut reasons: Vec<(String, usize)> = Vec::new();
            for f in &s.failures {
                match reasons.iter_mut().find(|(r, _)| r == f) {
                    Some(e) => e.1 += 1,
                    None => reasons.push((f.clone(), 1)),
                }
            }
            for (r, k) in reasons {
                out.push(format!("storm N={} (storm {}): {k} of {} launches failed: {r}", s.n, s.rep + 1, s.n));
            }
        }
        out
    }
}

/// CPU time of the calling thread, ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into `ts`, which lives
    // across the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What a launcher thread reports.
struct Outcome {
    /// Monotonic ns at which its launch began.
    began: u64,
    /// Monotonic ns of its READY, or why it failed.
    ready: std::result::Result<u64, LaunchError>,
    cpu_ns: u64,
}

/// A gate the launcher threads wait at: opened to go on, or closed for
/// good to give up (nothing launched, or nothing more to wait for).
struct Gate {
    state: Mutex<Option<bool>>,
    cv: Condvar,
}

impl Gate {
    fn new() -> Gate {
        Gate { state: Mutex::new(None), cv: Condvar::new() }
    }
    /// Waits until the gate is set; true to go on.
    fn wait(&self) -> bool {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match *g {
                Some(go) => return go,
                None => g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
    /// Sets the gate once (later calls change nothing).
    fn set(&self, go: bool) {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            *g = Some(go);
        }
        self.cv.notify_all();
    }
}

/// Sets a gate when dropped (also when the collecting side unwinds), so no
/// launcher thread waits for ever.
struct SetOnDrop<'a>(&'a Gate, bool);
impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.set(self.1);
    }
}

/// One storm: `n` launches released at once; returns the step and the
/// stop errors of the instances (a teardown failure).
pub fn storm_once(platform: &dyn Platform, spec: &LaunchSpec, n: usize, rep: u32) -> Result<(StormStep, Vec<String>)> {
    let start_gate = Gate::new();
    let release = Gate::new();
    let (tx, rx) = mpsc::channel::<Outcome>();
    let (stop_tx, stop_rx) = mpsc::channel::<String>();
    let before = super::density::mem_available()?;
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(n);
    let mut available_all = before;
    let spawned = std::thread::scope(|s| -> std::io::Result<()> {
        // Whatever happens here, the threads are let go (to launch, or to
        // give up) and then told to stop their instances.
        let _release = SetOnDrop(&release, true);
        let abort = SetOnDrop(&start_gate, false);
        for i in 0..n {
            let (tx, stop_tx, start_gate, release) = (tx.clone(), stop_tx.clone(), &start_gate, &release);
            std::thread::Builder::new().name(format!("versus-storm-{i}")).stack_size(256 << 10).spawn_scoped(s, move || {
                if !start_gate.wait() {
                    return;
                }
                let cpu0 = thread_cpu_ns();
                let began = now_ns();
                let r = platform.launch(spec);
                let cpu_ns = thread_cpu_ns().saturating_sub(cpu0);
                match r {
                    Ok(inst) => {
                        let _ = tx.send(Outcome { began, ready: Ok(inst.boot().ready_ns), cpu_ns });
                        drop(tx);
                        release.wait();
                        if let Err(e) = inst.stop() {
                            let _ = stop_tx.send(e.to_string());
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Outcome { began, ready: Err(e), cpu_ns });
                    }
                }
            })?;
        }
        drop(tx);
        drop(stop_tx);
        start_gate.set(true);
        drop(abort);
        // Every thread sends once, or drops its sender when it dies.
        while let Ok(o) = rx.recv() {
            outcomes.push(o);
        }
        if let Ok(a) = super::density::mem_available() {
            available_all = a;
        }
        Ok(())
    });
    if let Err(e) = spawned {
        return Err(ExperimentError::Io { context: format!("starting {n} launcher threads for the boot storm"), source: e });
    }
    let stop_errors: Vec<String> = stop_rx.try_iter().collect();
    if crate::interrupt::requested() || outcomes.iter().any(|o| matches!(o.ready, Err(LaunchError::Interrupted))) {
        return Err(ExperimentError::Launch { context: "running a boot storm".into(), source: LaunchError::Interrupted });
    }
    let start = outcomes.iter().map(|o| o.began).min().unwrap_or(0);
    let mut step = StormStep { n, rep, ready_ms: Vec::new(), failures: Vec::new(), harness_cpu_ms: 0.0, mem_drop: before as f64 - available_all as f64 };
    for o in &outcomes {
        step.harness_cpu_ms += o.cpu_ns as f64 / 1e6;
        match &o.ready {
            Ok(t) => step.ready_ms.push(t.saturating_sub(start) as f64 / 1e6),
            Err(e) => step.failures.push(e.to_string()),
        }
    }
    for _ in outcomes.len()..n {
        step.failures.push("its launcher thread ended without a result (it panicked)".into());
    }
    Ok((step, stop_errors))
}

/// Runs the storm series on `platform`: N = 1, 2, 4, ... `max_n`, each
/// `reps` times, within the memory floor and the time budget. Teardown
/// failures are errors (something was left behind); launch failures are
/// results, in the steps.
pub fn measure_storm(platform: &dyn Platform, spec: &LaunchSpec, opts: &StormOptions) -> Result<StormResult> {
    let started = Instant::now();
    let mut out = StormResult::default();
    let mut per_instance = (u64::from(spec.workload.bench().map_or(0, |w| w.param())) << 20) + (8 << 20);
    let mut last_secs_per_instance = 0.0f64;
    'steps: for n in steps(opts.max_n) {
        for rep in 0..opts.reps.max(1) {
            if crate::interrupt::requested() {
                return Err(ExperimentError::Launch { context: "running a boot storm".into(), source: LaunchError::Interrupted });
            }
            let elapsed = started.elapsed();
            let predicted = Duration::from_secs_f64(last_secs_per_instance * n as f64);
            if elapsed + predicted > opts.time_budget {
                out.stopped_early =
                    Some(format!("the time budget of {:.1} s would not hold the storm of N={n} (storm {})", opts.time_budget.as_secs_f64(), rep + 1));
                break 'steps;
            }
            let available = super::density::mem_available()?;
            let need = per_instance.saturating_mul(n as u64);
            if available.saturating_sub(need) < opts.floor_bytes {
                out.stopped_early = Some(format!(
                    "memory guard: N={n} could take about {} MiB while MemAvailable is {} MiB and the floor {} MiB",
                    need >> 20,
                    available >> 20,
                    opts.floor_bytes >> 20
                ));
                break 'steps;
            }
            let t = Instant::now();
            let (step, stop_errors) = storm_once(platform, spec, n, rep)?;
            last_secs_per_instance = last_secs_per_instance.max(t.elapsed().as_secs_f64() / n as f64);
            if let Some(e) = stop_errors.first() {
                return Err(ExperimentError::Failed(format!("stopping an instance of the boot storm of N={n} failed: {e}")));
            }
            if step.mem_drop > 0.0 {
                per_instance = per_instance.max((step.mem_drop / n as f64) as u64);
            }
            let all_failed = step.ready_ms.is_empty();
            out.steps.push(step);
            if all_failed {
                out.stopped_early = Some(format!("every launch of the storm of N={n} failed"));
                break 'steps;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fake::{FakePlatform, Fault, Log, FAKE_A};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn steps_double_up_to_the_maximum() {
        assert_eq!(steps(64), [1, 2, 4, 8, 16, 32, 64]);
        assert_eq!(steps(20), [1, 2, 4, 8, 16, 20]);
        assert_eq!(steps(1), [1]);
        assert!(steps(0).is_empty());
    }

    #[test]
    fn a_storm_launches_all_at_once_and_stops_every_instance() {
        let _g = crate::interrupt::test_serial();
        let log = Arc::new(Log::default());
        let p = FakePlatform::new(&FAKE_A, log.clone()).with_fault(5, Fault::Fail);
        let spec = LaunchSpec::new("idle:1".parse().unwrap());
        let o = StormOptions { max_n: 8, reps: 2, time_budget: Duration::from_secs(600), floor_bytes: 0 };
        let r = measure_storm(&p, &spec, &o).unwrap();
        assert_eq!(r.steps.iter().map(|s| (s.n, s.rep)).collect::<Vec<_>>(), [(1, 0), (1, 1), (2, 0), (2, 1), (4, 0), (4, 1), (8, 0), (8, 1)]);
        assert_eq!(log.launches().len(), 2 * (1 + 2 + 4 + 8));
        assert_eq!(log.live.load(Ordering::SeqCst), 0, "every instance stopped");
        // Launch 5 (the third storm of N=2... counted over the series) failed,
        // with its reason; no step lost an instance silently.
        let failed: Vec<&StormStep> = r.steps.iter().filter(|s| !s.failures.is_empty()).collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].failures.len() + failed[0].ready_ms.len(), failed[0].n);
        assert!(failed[0].failures[0].contains("fake launch 5 fails"), "{:?}", failed[0].failures);
        assert!(r.failure_notes()[0].contains("1 of"), "{:?}", r.failure_notes());
        let rows = r.samples("fake-a", "idle:1");
        let fails: f64 = rows.iter().filter(|s| s.metric == Metric::StormFailures).map(|s| s.value).sum();
        assert_eq!(fails, 1.0);
        for s in &r.steps {
            let all = s.ready_all_ms().unwrap();
            assert!(s.ready_percentile(50.0).unwrap() <= s.ready_percentile(99.0).unwrap() && s.ready_percentile(99.0).unwrap() <= all);
            assert!(s.launch_rate().unwrap() > 0.0);
        }
        assert_eq!(rows.iter().filter(|s| s.metric == Metric::StormReadyP99 && s.iteration == 8).count(), 2);
    }

    #[test]
    fn the_memory_guard_and_the_time_budget_stop_the_series() {
        let _g = crate::interrupt::test_serial();
        let log = Arc::new(Log::default());
        let p = FakePlatform::new(&FAKE_A, log.clone());
        let spec = LaunchSpec::new("idle:1".parse().unwrap());
        let o = StormOptions { max_n: 64, reps: 1, time_budget: Duration::from_secs(600), floor_bytes: u64::MAX / 2 };
        let r = measure_storm(&p, &spec, &o).unwrap();
        assert!(r.steps.is_empty());
        assert!(r.stopped_early.unwrap().contains("memory guard"));
        let o = StormOptions { time_budget: Duration::ZERO, floor_bytes: 0, ..o };
        let r = measure_storm(&p, &spec, &o).unwrap();
        assert!(r.steps.is_empty() && r.stopped_early.unwrap().contains("time budget"));
        assert_eq!(log.live.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn an_interrupt_ends_the_storm_with_everything_stopped() {
        let _g = crate::interrupt::test_serial();
        let log = Arc::new(Log::default());
        let p = FakePlatform::new(&FAKE_A, log.clone()).with_fault(2, Fault::Interrupt);
        let spec = LaunchSpec::new("idle:1".parse().unwrap());
        let o = StormOptions { max_n: 16, reps: 1, time_budget: Duration::from_secs(600), floor_bytes: 0 };
        let e = measure_storm(&p, &spec, &o).unwrap_err();
        crate::interrupt::clear();
        assert!(e.is_interrupt(), "{e}");
        assert_eq!(log.live.load(Ordering::SeqCst), 0);
    }
}
