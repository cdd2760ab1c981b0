//! The isolation-probe matrix (difference 4 of DESIGN.md): what a workload
//! can see of, and do to, the host, from inside each platform.
//!
//! The workload program's `probe` mode (`harness/guest/src/probe.rs`) runs
//! every probe inside the sandbox and reports raw observations (`PROBE id=..
//! result=observed evidence=k=v ...`): the boot id and uname it sees, its
//! parent's pid and start time, its namespace inodes, interfaces, whether a
//! connect or an open succeeded. versus compares them here with the values it
//! reads on the host itself ([`HostFacts`]) and classifies each probe as
//! `isolated`, `exposed`, `not_applicable` or `error` ([`classify`]). A guest
//! or VMM that can judge a probe itself may send a final result instead of
//! `observed` (the kernel-less guest's `vm.*` probes do); it is kept.
//!
//! Probes about kernel objects (capabilities, seccomp, /proc/sys, devices,
//! namespaces) only concern the host when the workload runs on the host's
//! kernel: on a guest with its own kernel they are `isolated` by
//! construction, and the evidence says so.
//!
//! The catalogue ([`CATALOGUE`]) is documented for users in docs/probes.md;
//! a test keeps the two in step.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{LaunchError, Result};
use crate::platform::{LaunchSpec, Platform, ProbeLine};
use crate::workload::{GuestMode, WorkloadSpec};

