//! Density to the memory budget (difference 1 of docs/design.md): how many
//! idle instances of a platform fit on this host, and what each costs.
//!
//! Instances are launched one after another and all kept running. After
//! each launch versus reads the PSS of the instances' host processes (each
//! process once; an instance inside versus counts versus' growth), the
//! charge of their own memory cgroups where they have one, and the host's
//! MemAvailable drop since the first launch. The ramp stops when the next
//! instance would take the instances past the memory budget, when it would
//! bring MemAvailable below the floor (the guard that stops before the
//! host swaps or kills), at the count limit, or when the time budget is
//! spent. A least-squares line `memory = fixed + per_instance * N` is
//! fitted to each of the three readings, and its residual reported.
//!
//! With KSM ([`KsmPass`]), the ramp is repeated to the same N with KSM on
//! and the instances' memory marked mergeable (guest RAM `MADV_MERGEABLE`,
//! `PR_SET_MEMORY_MERGE` for processes and containers: see
//! [`crate::platform::LaunchSpec::ksm_merge`]). Merging takes time, so
//! that pass is read at N = 1, 2, 4, ... and at its last N, each after KSM
//! settled (bounded); KSM's settings are restored whatever happens
//! ([`KsmSession`]).
//!
//! Every instance is stopped on every path out (error, panic, interrupt)
//! by [`Fleet`]'s `Drop`, before KSM's settings are restored.

use std::fmt;
use std::time::{Duration, Instant};

use super::{ExperimentError, Result};
use crate::error::LaunchError;
use crate::measure::ksm::{KsmCounters, KsmSession, KsmTuning};
use crate::measure::meminfo::meminfo;
use crate::measure::smaps::{self, PssRss};
use crate::model::{Metric, Sample};
use crate::platform::{Instance, LaunchSpec, Platform};
use crate::stats::{linear_fit, LinearFit};

/// Bounds of a density measurement.
#[derive(Debug, Clone)]
pub struct DensityOptions {
    /// The instances may hold at most this many bytes (their PSS, or their
    /// cgroups' charge when larger): the ramp stops before the instance
    /// that would pass it.
    pub budget_bytes: u64,
    /// Never let MemAvailable fall below this many bytes.
    pub floor_bytes: u64,
    /// The count limit.
    pub max_instances: usize,
    /// Stop launching after this long (both passes together).
    pub time_budget: Duration,
    /// Repeat with KSM on, when set.
    pub ksm: Option<KsmPass>,
}

/// The KSM pass of a density measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KsmPass {
    pub tuning: KsmTuning,
    /// The longest wait for KSM to settle at one N.
    pub settle_limit: Duration,
}

impl Default for KsmPass {
    fn default() -> Self {
        KsmPass { tuning: KsmTuning::default(), settle_limit: Duration::from_secs(30) }
    }
}

impl Default for DensityOptions {
    fn default() -> Self {
        DensityOptions { budget_bytes: default_budget(), floor_bytes: default_floor(), max_instances: 1024, time_budget: Duration::from_secs(20), ksm: None }
    }
}

/// The default budget: a quarter of MemAvailable now.
pub fn default_budget() -> u64 {
    crate::measure::meminfo::mem_available().unwrap_or(1 << 30) / 4
}

/// The default floor: 25% of the host's memory, at least 1 GiB.
pub fn default_floor() -> u64 {
    let total = meminfo("MemTotal:").unwrap_or(4 << 30);
    (total / 4).max(1 << 30)
}

/// The host's MemAvailable, in bytes.
pub fn mem_available() -> Result<u64> {
    crate::measure::meminfo::mem_available()
        .ok_or_else(|| ExperimentError::Failed("cannot read MemAvailable from /proc/meminfo (needs Linux 3.14 or later)".into()))
}

/// What the fleet's instances hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetMemory {
    /// PSS of their host processes, each once, bytes.
    pub pss: u64,
    /// Charge of their own memory cgroups (none when no instance has one).
    pub cgroup: Option<u64>,
}

