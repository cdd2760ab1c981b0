//! Memory per instance (difference 1 of docs/design.md).
//!
//! `mem.host` is the proportional set size (PSS) of every host process of an
//! idle instance ([`crate::platform::Instance::pids`]): shared pages (the
//! static workload binary, a VMM's text) are divided among the processes
//! that map them, so N instances add up to what they really cost the host.
//! `mem.rss` is the RSS of the same processes. For an instance in its own
//! memory cgroup, `mem.cgroup` is what the kernel charged to that cgroup,
//! which also counts kernel memory the instance caused. An instance with a
//! VMM process adds `mem.vmm`, that process's resident memory outside guest
//! RAM ([`crate::platform::Instance::vmm_memory`]). `mem.overhead` is
//! `mem.host` minus the baseline platform's for the same workload
//! ([`add_overhead_rows`]).
//!
//! An instance that lives inside versus (a VMM in threads of this process)
//! reports versus' own pid; its `mem.host` is then the growth of this
//! process's PSS from before the launch to after the ready signal
//! ([`Attribution::Harness`]).

use super::{ExperimentError, Result};
use crate::measure::charge::{memory_cgroup_of, own_cgroup_charge};
use crate::measure::smaps::{self, PssRss};
use crate::model::{Metric, Sample};
use crate::platform::registry;
use crate::platform::{Instance, LaunchSpec, Platform, VmmMemory};
use crate::stats;

/// How `mem.host` was attributed to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribution {
    /// Sum of the PSS of the instance's own host processes.
    Pids,
    /// The instance lives inside this process: growth of its PSS across the
    /// launch.
    Harness,
}

/// One reading of one running instance.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryReading {
    /// PSS of the instance's host processes, bytes. Signed: an instance
    /// inside versus is versus' growth across the launch, which other
    /// activity in versus can make negative; it is kept as measured.
    pub pss_bytes: i64,
    /// RSS of the same processes, bytes (shared pages counted in full).
    pub rss_bytes: i64,
    /// Memory charged to the instance's own memory cgroup, when it has one.
    pub cgroup_bytes: Option<u64>,
    /// Its VMM process's memory outside guest RAM, when it has one.
    pub vmm: Option<VmmMemory>,
    pub attribution: Attribution,
    /// The host pids read.
    pub pids: Vec<i32>,
}

/// Reads the memory of the given host pids (a running instance's
/// `Instance::pids()`), and the charge of each distinct memory cgroup among
/// them that is not versus' own. A process that exited meanwhile counts 0;
/// if none can be read, that is an error.
pub fn read_pids(pids: &[i32]) -> Result<MemoryReading> {
    let mut total = PssRss::default();
    let mut cgroups: Vec<(bool, String)> = Vec::new();
    let mut charged = None;
    let mut read = 0;
    let mut last_err = None;
    for &p in pids {
        match smaps::rollup(p) {
            Ok(m) => {
                total = total + m;
                read += 1;
            }
            Err(e) => last_err = Some(e),
        }
        if let Some(cg) = memory_cgroup_of(&p.to_string()) {
            if !cgroups.contains(&cg) {
                if let Some(c) = own_cgroup_charge(p) {
                    charged = Some(charged.unwrap_or(0) + c);
                }
                cgroups.push(cg);
            }
        }
    }
    match (read, last_err) {
        (0, Some(e)) => Err(e.into()),
        (0, None) => Err(ExperimentError::Failed("the instance has no host process to read the memory of".into())),
        _ => Ok(MemoryReading {
            pss_bytes: total.pss as i64,
            rss_bytes: total.rss as i64,
            cgroup_bytes: charged,
            vmm: None,
            attribution: Attribution::Pids,
            pids: pids.to_vec(),
        }),
    }
}

/// Reads a running instance. `harness_before` is versus' own PSS/RSS before
/// the launch, for instances that live inside versus.
pub fn read_instance(inst: &dyn Instance, harness_before: PssRss) -> Result<MemoryReading> {
    let pids = inst.pids();
    let me = std::process::id() as i32;
    let mut reading = if pids.contains(&me) {
        let after = smaps::rollup(me)?;
        let others: Vec<i32> = pids.iter().copied().filter(|p| *p != me).collect();
        let rest = if others.is_empty() { None } else { Some(read_pids(&others)?) };
        MemoryReading {
            pss_bytes: after.pss as i64 - harness_before.pss as i64 + rest.as_ref().map_or(0, |r| r.pss_bytes),
            rss_bytes: after.rss as i64 - harness_before.rss as i64 + rest.as_ref().map_or(0, |r| r.rss_bytes),
            cgroup_bytes: rest.and_then(|r| r.cgroup_bytes),
            vmm: None,
            attribution: Attribution::Harness,
            pids,
        }
    } else {
        read_pids(&pids)?
    };
    if let Some(v) = inst.vmm_memory() {
        reading.vmm = Some(v.map_err(ExperimentError::launch("reading the VMM process's memory"))?);
    }
    Ok(reading)
}