/// A probe's result, as written to probes.csv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Isolated,
    Exposed,
    NotApplicable,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Isolated => "isolated",
            Outcome::Exposed => "exposed",
            Outcome::NotApplicable => "not_applicable",
            Outcome::Error => "error",
        }
    }
    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "isolated" => Outcome::Isolated,
            "exposed" => Outcome::Exposed,
            "not_applicable" => Outcome::NotApplicable,
            "error" => Outcome::Error,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of probes.csv: `run_id,platform,probe,category,result,evidence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRow {
    pub run_id: String,
    pub platform: String,
    pub probe: String,
    pub category: String,
    pub result: Outcome,
    pub evidence: String,
}

/// Which guests can run a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Needs a Linux kernel under the workload (process, containers, Linux guests).
    Linux,
    /// Only the kernel-less guest (`vm-bare`), answered by its VMM.
    Bare,
    /// Every platform.
    All,
}

/// A probe of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct ProbeDef {
    pub id: &'static str,
    /// kernel, processes, filesystem, network, privileges, devices,
    /// kernel interfaces, resources.
    pub category: &'static str,
    /// The one-line question the probe answers.
    pub question: &'static str,
    /// What counts as `exposed`.
    pub exposed_when: &'static str,
    /// Only meaningful on the host's kernel: `isolated` when the workload
    /// has a kernel of its own.
    pub kernel_relative: bool,
    pub scope: Scope,
}

const fn p(id: &'static str, category: &'static str, question: &'static str, exposed_when: &'static str, kernel_relative: bool, scope: Scope) -> ProbeDef {
    ProbeDef {
        id,
        category,
        question,
        exposed_when,
        kernel_relative,
        scope,
    }
}

/// Every probe, in report order.
pub const CATALOGUE: &[ProbeDef] = &[
    p(
        "kernel.shared",
        "kernel",
        "Does the workload run on the host's kernel?",
        "the kernel boot id it reads (/proc/sys/kernel/random/boot_id) is the host's; without /proc, uname release and version equal the host's",
        false,
        Scope::All,
    ),
    p(
        "proc.host_pids",
        "processes",
        "Can the workload see host processes?",
        "its /proc shows versus itself (its parent, same pid and start time) or the host's pid 1 (same name and start time)",
        true,
        Scope::Linux,
    ),
    p(
        "ns.pid",
        "processes",
        "Does the workload share the host's pid namespace (is it not pid 1 of its own)?",
        "its pid namespace inode is the host's",
        true,
        Scope::Linux,
    ),
    p(
        "ns.ipc",
        "processes",
        "Does the workload share the host's IPC namespace (SysV IPC, POSIX queues)?",
        "its ipc namespace inode is the host's",
        true,
        Scope::Linux,
    ),
    p(
        "proc.host_env",
        "processes",
        "Does the workload inherit the host's environment, where secrets often live?",
        "half or more of versus' environment variables (at least 3), by name and value, are in its environment (values are compared as hashes, never reported)",
        false,
        Scope::Linux,
    ),
    p(
        "fs.host_root",
        "filesystem",
        "Can the workload see the host's root filesystem?",
        "its / (or /proc/1/root) is the host's / (same device and inode)",
        true,
        Scope::Linux,
    ),
    p(
        "fs.host_mounts",
        "filesystem",
        "Can the workload see the host's mount table?",
        "its /proc/self/mountinfo lists the host's root mount (same device, root and mount point)",
        true,
        Scope::Linux,
    ),
    p(
        "ns.mnt",
        "filesystem",
        "Does the workload share the host's mount namespace?",
        "its mnt namespace inode is the host's",
        true,
        Scope::Linux,
    ),
    p(
        "fs.runtime_sockets",
        "filesystem",
        "Are container runtime sockets (docker, containerd, cri-o, podman, libvirt) reachable?",
        "one of their well-known paths is a socket it can see",
        true,
        Scope::Linux,
    ),
    p(
        "net.host_interfaces",
        "network",
        "Can the workload see the host's network interfaces?",
        "one of its interfaces has the name and MAC address of a host interface other than lo",
        false,
        Scope::Linux,
    ),
    p(
        "net.host_loopback",
        "network",
        "Can the workload connect to a TCP port listening on the host's 127.0.0.1?",
        "connect() to the port versus listens on succeeds",
        false,
        Scope::Linux,
    ),
    p(
        "net.host_unix",
        "network",
        "Can the workload connect to a host abstract unix socket?",
        "connect() to the abstract socket versus listens on succeeds",
        false,
        Scope::Linux,
    ),
    p(
        "ns.net",
        "network",
        "Does the workload share the host's network namespace?",
        "its net namespace inode is the host's",
        true,
        Scope::Linux,
    ),
    p(
        "priv.uid0_host",
        "privileges",
        "Does the workload run as the host's root?",
        "uid 0 with the identity uid map (0 0 4294967295)",
        true,
        Scope::Linux,
    ),
    p(
        "priv.capabilities",
        "privileges",
        "Does the workload hold CAP_SYS_ADMIN over the host?",
        "CAP_SYS_ADMIN is in its effective set and its user namespace is the host's",
        true,
        Scope::Linux,
    ),
    p(
        "priv.seccomp",
        "privileges",
        "Can the workload make every system call (no seccomp filter)?",
        "prctl(PR_GET_SECCOMP) is 0",
        true,
        Scope::Linux,
    ),
    p(
        "priv.no_new_privs",
        "privileges",
        "Can the workload gain privileges through setuid or file capabilities?",
        "prctl(PR_GET_NO_NEW_PRIVS) is 0",
        true,
        Scope::Linux,
    ),
    p(
        "priv.lsm",
        "privileges",
        "Is the workload unconfined by an LSM (AppArmor, SELinux)?",
        "/proc/self/attr/current is `unconfined` or there is no LSM label",
        true,
        Scope::Linux,
    ),
    p(
        "ns.user",
        "privileges",
        "Does the workload share the host's user namespace?",
        "its user namespace inode is the host's",
        true,
        Scope::Linux,
    ),
    p(
        "kif.kallsyms",
        "kernel interfaces",
        "Can the workload read kernel symbol addresses?",
        "/proc/kallsyms shows non-zero addresses",
        true,
        Scope::Linux,
    ),
    p(
        "kif.dmesg",
        "kernel interfaces",
        "Can the workload read the kernel log?",
        "syslog(SYSLOG_ACTION_READ_ALL) succeeds",
        true,
        Scope::Linux,
    ),
    p(
        "kif.proc_sys",
        "kernel interfaces",
        "Can the workload write host-wide sysctls?",
        "open(/proc/sys/kernel/core_pattern, O_WRONLY) succeeds (nothing is written)",
        true,
        Scope::Linux,
    ),
    p(
        "kif.sysfs",
        "kernel interfaces",
        "Is /sys mounted writable for a host root?",
        "/sys is a read-write sysfs, the workload is euid 0 and in the host's user namespace",
        true,
        Scope::Linux,
    ),
    p(
        "kif.cgroup_release_agent",
        "kernel interfaces",
        "Can the workload write a cgroup v1 release_agent (the classic container escape)?",
        "open(<cgroup>/release_agent, O_WRONLY) succeeds (nothing is written)",
        true,
        Scope::Linux,
    ),
    p(
        "kif.module_load",
        "kernel interfaces",
        "Can the workload load kernel modules?",
        "init_module() with an empty image gets past the CAP_SYS_MODULE check (fails with anything but EPERM); ENOSYS (no module support) is not_applicable",
        true,
        Scope::Linux,
    ),
    p(
        "kif.hostname",
        "kernel interfaces",
        "Does a hostname change inside reach the host?",
        "sethostname() (to the current name) succeeds in the host's UTS namespace, or the host's hostname changed during the run",
        true,
        Scope::Linux,
    ),
    p(
        "kif.clock",
        "kernel interfaces",
        "Can the workload set the host's clock?",
        "settimeofday(NULL, NULL) passes the CAP_SYS_TIME check (time namespaces never cover CLOCK_REALTIME)",
        true,
        Scope::Linux,
    ),
    p(
        "ns.uts",
        "kernel interfaces",
        "Does the workload share the host's UTS namespace (hostname)?",
        "its uts namespace inode is the host's",
        true,
        Scope::Linux,
    ),
    p(
        "ns.time",
        "kernel interfaces",
        "Does the workload share the host's time namespace (monotonic and boot clock offsets)?",
        "its time namespace inode is the host's",
        true,
        Scope::Linux,
    ),
    p(
        "dev.mem",
        "devices",
        "Can the workload open /dev/mem, /dev/kmem or /dev/port?",
        "one of them opens read-only",
        true,
        Scope::Linux,
    ),
    p("dev.kvm", "devices", "Can the workload open /dev/kvm?", "it opens", true, Scope::Linux),
    p(
        "dev.block",
        "devices",
        "Can the workload open a host block device?",
        "a block device node under /dev opens read-only",
        true,
        Scope::Linux,
    ),
    p(
        "dev.cpu_identity",
        "devices",
        "Does the workload see the host CPU's identity (CPUID brand string)?",
        "the brand string it reads equals the host's",
        false,
        Scope::All,
    ),
    p(
        "ns.cgroup",
        "resources",
        "Does the workload share the host's cgroup namespace (sees host cgroup paths)?",
        "its cgroup namespace inode is the host's",
        true,
        Scope::Linux,
    ),
    p(
        "vm.mem_outside_ram",
        "resources",
        "Can the kernel-less guest read or write memory outside its RAM?",
        "an access outside guest RAM returns data or is silently accepted instead of ending the guest",
        false,
        Scope::Bare,
    ),
    p(
        "vm.unknown_port",
        "devices",
        "Does the VMM answer port I/O it does not implement?",
        "an access to an unknown port is served instead of ending the guest",
        false,
        Scope::Bare,
    ),
    p(
        "vm.supervisor",
        "privileges",
        "Can the kernel-less guest leave user mode?",
        "a privileged instruction or a system call from CPL3 runs instead of faulting to the VMM",
        false,
        Scope::Bare,
    ),
];

/// The catalogue entry of `id`.
pub fn def(id: &str) -> Option<&'static ProbeDef> {
    CATALOGUE.iter().find(|d| d.id == id)
}

/// Namespaces the guest reports, as in /proc/self/ns.
pub const NAMESPACES: [&str; 8] = ["pid", "net", "mnt", "uts", "ipc", "cgroup", "user", "time"];

/// FNV-1a, 64 bits; the guest hashes environment values the same way.
pub fn fnv(s: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in s {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Decodes the guest's percent-encoding (`%XX`; anything else is literal).
pub fn dec(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `k=v` pairs of an observation, decoded.
pub fn fields(evidence: &str) -> BTreeMap<String, String> {
    evidence
        .split(' ')
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

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
    *COUNT.get_or_init(|| {
        std::fs::read_to_string("/proc/kallsyms")
            .ok()
            .map(|k| count_host_syscalls(&k))
            .filter(|n| *n > 0)
    })
}

impl HostFacts {
    /// Reads the host's values. Missing values stay `None`/empty; the
    /// probes that need them then report `error` with the reason.
    pub fn collect() -> HostFacts {
        let mut h = HostFacts {
            pid: std::process::id() as i32,
            ..Default::default()
        };
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
        h.env = std::env::vars_os()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), fnv(v.as_encoded_bytes())))
            .collect();
        h
    }
}

/// What else the host knows about one probe run.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The port (and abstract socket suffix) versus listened on.
    pub port: u16,
    /// The host's hostname after the run, when it differs from before.
    pub hostname_changed_to: Option<String>,
}

/// The kind of guest a platform runs.
pub fn scope_of(platform: &str) -> Scope {
    if platform == "vm-bare" {
        Scope::Bare
    } else {
        Scope::Linux
    }
}

fn applies(def: &ProbeDef, guest: Scope) -> bool {
    def.scope == Scope::All || def.scope == guest
}

fn errno_name(s: &str) -> String {
    match s.strip_prefix("errno").and_then(|n| n.parse::<i32>().ok()) {
        Some(n) => format!("{:?}", nix::errno::Errno::from_raw(n)),
        None => dec(s),
    }
}

type Verdict = (Outcome, String);

/// Classifies the observations of one platform's probe run. One row per
/// catalogue probe (in catalogue order), then rows for ids the catalogue
/// does not know (kept, category `other`). A probe the platform should have
/// answered but did not is `error`; one its guest cannot run is
/// `not_applicable`.
pub fn classify(platform: &str, lines: &[ProbeLine], host: &HostFacts, ctx: &Context) -> Vec<ProbeRow> {
    let guest = scope_of(platform);
    let by_id: BTreeMap<&str, &ProbeLine> = lines.iter().map(|l| (l.id.as_str(), l)).collect();
    let obs = |id: &str| by_id.get(id).filter(|l| l.result == "observed").map(|l| fields(&l.evidence));
    let kernel_shared = by_id.get("kernel.shared").map(|l| {
        if l.result == "observed" {
            kernel_shared(&fields(&l.evidence), host).0 == Outcome::Exposed
        } else {
            l.result == "exposed"
        }
    });
    let ns_shared = |kind: &str| obs(&format!("ns.{kind}")).and_then(|f| num(&f, "inode")).map(|i| Some(&i) == host.ns.get(kind));
    let shared = Shared {
        user: ns_shared("user"),
        uts: ns_shared("uts"),
    };
    let mut rows = Vec::new();
    for d in CATALOGUE {
        let row = |result: Outcome, evidence: String| ProbeRow {
            run_id: String::new(),
            platform: platform.to_string(),
            probe: d.id.to_string(),
            category: d.category.to_string(),
            result,
            evidence,
        };
        if !applies(d, guest) {
            let why = match guest {
                Scope::Bare => "kernel-less guest: there is no kernel interface inside to probe; its only way out is the VMM's exits",
                _ => "only the kernel-less guest's VMM answers this probe",
            };
            rows.push(row(Outcome::NotApplicable, why.into()));
            continue;
        }
        let Some(line) = by_id.get(d.id) else {
            rows.push(row(Outcome::Error, format!("{platform} did not report this probe")));
            continue;
        };
        if line.result != "observed" {
            match Outcome::parse(&line.result) {
                Some(o) => rows.push(row(o, line.evidence.clone())),
                None => rows.push(row(Outcome::Error, format!("unknown result `{}`: {}", line.result, line.evidence))),
            }
            continue;
        }
        let f = fields(&line.evidence);
        let (mut result, mut evidence) = judge(d.id, &f, host, ctx, shared);
        if d.kernel_relative && kernel_shared == Some(false) && result == Outcome::Exposed {
            result = Outcome::Isolated;
            evidence = format!("its own kernel, not the host's: {evidence}");
        }
        rows.push(row(result, evidence));
    }
    for l in lines {
        if def(&l.id).is_none() {
            let result = Outcome::parse(&l.result).unwrap_or(Outcome::Error);
            rows.push(ProbeRow {
                run_id: String::new(),
                platform: platform.into(),
                probe: l.id.clone(),
                category: "other".into(),
                result,
                evidence: l.evidence.clone(),
            });
        }
    }
    rows
}

fn kernel_shared(f: &BTreeMap<String, String>, h: &HostFacts) -> Verdict {
    let release = f.get("release").map(|s| dec(s));
    let version = f.get("version").map(|s| dec(s));
    let uname = match (&release, &version) {
        (Some(r), Some(v)) => format!("uname {r} {v}"),
        _ => "no uname".into(),
    };
    if f.get("kernel").map(String::as_str) == Some("none") && f.get("boot_id").is_none() {
        return (
            Outcome::Isolated,
            format!(
                "no kernel under the workload: it was entered directly by the VMM in user mode (CS reads {}, CPL {}); no boot id or uname exists to read, and the host's kernel ({} {}) is reachable only through VM exits",
                f.get("cs").map(String::as_str).unwrap_or("?"),
                f.get("cpl").map(String::as_str).unwrap_or("?"),
                h.release,
                h.version
            ),
        );
    }
    match (f.get("boot_id"), &h.boot_id) {
        (Some(g), Some(b)) if g == b => (Outcome::Exposed, format!("boot id {g} is the host's ({uname})")),
        (Some(g), Some(b)) => (
            Outcome::Isolated,
            format!("boot id {g}, host's {b} ({uname}; host {} {})", h.release, h.version),
        ),
        (Some(_), None) => (Outcome::Error, "the host's boot id is unreadable: mount /proc".into()),
        (None, _) => match (release, version) {
            (Some(r), Some(v)) if r == h.release && v == h.version => (Outcome::Exposed, format!("no boot id; uname {r} {v} equals the host's")),
            (Some(r), Some(v)) => (Outcome::Isolated, format!("no boot id; uname {r} {v}, host's {} {}", h.release, h.version)),
            _ => (Outcome::Isolated, "no kernel answered: no boot id, no uname".into()),
        },
    }
}

fn num(f: &BTreeMap<String, String>, k: &str) -> Option<u64> {
    f.get(k).and_then(|v| v.parse().ok())
}

/// Whether the workload shares the host's user and UTS namespaces, when it
/// reported them.
#[derive(Debug, Clone, Copy)]
struct Shared {
    user: Option<bool>,
    uts: Option<bool>,
}

fn judge(id: &str, f: &BTreeMap<String, String>, h: &HostFacts, ctx: &Context, shared: Shared) -> Verdict {
    use Outcome::*;
    let user_ns_shared = shared.user;
    if let Some(e) = f.get("error") {
        return (Error, format!("the probe failed: {}", errno_name(e)));
    }
    if let Some(kind) = id.strip_prefix("ns.") {
        let Some(host) = h.ns.get(kind) else {
            return (NotApplicable, format!("the host kernel has no {kind} namespace"));
        };
        return match num(f, "inode") {
            Some(i) if i == *host => (Exposed, format!("{kind}:[{i}] is the host's namespace")),
            Some(i) => (Isolated, format!("{kind}:[{i}], host's {kind}:[{host}]")),
            None => (
                Error,
                format!("no namespace inode reported ({})", f.get("link").map(|s| dec(s)).unwrap_or_default()),
            ),
        };
    }
    match id {
        "kernel.shared" => kernel_shared(f, h),
        "proc.host_pids" => {
            let visible = num(f, "visible");
            let ppid = num(f, "ppid");
            let seen = match visible {
                Some(n) => format!("sees {n} processes in /proc"),
                None => format!("cannot list /proc ({})", f.get("proc").map(|s| errno_name(s)).unwrap_or_default()),
            };
            if ppid == Some(h.pid as u64) && num(f, "ppid_start").is_some() && num(f, "ppid_start") == h.start {
                return (Exposed, format!("{seen}; its parent is pid {} = versus itself (same start time)", h.pid));
            }
            let pid1 = f.get("pid1_comm").map(|s| dec(s));
            if pid1.is_some() && pid1 == h.pid1_comm && num(f, "pid1_start").is_some() && num(f, "pid1_start") == h.pid1_start {
                return (
                    Exposed,
                    format!("{seen}; its pid 1 is the host's `{}` (same start time)", pid1.unwrap_or_default()),
                );
            }
            if visible.is_none() && f.get("pid1_comm").is_none() {
                return (Error, seen);
            }
            (
                Isolated,
                format!(
                    "{seen}; parent pid {}; its pid 1 is `{}`, not the host's `{}`",
                    ppid.unwrap_or(0),
                    pid1.unwrap_or_default(),
                    h.pid1_comm.clone().unwrap_or_default()
                ),
            )
        }
        "proc.host_env" => {
            if h.env.is_empty() {
                return (NotApplicable, "versus has an empty environment: nothing to inherit".into());
            }
            let vars = f.get("vars").map(String::as_str).unwrap_or("");
            let mut same = Vec::new();
            let mut count = 0;
            for v in vars.split(',').filter(|v| !v.is_empty()) {
                count += 1;
                if let Some((n, hash)) = v.rsplit_once(':') {
                    let n = dec(n);
                    if u64::from_str_radix(hash, 16).ok().is_some_and(|x| h.env.get(&n) == Some(&x)) {
                        same.push(n);
                    }
                }
            }
            let shown = same.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
            let ev = format!(
                "{} of its {count} variables have the name and value of one of versus' {} ({shown}{})",
                same.len(),
                h.env.len(),
                if same.len() > 8 { ", ..." } else { "" }
            );
            if same.len() >= 3 && same.len() * 2 >= h.env.len() {
                (Exposed, ev)
            } else {
                (Isolated, ev)
            }
        }
        "fs.host_root" => {
            let listing = dec(f.get("listing").map(String::as_str).unwrap_or("")).replace(',', " ");
            let Some((d, i)) = h.root else {
                return (Error, "cannot stat the host's /".into());
            };
            let host = format!("{d}:{i}");
            if f.get("root") == Some(&host) {
                return (Exposed, format!("its / is the host's / (dev:ino {host}); it lists: {listing}"));
            }
            if f.get("proc1root") == Some(&host) {
                return (Exposed, format!("/proc/1/root is the host's / (dev:ino {host}); its own / lists: {listing}"));
            }
            (
                Isolated,
                format!(
                    "its / is {} (host {host}), /proc/1/root {}; it lists: {listing}",
                    f.get("root").map(|s| errno_name(s)).unwrap_or_default(),
                    f.get("proc1root").map(|s| errno_name(s)).unwrap_or_default()
                ),
            )
        }
        "fs.host_mounts" => {
            let Some(root) = &h.root_mount else {
                return (Error, "cannot read the host's mount table".into());
            };
            let mounts: BTreeSet<String> = f
                .get("mounts")
                .map(String::as_str)
                .unwrap_or("")
                .split(';')
                .filter(|m| !m.is_empty())
                .map(|m| m.split(',').map(dec).collect::<Vec<_>>().join(","))
                .collect();
            let common = mounts.intersection(&h.mounts).count();
            let ev = format!("{} mounts visible, {common} of them the host's {}", mounts.len(), h.mounts.len());
            if mounts.contains(root) {
                (Exposed, format!("{ev}, including its root mount {root}"))
            } else {
                (Isolated, format!("{ev}; the host's root mount {root} is not among them"))
            }
        }
        "fs.runtime_sockets" => match f.get("found").filter(|s| !s.is_empty()) {
            Some(s) => (Exposed, format!("runtime sockets visible: {}", dec(s))),
            None => (
                Isolated,
                format!(
                    "none of {} well-known runtime socket paths is a socket inside",
                    f.get("checked").map(String::as_str).unwrap_or("?")
                ),
            ),
        },
        "net.host_interfaces" => {
            if h.interfaces.is_empty() {
                return (NotApplicable, "the host has no interface other than lo to compare with".into());
            }
            let ifs: Vec<(String, String)> = f
                .get("ifs")
                .map(String::as_str)
                .unwrap_or("")
                .split(',')
                .filter_map(|s| s.split_once('@'))
                .map(|(n, m)| (dec(n), m.to_string()))
                .collect();
            let names = ifs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(" ");
            let shared: Vec<&str> = ifs
                .iter()
                .filter(|(n, m)| h.interfaces.iter().any(|(hn, hm)| hn == n && (hm == m || m == "unknown")))
                .map(|(n, _)| n.as_str())
                .collect();
            if shared.is_empty() {
                (
                    Isolated,
                    format!(
                        "its interfaces: {names}; none is one of the host's ({})",
                        h.interfaces.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(" ")
                    ),
                )
            } else {
                (
                    Exposed,
                    format!("host interfaces visible (same name and MAC): {}; all: {names}", shared.join(" ")),
                )
            }
        }
        "net.host_loopback" | "net.host_unix" => {
            let what = if id == "net.host_loopback" {
                format!("127.0.0.1:{}", ctx.port)
            } else {
                format!("@versus-probe-{}", ctx.port)
            };
            match f.get("connect").map(String::as_str) {
                Some("ok") => (Exposed, format!("connect() to the host's listener {what} succeeded")),
                Some(e) => (Isolated, format!("connect() to the host's listener {what} failed: {}", errno_name(e))),
                None => (Error, "no connect result reported".into()),
            }
        }
        "priv.uid0_host" => {
            let uid = num(f, "uid");
            let map: Vec<String> = dec(f.get("uid_map").map(String::as_str).unwrap_or(""))
                .split_whitespace()
                .map(String::from)
                .collect();
            let ev = format!(
                "uid {} euid {}, uid_map `{}`",
                uid.map(|u| u.to_string()).unwrap_or("?".into()),
                f.get("euid").map(String::as_str).unwrap_or("?"),
                map.join(" ")
            );
            if uid != Some(0) {
                (Isolated, ev)
            } else if map.first().map(String::as_str) == Some("0") && map.get(1).map(String::as_str) == Some("0") {
                (Exposed, format!("{ev}: root of the host"))
            } else if map.is_empty() {
                (Error, format!("{ev}: uid map unreadable"))
            } else {
                (Isolated, format!("{ev}: root only inside its user namespace"))
            }
        }
        "priv.capabilities" => {
            let Some(eff) = f.get("eff").and_then(|e| u64::from_str_radix(e, 16).ok()) else {
                return (Error, "no capability sets reported".into());
            };
            let ev = format!(
                "CapEff {:016x} ({} capabilities), CapBnd {}",
                eff,
                eff.count_ones(),
                f.get("bnd").map(String::as_str).unwrap_or("?")
            );
            let sys_admin = eff & (1 << 21) != 0;
            match (sys_admin, user_ns_shared) {
                (true, Some(false)) => (Isolated, format!("{ev}: CAP_SYS_ADMIN only over its own user namespace")),
                (true, _) => (Exposed, format!("{ev}: CAP_SYS_ADMIN in the host's user namespace")),
                (false, _) => (Isolated, format!("{ev}: no CAP_SYS_ADMIN")),
            }
        }
        "priv.seccomp" => match num(f, "mode") {
            Some(0) => (Exposed, "seccomp mode 0: no filter, every system call reachable".into()),
            Some(m) => (
                Isolated,
                format!("seccomp mode {m} ({} filters)", f.get("filters").map(String::as_str).unwrap_or("?")),
            ),
            None => (Error, "no seccomp mode reported".into()),
        },
        "priv.no_new_privs" => match num(f, "nnp") {
            Some(0) => (
                Exposed,
                "no_new_privs is 0: setuid binaries and file capabilities still raise privileges".into(),
            ),
            Some(_) => (Isolated, "no_new_privs is set".into()),
            None => (Error, "no no_new_privs value reported".into()),
        },
        "priv.lsm" => match (f.get("label").map(|s| dec(s)), f.get("label_error")) {
            (Some(l), _) if l == "unconfined" || l.is_empty() => (Exposed, format!("LSM label `{l}`")),
            (Some(l), _) => (Isolated, format!("confined by LSM label `{l}`")),
            (None, Some(e)) => (Exposed, format!("no LSM label (/proc/self/attr/current: {})", errno_name(e))),
            (None, None) => (Error, "no LSM label reported".into()),
        },
        "kif.kallsyms" => match (f.get("open").map(String::as_str), num(f, "nonzero")) {
            (Some("ok"), Some(n)) if n > 0 => (
                Exposed,
                format!(
                    "/proc/kallsyms shows {n} non-zero addresses in its first {} lines",
                    f.get("lines").map(String::as_str).unwrap_or("?")
                ),
            ),
            (Some("ok"), _) => (Isolated, "/proc/kallsyms readable but addresses hidden (kptr_restrict)".into()),
            (Some(e), _) => (Isolated, format!("/proc/kallsyms: {}", errno_name(e))),
            (None, _) => (Error, "no result reported".into()),
        },
        "kif.dmesg" => match f.get("read") {
            Some(r) if r.starts_with("errno") => (Isolated, format!("syslog(READ_ALL): {}", errno_name(r))),
            Some(r) => (Exposed, format!("syslog(READ_ALL) returned {r} bytes of the kernel log")),
            None => (Error, "no result reported".into()),
        },
        "kif.proc_sys" => match f.get("open_write").map(String::as_str) {
            Some("ok") => (Exposed, "open(/proc/sys/kernel/core_pattern, O_WRONLY) succeeded (nothing written)".into()),
            Some(e) => (Isolated, format!("open(/proc/sys/kernel/core_pattern, O_WRONLY): {}", errno_name(e))),
            None => (Error, "no result reported".into()),
        },
        "kif.sysfs" => {
            let mount = f.get("mount").map(String::as_str).unwrap_or("?");
            let euid = num(f, "euid");
            match mount {
                "rw" if euid == Some(0) && user_ns_shared != Some(false) => (
                    Exposed,
                    "/sys is a read-write sysfs and the workload is root of the host's user namespace".into(),
                ),
                "rw" => (
                    Isolated,
                    format!(
                        "/sys is read-write but the workload is euid {} {}",
                        euid.unwrap_or(0),
                        if user_ns_shared == Some(false) { "in its own user namespace" } else { "" }
                    ),
                ),
                "ro" => (Isolated, "/sys is mounted read-only".into()),
                "absent" => (Isolated, "no sysfs mounted on /sys".into()),
                e => (Error, format!("mount table unreadable: {}", errno_name(e))),
            }
        }
        "kif.cgroup_release_agent" => match f.get("writable").filter(|w| !w.is_empty()) {
            Some(w) => (Exposed, format!("writable: {}", dec(w).replace(',', " "))),
            None => (
                Isolated,
                format!(
                    "{} release_agent files visible, none writable",
                    f.get("checked").map(String::as_str).unwrap_or("0")
                ),
            ),
        },
        "kif.module_load" => match (f.get("ret"), num(f, "errno")) {
            (Some(_), _) => (Exposed, "init_module() returned 0".into()),
            (_, Some(1)) => (Isolated, "init_module(): EPERM (no CAP_SYS_MODULE)".into()),
            (_, Some(38)) => (NotApplicable, "init_module(): ENOSYS: this kernel has no module loading".into()),
            (_, Some(e)) => (
                Exposed,
                format!(
                    "init_module() passed the CAP_SYS_MODULE check and failed on the empty image: {:?}",
                    nix::errno::Errno::from_raw(e as i32)
                ),
            ),
            _ => (Error, "no result reported".into()),
        },
        "kif.hostname" => {
            let name = dec(f.get("hostname").map(String::as_str).unwrap_or(""));
            if let Some(changed) = &ctx.hostname_changed_to {
                return (Exposed, format!("the host's hostname changed to `{changed}` during the run"));
            }
            let shared_uts = shared.uts;
            match f.get("set_same").map(String::as_str) {
                Some("ok") if name == h.hostname && shared_uts != Some(false) => {
                    (Exposed, format!("sethostname(`{name}`) succeeded and `{name}` is the host's hostname"))
                }
                Some("ok") => (
                    Isolated,
                    format!("sethostname succeeds on its own hostname `{name}`; the host's `{}` is unchanged", h.hostname),
                ),
                Some(e) => (Isolated, format!("sethostname(`{name}`): {}", errno_name(e))),
                None => (Error, "no result reported".into()),
            }
        }
        "kif.clock" => match f.get("settimeofday").map(String::as_str) {
            Some("ok") => (Exposed, "settimeofday(NULL, NULL) passed the CAP_SYS_TIME check".into()),
            Some(e) => (Isolated, format!("settimeofday: {}", errno_name(e))),
            None => (Error, "no result reported".into()),
        },
        "dev.mem" => {
            let opens = f.get("open").map(String::as_str).unwrap_or("");
            let ok: Vec<&str> = opens.split(',').filter_map(|o| o.strip_suffix(":ok")).collect();
            if ok.is_empty() {
                (
                    Isolated,
                    format!(
                        "none opens: {}",
                        opens
                            .split(',')
                            .map(|o| match o.rsplit_once(':') {
                                Some((p, e)) => format!("{p} {}", errno_name(e)),
                                None => o.to_string(),
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            } else {
                (Exposed, format!("opens read-only: {}", ok.join(" ")))
            }
        }
        "dev.kvm" => match f.get("open").map(String::as_str) {
            Some("ok") => (Exposed, "/dev/kvm opens".into()),
            Some(e) => (Isolated, format!("/dev/kvm: {}", errno_name(e))),
            None => (Error, "no result reported".into()),
        },
        "dev.block" => match (f.get("path").map(|s| dec(s)), f.get("open").map(String::as_str)) {
            (Some(p), _) if p == "none" => (Isolated, "no block device node in /dev".into()),
            (Some(p), Some("ok")) => (Exposed, format!("{p} opens read-only")),
            (Some(p), Some(e)) => (Isolated, format!("{p}: {}", errno_name(e))),
            _ => (Error, "no result reported".into()),
        },
        "dev.cpu_identity" => {
            let b = dec(f.get("brand").map(String::as_str).unwrap_or(""));
            // The kernel-less guest also reports vendor and signature.
            let more = match (f.get("vendor"), f.get("sig")) {
                (Some(v), Some(s)) => format!(" (vendor `{}`, signature {s})", dec(v)),
                _ => String::new(),
            };
            if h.cpu_brand.is_empty() {
                (NotApplicable, "the host CPU reports no brand string".into())
            } else if b == h.cpu_brand {
                (Exposed, format!("CPUID brand `{b}` is the host's{more}"))
            } else {
                (Isolated, format!("CPUID brand `{b}`, host's `{}`{more}", h.cpu_brand))
            }
        }
        _ => (Error, format!("no rule to judge `{id}`")),
    }
}

/// A listener versus opens for the reachability probes; closed on drop.
struct Listeners {
    port: u16,
    _tcp: std::net::TcpListener,
    _unix: std::os::unix::net::UnixListener,
}

impl Listeners {
    fn open() -> Result<Listeners> {
        use std::os::linux::net::SocketAddrExt;
        let tcp = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| LaunchError::io("listening on 127.0.0.1 for the network probes", e))?;
        let port = tcp.local_addr().map_err(|e| LaunchError::io("reading the probe listener's port", e))?.port();
        let name = format!("versus-probe-{port}");
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).map_err(|e| LaunchError::io("naming the abstract probe socket", e))?;
        let unix =
            std::os::unix::net::UnixListener::bind_addr(&addr).map_err(|e| LaunchError::io(format!("listening on the abstract unix socket @{name}"), e))?;
        Ok(Listeners { port, _tcp: tcp, _unix: unix })
    }
}

/// Runs the probe matrix on `platform` and classifies it. The workload runs
/// the probes and exits; everything versus opened for them (listeners) is
/// closed on every path. `timeout` bounds the launch and the run.
pub fn run_probes(platform: &dyn Platform, timeout: Duration) -> Result<Vec<ProbeRow>> {
    run_probes_with(platform, timeout, &HostFacts::collect())
}

/// [`run_probes`] against host facts read once by the caller (a run probes
/// several platforms against the same host).
pub fn run_probes_with(platform: &dyn Platform, timeout: Duration, host: &HostFacts) -> Result<Vec<ProbeRow>> {
    let listeners = Listeners::open()?;
    let mut spec = LaunchSpec::new(WorkloadSpec::mode(GuestMode::Probe { port: listeners.port }));
    spec.timeout = timeout;
    let mut lines = run_probe_workload(platform, &spec)?;
    if scope_of(platform.name()) == Scope::Bare {
        // The VMM-answered probes end the guest: one launch per attempt,
        // in the versus process's VMM (the same code versus-vmm runs).
        lines.extend(crate::platform::vm::bare::vmm_probes(timeout));
    }
    let after = nix::sys::utsname::uname()
        .map(|u| u.nodename().to_string_lossy().into_owned())
        .unwrap_or_default();
    let ctx = Context {
        port: listeners.port,
        hostname_changed_to: (after != host.hostname && !host.hostname.is_empty()).then_some(after),
    };
    drop(listeners);
    Ok(classify(platform.name(), &lines, host, &ctx))
}

/// Launches the probe workload and collects its PROBE lines.
pub fn run_probe_workload(platform: &dyn Platform, spec: &LaunchSpec) -> Result<Vec<ProbeLine>> {
    let mut inst = platform.launch(spec)?;
    let finished = inst.finish();
    let stopped = inst.stop();
    let finished = finished?;
    stopped?;
    Ok(finished.probes)
}

/// Sets the run id of every row.
pub fn with_run_id(mut rows: Vec<ProbeRow>, run_id: &str) -> Vec<ProbeRow> {
    for r in &mut rows {
        r.run_id = run_id.to_string();
    }
    rows
}

/// One attack-surface figure: how much of the host the workload can call
/// into. Containers count host system calls; VMs count VM-exit kinds and
/// host calls the VMM serves. They count different things and the report
/// says so (`counted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurfaceRow {
    pub run_id: String,
    pub platform: String,
    /// `host_syscalls`, `vm_exit_kinds` or `vmm_host_calls`.
    pub counted: String,
    pub value: Option<u64>,
    pub note: String,
}

