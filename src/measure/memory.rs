//! Memory per instance (difference 1 of DESIGN.md).
//!
//! `mem.host` is the proportional set size (PSS) of every host process of an
//! instance, read from `/proc/PID/smaps_rollup`: shared pages (the static
//! workload binary, a VMM's text) are divided among the processes that map
//! them, so N instances add up to what they really cost the host. For an
//! instance in its own memory cgroup (a container) `mem.cgroup` is what the
//! kernel charged to that cgroup (v1 `memory.usage_in_bytes`, v2
//! `memory.current`), which also counts kernel memory and page cache the
//! instance caused. `mem.overhead` is `mem.host` minus the `process`
//! platform's `mem.host` for the same workload ([`add_overhead_rows`]).
//!
//! An instance whose host "process" is versus itself (a VMM running in
//! threads of this process) cannot be attributed by PSS of its pids; for it
//! `mem.host` is the growth of this process's PSS from before the launch to
//! after the ready signal ([`Attribution::SelfDelta`]), and the platform
//! should add its own `mem.vmm` rows.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::export::Sample;
use crate::platform::{LaunchSpec, Platform};
use crate::stats;

/// How `mem.host` was attributed to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribution {
    /// Sum of the PSS of the instance's own host processes.
    Pids,
    /// The instance lives inside this process: growth of this process's PSS
    /// across the launch.
    SelfDelta,
}

/// One reading of one running instance.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryReading {
    /// PSS of the instance's host processes, bytes.
    pub pss_bytes: u64,
    /// RSS of the same processes, bytes (shared pages counted in full).
    pub rss_bytes: u64,
    /// Memory charged to the instance's own memory cgroup, when it has one.
    pub cgroup_bytes: Option<u64>,
    pub attribution: Attribution,
    /// The host pids read.
    pub pids: Vec<i32>,
}

/// `Pss:` and `Rss:` of one process, in bytes, from `smaps_rollup`.
pub fn pss_rss_of(pid: i32) -> std::io::Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    Ok(parse_smaps_rollup(&text))
}

/// Parses the `Pss:` and `Rss:` lines (kB) of an smaps_rollup text.
pub fn parse_smaps_rollup(text: &str) -> (u64, u64) {
    let kb = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (kb("Pss:"), kb("Rss:"))
}

/// The memory cgroup of `pid`: the v1 `memory` hierarchy's path, or the v2
/// path (`0::`), relative to the hierarchy root.
fn memory_cgroup_of(pid: &str) -> Option<(bool, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    parse_memory_cgroup(&text)
}

/// From a `/proc/PID/cgroup` text: `(is_v1, path)` of the memory controller.
pub fn parse_memory_cgroup(text: &str) -> Option<(bool, String)> {
    let mut v2 = None;
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        if ctrls.split(',').any(|c| c == "memory") {
            return Some((true, path.to_string()));
        }
        if ctrls.is_empty() {
            v2 = Some((false, path.to_string()));
        }
    }
    v2
}

/// The charged-memory file of a memory cgroup.
fn charged_file(v1: bool, path: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    if v1 {
        Path::new("/sys/fs/cgroup/memory").join(rel).join("memory.usage_in_bytes")
    } else {
        Path::new("/sys/fs/cgroup").join(rel).join("memory.current")
    }
}

/// Memory charged to the memory cgroup of `pid`, if that cgroup is not the
/// one this process is in (a process platform instance shares ours, and the
/// whole session's charge is not the instance's).
pub fn own_cgroup_charge(pid: i32) -> Option<u64> {
    let theirs = memory_cgroup_of(&pid.to_string())?;
    let ours = memory_cgroup_of("self");
    if ours.as_ref() == Some(&theirs) || theirs.1 == "/" {
        return None;
    }
    std::fs::read_to_string(charged_file(theirs.0, &theirs.1)).ok()?.trim().parse().ok()
}

/// Reads the memory of the given host pids (a running instance's
/// `Instance::pids()`). Processes that vanished meanwhile count 0.
pub fn read_pids(pids: &[i32]) -> MemoryReading {
    let mut pss = 0;
    let mut rss = 0;
    let mut cgroups: Vec<(bool, String)> = Vec::new();
    let mut charged = None;
    for &p in pids {
        if let Ok((a, b)) = pss_rss_of(p) {
            pss += a;
            rss += b;
        }
        // Count each cgroup once.
        if let Some(cg) = memory_cgroup_of(&p.to_string()) {
            if !cgroups.contains(&cg) {
                if let Some(c) = own_cgroup_charge(p) {
                    charged = Some(charged.unwrap_or(0) + c);
                }
                cgroups.push(cg);
            }
        }
    }
    MemoryReading {
        pss_bytes: pss,
        rss_bytes: rss,
        cgroup_bytes: charged,
        attribution: Attribution::Pids,
        pids: pids.to_vec(),
    }
}

/// PSS of this process, bytes.
fn self_pss() -> anyhow::Result<(u64, u64)> {
    pss_rss_of(std::process::id() as i32).context("reading /proc/self/smaps_rollup (needs Linux 4.14 or later)")
}

