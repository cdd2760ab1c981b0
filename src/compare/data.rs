//! What `versus compare` works on: a run (or several runs of the same side
//! merged) reduced to the facts a comparison needs, in types of its own so
//! that the run-file types can move without touching the statistics. The
//! only code that knows the run-file types is [`super::input`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What a benchmark is: a metric of a workload on a platform, in a unit.
/// A workload with a different parameter (`cpu:100000` vs `cpu:200000`) is
/// a different benchmark.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MetricKey {
    pub platform: String,
    pub workload: String,
    pub metric: String,
    pub unit: String,
}

impl MetricKey {
    pub fn new(platform: &str, workload: &str, metric: &str, unit: &str) -> MetricKey {
        MetricKey { platform: platform.into(), workload: workload.into(), metric: metric.into(), unit: unit.into() }
    }
    /// The workload's name without its parameter (`cpu` for `cpu:200000`).
    pub fn workload_name(&self) -> &str {
        self.workload.split_once(':').map(|(n, _)| n).unwrap_or(&self.workload)
    }
    /// Whether the workload column names its parameter (`cpu:200000`).
    pub fn workload_has_parameter(&self) -> bool {
        self.workload.contains(':')
    }
}

impl fmt::Display for MetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.platform, self.workload, self.metric)
    }
}

/// One measured value: a row of samples.csv, tagged with the block (the
/// run, when a side merges several runs) it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub iteration: u32,
    pub value: f64,
    pub block: u32,
}

/// One probe verdict of probes.csv.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeObservation {
    pub platform: String,
    pub probe: String,
    pub category: String,
    /// `isolated`, `exposed`, `not_applicable` or `error`.
    pub result: String,
    pub block: u32,
}

/// The host facts results depend on. Two runs whose fingerprints differ
/// (or whose versus versions differ) are not comparable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HostFingerprint {
    pub kernel: String,
    pub cpu_model: String,
    /// `pvm`, `hardware kvm_amd`, `hardware kvm_intel nested`, `absent`, `unknown`.
    pub kvm_mode: String,
    /// `v1`, `v2`, `hybrid`, `none`.
    pub cgroup_mode: String,
}

impl HostFingerprint {
    /// A short stable id of the fingerprint (FNV-1a of its fields), for the
    /// history store and trend output.
    pub fn id(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for field in [&self.kernel, &self.cpu_model, &self.kvm_mode, &self.cgroup_mode] {
            for &b in field.as_bytes().iter().chain(std::iter::once(&0u8)) {
                h ^= b as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        format!("{:012x}", h >> 16)
    }
}

impl fmt::Display for HostFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {}, kvm {}, cgroup {}", self.kernel, self.cpu_model, self.kvm_mode, self.cgroup_mode)
    }
}

/// Which fingerprint field differs between two runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum HostField {
    Kernel,
    CpuModel,
    KvmMode,
    CgroupMode,
    VersusVersion,
}

impl HostField {
    pub const ALL: [HostField; 5] = [HostField::Kernel, HostField::CpuModel, HostField::KvmMode, HostField::CgroupMode, HostField::VersusVersion];
    pub fn name(self) -> &'static str {
        match self {
            HostField::Kernel => "kernel",
            HostField::CpuModel => "CPU model",
            HostField::KvmMode => "KVM mode",
            HostField::CgroupMode => "cgroup mode",
            HostField::VersusVersion => "versus version",
        }
    }
}

/// A run, or the runs of one side merged block by block.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The run id (for a merged side: the ids joined with `+`).
    pub run_id: String,
    pub started_at_unix: u64,
    pub versus_version: String,
    pub git_revision: Option<String>,
    pub hostname: String,
    pub host: HostFingerprint,
    /// How many runs were merged into this one (1 for a plain run).
    pub blocks: u32,
    /// Share of the host's CPU time other processes used while the run
    /// measured (env.json `host_measurements.foreign_cpu_load`; the most of
    /// the merged runs), when the run recorded it.
    pub foreign_cpu_load: Option<f64>,
    pub samples: BTreeMap<MetricKey, Vec<Observation>>,
    pub probes: Vec<ProbeObservation>,
}

impl RunData {
    /// The finite values of a metric, in file order.
    pub fn values(&self, key: &MetricKey) -> Vec<f64> {
        self.samples.get(key).map(|o| o.iter().map(|o| o.value).filter(|v| v.is_finite()).collect()).unwrap_or_default()
    }

    /// The value of a fingerprint field (the versus version included).
    pub fn host_field(&self, f: HostField) -> &str {
        match f {
            HostField::Kernel => &self.host.kernel,
            HostField::CpuModel => &self.host.cpu_model,
            HostField::KvmMode => &self.host.kvm_mode,
            HostField::CgroupMode => &self.host.cgroup_mode,
            HostField::VersusVersion => &self.versus_version,
        }
    }
}