/// The system-call surface of a platform whose workload runs on the host
/// kernel: every system call when no seccomp filter is installed. `None`
/// when the workload has its own kernel (see [`vm_surface`]).
pub fn syscall_surface(platform: &str, rows: &[ProbeRow], host: &HostFacts) -> Option<SurfaceRow> {
    let shared = rows.iter().find(|r| r.probe == "kernel.shared")?.result == Outcome::Exposed;
    if !shared {
        return None;
    }
    let seccomp = rows.iter().find(|r| r.probe == "priv.seccomp")?;
    let (value, note) = match (seccomp.result, host.syscalls.or_else(host_syscalls)) {
        (Outcome::Exposed, Some(n)) => (
            Some(n as u64),
            format!("no seccomp filter: all {n} x86-64 system call entry points of the host kernel (__x64_sys_* in /proc/kallsyms)"),
        ),
        (Outcome::Exposed, None) => (
            None,
            "no seccomp filter: every host system call, but /proc/kallsyms is unreadable so the count is unknown".into(),
        ),
        (_, _) => (
            None,
            format!(
                "a seccomp filter is installed ({}); versus does not decode filters, so the count is unknown",
                seccomp.evidence
            ),
        ),
    };
    Some(SurfaceRow {
        run_id: String::new(),
        platform: platform.into(),
        counted: "host_syscalls".into(),
        value,
        note,
    })
}

