//! Metric names, as in the `metric` column of samples.csv and summary.csv
//! (docs/design.md lists them with their units).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! metrics {
    ($($(#[$doc:meta])* $variant:ident => $name:literal, $unit:literal;)*) => {
        /// A metric of samples.csv. [`Metric::BootPhase`] carries the phase
        /// name (`boot.<phase>`); [`Metric::Other`] keeps a name this
        /// version does not know (a file from another version), so reading
        /// never fails on it.
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Metric {
            $($(#[$doc])* $variant,)*
            /// `boot.<phase>` (ms): one phase of `boot`; the phases of a launch add up to it.
            BootPhase(String),
            /// A name this version of versus does not know.
            Other(String),
        }

        impl Metric {
            /// Every metric without a parameter, in documentation order.
            pub const FIXED: &'static [Metric] = &[$(Metric::$variant,)*];

            /// The name in the CSV files.
            pub fn name(&self) -> Cow<'_, str> {
                match self {
                    $(Metric::$variant => Cow::Borrowed($name),)*
                    Metric::BootPhase(p) => Cow::Owned(format!("boot.{p}")),
                    Metric::Other(s) => Cow::Borrowed(s),
                }
            }

            /// The unit its rows are written in (image rows also come in
            /// `bytes_apparent`; see [`crate::experiment::footprint`]).
            pub fn unit(&self) -> &'static str {
                match self {
                    $(Metric::$variant => $unit,)*
                    Metric::BootPhase(_) => "ms",
                    Metric::Other(_) => "",
                }
            }

            fn parse(s: &str) -> Metric {
                match s {
                    $($name => Metric::$variant,)*
                    _ => match s.strip_prefix("boot.") {
                        Some(p) if !p.is_empty() => Metric::BootPhase(p.to_string()),
                        _ => Metric::Other(s.to_string()),
                    },
                }
            }
        }
    };
}

metrics! {
    /// Launch start to READY received by the harness (ms).
    Boot => "boot", "ms";
    /// Stop request until every resource of the instance is released (ms).
    Teardown => "teardown", "ms";
    /// The `cpu` workload's timed SHA-256 chain (ms).
    Cpu => "cpu", "ms";
    /// Touching the `mem`/`idle` workload's pages (ms).
    MemTouch => "mem_touch", "ms";
    /// One round trip of the `call` workload (us).
    Call => "call", "us";
    /// PSS of an idle instance's host processes (bytes).
    MemHost => "mem.host", "bytes";
    /// RSS of the same processes (bytes).
    MemRss => "mem.rss", "bytes";
    /// `mem.host` minus the baseline platform's (bytes).
    MemOverhead => "mem.overhead", "bytes";
    /// The VMM process's resident memory outside guest RAM (bytes).
    MemVmm => "mem.vmm", "bytes";
    /// Memory charged to the instance's memory cgroup (bytes).
    MemCgroup => "mem.cgroup", "bytes";
    /// MemAvailable drop per instance with N running (bytes; iteration = N).
    DensityMemPerInstance => "density.mem_per_instance", "bytes";
    /// Instances launched per second at N (iteration = N).
    DensityLaunchRate => "density.launch_rate", "instances/s";
    /// MemAvailable drop with N running (bytes; iteration = N).
    DensityMemAvailableDrop => "density.mem_available_drop", "bytes";
    /// PSS of the instances' processes per instance at N (bytes; iteration = N).
    DensityPssPerInstance => "density.pss_per_instance", "bytes";
    /// PSS of the N instances' processes, each once (bytes; iteration = N).
    DensityPssTotal => "density.pss_total", "bytes";
    /// Charge of the N instances' own memory cgroups (bytes; iteration = N).
    DensityCgroupTotal => "density.cgroup_total", "bytes";
    /// Fitted fixed cost of the PSS line (bytes; iteration = points fitted).
    DensityFixedPss => "density.fixed_pss", "bytes";
    /// Fitted per-instance cost of the PSS line (bytes).
    DensityPerInstancePss => "density.per_instance_pss", "bytes";
    /// Residual standard error of the PSS line (bytes).
    DensityFitRmsePss => "density.fit_rmse_pss", "bytes";
    /// Fitted fixed cost of the MemAvailable-drop line (bytes).
    DensityFixedHost => "density.fixed_host", "bytes";
    /// Fitted per-instance cost of the MemAvailable-drop line (bytes).
    DensityPerInstanceHost => "density.per_instance_host", "bytes";
    /// Residual standard error of the MemAvailable-drop line (bytes).
    DensityFitRmseHost => "density.fit_rmse_host", "bytes";
    /// Fitted fixed cost of the cgroup-charge line (bytes).
    DensityFixedCgroup => "density.fixed_cgroup", "bytes";
    /// Fitted per-instance cost of the cgroup-charge line (bytes).
    DensityPerInstanceCgroup => "density.per_instance_cgroup", "bytes";
    /// Residual standard error of the cgroup-charge line (bytes).
    DensityFitRmseCgroup => "density.fit_rmse_cgroup", "bytes";
    /// KSM's pages_shared with N mergeable instances, settled (iteration = N).
    DensityKsmPagesShared => "density.ksm_pages_shared", "pages";
    /// KSM's pages_sharing with N mergeable instances, settled (iteration = N).
    DensityKsmPagesSharing => "density.ksm_pages_sharing", "pages";
    /// Time from the storm's start until all N instances were ready (ms; iteration = N).
    StormReadyAll => "storm.ready_all", "ms";
    /// Median launch-to-ready of the storm's instances (ms; iteration = N).
    StormReadyP50 => "storm.ready_p50", "ms";
    /// 95th percentile launch-to-ready of the storm's instances (ms).
    StormReadyP95 => "storm.ready_p95", "ms";
    /// 99th percentile launch-to-ready of the storm's instances (ms).
    StormReadyP99 => "storm.ready_p99", "ms";
    /// Instances ready per second in the storm: ready ones over storm.ready_all.
    StormLaunchRate => "storm.launch_rate", "instances/s";
    /// Launches of the storm that failed (count; each with its reason in the notes).
    StormFailures => "storm.failures", "count";
    /// CPU time versus' launcher threads spent per launch (ms).
    StormHarnessCpuPerLaunch => "storm.harness_cpu_per_launch", "ms";
    /// Bytes every instance shares (allocated; also `bytes_apparent`).
    ImageShared => "image.shared", "bytes";
    /// Bytes to start one instance.
    ImageTotal => "image.total", "bytes";
    /// Bytes instance i adds (iteration = i).
    ImagePerInstance => "image.per_instance", "bytes";
    /// Bytes for N instances (iteration = N).
    ImageNInstances => "image.n_instances", "bytes";
    /// Artefacts a fix changed, counted by content digest before and after
    /// (count; iteration = N instances; workload = fix/storage).
    PatchArtifacts => "patch.artifacts", "count";
    /// Bytes the fix's commands wrote (the kernel's write accounting of each).
    PatchBytesWritten => "patch.bytes_written", "bytes";
    /// From the fix's start until all N instances were patched and ready again (ms).
    PatchMs => "patch.ms", "ms";
    /// Instances that reported, from inside, the new version after the fix.
    PatchVerifiedInstances => "patch.verified_instances", "count";
    /// Instance-seconds of unavailability: the sum over the instances of stop to ready again.
    PatchUnavailable => "patch.unavailable", "instance_s";
    /// Copies of the image's packages the artefacts to patch carry (count).
    PatchPackages => "patch.packages", "count";
    /// Installed bytes of those package copies (dpkg's Installed-Size).
    PatchPackageBytes => "patch.package_bytes", "bytes";
    /// The victim's time alone (ms).
    InterferenceAlone => "interference.alone", "ms";
    /// Victim time beside a CPU hog / time alone.
    InterferenceCpu => "interference.cpu", "ratio";
    /// Victim time beside a memory hog / time alone.
    InterferenceMem => "interference.mem", "ratio";
    /// Victim time beside a fork bomb / time alone.
    InterferenceFork => "interference.fork", "ratio";
    /// The most processes the fork bomb neighbour had alive at once (its
    /// pids limit, or versus' own cap, stops it).
    InterferenceForkPeak => "interference.fork_peak", "count";
    /// Host system calls the workload can make.
    SurfaceHostSyscalls => "surface.host_syscalls", "count";
    /// Kinds of VM exit the VMM serves.
    SurfaceVmExitKinds => "surface.vm_exit_kinds", "count";
    /// Host calls (ports, hypercalls, devices) the VMM serves.
    SurfaceVmmHostCalls => "surface.vmm_host_calls", "count";
}

impl Metric {
    /// `boot.<phase>`.
    pub fn phase(name: &str) -> Metric {
        Metric::BootPhase(name.to_string())
    }

    /// The family before the first dot (`mem`, `density`, `image`, ...), or
    /// the whole name.
    pub fn family(&self) -> Cow<'_, str> {
        match self.name() {
            Cow::Borrowed(s) => Cow::Borrowed(s.split('.').next().unwrap_or(s)),
            Cow::Owned(s) => Cow::Owned(s.split('.').next().unwrap_or(&s).to_string()),
        }
    }

    /// Whether this is one of the `interference.<stress>` ratios.
    pub fn is_interference_ratio(&self) -> bool {
        matches!(self, Metric::InterferenceCpu | Metric::InterferenceMem | Metric::InterferenceFork)
    }
}

