//! The host fingerprint: what a result depends on (kernel, CPU, memory,
//! cgroup mode, user namespaces, overlayfs, how KVM is provided, installed
//! peers). Written to every run's env.json and printed by `versus env`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use versus_vmm::speed::{SpeedRatio, SpeedVerdict};

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

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Peer {
    pub name: String,
    pub path: Option<PathBuf>,
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

/// The peers versus can compare against when installed.
pub const PEERS: [&str; 4] = ["runc", "crun", "youki", "qemu-system-x86_64"];

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
            peers: PEERS.iter().map(|p| Peer { name: p.to_string(), path: which(p) }).collect(),
        }
    }
}

/// The guest loop speeds that tell hardware-assisted KVM from a host where
/// guest kernel code is emulated (see [`versus_vmm::speed`]): the fastest of
/// several interleaved runs at guest CPL3, guest CPL0 and natively, and the
/// verdict; `error` when they could not be measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct KvmSpeed {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpl0_iters_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpl3_iters_per_s: Option<f64>,
    /// The same loop run natively by versus: what guest user code must reach
    /// before the ratio is trusted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_iters_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_to_supervisor_ratio: Option<f64>,
    /// `native`, `emulated` or `undetermined`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// Why undetermined, with the figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict_reason: Option<String>,
    /// Set only when the verdict is determined.
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
            Ok(s) => KvmSpeed::from_ratio(&s),
            Err(e) => KvmSpeed { error: Some(e.to_string()), ..KvmSpeed::default() },
        }
    }

    /// The record of a measurement.
    pub fn from_ratio(s: &SpeedRatio) -> KvmSpeed {
        let (verdict, reason) = match &s.verdict {
            SpeedVerdict::Native => ("native", None),
            SpeedVerdict::Emulated => ("emulated", None),
            SpeedVerdict::Undetermined(why) => ("undetermined", Some(why.clone())),
        };
        KvmSpeed {
            cpl0_iters_per_s: Some(s.cpl0_iters_per_s),
            cpl3_iters_per_s: Some(s.cpl3_iters_per_s),
            host_iters_per_s: Some(s.host_iters_per_s),
            user_to_supervisor_ratio: Some(s.ratio),
            verdict: Some(verdict.into()),
            verdict_reason: reason,
            supervisor_emulated: s.supervisor_emulated(),
            error: None,
        }
    }

    /// This process's measurement, made once (the loops take a fraction of
    /// a second).
    pub fn of_this_host() -> &'static KvmSpeed {
        static SPEED: std::sync::OnceLock<KvmSpeed> = std::sync::OnceLock::new();
        SPEED.get_or_init(|| KvmSpeed::measure(std::path::Path::new("/dev/kvm").exists()))
    }
}

/// Whether guest kernel code runs at hardware speed on this host: the KVM
/// module is the first signal, the measured loops the second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestKernelSpeed {
    /// Both say native (hardware-assisted KVM, ratio near 1).
    Native,
    /// Not representative, and why (module, measurement, or their disagreement).
    NotNative(String),
}