/// Launches one instance of `spec` on `platform`, reads its memory once it
/// is ready, and stops it (also on error: the instance is dropped, which
/// releases it).
pub fn measure_once(platform: &dyn Platform, spec: &LaunchSpec) -> anyhow::Result<MemoryReading> {
    let before = self_pss()?;
    let inst = platform
        .launch(spec)
        .with_context(|| format!("launching {} on {} for the memory measurement", spec.workload, platform.name()))?;
    let pids = inst.pids();
    let me = std::process::id() as i32;
    let reading = if pids.is_empty() || pids.contains(&me) {
        let after = self_pss()?;
        MemoryReading {
            pss_bytes: after.0.saturating_sub(before.0),
            rss_bytes: after.1.saturating_sub(before.1),
            cgroup_bytes: None,
            attribution: Attribution::SelfDelta,
            pids,
        }
    } else {
        read_pids(&pids)
    };
    inst.stop()
        .with_context(|| format!("stopping the {} instance after the memory measurement", platform.name()))?;
    Ok(reading)
}

/// Builds one sample row.
pub fn sample(run_id: &str, platform: &str, workload: &str, metric: &str, unit: &str, iteration: u32, value: f64) -> Sample {
    Sample {
        run_id: run_id.into(),
        platform: platform.into(),
        workload: workload.into(),
        metric: metric.into(),
        unit: unit.into(),
        iteration,
        value,
    }
}

/// Measures `iterations` fresh instances (one at a time) and returns the
/// rows `mem.host` and `mem.rss` (and `mem.cgroup` where the instance has
/// its own cgroup), unit `bytes`, ready for samples.csv. Add `mem.overhead`
/// with [`add_overhead_rows`] once the `process` rows are in.
pub fn measure_memory(platform: &dyn Platform, spec: &LaunchSpec, iterations: u32, run_id: &str) -> anyhow::Result<Vec<Sample>> {
    let workload = spec.workload.to_string();
    let mut rows = Vec::new();
    for i in 0..iterations {
        let r = measure_once(platform, spec)?;
        rows.extend(reading_rows(&r, run_id, platform.name(), &workload, i));
    }
    Ok(rows)
}

/// The sample rows of one reading.
pub fn reading_rows(r: &MemoryReading, run_id: &str, platform: &str, workload: &str, iteration: u32) -> Vec<Sample> {
    let mut rows = vec![
        sample(run_id, platform, workload, "mem.host", "bytes", iteration, r.pss_bytes as f64),
        sample(run_id, platform, workload, "mem.rss", "bytes", iteration, r.rss_bytes as f64),
    ];
    if let Some(c) = r.cgroup_bytes {
        rows.push(sample(run_id, platform, workload, "mem.cgroup", "bytes", iteration, c as f64));
    }
    rows
}

/// Appends `mem.overhead` rows: for every `mem.host` row, its value minus the
/// median `mem.host` of the `process` platform for the same workload. Rows
/// of workloads the process platform did not measure get none. Returns how
/// many rows were added. Existing `mem.overhead` rows are kept as they are.
pub fn add_overhead_rows(samples: &mut Vec<Sample>) -> usize {
    let mut added = Vec::new();
    let has_overhead = |p: &str, w: &str, s: &[Sample]| s.iter().any(|x| x.metric == "mem.overhead" && x.platform == p && x.workload == w);
    for s in samples.iter().filter(|s| s.metric == "mem.host") {
        if has_overhead(&s.platform, &s.workload, samples) {
            continue;
        }
        let base: Vec<f64> = samples
            .iter()
            .filter(|b| b.metric == "mem.host" && b.platform == "process" && b.workload == s.workload)
            .map(|b| b.value)
            .collect();
        if base.is_empty() {
            continue;
        }
        let mut row = s.clone();
        row.metric = "mem.overhead".into();
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
    fn parses_rollup() {
        let t = "55d0-7ffd ---p 00000000 00:00 0 [rollup]\nRss:                1024 kB\nPss:                 600 kB\nPss_Anon: 500 kB\n";
        assert_eq!(parse_smaps_rollup(t), (600 * 1024, 1024 * 1024));
    }

    #[test]
    fn parses_cgroup_files() {
        let v1 = "9:name=systemd:/\n4:memory:/versus-1-2\n0::/\n";
        assert_eq!(parse_memory_cgroup(v1), Some((true, "/versus-1-2".into())));
        let v2 = "0::/system.slice/x\n";
        assert_eq!(parse_memory_cgroup(v2), Some((false, "/system.slice/x".into())));
        assert_eq!(charged_file(true, "/a"), PathBuf::from("/sys/fs/cgroup/memory/a/memory.usage_in_bytes"));
        assert_eq!(charged_file(false, "/a"), PathBuf::from("/sys/fs/cgroup/a/memory.current"));
    }

    #[test]
    fn self_is_readable_and_not_charged_to_itself() {
        let me = std::process::id() as i32;
        let r = read_pids(&[me]);
        assert!(r.pss_bytes > 0 && r.rss_bytes >= r.pss_bytes);
        assert_eq!(r.cgroup_bytes, None, "our own cgroup is not an instance's");
    }

    #[test]
    fn overhead_rows_subtract_the_process_median() {
        let mut s = vec![
            sample("r", "process", "idle:64", "mem.host", "bytes", 0, 100.0),
            sample("r", "process", "idle:64", "mem.host", "bytes", 1, 110.0),
            sample("r", "container", "idle:64", "mem.host", "bytes", 0, 150.0),
            sample("r", "container", "idle:8", "mem.host", "bytes", 0, 50.0),
        ];
        assert_eq!(add_overhead_rows(&mut s), 3);
        let o: Vec<(String, f64)> = s.iter().filter(|x| x.metric == "mem.overhead").map(|x| (x.platform.clone(), x.value)).collect();
        assert_eq!(o, vec![("process".into(), -5.0), ("process".into(), 5.0), ("container".into(), 45.0)]);
        assert_eq!(add_overhead_rows(&mut s), 0, "idempotent");
    }
}