/// Reads the host's and the instances' memory: the real host, or a model
/// of one in tests.
pub trait MemoryProbe {
    /// The host's MemAvailable, bytes.
    fn available(&self) -> Result<u64>;
    /// What the running instances of `fleet` hold.
    fn fleet(&self, fleet: &Fleet) -> Result<FleetMemory>;
}

/// The real host: /proc/meminfo, smaps_rollup and cgroup charges. An
/// instance inside versus counts versus' PSS growth since the probe was made.
pub struct HostProbe {
    harness_before: PssRss,
}

impl HostProbe {
    pub fn new() -> Result<HostProbe> {
        Ok(HostProbe { harness_before: smaps::rollup(std::process::id() as i32)? })
    }
}

impl MemoryProbe for HostProbe {
    fn available(&self) -> Result<u64> {
        mem_available()
    }
    fn fleet(&self, fleet: &Fleet) -> Result<FleetMemory> {
        let me = std::process::id() as i32;
        let pids = fleet.pids();
        if pids.is_empty() {
            return Err(ExperimentError::Failed("the density instances have no host process to read".into()));
        }
        let others: Vec<i32> = pids.iter().copied().filter(|p| *p != me).collect();
        let mut out = FleetMemory::default();
        if !others.is_empty() {
            let r = super::memory::read_pids(&others)?;
            out.pss = r.pss_bytes.max(0) as u64;
            out.cgroup = r.cgroup_bytes;
        }
        if pids.contains(&me) {
            out.pss += smaps::rollup(me)?.pss.saturating_sub(self.harness_before.pss);
        }
        Ok(out)
    }
}

/// One reading: N instances running.
#[derive(Debug, Clone, PartialEq)]
pub struct DensityPoint {
    /// Instances running together.
    pub n: usize,
    /// What they hold.
    pub held: FleetMemory,
    /// MemAvailable before the first launch of the pass, and now, bytes.
    pub available_before: u64,
    pub available: u64,
    /// Seconds spent launching the N instances (reading excluded).
    pub launch_secs: f64,
    /// KSM's counters at this point (KSM pass only).
    pub ksm: Option<KsmCounters>,
}

impl DensityPoint {
    /// MemAvailable drop since before the first launch, bytes; negative
    /// when the host gained memory meanwhile (another process freed some):
    /// kept as measured, and the runner flags it.
    pub fn mem_drop(&self) -> f64 {
        self.available_before as f64 - self.available as f64
    }
    /// Instances launched per second, one after another.
    pub fn launch_rate(&self) -> f64 {
        if self.launch_secs > 0.0 {
            self.n as f64 / self.launch_secs
        } else {
            0.0
        }
    }
    /// What the budget is counted against: PSS, or the cgroup charge when larger.
    pub fn held_bytes(&self) -> u64 {
        self.held.pss.max(self.held.cgroup.unwrap_or(0))
    }
}

/// Why a ramp ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// The next instance would pass the budget.
    Budget { held: u64, next: u64, budget: u64 },
    /// The next instance would bring (or the last brought) MemAvailable
    /// below the floor.
    Floor { available: u64, next: u64, floor: u64 },
    /// The count limit.
    Count(usize),
    /// The KSM pass reached the N of the pass without KSM.
    SameN(usize),
    /// The time budget was spent.
    Time(Duration),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b >> 20;
        match self {
            Stop::Budget { held, next, budget } => {
                write!(f, "memory budget: the instances held {} MiB and the next would add about {} MiB, past the budget of {} MiB", mib(*held), mib(*next), mib(*budget))
            }
            Stop::Floor { available, next, floor } => write!(
                f,
                "memory floor: MemAvailable was {} MiB and the next instance would take about {} MiB of it, below the floor of {} MiB (the guard that stops before the host swaps or kills)",
                mib(*available),
                mib(*next),
                mib(*floor)
            ),
            Stop::Count(n) => write!(f, "count limit of {n} instances"),
            Stop::SameN(n) => write!(f, "the N of the pass without KSM ({n})"),
            Stop::Time(t) => write!(f, "time budget of {:.1} s spent", t.as_secs_f64()),
        }
    }
}

/// One pass: the readings, and why it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct DensityCurve {
    /// KSM on, instances mergeable.
    pub ksm: bool,
    pub points: Vec<DensityPoint>,
    pub stop: Stop,
    /// Things the reader must know (KSM not settled at some N, ...).
    pub notes: Vec<String>,
}

