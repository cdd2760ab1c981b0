//! Density (difference 1 of docs/design.md): how many idle instances of a
//! platform fit on this host, seen as the drop of the host's `MemAvailable`
//! per instance while N instances run at once, and how fast N instances can
//! be launched.
//!
//! N doubles (1, 2, 4, ...) up to `max_instances`, and stops earlier when
//! the next step could bring `MemAvailable` below the safety margin, or when
//! the time budget is spent. Instances of one step are launched one after the
//! other as fast as the platform allows (a `Platform` is not shared between
//! threads) and all run together while the host is read. Every instance is
//! stopped before the next step, and on every path out (error, panic) by
//! [`Fleet`]'s `Drop`.

use std::time::{Duration, Instant};

use super::{ExperimentError, Result};
use crate::measure::meminfo::meminfo;
use crate::measure::smaps::{self, PssRss};
use crate::model::{Metric, Sample};
use crate::platform::{Instance, LaunchSpec, Platform};

/// Bounds of a density measurement.
#[derive(Debug, Clone)]
pub struct DensityOptions {
    /// Largest N tried.
    pub max_instances: usize,
    /// Never let MemAvailable fall below this many bytes.
    pub safety_margin_bytes: u64,
    /// Stop starting new steps after this long.
    pub time_budget: Duration,
    /// Pause after the last launch of a step before reading MemAvailable,
    /// so that deferred kernel work (page tables, slab) is counted.
    pub settle: Duration,
}

impl Default for DensityOptions {
    fn default() -> Self {
        DensityOptions { max_instances: 16, safety_margin_bytes: default_margin(), time_budget: Duration::from_secs(20), settle: Duration::from_millis(100) }
    }
}

/// The default safety margin: 25% of the host's memory, at least 1 GiB.
pub fn default_margin() -> u64 {
    let total = meminfo("MemTotal:").unwrap_or(4 << 30);
    (total / 4).max(1 << 30)
}

/// The host's MemAvailable, in bytes.
pub fn mem_available() -> Result<u64> {
    crate::measure::meminfo::mem_available()
        .ok_or_else(|| ExperimentError::Failed("cannot read MemAvailable from /proc/meminfo (needs Linux 3.14 or later)".into()))
}

/// One step of the curve.
#[derive(Debug, Clone, PartialEq)]
pub struct DensityPoint {
    /// Instances running together.
    pub n: usize,
    /// MemAvailable before the first launch and after the last, bytes.
    pub available_before: u64,
    pub available_after: u64,
    /// Seconds from the first launch start to the last instance ready.
    pub launch_secs: f64,
    /// Sum of the PSS of every instance's host processes, bytes: the same
    /// question without the host-wide noise of MemAvailable.
    pub pss_total: u64,
}

impl DensityPoint {
    /// MemAvailable drop with the N instances running, bytes; negative when
    /// the host gained memory meanwhile (another process freed some): kept
    /// as measured, and the runner flags it.
    pub fn mem_drop(&self) -> f64 {
        self.available_before as f64 - self.available_after as f64
    }
    /// MemAvailable drop per instance, bytes (see [`DensityPoint::mem_drop`]).
    pub fn mem_per_instance(&self) -> f64 {
        self.mem_drop() / self.n as f64
    }
    /// Instances launched per second.
    pub fn launch_rate(&self) -> f64 {
        if self.launch_secs > 0.0 {
            self.n as f64 / self.launch_secs
        } else {
            0.0
        }
    }
}

/// The result of a density run.
#[derive(Debug, Clone, Default)]
pub struct DensityResult {
    pub points: Vec<DensityPoint>,
    /// Why the curve stopped before `max_instances`, if it did.
    pub stopped_early: Option<String>,
}

impl DensityResult {
    /// Rows for samples.csv, `iteration` = N: `density.mem_per_instance`
    /// (bytes), `density.launch_rate` (instances/s) and
    /// `density.mem_available_drop` (bytes, all N together) and
    /// `density.pss_per_instance` (bytes).
    pub fn samples(&self, platform: &str, workload: &str) -> Vec<Sample> {
        let mut rows = Vec::new();
        for p in &self.points {
            let n = p.n as u32;
            let row = |m: Metric, v: f64| Sample::new(platform, workload, m, n, v);
            rows.push(row(Metric::DensityMemPerInstance, p.mem_per_instance()));
            rows.push(row(Metric::DensityLaunchRate, p.launch_rate()));
            rows.push(row(Metric::DensityMemAvailableDrop, p.mem_drop()));
            rows.push(row(Metric::DensityPssPerInstance, p.pss_total as f64 / p.n as f64));
        }
        rows
    }
}

/// Running instances of one step; every one is stopped when the fleet is
/// dropped, whatever the path out.
pub struct Fleet {
    instances: Vec<Box<dyn Instance>>,
}

