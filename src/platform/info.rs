//! What a platform is, said once: its name in the CSV files and on the
//! command line, how the report refers to it, its chart colour, its group
//! and isolation class, which probes apply to its guest, and how its memory
//! is accounted. Every place that used to ask "which platform is this?" by
//! name asks its [`PlatformInfo`] instead ([`super::registry::info`]).

use std::fmt;

/// The descriptor of a platform (one `const` per platform module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformInfo {
    /// The name in CSV rows and on the command line (`process`, `vm-bare`).
    pub name: &'static str,
    /// How a sentence refers to one instance (`a plain process`).
    pub article: &'static str,
    /// One line for `--help`, the README and the report.
    pub summary: &'static str,
    /// Its colour in every chart (Okabe-Ito palette, readable by
    /// colour-blind readers).
    pub colour: (u8, u8, u8),
    pub group: Group,
    pub isolation: Isolation,
    /// What runs under the workload: decides which probes apply.
    pub guest: Guest,
    pub memory: MemoryAccounting,
    /// The platform every overhead is measured against (`process`).
    pub baseline: bool,
}

/// How the report groups rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// versus' own launchers and VMM: the floor of each technology.
    Versus,
    /// Container runtimes and engines people deploy (runc, crun, podman, ...).
    ContainerRuntime,
    /// VMMs people deploy (QEMU, ...).
    Vmm,
}

impl Group {
    /// The group's heading in the report.
    pub fn label(self) -> &'static str {
        match self {
            Group::Versus => "versus' own launchers and VMM",
            Group::ContainerRuntime => "container runtimes",
            Group::Vmm => "VMMs",
        }
    }
}

/// The isolation mechanism between the workload and the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isolation {
    /// None: a plain host process.
    None,
    /// Linux namespaces and cgroups around a host process.
    Namespaces,
    /// A user-space kernel between the workload and the host (gVisor).
    UserspaceKernel,
    /// A hardware virtual machine.
    Vm,
}

/// What runs under the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guest {
    /// The host's own kernel (processes, containers).
    HostKernel,
    /// A Linux kernel of its own (VMs booting Linux, gVisor's sentry).
    OwnKernel,
    /// No kernel: the workload is entered directly by the VMM in user mode.
    NoKernel,
}

impl Guest {
    /// Whether the Linux probes of the workload program run there.
    pub fn runs_linux_probes(self) -> bool {
        matches!(self, Guest::HostKernel | Guest::OwnKernel)
    }
}

/// How an instance's host memory is attributed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryAccounting {
    /// PSS of the instance's own host processes (and its cgroup's charge).
    OwnProcesses,
    /// PSS of its VMM process, plus `mem.vmm`: that process's resident
    /// memory outside guest RAM.
    VmmProcess,
    /// The instance lives in the harness process: growth of versus' PSS.
    Harness,
}

impl fmt::Display for MemoryAccounting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemoryAccounting::OwnProcesses => "PSS of its own host processes, plus its memory cgroup's charge where it has one",
            MemoryAccounting::VmmProcess => "PSS of its VMM process (guest RAM it touched included); mem.vmm: that process's resident memory outside guest RAM",
            MemoryAccounting::Harness => "growth of the versus process's PSS across the launch: the instance lives inside versus",
        })
    }
}

/// Why a platform cannot run on this host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// Declared, not built in this version of versus.
    #[error("the `{0}` platform is not implemented in this version of versus")]
    NotImplemented(&'static str),
    /// /dev/kvm missing or unusable.
    #[error("{0}")]
    NoKvm(String),
    /// A program, kernel or image it needs is missing.
    #[error("{0}")]
    Missing(String),
    /// The host refuses it (cgroups, namespaces, permissions).
    #[error("{0}")]
    Host(String),
    /// Left out of this run by its options (not a fault of the host).
    #[error("{0}")]
    NotSelected(String),
    /// It would run, but its numbers would not represent a typical host;
    /// it runs only when forced.
    #[error("{0} (use --force to run it anyway)")]
    NotRepresentative(String),
}