pub use crate::model::DensityBasis as Basis;

/// The reading of a point in a basis, if it has one.
pub fn basis_value(b: Basis, p: &DensityPoint) -> Option<f64> {
    match b {
        Basis::Pss => Some(p.held.pss as f64),
        Basis::Host => Some(p.mem_drop()),
        Basis::Cgroup => p.held.cgroup.map(|c| c as f64),
    }
}

impl DensityCurve {
    /// The least-squares line of each basis that has at least two points.
    pub fn fits(&self) -> Vec<(Basis, LinearFit)> {
        Basis::ALL
            .iter()
            .filter_map(|b| {
                let pts: Vec<(f64, f64)> = self.points.iter().filter_map(|p| basis_value(*b, p).map(|v| (p.n as f64, v))).collect();
                linear_fit(&pts).map(|f| (*b, f))
            })
            .collect()
    }

    /// The workload column of this pass's rows: the spec, `+ksm` with KSM on.
    pub fn workload_label(&self, workload: &str) -> String {
        if self.ksm {
            format!("{workload}+ksm")
        } else {
            workload.to_string()
        }
    }

    /// Rows for samples.csv. Per point (iteration = N):
    /// `density.pss_total`, `density.pss_per_instance`,
    /// `density.mem_available_drop`, `density.mem_per_instance`,
    /// `density.cgroup_total` (where charged), `density.launch_rate`, and
    /// with KSM `density.ksm_pages_shared` / `density.ksm_pages_sharing`.
    /// Per basis fitted (iteration = points fitted): fixed, per-instance
    /// and residual.
    pub fn samples(&self, platform: &str, workload: &str) -> Vec<Sample> {
        let w = self.workload_label(workload);
        let mut rows = Vec::new();
        for p in &self.points {
            let n = p.n as u32;
            let row = |m: Metric, v: f64| Sample::new(platform, &w, m, n, v);
            rows.push(row(Metric::DensityPssTotal, p.held.pss as f64));
            rows.push(row(Metric::DensityPssPerInstance, p.held.pss as f64 / p.n as f64));
            rows.push(row(Metric::DensityMemAvailableDrop, p.mem_drop()));
            rows.push(row(Metric::DensityMemPerInstance, p.mem_drop() / p.n as f64));
            if let Some(c) = p.held.cgroup {
                rows.push(row(Metric::DensityCgroupTotal, c as f64));
            }
            if !self.ksm {
                rows.push(row(Metric::DensityLaunchRate, p.launch_rate()));
            }
            if let Some(k) = p.ksm {
                rows.push(row(Metric::DensityKsmPagesShared, k.pages_shared as f64));
                rows.push(row(Metric::DensityKsmPagesSharing, k.pages_sharing as f64));
            }
        }
        for (b, f) in self.fits() {
            let (fixed, per, rmse) = b.metrics();
            let n = f.n as u32;
            rows.push(Sample::new(platform, &w, fixed, n, f.intercept));
            rows.push(Sample::new(platform, &w, per, n, f.slope));
            rows.push(Sample::new(platform, &w, rmse, n, f.rmse));
        }
        rows
    }
}

/// The result of a density measurement: the pass without KSM, and the one
/// with it when asked for (and possible).
#[derive(Debug, Clone)]
pub struct DensityResult {
    pub off: DensityCurve,
    pub on: Option<DensityCurve>,
    /// Why the KSM pass was not made, when asked for and not made.
    pub ksm_skipped: Option<String>,
}

impl DensityResult {
    /// Every row of both passes.
    pub fn samples(&self, platform: &str, workload: &str) -> Vec<Sample> {
        let mut rows = self.off.samples(platform, workload);
        if let Some(on) = &self.on {
            rows.extend(on.samples(platform, workload));
        }
        rows
    }
}

/// Running instances; every one is stopped when the fleet is dropped,
/// whatever the path out.
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

fn interrupted() -> ExperimentError {
    ExperimentError::Launch { context: "measuring density".into(), source: LaunchError::Interrupted }
}

