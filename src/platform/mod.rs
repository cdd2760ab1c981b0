//! The platforms a workload runs on. Each implements [`Platform`] and
//! describes itself with a [`PlatformInfo`]; the [`registry`] lists them.
//! A launch returns an [`Instance`] that is ready (its READY was received)
//! and that releases everything it holds when stopped or dropped.
//!
//! Adding a platform: one module (its `INFO`, a `create` function and the
//! [`Platform`] implementation) and one line in [`registry::REGISTRY`].

pub mod cgroup;
pub mod child;
pub mod command;
pub mod container;
#[cfg(test)]
pub mod fake;
pub mod info;
pub mod oci;
pub mod podman;
pub mod process;
pub mod registry;
pub mod spawn;
pub mod syscall;
pub mod vm;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use info::{Group, Guest, Isolation, MemoryAccounting, PlatformInfo, Unavailable};

use crate::error::Result;
use crate::measure::Boot;
use crate::model::ProbeLine;
use crate::workload::{WorkloadResult, WorkloadSpec};

/// Resource limits applied to an instance where the platform supports them.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq)]
pub struct Limits {
    pub memory_bytes: u64,
    pub pids: u64,
    /// CPU quota in CPUs (1.0 = one full core).
    pub cpus: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: 1 << 30, pids: 128, cpus: 1.0 }
    }
}

/// What to launch.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub workload: WorkloadSpec,
    /// Bound on every wait of the launch (ready, results, exit).
    pub timeout: Duration,
    pub limits: Limits,
    /// Cgroup controls asked of platforms whose instances do not always
    /// have a cgroup of their own (a plain process, a VMM process), so that
    /// every row is measured the same way. A container always has one.
    pub cgroup: CgroupNeeds,
    /// Let the kernel's samepage merging (KSM) merge the instance's memory:
    /// a VMM marks its guest RAM `MADV_MERGEABLE`; the workload program of
    /// a process or container sets `PR_SET_MEMORY_MERGE` on itself (the
    /// `--ksm` argument, its first action) so that every one of its pages
    /// may merge. The density experiment's KSM pass asks for it; platforms
    /// that cannot honour it must refuse the launch, never ignore it.
    pub ksm_merge: bool,
    /// The root the instance runs on when not the platform's own (an OS
    /// image's layers or disk: `--image`). A platform that cannot use it
    /// refuses the launch, never ignores it.
    pub root: Option<InstanceRoot>,
}

impl LaunchSpec {
    pub fn new(workload: WorkloadSpec) -> LaunchSpec {
        LaunchSpec { workload, timeout: Duration::from_secs(30), limits: Limits::default(), cgroup: CgroupNeeds::default(), ksm_merge: false, root: None }
    }

    /// The workload program's arguments for this launch: `--ksm` first
    /// when the instance's memory may be merged, then the workload's.
    pub fn guest_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if self.ksm_merge {
            a.push("--ksm".to_string());
        }
        a.extend(self.workload.guest_args());
        a
    }
}

/// The root an instance runs on (an OS image: `--image`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceRoot {
    /// A container's root: an overlayfs of `lowers` (top first: read only,
    /// shared by every instance) under this instance's own `upper` and
    /// `work` dirs (same filesystem, made by the caller, who measures and
    /// removes them once the instance stopped). The platform adds its own
    /// layer on top (the workload program as /init); the overlay is
    /// mounted inside the instance's mount namespace, so it ends with it.
    Overlay { lowers: Vec<PathBuf>, upper: PathBuf, work: PathBuf },
    /// A VM's root disk: a raw ext4 image this instance alone reads and
    /// writes, booted with `kernel` and `initrd` when given (else the
    /// platform's).
    Disk { path: PathBuf, kernel: Option<PathBuf>, initrd: Option<PathBuf> },
}

impl LaunchSpec {
    /// An error for a platform that cannot run on `self.root` (`None`: it
    /// has none, or it is the platform's own).
    pub fn refuse_root(&self, platform: &str) -> Result<()> {
        match &self.root {
            None => Ok(()),
            Some(r) => Err(crate::error::LaunchError::Unsupported(format!(
                "{platform} cannot run an instance on {r:?} (an OS image's root: only container and vm-linux can)"
            ))),
        }
    }
}

/// How a platform takes part in the OS-image experiments (`--image`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageMode {
    /// Not in them.
    None,
    /// It runs on the host's own root: its OS image is the host's.
    HostRoot,
    /// It runs on [`InstanceRoot::Overlay`].
    Overlay,
    /// A VM disk per instance; `boots`: it boots from
    /// [`InstanceRoot::Disk`] (else the disk is one it does not read, and
    /// the rows say so).
    Disk { boots: bool },
}

/// Which controls of an instance's own cgroup a measurement needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupNeeds {
    /// A memory cgroup of its own, so that `mem.cgroup` is its charge (the
    /// memory and density experiments ask for it).
    pub memory: bool,
    /// The CPU quota of [`Limits::cpus`] (the interference neighbours ask
    /// for it: every neighbour gets the same CPU).
    pub cpu: bool,
}

