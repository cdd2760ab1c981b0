//! The host fingerprint: what a result depends on (kernel, CPU, memory,
//! cgroup mode, user namespaces, overlayfs, how KVM is provided, installed
//! peers). Written to every run's env.json and printed by `versus env`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How the cgroup hierarchy is mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// Only v1 hierarchies.
    V1,
    /// Unified v2 hierarchy at /sys/fs/cgroup.
    V2,
    /// v1 controllers with a (usually empty) v2 hierarchy at /sys/fs/cgroup/unified.
    Hybrid,
    /// No cgroup filesystem found.
    #[default]
    None,
}

/// How /dev/kvm is provided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum KvmMode {
    /// No /dev/kvm.
    Absent,
    /// kvm_intel or kvm_amd: hardware-assisted; `nested` when this host is
    /// itself a guest (hypervisor CPU flag).
    Hardware { module: String, nested_host: bool },
    /// kvm_pvm: guest supervisor code is emulated.
    Pvm,
    /// /dev/kvm exists but the module is not recognised (also what an
    /// env.json without the field reads as).
    #[default]
    Unknown,
}

impl KvmMode {
    /// How KVM is provided, in words: the one description `versus env`
    /// prints and every report carries.
    pub fn describe(&self) -> String {
        match self {
            KvmMode::Absent => "no /dev/kvm: VM platforms cannot run".into(),
            KvmMode::Hardware { module, nested_host } => {
                format!("hardware-assisted ({module}){}", if *nested_host { ", nested: this host is itself a guest" } else { "" })
            }
            KvmMode::Pvm => "kvm_pvm (PVM): guest user-mode code runs natively, guest kernel-mode code is emulated (see the measured guest loop speeds); a VM running a guest kernel is not representative here".into(),
            KvmMode::Unknown => "/dev/kvm present, provider not recognised".into(),
        }
    }
}

/// A peer program versus compares against (a container runtime or engine,
/// a VMM): where it is installed and the version it reports.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Peer {
    pub name: String,
    pub path: Option<PathBuf>,
    /// The first line of its `--version` output, trimmed (`runc version
    /// 1.1.5+ds1`); `None` when it is not installed or does not answer.
    pub version: Option<String>,
}

/// The host fingerprint, as env.json holds it. Every field has a default,
/// so that an env.json of another version still reads.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Host {
    pub hostname: String,
    pub kernel: String,
    pub distribution: String,
    pub cpu_model: String,
    pub cores: usize,
    pub memory_bytes: u64,
    pub cgroup_mode: CgroupMode,
    /// Controllers usable by versus (v1 mounted hierarchies, or v2 root controllers).
    pub cgroup_controllers: Vec<String>,
    pub is_root: bool,
    pub user_namespaces: bool,
    pub overlayfs: bool,
    pub kvm_device: bool,
    pub kvm_mode: KvmMode,
    pub ksm: Option<String>,
    pub transparent_hugepages: Option<String>,
    pub peers: Vec<Peer>,
}

fn read_trim(p: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

/// Mounted filesystems of a given type: (mount point, options).
fn mounts_of(fstype: &str) -> Vec<(PathBuf, String)> {
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() >= 4 && f[2] == fstype).then(|| (PathBuf::from(f[1]), f[3].to_string()))
        })
        .collect()
}

/// Whether some cgroup hierarchy is mounted with `favordynmods` (the
/// kernel then moves tasks between cgroups without waiting for an RCU grace
/// period; the option is global once any hierarchy has it).
pub fn cgroup_favordynmods() -> bool {
    mounts_of("cgroup").iter().chain(mounts_of("cgroup2").iter()).any(|(_, opts)| opts.split(',').any(|o| o == "favordynmods"))
}