/// Measures density on the real host: the pass without KSM, then (when
/// `opts.ksm` is set) the pass with it. `spec` should be an `idle`
/// workload (anything that stays up until stopped).
pub fn measure_density(platform: &dyn Platform, spec: &LaunchSpec, opts: &DensityOptions) -> Result<DensityResult> {
    let started = Instant::now();
    let share = if opts.ksm.is_some() { 0.5 } else { 1.0 };
    let off = ramp(platform, spec, opts, &HostProbe::new()?, started + opts.time_budget.mul_f64(share))?;
    let Some(pass) = opts.ksm else {
        return Ok(DensityResult { off, on: None, ksm_skipped: None });
    };
    let target = off.points.last().map_or(0, |p| p.n);
    if target == 0 {
        return Ok(DensityResult { off, on: None, ksm_skipped: Some("the pass without KSM launched no instance".into()) });
    }
    let deadline = started + opts.time_budget;
    if Instant::now() >= deadline {
        return Ok(DensityResult {
            off,
            on: None,
            ksm_skipped: Some(format!("the time budget of {:.1} s was spent before it", opts.time_budget.as_secs_f64())),
        });
    }
    let on = ksm_ramp(platform, spec, opts, pass, target, deadline)?;
    Ok(DensityResult { off, on: Some(on), ksm_skipped: None })
}

/// The estimate of what the next instance takes: the most any instance
/// took so far on average (PSS, charge or MemAvailable drop), or before
/// the first, the workload's own memory plus 8 MiB.
fn next_estimate(spec: &LaunchSpec, points: &[DensityPoint]) -> u64 {
    let own = (u64::from(spec.workload.bench().map_or(0, |w| w.param())) << 20) + (8 << 20);
    match points.last() {
        Some(p) => (p.held_bytes().max(p.mem_drop().max(0.0) as u64) / p.n.max(1) as u64).max(1 << 20),
        None => own,
    }
}

/// The pass without KSM, on any [`MemoryProbe`]: launch, read, until a limit.
pub fn ramp(platform: &dyn Platform, spec: &LaunchSpec, opts: &DensityOptions, probe: &dyn MemoryProbe, deadline: Instant) -> Result<DensityCurve> {
    let mut fleet = Fleet::new();
    let before = probe.available()?;
    let mut points: Vec<DensityPoint> = Vec::new();
    let mut launching = Duration::ZERO;
    let stop = loop {
        if crate::interrupt::requested() {
            return Err(interrupted());
        }
        let n = fleet.len();
        if n >= opts.max_instances {
            break Stop::Count(opts.max_instances);
        }
        if Instant::now() >= deadline {
            break Stop::Time(opts.time_budget);
        }
        let next = next_estimate(spec, &points);
        let held = points.last().map_or(0, |p| p.held_bytes());
        if held.saturating_add(next) > opts.budget_bytes {
            break Stop::Budget { held, next, budget: opts.budget_bytes };
        }
        let available = probe.available()?;
        if available.saturating_sub(next) < opts.floor_bytes {
            break Stop::Floor { available, next, floor: opts.floor_bytes };
        }
        let t = Instant::now();
        let inst =
            platform.launch(spec).map_err(ExperimentError::launch(format!("launching instance {} of {} for the density curve", n + 1, platform.name())))?;
        launching += t.elapsed();
        fleet.push(inst);
        let held = probe.fleet(&fleet)?;
        let available = probe.available()?;
        points.push(DensityPoint { n: fleet.len(), held, available_before: before, available, launch_secs: launching.as_secs_f64(), ksm: None });
        if available < opts.floor_bytes {
            break Stop::Floor { available, next: 0, floor: opts.floor_bytes };
        }
    };
    fleet.stop_all()?;
    Ok(DensityCurve { ksm: false, points, stop, notes: Vec::new() })
}