/// What a density line is fitted to (the `_pss`, `_host` and `_cgroup`
/// metrics of the density fit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DensityBasis {
    /// PSS of the instances' processes.
    Pss,
    /// The host's MemAvailable drop (kernel memory included; host-wide noise too).
    Host,
    /// The charge of the instances' own memory cgroups.
    Cgroup,
}

impl DensityBasis {
    pub const ALL: [DensityBasis; 3] = [DensityBasis::Pss, DensityBasis::Host, DensityBasis::Cgroup];

    /// The (fixed, per-instance, residual) metrics of this basis.
    pub fn metrics(self) -> (Metric, Metric, Metric) {
        match self {
            DensityBasis::Pss => (Metric::DensityFixedPss, Metric::DensityPerInstancePss, Metric::DensityFitRmsePss),
            DensityBasis::Host => (Metric::DensityFixedHost, Metric::DensityPerInstanceHost, Metric::DensityFitRmseHost),
            DensityBasis::Cgroup => (Metric::DensityFixedCgroup, Metric::DensityPerInstanceCgroup, Metric::DensityFitRmseCgroup),
        }
    }

    /// The per-N metric this basis fits.
    pub fn total_metric(self) -> Metric {
        match self {
            DensityBasis::Pss => Metric::DensityPssTotal,
            DensityBasis::Host => Metric::DensityMemAvailableDrop,
            DensityBasis::Cgroup => Metric::DensityCgroupTotal,
        }
    }