/// Detects the cgroup mode and the controllers versus can use.
pub fn cgroup_mode() -> (CgroupMode, Vec<String>) {
    let v2 = mounts_of("cgroup2");
    let v1 = mounts_of("cgroup");
    let v2_root = v2.iter().any(|(p, _)| p == Path::new("/sys/fs/cgroup"));
    if v2_root {
        let ctrls = read_trim("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
        return (CgroupMode::V2, ctrls.split_whitespace().map(String::from).collect());
    }
    let mut ctrls: Vec<String> = v1
        .iter()
        .flat_map(|(_, opts)| {
            opts.split(',')
                .filter(|o| ["memory", "pids", "cpu", "cpuacct", "cpuset", "blkio", "devices", "freezer"].contains(o))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    ctrls.sort();
    ctrls.dedup();
    let mode = match (v1.is_empty(), v2.is_empty()) {
        (true, true) => CgroupMode::None,
        (false, true) => CgroupMode::V1,
        (false, false) => CgroupMode::Hybrid,
        (true, false) => CgroupMode::V2,
    };
    (mode, ctrls)
}

/// Whether this process can create a user namespace.
pub fn user_namespaces_available() -> bool {
    let max = read_trim("/proc/sys/user/max_user_namespaces").and_then(|s| s.parse::<u64>().ok()).unwrap_or(1);
    let debian_knob = read_trim("/proc/sys/kernel/unprivileged_userns_clone").map(|s| s == "1").unwrap_or(true);
    max > 0 && (nix::unistd::geteuid().is_root() || debian_knob)
}

/// How KVM is provided on this host, from the loaded modules.
pub fn kvm_mode() -> KvmMode {
    if !Path::new("/dev/kvm").exists() {
        return KvmMode::Absent;
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let nested_host = cpuinfo.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"));
    if Path::new("/sys/module/kvm_pvm").exists() {
        return KvmMode::Pvm;
    }
    for m in ["kvm_intel", "kvm_amd"] {
        if Path::new("/sys/module").join(m).exists() {
            return KvmMode::Hardware { module: m.into(), nested_host };
        }
    }
    KvmMode::Unknown
}

/// Finds an executable on PATH (and in sbin directories).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file() && nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok());
    found
}

/// The peers versus can compare against when installed (program names).
pub const PEERS: [&str; 6] = ["runc", "crun", "youki", "runsc", "podman", "qemu-system-x86_64"];

/// Where harness/setup-test-host installs youki (`cargo install` root):
/// `$VERSUS_YOUKI_ROOT`, else `${XDG_CACHE_HOME:-$HOME/.cache}/versus/youki`.
pub fn youki_install_root() -> PathBuf {
    if let Some(d) = std::env::var_os("VERSUS_YOUKI_ROOT") {
        return d.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache"));
    base.join("versus").join("youki")
}

/// Finds a peer program: on PATH (and in the sbin directories), and for
/// youki also in [`youki_install_root`]`/bin`, where setup-test-host puts it.
pub fn find_peer(name: &str) -> Option<PathBuf> {
    which(name).or_else(|| {
        let p = youki_install_root().join("bin").join(name);
        (name == "youki" && p.is_file() && nix::unistd::access(&p, nix::unistd::AccessFlags::X_OK).is_ok()).then_some(p)
    })
}

/// The first non-empty line of `program --version` (stdout, else stderr),
/// trimmed; `None` when it cannot be run or exits non-zero. Bounded: a
/// program that does not answer within 10 s is killed.
pub fn program_version(program: &Path) -> Option<String> {
    let mut child = std::process::Command::new(program)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    first_line(&out.stdout).or_else(|| first_line(&out.stderr))
}

fn first_line(b: &[u8]) -> Option<String> {
    String::from_utf8_lossy(b).lines().map(str::trim).find(|l| !l.is_empty()).map(String::from)
}

/// The version number in a `--version` line: the first word that starts
/// with a digit, up to a space or comma (`runc version 1.1.5+ds1` gives
/// `1.1.5+ds1`, `youki version: 0.7.0` gives `0.7.0`).
pub fn version_number(line: &str) -> Option<&str> {
    line.split([' ', ',', '(']).map(|w| w.trim_start_matches('v')).find(|w| w.starts_with(|c: char| c.is_ascii_digit()))
}

impl Host {
    /// Reads the fingerprint of this host.
    pub fn detect() -> Host {
        let uts = nix::sys::utsname::uname().ok();
        let (kernel, hostname) = match &uts {
            Some(u) => (
                format!("{} {} {}", u.sysname().to_string_lossy(), u.release().to_string_lossy(), u.machine().to_string_lossy()),
                u.nodename().to_string_lossy().into_owned(),
            ),
            None => ("unknown".into(), "unknown".into()),
        };
        let distribution = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())))
            .unwrap_or_else(|| "unknown".into());
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()))
            .unwrap_or_else(|| "unknown".into());
        let mut sys = sysinfo::System::new();
        sys.refresh_memory();
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let (cgroup_mode, cgroup_controllers) = cgroup_mode();
        let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
        Host {
            hostname,
            kernel,
            distribution,
            cpu_model,
            cores,
            memory_bytes: sys.total_memory(),
            cgroup_mode,
            cgroup_controllers,
            is_root: nix::unistd::geteuid().is_root(),
            user_namespaces: user_namespaces_available(),
            overlayfs: filesystems.lines().any(|l| l.trim_end().ends_with("overlay")),
            kvm_device: Path::new("/dev/kvm").exists(),
            kvm_mode: kvm_mode(),
            ksm: read_trim("/sys/kernel/mm/ksm/run").map(|v| if v == "1" { "on".into() } else { format!("off ({v})") }),
            transparent_hugepages: read_trim("/sys/kernel/mm/transparent_hugepage/enabled"),
            peers: PEERS
                .iter()
                .map(|p| {
                    let path = find_peer(p);
                    let version = path.as_deref().and_then(program_version);
                    Peer { name: p.to_string(), path, version }
                })
                .collect(),
        }
    }
}