/// The surface of a VM platform: the kinds of VM exit its VMM handles and
/// the host calls (hypercalls, ports, MMIO devices) it serves. The VMM
/// lists them; everything else ends the guest.
pub fn vm_surface(platform: &str, exit_kinds: &[&str], host_calls: &[&str]) -> Vec<SurfaceRow> {
    vec![
        SurfaceRow {
            run_id: String::new(),
            platform: platform.into(),
            counted: "vm_exit_kinds".into(),
            value: Some(exit_kinds.len() as u64),
            note: format!("VM exits the VMM handles: {}", exit_kinds.join(", ")),
        },
        SurfaceRow {
            run_id: String::new(),
            platform: platform.into(),
            counted: "vmm_host_calls".into(),
            value: Some(host_calls.len() as u64),
            note: format!("host calls the VMM serves: {}", host_calls.join(", ")),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, ev: &str) -> ProbeLine {
        ProbeLine {
            id: id.into(),
            result: "observed".into(),
            evidence: ev.into(),
        }
    }

    fn host() -> HostFacts {
        let mut h = HostFacts {
            boot_id: Some("b-1".into()),
            release: "6.1".into(),
            version: "#1".into(),
            pid: 100,
            start: Some(555),
            pid1_comm: Some("systemd".into()),
            pid1_start: Some(3),
            interfaces: vec![("eth0".into(), "02:00:00:00:00:01".into())],
            root: Some((2049, 2)),
            root_mount: Some("8:1,/,/".into()),
            hostname: "box".into(),
            cpu_brand: "Some CPU".into(),
            syscalls: Some(360),
            ..Default::default()
        };
        for (i, n) in NAMESPACES.iter().enumerate() {
            h.ns.insert(n.to_string(), 4026531830 + i as u64);
        }
        h.mounts.insert("8:1,/,/".into());
        h.mounts.insert("0:5,/,/proc".into());
        h.env = [("A", "1"), ("B", "2"), ("C", "3"), ("D", "4")]
            .iter()
            .map(|(k, v)| (k.to_string(), fnv(v.as_bytes())))
            .collect();
        h
    }

    fn get<'a>(rows: &'a [ProbeRow], id: &str) -> &'a ProbeRow {
        rows.iter().find(|r| r.probe == id).unwrap_or_else(|| panic!("no row {id}"))
    }

    #[test]
    fn host_pids_root_and_network_flip_with_the_observation() {
        let h = host();
        let ctx = Context { port: 7, ..Default::default() };
        let shared = vec![
            line("kernel.shared", "boot_id=b-1 release=6.1 version=%231"),
            line(
                "proc.host_pids",
                "self=200 ppid=100 ppid_comm=versus ppid_start=555 pid1_comm=systemd pid1_start=3 visible=90",
            ),
            line("fs.host_root", "root=2049:2 proc1root=errno13 listing=bin,etc"),
            line("net.host_interfaces", "ifs=lo@00:00:00:00:00:00,eth0@02:00:00:00:00:01"),
            line("net.host_loopback", "port=7 connect=ok"),
        ];
        let rows = classify("process", &shared, &h, &ctx);
        for id in ["kernel.shared", "proc.host_pids", "fs.host_root", "net.host_interfaces", "net.host_loopback"] {
            assert_eq!(get(&rows, id).result, Outcome::Exposed, "{id}: {}", get(&rows, id).evidence);
        }
        let isolated = vec![
            line("kernel.shared", "boot_id=b-1 release=6.1 version=%231"),
            line("proc.host_pids", "self=1 ppid=0 pid1_comm=init pid1_start=900 visible=1"),
            line("fs.host_root", "root=2049:77 proc1root=2049:77 listing=init,proc"),
            line("net.host_interfaces", "ifs=lo@00:00:00:00:00:00"),
            line("net.host_loopback", "port=7 connect=errno101"),
        ];
        let rows = classify("container", &isolated, &h, &ctx);
        for id in ["proc.host_pids", "fs.host_root", "net.host_interfaces", "net.host_loopback"] {
            assert_eq!(get(&rows, id).result, Outcome::Isolated, "{id}: {}", get(&rows, id).evidence);
        }
        assert!(
            get(&rows, "net.host_loopback").evidence.contains("ENETUNREACH"),
            "{}",
            get(&rows, "net.host_loopback").evidence
        );
        // Probes it did not report are errors, never silently isolated.
        assert_eq!(get(&rows, "priv.seccomp").result, Outcome::Error);
    }

    #[test]
    fn own_kernel_turns_kernel_relative_exposure_into_isolation() {
        let h = host();
        let lines = vec![
            line("kernel.shared", "boot_id=other release=6.1 version=%231"),
            line("priv.seccomp", "mode=0 filters=0"),
            line("ns.pid", "inode=4026531830"),
            line("dev.cpu_identity", "brand=Some%20CPU"),
        ];
        let rows = classify("vm-linux", &lines, &h, &Context::default());
        assert_eq!(get(&rows, "kernel.shared").result, Outcome::Isolated);
        assert_eq!(get(&rows, "priv.seccomp").result, Outcome::Isolated);
        assert!(get(&rows, "priv.seccomp").evidence.starts_with("its own kernel"));
        assert_eq!(
            get(&rows, "ns.pid").result,
            Outcome::Isolated,
            "the init pid namespace inode is the same number on every kernel"
        );
        assert_eq!(get(&rows, "dev.cpu_identity").result, Outcome::Exposed, "CPUID is not kernel-relative");
    }

    #[test]
    fn bare_guest_rows_and_final_results_pass_through() {
        let h = host();
        let lines = vec![
            line("kernel.shared", ""),
            ProbeLine {
                id: "vm.unknown_port".into(),
                result: "isolated".into(),
                evidence: "port 0x99 ended the guest".into(),
            },
            ProbeLine {
                id: "vm.extra".into(),
                result: "exposed".into(),
                evidence: "x".into(),
            },
        ];
        let rows = classify("vm-bare", &lines, &h, &Context::default());
        assert_eq!(get(&rows, "kernel.shared").result, Outcome::Isolated);
        assert_eq!(get(&rows, "proc.host_pids").result, Outcome::NotApplicable);
        assert_eq!(get(&rows, "vm.unknown_port").result, Outcome::Isolated);
        assert_eq!(get(&rows, "vm.supervisor").result, Outcome::Error, "missing bare probe is an error");
        assert_eq!(get(&rows, "vm.extra").category, "other");
        let linux = classify("process", &[], &h, &Context::default());
        assert_eq!(get(&linux, "vm.supervisor").result, Outcome::NotApplicable);
    }

    #[test]
    fn judges_privileges_env_and_kernel_interfaces() {
        let h = host();
        let a = "A:".to_string() + &format!("{:016x}", fnv(b"1"));
        let b = "B:".to_string() + &format!("{:016x}", fnv(b"2"));
        let c = "C:".to_string() + &format!("{:016x}", fnv(b"3"));
        let lines = vec![
            line("kernel.shared", "boot_id=b-1"),
            line("proc.host_env", &format!("count=3 vars={a},{b},{c}")),
            line("priv.uid0_host", "uid=0 euid=0 uid_map=0%20%20%200%204294967295"),
            line("priv.capabilities", "eff=000001ffffffffff bnd=000001ffffffffff"),
            line("ns.user", "inode=4026531836"),
            line("kif.module_load", "errno=38"),
            line("kif.hostname", "hostname=box set_same=ok"),
            line("kif.dmesg", "read=errno1"),
        ];
        let rows = classify("process", &lines, &h, &Context::default());
        assert_eq!(get(&rows, "proc.host_env").result, Outcome::Exposed);
        assert_eq!(get(&rows, "priv.uid0_host").result, Outcome::Exposed);
        assert_eq!(get(&rows, "priv.capabilities").result, Outcome::Exposed);
        assert_eq!(get(&rows, "kif.module_load").result, Outcome::NotApplicable);
        assert_eq!(get(&rows, "kif.hostname").result, Outcome::Exposed);
        assert_eq!(get(&rows, "kif.dmesg").result, Outcome::Isolated);
        let lines = vec![
            line("kernel.shared", "boot_id=b-1"),
            line("proc.host_env", "count=0 vars="),
            line("priv.uid0_host", "uid=0 euid=0 uid_map=0%201000%201"),
            line("priv.capabilities", "eff=000001ffffffffff bnd=000001ffffffffff"),
            line("ns.user", "inode=4026532000"),
            line("kif.module_load", "errno=1"),
            line("kif.hostname", "hostname=versus-1-0 set_same=ok"),
        ];
        let ctx = Context {
            hostname_changed_to: None,
            port: 1,
        };
        let rows = classify("container", &lines, &h, &ctx);
        for id in ["proc.host_env", "priv.uid0_host", "priv.capabilities", "kif.module_load", "kif.hostname"] {
            assert_eq!(get(&rows, id).result, Outcome::Isolated, "{id}: {}", get(&rows, id).evidence);
        }
        let ctx = Context {
            hostname_changed_to: Some("pwned".into()),
            port: 1,
        };
        assert_eq!(get(&classify("container", &lines, &h, &ctx), "kif.hostname").result, Outcome::Exposed);
    }

    #[test]
    fn decoding_and_syscall_count() {
        assert_eq!(dec("a%20b%3Dc%"), "a b=c%");
        assert_eq!(fields("a=1 b=x=y")["b"], "x=y");
        let k = "0 T __x64_sys_read\n0 T __x64_sys_write\n0 T __pfx___x64_sys_read\n0 T __x64_sys_read\n0 T __x64_sys_ni_syscall\n";
        assert_eq!(count_host_syscalls(k), 2);
    }

    #[test]
    fn every_probe_has_a_known_category_and_a_unique_id() {
        let cats = [
            "kernel",
            "processes",
            "filesystem",
            "network",
            "privileges",
            "devices",
            "kernel interfaces",
            "resources",
        ];
        let mut ids = BTreeSet::new();
        for d in CATALOGUE {
            assert!(cats.contains(&d.category), "{}", d.id);
            assert!(ids.insert(d.id), "duplicate {}", d.id);
            assert!(d.question.ends_with('?'), "{}", d.id);
        }
    }

    #[test]
    fn docs_list_every_probe() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/probes.md")).expect("docs/probes.md exists");
        for d in CATALOGUE {
            assert!(doc.contains(&format!("`{}`", d.id)), "docs/probes.md does not document `{}`", d.id);
        }
    }
}
