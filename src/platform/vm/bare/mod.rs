//! The kernel-less guest (`harness/bare`, run by [`versus_vmm::bare`]) as
//! two platforms, each measured end to end as itself:
//!
//! | file | platform |
//! |---|---|
//! | [`process`] | `vm-bare`: one static `versus-vmm` process per instance (the Firecracker model; like `process` and `container`, one new host process per instance) |
//! | [`inproc`] | `vm-bare-inproc`: the VM created inside the versus process (the Hyperlight model) |
//! | [`probes`] | the VMM-answered isolation probes (`vm.*`), one guest per attempt, judged from how the VMM ended it |
//!
//! This file: what a workload spec runs in the bare guest, and its reports.

pub mod inproc;
pub mod probes;
pub mod process;

use crate::channel::{self, Received};
use crate::error::LaunchError;
use crate::model::ProbeLine;
use crate::platform::{AttackSurface, Finished, Group, Guest, Isolation, MemoryAccounting, PlatformInfo};
use crate::workload::{GuestMode, StressKind, Workload, WorkloadSpec};
use versus_vmm::abi::mode;
use versus_vmm::VmError;

pub use inproc::{create_inproc, VmBareInprocPlatform};
pub use process::{create, VmBarePlatform};
pub use versus_vmm::bare::{image, parse_elf, GuestRun, Image, Segment, StopHandle, BARE_BINARY, PHASES};

/// `vm-bare`: one VMM process per instance.
pub const INFO: PlatformInfo = PlatformInfo {
    name: "vm-bare",
    article: "a kernel-less VM",
    summary: "versus' own VMM on the rust-vmm crates, one static versus-vmm process per instance; the guest has no kernel: the VMM enters the workload directly in 64-bit user mode and the guest calls the host through port I/O",
    colour: (0xE6, 0x9F, 0x00),
    group: Group::Versus,
    isolation: Isolation::Vm,
    guest: Guest::NoKernel,
    memory: MemoryAccounting::VmmProcess,
    baseline: false,
};

/// `vm-bare-inproc`: the same guest with its VMM inside versus.
pub const INPROC_INFO: PlatformInfo = PlatformInfo {
    name: "vm-bare-inproc",
    article: "a kernel-less VM inside the harness",
    summary: "the same kernel-less guest with the VM created inside the versus process (the Hyperlight model): no host process per instance",
    colour: (0x99, 0x70, 0x00),
    group: Group::Versus,
    isolation: Isolation::Vm,
    guest: Guest::NoKernel,
    memory: MemoryAccounting::Harness,
    baseline: false,
};

/// What both rows' VMM serves: the attack surface of the kernel-less guest.
pub const SURFACE: AttackSurface = AttackSurface::VmExits { exit_kinds: versus_vmm::hostcall::SERVED_EXITS, host_calls: versus_vmm::hostcall::HOST_CALLS };

/// Notes both rows share.
pub fn common_notes() -> Vec<String> {
    let mut n = vec![
        "kernel-less KVM guest: the workload runs in 64-bit user mode (CPL3), entered directly by versus' VMM".into(),
        "call: one port-I/O host call to the VMM per round trip (a VM exit and re-entry; the guest has no kernel to make a system call to)".into(),
        "elapsed_ns: measured in the guest with rdtsc, converted with the guest TSC frequency from KVM_GET_TSC_KHZ".into(),
    ];
    if crate::host::kvm_mode() == crate::host::KvmMode::Pvm {
        n.push(
            "kvm_pvm: guest user code runs natively, but each port-I/O host call is a #GP trap plus instruction emulation, dearer than a hardware VM exit"
                .into(),
        );
    }
    n
}

/// What a bare guest runs for a benchmark workload.
pub fn guest_run(w: Workload) -> GuestRun {
    let mode = match w {
        Workload::Ready => mode::READY,
        Workload::Cpu { .. } => mode::CPU,
        Workload::Mem { .. } => mode::MEM,
        Workload::Call { .. } => mode::CALL,
        Workload::Idle { .. } => mode::IDLE,
    };
    GuestRun { mode, param: w.param() }
}

/// What a [`WorkloadSpec`] runs in the bare guest. A mode the kernel-less
/// guest cannot run is refused (never replaced by another workload):
/// `stress-fork` has no meaning without a kernel (there are no processes
/// to fork).
pub fn guest_run_of(spec: &WorkloadSpec) -> std::result::Result<GuestRun, LaunchError> {
    match *spec {
        WorkloadSpec::Bench(w) => Ok(guest_run(w)),
        WorkloadSpec::Mode(GuestMode::Probe { .. }) => Ok(GuestRun { mode: mode::PROBE, param: 0 }),
        WorkloadSpec::Mode(GuestMode::Stress { kind: StressKind::Cpu, ms, .. }) => Ok(GuestRun { mode: mode::STRESS_CPU, param: ms }),
        WorkloadSpec::Mode(GuestMode::Stress { kind: StressKind::Mem, ms, .. }) => Ok(GuestRun { mode: mode::STRESS_MEM, param: ms }),
        WorkloadSpec::Mode(GuestMode::Stress { kind: StressKind::Fork, .. }) => Err(LaunchError::Unsupported(format!(
            "vm-bare cannot run `{spec}`: the kernel-less guest has no kernel and so no processes to fork; a fork bomb has no meaning there (run it on process, container or vm-linux)"
        ))),
        WorkloadSpec::Mode(GuestMode::ImageCheck { .. }) => Err(LaunchError::Unsupported(format!(
            "vm-bare cannot run `{spec}`: the kernel-less guest has no file system to read an OS image from (the patch drill restarts it with `idle`)"
        ))),
    }
}

/// Parses the guest's protocol lines (after READY) into a [`Finished`].
pub fn finished_of(lines: &[String]) -> std::result::Result<Finished, VmError> {
    let mut out = Finished::default();
    for l in lines {
        match channel::parse(l) {
            Ok(Received::Result(r)) => out.results.push(r),
            Ok(Received::Log(l)) => out.logs.push(l),
            Ok(Received::Probe { id, result, evidence }) => out.probes.push(ProbeLine { id, result, evidence }),
            Ok(Received::Ready { .. }) => {}
            Err(e) => return Err(VmError::Protocol { line: l.clone(), reason: e.to_string() }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_map_to_guest_modes_or_are_refused() {
        assert_eq!(guest_run_of(&"cpu:7".parse().unwrap()).unwrap(), GuestRun { mode: mode::CPU, param: 7 });
        assert_eq!(guest_run(Workload::Ready), GuestRun { mode: mode::READY, param: 0 });
        let fork: WorkloadSpec = "stress-fork".parse().unwrap();
        assert!(guest_run_of(&fork).unwrap_err().to_string().contains("no processes to fork"));
    }

    #[test]
    fn guest_lines_become_results_logs_and_probes() {
        let lines = ["RESULT workload=cpu checksum=ab".to_string(), "LOG hello".into(), "PROBE id=x result=isolated evidence=e f".into()];
        let f = finished_of(&lines).unwrap();
        assert_eq!(f.results[0].checksum(), Some("ab"));
        assert_eq!(f.logs, ["hello"]);
        assert_eq!((f.probes[0].id.as_str(), f.probes[0].evidence.as_str()), ("x", "e f"));
        assert!(finished_of(&["BOGUS".into()]).is_err());
    }
}