/// The pass with KSM on: the same ramp to `target` instances with their
/// memory mergeable, read after KSM settled at N = 1, 2, 4, ... and at
/// `target`. The floor and the time budget still stop it.
fn ksm_ramp(platform: &dyn Platform, spec: &LaunchSpec, opts: &DensityOptions, pass: KsmPass, target: usize, deadline: Instant) -> Result<DensityCurve> {
    // Declared before the fleet, so dropped after it: the instances are
    // stopped before KSM's settings are restored.
    let session = KsmSession::start(pass.tuning)?;
    let probe = HostProbe::new()?;
    let mut fleet = Fleet::new();
    let spec = LaunchSpec { ksm_merge: true, ..spec.clone() };
    let before = probe.available()?;
    let mut points: Vec<DensityPoint> = Vec::new();
    let mut notes = Vec::new();
    if session.at_start.pages_sharing > 0 {
        notes.push(format!(
            "KSM already shared {} pages ({} sharing) of other memory when the pass started; the counters below include them",
            session.at_start.pages_shared, session.at_start.pages_sharing
        ));
    }
    let mut launching = Duration::ZERO;
    let stop = loop {
        if crate::interrupt::requested() {
            return Err(interrupted());
        }
        let n = fleet.len();
        if n >= target {
            break Stop::SameN(target);
        }
        if Instant::now() >= deadline {
            break Stop::Time(opts.time_budget);
        }
        let next = next_estimate(&spec, &points);
        let available = probe.available()?;
        if available.saturating_sub(next) < opts.floor_bytes {
            break Stop::Floor { available, next, floor: opts.floor_bytes };
        }
        let t = Instant::now();
        let inst = platform.launch(&spec).map_err(ExperimentError::launch(format!(
            "launching instance {} of {} with KSM on for the density curve",
            n + 1,
            platform.name()
        )))?;
        launching += t.elapsed();
        fleet.push(inst);
        let n = fleet.len();
        if n.is_power_of_two() || n == target {
            let limit = pass.settle_limit.min(deadline.saturating_duration_since(Instant::now())).max(Duration::from_millis(100));
            let settled = session.settle(limit, &crate::interrupt::requested)?;
            if crate::interrupt::requested() {
                return Err(interrupted());
            }
            if !settled.settled {
                notes.push(format!("KSM had not settled at N={n} after {:.1} s; read as it was", settled.waited.as_secs_f64()));
            }
            let held = probe.fleet(&fleet)?;
            let available = probe.available()?;
            points.push(DensityPoint { n, held, available_before: before, available, launch_secs: launching.as_secs_f64(), ksm: Some(settled.counters) });
            if available < opts.floor_bytes {
                break Stop::Floor { available, next: 0, floor: opts.floor_bytes };
            }
        }
    };
    fleet.stop_all()?;
    drop(fleet);
    session.restore()?;
    Ok(DensityCurve { ksm: true, points, stop, notes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fake::{FakePlatform, Log, FAKE_A};
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    const MIB: u64 = 1 << 20;

    /// A host whose memory each live fake instance takes a known share of:
    /// `fixed` once any runs, `per` each, out of `total`.
    struct ModelHost {
        log: Arc<Log>,
        total: u64,
        fixed: u64,
        per: u64,
    }

    impl ModelHost {
        fn held(&self) -> u64 {
            let n = self.log.live.load(Ordering::SeqCst) as u64;
            if n == 0 {
                0
            } else {
                self.fixed + self.per * n
            }
        }
    }

    impl MemoryProbe for ModelHost {
        fn available(&self) -> Result<u64> {
            Ok(self.total - self.held())
        }
        fn fleet(&self, _: &Fleet) -> Result<FleetMemory> {
            Ok(FleetMemory { pss: self.held(), cgroup: None })
        }
    }

    fn spec() -> LaunchSpec {
        LaunchSpec::new("idle:16".parse().unwrap())
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[test]
    fn the_fit_recovers_fixed_and_per_instance_costs() {
        let _g = crate::interrupt::test_serial();
        let log = Arc::new(Log::default());
        let p = FakePlatform::new(&FAKE_A, log.clone());
        let host = ModelHost { log: log.clone(), total: 64 << 30, fixed: 5 * MIB, per: 18 * MIB };
        let o = DensityOptions { budget_bytes: 400 * MIB, floor_bytes: MIB, max_instances: 1000, time_budget: Duration::from_secs(60), ksm: None };
        let c = ramp(&p, &spec(), &o, &host, far()).unwrap();
        // 5 + 18 N <= 400: N = 21; the 22nd would pass the budget.
        assert_eq!(c.points.len(), 21);
        assert!(matches!(c.stop, Stop::Budget { budget, .. } if budget == 400 * MIB), "{:?}", c.stop);
        assert!(c.points.iter().all(|p| p.held_bytes() <= o.budget_bytes));
        let fits = c.fits();
        for basis in [Basis::Pss, Basis::Host] {
            let f = fits.iter().find(|(b, _)| *b == basis).map(|x| x.1).unwrap();
            assert!((f.slope - 18.0 * MIB as f64).abs() < 1.0, "{basis:?} {f:?}");
            assert!((f.intercept - 5.0 * MIB as f64).abs() < 16.0, "{basis:?} {f:?}");
            assert!(f.rmse < 1.0);
        }
        assert!(!fits.iter().any(|(b, _)| *b == Basis::Cgroup), "no cgroup readings, no cgroup fit");
        let rows = c.samples("fake-a", "idle:16");
        let per = rows.iter().find(|r| r.metric == Metric::DensityPerInstancePss).unwrap();
        assert_eq!(per.iteration, 21);
        assert_eq!(log.live.load(Ordering::SeqCst), 0, "every instance stopped");
    }

    #[test]
    fn the_floor_guard_stops_before_memavailable_falls_below_it() {
        let _g = crate::interrupt::test_serial();
        let log = Arc::new(Log::default());
        let p = FakePlatform::new(&FAKE_A, log.clone());
        // 1000 MiB of memory, a floor at 900 MiB, 30 MiB per instance
        // (the first estimate, 16 + 8 MiB, is below the truth).
        let host = ModelHost { log: log.clone(), total: 1000 * MIB, fixed: 0, per: 30 * MIB };
        let o = DensityOptions { budget_bytes: u64::MAX, floor_bytes: 900 * MIB, max_instances: 1000, time_budget: Duration::from_secs(60), ksm: None };
        let c = ramp(&p, &spec(), &o, &host, far()).unwrap();
        assert!(matches!(c.stop, Stop::Floor { .. }), "{:?}", c.stop);
        assert_eq!(c.points.len(), 3, "100 MiB of headroom holds 3 instances of 30 MiB");
        assert!(c.points.iter().all(|p| p.available >= o.floor_bytes), "MemAvailable never went below the floor");
        assert!(c.stop.to_string().contains("below the floor of 900 MiB"), "{}", c.stop);
        assert_eq!(log.live.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn count_and_time_limits_stop_the_ramp() {
        let _g = crate::interrupt::test_serial();
        let log = Arc::new(Log::default());
        let p = FakePlatform::new(&FAKE_A, log.clone());
        let host = ModelHost { log: log.clone(), total: 64 << 30, fixed: 0, per: MIB };
        let o = DensityOptions { budget_bytes: u64::MAX, floor_bytes: 0, max_instances: 7, time_budget: Duration::from_secs(60), ksm: None };
        let c = ramp(&p, &spec(), &o, &host, far()).unwrap();
        assert_eq!((c.points.len(), c.stop.clone()), (7, Stop::Count(7)));
        let c = ramp(&p, &spec(), &o, &host, Instant::now()).unwrap();
        assert!(c.points.is_empty() && matches!(c.stop, Stop::Time(_)));
        assert_eq!(log.live.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn an_interrupt_stops_every_instance() {
        let _g = crate::interrupt::test_serial();
        let log = Arc::new(Log::default());
        let p = FakePlatform::new(&FAKE_A, log.clone()).with_fault(3, crate::platform::fake::Fault::Interrupt);
        let host = ModelHost { log: log.clone(), total: 64 << 30, fixed: 0, per: MIB };
        let o = DensityOptions { budget_bytes: u64::MAX, floor_bytes: 0, max_instances: 100, time_budget: Duration::from_secs(60), ksm: None };
        let e = ramp(&p, &spec(), &o, &host, far()).unwrap_err();
        crate::interrupt::clear();
        assert!(e.is_interrupt(), "{e}");
        assert_eq!(log.live.load(Ordering::SeqCst), 0);
    }
}