/// Launches one instance of `spec` on `platform`, reads its memory once it
/// is ready, and stops it (on error too: the instance is dropped, which
/// releases it).
pub fn measure_once(platform: &dyn Platform, spec: &LaunchSpec) -> Result<MemoryReading> {
    let before = smaps::rollup(std::process::id() as i32)?;
    let inst =
        platform.launch(spec).map_err(ExperimentError::launch(format!("launching {} on {} for the memory measurement", spec.workload, platform.name())))?;
    let reading = read_instance(inst.as_ref(), before);
    inst.stop().map_err(ExperimentError::launch(format!("stopping the {} instance after the memory measurement", platform.name())))?;
    reading
}

/// Measures `iterations` fresh instances (one at a time) and returns their
/// rows: `mem.host`, `mem.rss`, and `mem.cgroup` / `mem.vmm` where the
/// instance has them. Add `mem.overhead` with [`add_overhead_rows`] once the
/// baseline's rows are in.
pub fn measure_memory(platform: &dyn Platform, spec: &LaunchSpec, iterations: u32) -> Result<Vec<Sample>> {
    let workload = spec.workload.to_string();
    let mut rows = Vec::new();
    for i in 0..iterations {
        let r = measure_once(platform, spec)?;
        rows.extend(reading_rows(&r, platform.name(), &workload, i));
    }
    Ok(rows)
}

/// The sample rows of one reading.
pub fn reading_rows(r: &MemoryReading, platform: &str, workload: &str, iteration: u32) -> Vec<Sample> {
    let row = |m: Metric, v: f64| Sample::new(platform, workload, m, iteration, v);
    let mut rows = vec![row(Metric::MemHost, r.pss_bytes as f64), row(Metric::MemRss, r.rss_bytes as f64)];
    if let Some(c) = r.cgroup_bytes {
        rows.push(row(Metric::MemCgroup, c as f64));
    }
    if let Some(v) = r.vmm {
        rows.push(row(Metric::MemVmm, v.rss_excl_guest as f64));
    }
    rows
}

/// Appends `mem.overhead` rows: for every `mem.host` row, its value minus the
/// median `mem.host` of the baseline platform for the same workload. Rows
/// of workloads the baseline did not measure get none. Returns how many
/// rows were added. Existing `mem.overhead` rows are kept as they are.
pub fn add_overhead_rows(samples: &mut Vec<Sample>) -> usize {
    let baseline = registry::baseline();
    let mut added = Vec::new();
    let has_overhead = |p: &str, w: &str, s: &[Sample]| s.iter().any(|x| x.metric == Metric::MemOverhead && x.platform == p && x.workload == w);
    for s in samples.iter().filter(|s| s.metric == Metric::MemHost) {
        if has_overhead(&s.platform, &s.workload, samples) {
            continue;
        }
        let base: Vec<f64> =
            samples.iter().filter(|b| b.metric == Metric::MemHost && b.platform == baseline && b.workload == s.workload).map(|b| b.value).collect();
        if base.is_empty() {
            continue;
        }
        let mut row = s.clone();
        row.metric = Metric::MemOverhead;
        row.value = s.value - stats::median(&base);
        added.push(row);
    }
    let n = added.len();
    samples.extend(added);
    n
}

/// Lines for env.json / the report: whether KSM and transparent huge pages
/// could change the memory figures.
pub fn memory_notes() -> Vec<String> {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    let ksm = match read("/sys/kernel/mm/ksm/run").as_deref() {
        Some("1") => "KSM on: identical pages of different instances may be merged, lowering mem.host over time".to_string(),
        Some(v) => format!("KSM off (run={v}): no page merging between instances"),
        None => "KSM not available in this kernel".to_string(),
    };
    let thp = match read("/sys/kernel/mm/transparent_hugepage/enabled") {
        Some(v) => format!("transparent huge pages: {v}"),
        None => "transparent huge pages: not available".to_string(),
    };
    vec![ksm, thp]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_is_readable_and_not_charged_to_itself() {
        let me = std::process::id() as i32;
        let r = read_pids(&[me]).unwrap();
        assert!(r.pss_bytes > 0 && r.rss_bytes >= r.pss_bytes);
        assert_eq!(r.cgroup_bytes, None, "our own cgroup is not an instance's");
        assert!(read_pids(&[]).is_err(), "no process is an error, not a zero");
        assert!(read_pids(&[-5]).is_err());
    }

    #[test]
    fn overhead_rows_subtract_the_baseline_median() {
        let s = |p: &str, w: &str, i: u32, v: f64| Sample::new(p, w, Metric::MemHost, i, v);
        let mut rows =
            vec![s("process", "idle:64", 0, 100.0), s("process", "idle:64", 1, 110.0), s("container", "idle:64", 0, 150.0), s("container", "idle:8", 0, 50.0)];
        assert_eq!(add_overhead_rows(&mut rows), 3);
        let o: Vec<(String, f64)> = rows.iter().filter(|x| x.metric == Metric::MemOverhead).map(|x| (x.platform.clone(), x.value)).collect();
        assert_eq!(o, vec![("process".into(), -5.0), ("process".into(), 5.0), ("container".into(), 45.0)]);
        assert_eq!(add_overhead_rows(&mut rows), 0, "idempotent");
    }
}