/// What a finished workload reported.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    pub results: Vec<WorkloadResult>,
    pub probes: Vec<ProbeLine>,
    pub logs: Vec<String>,
}

/// Memory of a VMM process outside what it holds for the guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VmmMemory {
    /// Resident memory of the VMM process outside the guest-RAM mapping
    /// (`mem.vmm`).
    pub rss_excl_guest: u64,
    /// PSS of the VMM process outside the guest-RAM mapping.
    pub pss_excl_guest: u64,
    /// Resident guest RAM.
    pub guest_ram_rss: u64,
}

/// A running, ready instance.
pub trait Instance {
    /// Boot timing of this launch (launch start to READY received).
    fn boot(&self) -> &Boot;
    /// Host process ids that hold the instance's memory (for memory
    /// accounting): its own processes, or versus' own pid when the
    /// instance lives inside versus.
    fn pids(&self) -> Vec<i32>;
    /// For an instance with a VMM process: that process's memory outside
    /// guest RAM. `None` for instances without one.
    fn vmm_memory(&self) -> Option<Result<VmmMemory>> {
        None
    }
    /// The next `RESULT` of a workload that keeps running after sending it
    /// (`image-check`), within `timeout`.
    fn read_result(&mut self, _timeout: Duration) -> Result<crate::workload::WorkloadResult> {
        Err(crate::error::LaunchError::Unsupported("this platform's instances report results only when they finish".into()))
    }
    /// Waits for the workload to finish by itself and returns its reports.
    /// A crash, an out-of-memory kill or a timeout is an error.
    fn finish(&mut self) -> Result<Finished>;
    /// Asks the instance to stop and releases every resource it holds;
    /// returns the teardown time in ms (stop request to all released).
    fn stop(self: Box<Self>) -> Result<f64>;
}

/// How much of the host a platform's workload can call into (the attack
/// surface rows of the isolation section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttackSurface {
    /// The host's system calls, unless a seccomp filter narrows them
    /// (judged from its probe rows).
    HostSyscalls,
    /// The VM exits its VMM serves and the host calls it answers; every
    /// other exit ends the guest.
    VmExits { exit_kinds: &'static [&'static str], host_calls: &'static [&'static str] },
    /// A sandbox whose own kernel (gVisor's sentry) alone calls the host,
    /// through a seccomp filter versus read from the running process:
    /// `allowed` host system calls (`None`: not measured, `note` says why).
    Sandbox { allowed: Option<u64>, note: String },
}

/// What an instance needs on disk (difference 2), as the footprint
/// experiment builds and measures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// Files every instance reads and none writes.
    Shared(Vec<PathBuf>),
    /// A shared read-only tree under a writable overlayfs layer per
    /// instance. `synthetic` when the platform's instances do not write to
    /// such a layer today (versus then writes into it itself, and the rows
    /// say so).
    Overlay { lower: PathBuf, synthetic: bool },
    /// `shared` files plus a VM disk holding `tree` (ext4), per instance a
    /// full copy, a qcow2 overlay or a reflink clone. `synthetic` when the
    /// platform does not boot from such a disk today (the rows then show
    /// what one would cost, and say so).
    Disk { shared: Vec<PathBuf>, tree: PathBuf, synthetic: bool },
}

/// A platform of the comparison.
pub trait Platform: Send + Sync {
    /// What the platform is (name, group, guest, memory accounting, ...).
    fn info(&self) -> &'static PlatformInfo;
    /// The platform's name as in CSV rows (`process`, `container`, ...).
    fn name(&self) -> &'static str {
        self.info().name
    }
    /// Why the platform cannot run on this host, if it cannot.
    fn available(&self) -> std::result::Result<(), Unavailable>;
    /// `Err(reason)` when it runs but its numbers do not represent a typical
    /// host (for example guest kernel code emulated).
    fn representative(&self) -> std::result::Result<(), String> {
        Ok(())
    }
    /// Notes recorded with the results (what `call` measures, limits, ...).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// Launches one instance and waits until it is ready.
    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>>;
    /// Probe answers that come from outside the workload (a VMM ending the
    /// guest on an attempt), as final results; run after the workload's own.
    fn extra_probes(&self, _timeout: Duration) -> Vec<ProbeLine> {
        Vec::new()
    }
    /// What its workload can call into on the host.
    fn attack_surface(&self) -> AttackSurface {
        AttackSurface::HostSyscalls
    }
    /// What its instances need on disk (empty: not measured).
    fn storage(&self) -> Vec<Storage> {
        Vec::new()
    }
    /// How it takes part in the OS-image experiments.
    fn image_mode(&self) -> ImageMode {
        ImageMode::None
    }
    /// The kernel file its guests boot, for a VM that boots its own
    /// (the patch drill's kernel fix swaps it).
    fn guest_kernel(&self) -> Option<PathBuf> {
        None
    }
}