/// The guest loop speeds that tell hardware-assisted KVM from a host where
/// guest kernel code is emulated (see [`versus_vmm::speed`]); `error` when
/// they could not be measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct KvmSpeed {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpl0_iters_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpl3_iters_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_to_supervisor_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supervisor_emulated: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl KvmSpeed {
    /// Measures the speed loops on this host's /dev/kvm.
    pub fn measure(kvm_device: bool) -> KvmSpeed {
        if !kvm_device {
            return KvmSpeed { error: Some("no /dev/kvm".into()), ..KvmSpeed::default() };
        }
        match versus_vmm::speed::measure() {
            Ok(s) => KvmSpeed {
                cpl0_iters_per_s: Some(s.cpl0_iters_per_s),
                cpl3_iters_per_s: Some(s.cpl3_iters_per_s),
                user_to_supervisor_ratio: Some(s.ratio),
                supervisor_emulated: Some(s.supervisor_emulated()),
                error: None,
            },
            Err(e) => KvmSpeed { error: Some(e.to_string()), ..KvmSpeed::default() },
        }
    }
}

/// Measurements of the host every report carries (env.json's
/// `host_measurements`).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct HostMeasurements {
    pub kvm_speed: KvmSpeed,
}

/// The fingerprint of this host and its measurements.
pub fn fingerprint() -> (Host, HostMeasurements) {
    let host = Host::detect();
    let kvm_speed = KvmSpeed::measure(host.kvm_device);
    (host, HostMeasurements { kvm_speed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_reads_this_host() {
        let h = Host::detect();
        assert!(h.kernel.starts_with("Linux "));
        assert!(h.cores >= 1);
        assert!(h.memory_bytes > 0);
        assert_ne!(h.cgroup_mode, CgroupMode::None, "this host has cgroups");
        // /dev/kvm presence and the mode agree.
        assert_eq!(h.kvm_device, h.kvm_mode != KvmMode::Absent);
    }

    #[test]
    fn old_and_partial_env_json_hosts_read() {
        let h: Host = serde_json::from_str(r#"{"kernel": "Linux 6.1 x86_64", "kvm_mode": {"kind": "pvm"}}"#).unwrap();
        assert_eq!((h.kernel.as_str(), &h.kvm_mode, h.cores), ("Linux 6.1 x86_64", &KvmMode::Pvm, 0));
        let full = Host::detect();
        let back: Host = serde_json::from_value(serde_json::to_value(&full).unwrap()).unwrap();
        assert_eq!(back.kernel, full.kernel);
        let m: HostMeasurements = serde_json::from_str(r#"{"kvm_speed": {"error": "no /dev/kvm"}}"#).unwrap();
        assert_eq!(m.kvm_speed.error.as_deref(), Some("no /dev/kvm"));
        assert_eq!(serde_json::to_string(&m.kvm_speed).unwrap(), r#"{"error":"no /dev/kvm"}"#);
    }

    #[test]
    fn kvm_modes_in_words() {
        assert!(KvmMode::Pvm.describe().contains("emulated"));
        assert!(KvmMode::Hardware { module: "kvm_intel".into(), nested_host: true }.describe().contains("nested"));
    }

    #[test]
    fn versions_are_read_from_the_version_line() {
        assert_eq!(version_number("runc version 1.1.5+ds1"), Some("1.1.5+ds1"));
        assert_eq!(version_number("youki version: 0.7.0"), Some("0.7.0"));
        assert_eq!(version_number("runsc version 0.0~20221219.0"), Some("0.0~20221219.0"));
        assert_eq!(version_number("QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)"), Some("7.2.19"));
        assert_eq!(version_number("no number here"), None);
        assert!(program_version(Path::new("/nonexistent/program")).is_none());
    }

    #[test]
    fn which_finds_sh() {
        assert!(which("sh").is_some());
        assert!(which("definitely-not-a-program-versus").is_none());
    }
}
