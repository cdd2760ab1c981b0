//! The attack surface of a platform: how much of the host its workload can
//! call into, as its [`AttackSurface`] says to count it. Workloads on the
//! host kernel count host system calls (all of them without a seccomp
//! filter, judged from the probe rows); VMs count the VM-exit kinds and host
//! calls their VMM serves. They count different things, and each row says
//! which ([`SurfaceKind`]).

use super::host_facts::{host_syscalls, HostFacts};
use crate::model::{Outcome, ProbeRow, SurfaceKind, SurfaceRow};
use crate::platform::AttackSurface;

/// The surface rows of `platform` from its kind of surface and its probe rows.
pub fn surface_rows(platform: &str, surface: &AttackSurface, rows: &[ProbeRow], host: &HostFacts) -> Vec<SurfaceRow> {
    match surface {
        AttackSurface::HostSyscalls => syscall_surface(platform, rows, host).into_iter().collect(),
        AttackSurface::Sandbox { allowed, note } => {
            vec![SurfaceRow { platform: platform.into(), counted: SurfaceKind::HostSyscalls, value: *allowed, note: note.clone() }]
        }
        AttackSurface::VmExits { exit_kinds, host_calls } => vec![
            SurfaceRow {
                platform: platform.into(),
                counted: SurfaceKind::VmExitKinds,
                value: Some(exit_kinds.len() as u64),
                note: format!("VM exits the VMM handles: {}", exit_kinds.join(", ")),
            },
            SurfaceRow {
                platform: platform.into(),
                counted: SurfaceKind::VmmHostCalls,
                value: Some(host_calls.len() as u64),
                note: format!("host calls the VMM serves: {}", host_calls.join(", ")),
            },
        ],
    }
}

/// The system-call surface of a workload on the host kernel: every system
/// call when no seccomp filter is installed. `None` when the probes show it
/// has a kernel of its own, or did not report what is needed.
pub fn syscall_surface(platform: &str, rows: &[ProbeRow], host: &HostFacts) -> Option<SurfaceRow> {
    let shared = rows.iter().find(|r| r.probe == "kernel.shared")?.result == Outcome::Exposed;
    if !shared {
        return None;
    }
    let seccomp = rows.iter().find(|r| r.probe == "priv.seccomp")?;
    let (value, note) = match (seccomp.result, host.syscalls.or_else(host_syscalls)) {
        (Outcome::Exposed, Some(n)) => {
            (Some(n as u64), format!("no seccomp filter: all {n} x86-64 system call entry points of the host kernel (__x64_sys_* in /proc/kallsyms)"))
        }
        (Outcome::Exposed, None) => (None, "no seccomp filter: every host system call, but /proc/kallsyms is unreadable so the count is unknown".into()),
        (_, _) => (None, format!("a seccomp filter is installed ({}); versus does not decode filters, so the count is unknown", seccomp.evidence)),
    };
    Some(SurfaceRow { platform: platform.into(), counted: SurfaceKind::HostSyscalls, value, note })
}