impl Fleet {
    pub fn new() -> Fleet {
        Fleet { instances: Vec::new() }
    }
    pub fn push(&mut self, i: Box<dyn Instance>) {
        self.instances.push(i);
    }
    pub fn len(&self) -> usize {
        self.instances.len()
    }
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }
    /// Host pids of every instance, each once (instances that live inside
    /// versus all report versus' own pid).
    pub fn pids(&self) -> Vec<i32> {
        let mut p: Vec<i32> = self.instances.iter().flat_map(|i| i.pids()).collect();
        p.sort_unstable();
        p.dedup();
        p
    }
    /// Stops every instance; returns the first error after trying them all.
    pub fn stop_all(&mut self) -> Result<()> {
        let mut first = None;
        for i in self.instances.drain(..) {
            if let Err(e) = i.stop() {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(ExperimentError::Launch { context: "stopping a density instance".into(), source: e }),
            None => Ok(()),
        }
    }
}

impl Default for Fleet {
    fn default() -> Self {
        Fleet::new()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if let Err(e) = self.stop_all() {
            tracing::warn!("{e:#}");
        }
    }
}

/// Runs the doubling curve. `spec` should be an `idle` workload (anything
/// that stays up until stopped).
pub fn measure_density(platform: &dyn Platform, spec: &LaunchSpec, opts: &DensityOptions) -> Result<DensityResult> {
    let deadline = Instant::now() + opts.time_budget;
    let mut out = DensityResult::default();
    // Before the first step, guess an instance costs its workload memory
    // plus 32 MiB; afterwards use the worst per-instance figure seen, doubled.
    let mut est = (u64::from(spec.workload.bench().map_or(0, |w| w.param())) << 20) + (32 << 20);
    let mut n = 1usize;
    while n <= opts.max_instances.max(1) {
        if Instant::now() >= deadline {
            out.stopped_early = Some(format!("time budget of {:?} spent before N={n}", opts.time_budget));
            break;
        }
        let avail = mem_available()?;
        let need = est.saturating_mul(n as u64);
        if avail.saturating_sub(need) < opts.safety_margin_bytes {
            out.stopped_early = Some(format!(
                "N={n} would need about {} MiB while MemAvailable is {} MiB and the safety margin {} MiB",
                need >> 20,
                avail >> 20,
                opts.safety_margin_bytes >> 20
            ));
            break;
        }
        let (point, early) = step(platform, spec, n, opts, deadline)?;
        if let Some(p) = point {
            est = est.max((p.mem_per_instance() as u64).saturating_mul(2));
            out.points.push(p);
        }
        if let Some(why) = early {
            out.stopped_early = Some(why);
            break;
        }
        n *= 2;
    }
    Ok(out)
}

/// One step: N instances at once. Returns the point (None when the step was
/// cut short) and why the curve must stop, if it must.
fn step(platform: &dyn Platform, spec: &LaunchSpec, n: usize, opts: &DensityOptions, deadline: Instant) -> Result<(Option<DensityPoint>, Option<String>)> {
    let mut fleet = Fleet::new();
    let harness_before = smaps::rollup(std::process::id() as i32)?;
    let before = mem_available()?;
    let t0 = Instant::now();
    for k in 0..n {
        let inst = platform.launch(spec).map_err(ExperimentError::launch(format!(
            "launching instance {} of {n} of {} for the density curve",
            k + 1,
            platform.name()
        )))?;
        fleet.push(inst);
        let avail = mem_available()?;
        if avail < opts.safety_margin_bytes {
            fleet.stop_all()?;
            return Ok((
                None,
                Some(format!("MemAvailable fell to {} MiB (margin {} MiB) at instance {} of N={n}", avail >> 20, opts.safety_margin_bytes >> 20, k + 1)),
            ));
        }
        if Instant::now() >= deadline + opts.time_budget {
            fleet.stop_all()?;
            return Ok((None, Some(format!("launching N={n} ran past twice the time budget"))));
        }
    }
    let launch_secs = t0.elapsed().as_secs_f64();
    std::thread::sleep(opts.settle);
    let after = mem_available()?;
    let pss_total = fleet_pss(&fleet, harness_before)?;
    fleet.stop_all()?;
    Ok((Some(DensityPoint { n, available_before: before, available_after: after, launch_secs, pss_total }), None))
}

/// PSS of every instance's host processes, each process once; versus'
/// own pid (instances inside versus) counts its growth since `harness_before`.
fn fleet_pss(fleet: &Fleet, harness_before: PssRss) -> Result<u64> {
    let me = std::process::id() as i32;
    let pids = fleet.pids();
    let mut total = 0;
    for p in &pids {
        if *p == me {
            total += smaps::rollup(me)?.pss.saturating_sub(harness_before.pss);
        } else if let Ok(m) = smaps::rollup(*p) {
            total += m.pss;
        }
    }
    if pids.is_empty() {
        return Err(ExperimentError::Failed("the density instances have no host process to read".into()));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_reads() {
        assert!(mem_available().unwrap() > 0);
    }

    #[test]
    fn point_arithmetic() {
        let p = DensityPoint { n: 4, available_before: 1000, available_after: 600, launch_secs: 0.5, pss_total: 40 };
        assert_eq!(p.mem_per_instance(), 100.0);
        assert_eq!(p.launch_rate(), 8.0);
        let gained = DensityPoint { available_after: 2000, ..p.clone() };
        assert_eq!(gained.mem_per_instance(), -250.0, "a rise is kept, negative");
        let rows = DensityResult { points: vec![p], stopped_early: None }.samples("process", "idle:1");
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|r| r.iteration == 4));
    }
}
