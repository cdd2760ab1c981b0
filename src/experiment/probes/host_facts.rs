//! What versus reads on the host to judge the probes against: its boot id,
//! uname, its own pid and start time, pid 1, namespace inodes, interfaces,
//! root and mounts, hostname, CPU brand, environment (hashed) and the
//! number of host system calls.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;

use super::catalogue::NAMESPACES;
use super::wire::fnv;

/// What versus reads on the host to compare with the observations.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub boot_id: Option<String>,
    pub release: String,
    pub version: String,
    /// versus' own pid and start time (clock ticks since boot).
    pub pid: i32,
    pub start: Option<u64>,
    pub pid1_comm: Option<String>,
    pub pid1_start: Option<u64>,
    /// Namespace inodes by kind (`pid`, `net`, ...).
    pub ns: BTreeMap<String, u64>,
    /// Interfaces other than lo: (name, MAC).
    pub interfaces: Vec<(String, String)>,
    /// (device, inode) of /.
    pub root: Option<(u64, u64)>,
    /// The root mount as `maj:min,root,mountpoint`.
    pub root_mount: Option<String>,
    pub mounts: BTreeSet<String>,
    pub hostname: String,
    pub cpu_brand: String,
    /// Environment: name -> FNV of the value.
    pub env: BTreeMap<String, u64>,
    /// x86-64 system call entry points of the host kernel, when countable;
    /// `collect` leaves it `None` (slow to read) and [`syscall_surface`]
    /// then reads it with [`host_syscalls`].
    pub syscalls: Option<usize>,
}

fn proc_stat(pid: &str) -> Option<(String, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let start = s.get(close + 2..)?.split(' ').nth(19)?.parse().ok()?;
    Some((s[open + 1..close].to_string(), start))
}

/// The CPUID brand string of the host CPU.
pub fn cpu_brand() -> String {
    let mut buf = [0u8; 48];
    String::from_utf8_lossy(versus_workload::cpu_brand(&mut buf)).into_owned()
}

/// Counts the distinct `__x64_sys_*` entry points in /proc/kallsyms (names
/// are listed even when addresses are hidden), without `ni_syscall`.
pub fn count_host_syscalls(kallsyms: &str) -> usize {
    kallsyms
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .filter_map(|n| n.strip_prefix("__x64_sys_"))
        .filter(|n| *n != "ni_syscall")
        .collect::<BTreeSet<_>>()
        .len()
}

/// The host kernel's system call count, read once per process (reading
/// /proc/kallsyms takes a noticeable fraction of a second).
pub fn host_syscalls() -> Option<usize> {
    static COUNT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| std::fs::read_to_string("/proc/kallsyms").ok().map(|k| count_host_syscalls(&k)).filter(|n| *n > 0))
}

impl HostFacts {
    /// Reads the host's values. Missing values stay `None`/empty; the
    /// probes that need them then report `error` with the reason.
    pub fn collect() -> HostFacts {
        let mut h = HostFacts { pid: std::process::id() as i32, ..Default::default() };
        h.boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_string());
        let u = nix::sys::utsname::uname().ok();
        h.release = u.as_ref().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
        h.version = u.as_ref().map(|u| u.version().to_string_lossy().into_owned()).unwrap_or_default();
        h.hostname = u.as_ref().map(|u| u.nodename().to_string_lossy().into_owned()).unwrap_or_default();
        h.start = proc_stat("self").map(|(_, s)| s);
        if let Some((c, s)) = proc_stat("1") {
            h.pid1_comm = Some(c);
            h.pid1_start = Some(s);
        }
        for ns in NAMESPACES {
            if let Ok(m) = std::fs::metadata(format!("/proc/self/ns/{ns}")) {
                h.ns.insert(ns.to_string(), m.ino());
            }
        }
        if let Ok(d) = std::fs::read_dir("/sys/class/net") {
            for e in d.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let mac = std::fs::read_to_string(e.path().join("address")).unwrap_or_default().trim().to_string();
                if name != "lo" && !mac.is_empty() && mac != "00:00:00:00:00:00" {
                    h.interfaces.push((name, mac));
                }
            }
        }
        h.interfaces.sort();
        h.root = std::fs::metadata("/").ok().map(|m| (m.dev(), m.ino()));
        if let Ok(t) = std::fs::read_to_string("/proc/self/mountinfo") {
            for l in t.lines() {
                let f: Vec<&str> = l.split(' ').collect();
                if f.len() > 4 {
                    let m = format!("{},{},{}", f[2], f[3], f[4]);
                    if f[4] == "/" {
                        // The last mount on / is the one in effect.
                        h.root_mount = Some(m.clone());
                    }
                    h.mounts.insert(m);
                }
            }
        }
        h.cpu_brand = cpu_brand();
        h.env = std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), fnv(v.as_encoded_bytes()))).collect();
        h
    }
}