    /// Its name on the command line and in the metrics (`pss`, `host`, `cgroup`).
    pub fn name(self) -> &'static str {
        match self {
            DensityBasis::Pss => "pss",
            DensityBasis::Host => "host",
            DensityBasis::Cgroup => "cgroup",
        }
    }

    /// In words.
    pub fn describe(self) -> &'static str {
        match self {
            DensityBasis::Pss => "PSS of the instances' processes",
            DensityBasis::Host => "the host's MemAvailable drop",
            DensityBasis::Cgroup => "the charge of the instances' memory cgroups",
        }
    }
}

impl FromStr for DensityBasis {
    type Err = String;
    fn from_str(s: &str) -> Result<DensityBasis, String> {
        DensityBasis::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| format!("unknown memory basis `{s}`: use pss, host or cgroup"))
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Metric {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Metric, Self::Err> {
        Ok(Metric::parse(s))
    }
}

impl From<&str> for Metric {
    fn from(s: &str) -> Metric {
        Metric::parse(s)
    }
}

impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Metric, D::Error> {
        let s = Cow::<str>::deserialize(d)?;
        Ok(Metric::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Metric::FIXED {
            assert_eq!(&Metric::from(m.name().as_ref()), m, "{m}");
            assert!(!m.unit().is_empty(), "{m} has a unit");
        }
        assert_eq!(Metric::from("boot.rootfs"), Metric::phase("rootfs"));
        assert_eq!(Metric::phase("rootfs").to_string(), "boot.rootfs");
        assert_eq!(Metric::from("boot."), Metric::Other("boot.".into()));
        assert_eq!(Metric::from("patch.ms"), Metric::PatchMs);
        assert_eq!(Metric::from("patch.nope"), Metric::Other("patch.nope".into()));
        assert_eq!(Metric::MemHost.family(), "mem");
        assert_eq!(Metric::Boot.family(), "boot");
    }

    #[test]
    fn docs_design_lists_every_metric() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/design.md")).expect("docs/design.md exists");
        for m in Metric::FIXED {
            assert!(doc.contains(&format!("`{m}`")), "docs/design.md does not list `{m}`");
        }
        assert!(doc.contains("`boot.<phase>`"));
    }

    #[test]
    fn serializes_as_its_name() {
        assert_eq!(serde_json::to_string(&Metric::DensityLaunchRate).unwrap(), "\"density.launch_rate\"");
        assert_eq!(serde_json::from_str::<Metric>("\"boot.exec\"").unwrap(), Metric::phase("exec"));
    }
}