/// Judges `mode` and `speed` together. They must agree for a verdict of
/// native; a disagreement is said in the reason.
pub fn guest_kernel_speed(mode: &KvmMode, speed: &KvmSpeed) -> GuestKernelSpeed {
    let figures = match (speed.cpl3_iters_per_s, speed.cpl0_iters_per_s, speed.user_to_supervisor_ratio) {
        (Some(u), Some(k), Some(r)) => {
            format!("measured: guest user {u:.2e}/s, guest supervisor {k:.2e}/s, ratio {r:.0} (emulated above {})", versus_vmm::speed::EMULATED_ABOVE)
        }
        _ => format!("not measured: {}", speed.error.clone().unwrap_or_else(|| "no figures".into())),
    };
    let measured = speed.verdict.as_deref();
    match (mode, measured) {
        (KvmMode::Absent, _) => GuestKernelSpeed::NotNative("/dev/kvm does not exist".into()),
        (KvmMode::Hardware { .. }, Some("native")) => GuestKernelSpeed::Native,
        (KvmMode::Hardware { module, .. }, Some("emulated")) => GuestKernelSpeed::NotNative(format!(
            "the module is {module} (hardware-assisted), but guest kernel code measured far slower than user code ({figures}): the CPU under this KVM is itself emulated or heavily loaded; the module and the measurement disagree"
        )),
        (KvmMode::Pvm, Some("native")) => GuestKernelSpeed::NotNative(format!(
            "the module is kvm_pvm (guest kernel code emulated), but the loops measured it at native speed ({figures}); the module and the measurement disagree, so vm-linux is treated as not representative"
        )),
        (KvmMode::Pvm, _) => GuestKernelSpeed::NotNative(format!(
            "this host's /dev/kvm is kvm_pvm: guest kernel (CPL0) code is emulated one instruction at a time ({figures}), and the emulator cannot run some instructions (XRSTOR, CMPXCHG16B), so a stock Linux kernel does not boot here"
        )),
        (_, Some("undetermined")) => GuestKernelSpeed::NotNative(format!(
            "whether guest kernel code runs natively here could not be told: {}",
            speed.verdict_reason.clone().unwrap_or(figures)
        )),
        (KvmMode::Unknown, _) => GuestKernelSpeed::NotNative(format!("/dev/kvm is provided by an unrecognised module ({figures})")),
        (KvmMode::Hardware { .. }, _) => GuestKernelSpeed::NotNative(format!("the guest loop speeds could not be measured ({figures})")),
    }
}

/// Measurements of the host every report carries (env.json's
/// `host_measurements`).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct HostMeasurements {
    pub kvm_speed: KvmSpeed,
    /// The share of the host's CPU time that processes other than versus
    /// used while the run measured (0 to 1; see [`crate::measure::load`]).
    /// `versus compare` calls timings from a busy host inconclusive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub foreign_cpu_load: Option<f64>,
}

/// The fingerprint of this host and its measurements.
pub fn fingerprint() -> (Host, HostMeasurements) {
    let host = Host::detect();
    let kvm_speed = KvmSpeed::of_this_host().clone();
    (host, HostMeasurements { kvm_speed, foreign_cpu_load: None })
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
    fn guest_kernel_speed_needs_module_and_measurement_to_agree() {
        let speed = |c3: f64, c0: f64| {
            KvmSpeed::from_ratio(&SpeedRatio {
                cpl0_iters_per_s: c0,
                cpl3_iters_per_s: c3,
                host_iters_per_s: 3.8e9,
                ratio: c3 / c0,
                rounds: 3,
                verdict: versus_vmm::speed::judge(c0, c3, 3.8e9),
            })
        };
        let hw = KvmMode::Hardware { module: "kvm_amd".into(), nested_host: false };
        assert_eq!(guest_kernel_speed(&hw, &speed(3.7e9, 3.6e9)), GuestKernelSpeed::Native);
        // The disturbed measurement of issue 17: never representative.
        for mode in [&KvmMode::Pvm, &hw] {
            match guest_kernel_speed(mode, &speed(1.86e6, 1.93e6)) {
                GuestKernelSpeed::NotNative(why) => assert!(why.contains("could not be told") || why.contains("kvm_pvm"), "{why}"),
                GuestKernelSpeed::Native => panic!("a disturbed measurement made {mode:?} representative"),
            }
        }
        match guest_kernel_speed(&hw, &speed(3.78e9, 3.82e4)) {
            GuestKernelSpeed::NotNative(why) => assert!(why.contains("disagree"), "{why}"),
            GuestKernelSpeed::Native => panic!("emulated supervisor code on a hardware module"),
        }
        match guest_kernel_speed(&KvmMode::Pvm, &speed(3.7e9, 3.6e9)) {
            GuestKernelSpeed::NotNative(why) => assert!(why.contains("disagree"), "{why}"),
            GuestKernelSpeed::Native => panic!("kvm_pvm made representative"),
        }
    }

    #[test]
    fn kvm_modes_in_words() {
        assert!(KvmMode::Pvm.describe().contains("emulated"));
        assert!(KvmMode::Hardware { module: "kvm_intel".into(), nested_host: true }.describe().contains("nested"));
    }

    #[test]
    fn which_finds_sh() {
        assert!(which("sh").is_some());
        assert!(which("definitely-not-a-program-versus").is_none());
    }
}
