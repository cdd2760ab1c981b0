//! The KVM platforms. The VMM itself (KVM handles, guest memory, vCPU run
//! loop, device bus, the kernel-less guest's image, layout and host calls)
//! is the `versus-vmm` crate (crates/vmm), re-exported here under its
//! module names; what lives here is what makes platforms of it.
//!
//! # Layout (one job per file)
//!
//! | file | job |
//! |---|---|
//! | crates/vmm | the VMM: [`vm`], [`memory`], [`vcpu`], [`bus`], [`abi`], [`layout`], [`hostcall`], [`VmError`], and the bare guest ([`versus_vmm::bare::BareVm`]) |
//! | [`bare`] | [`bare::VmBarePlatform`]: the `vm-bare` [`crate::platform::Platform`] (VMM in the versus process), and the VMM-answered `vm.*` probes |
//! | [`vmm_process`] | `vm-bare` with the VMM in the static `versus-vmm` process (harness/vmm), for honest `mem.host` / `mem.vmm` ([`vmm_process::measure_memory`]) |
//! | [`tiny`] | a VM around a few bytes of code: the raw KVM floor ([`tiny::raw_floor_ns`]) and the speed loop |
//! | [`speed`] | [`speed::measure`]: guest CPL0 vs CPL3 loop rates (the KVM-mode fingerprint) |
//! | [`linux`], [`devices`] | `vm-linux`: a Linux guest with serial, i8042 and boot-done devices |
//!
//! Port I/O from guest CPL3: the VMM sets IOPL 3 *and* gives the TSS an
//! I/O permission bitmap that allows every port. kvm_pvm ignores IOPL for
//! guest user mode (its instruction emulator then consults the TSS bitmap),
//! so without the bitmap every `in`/`out` at CPL3 is a #GP, i.e. a triple
//! fault in a guest with no IDT. With it, each access reaches the VMM as
//! KVM_EXIT_IO, and the VMM rejects ports no device serves.
//!
//! # API for other VM kinds (vm-linux)
//!
//! ```ignore
//! use versus::platform::vm::{bus::{Bus, Flow, PioDevice, MmioDevice}, memory, vcpu, vm, VmError};
//! let vmfd = vm::create_vm()?;                                   // KVM_CREATE_VM on the shared /dev/kvm fd
//! let mem = memory::allocate(&[(GuestAddress(0), 256 << 20)])?;  // GuestMemoryMmap, anonymous, lazily backed
//! memory::register(&vmfd, &mem)?;                                // one KVM slot per region
//! let mut cpu = vcpu::create_vcpu(&vmfd, 0)?;                    // + vcpu::set_supported_cpuid(&cpu)
//! cpu.set_sregs(..)?; cpu.set_regs(..)?;                         // (kvm-ioctls directly)
//! let mut bus = Bus::new();
//! bus.add_pio(0x3f8, 8, Arc::new(Mutex::new(serial)))?;          // Arc<Mutex<dyn PioDevice>>
//! bus.add_mmio(0xd000_0000, 0x1000, Arc::new(Mutex::new(dev)))?; // Arc<Mutex<dyn MmioDevice>>
//! let limit = vcpu::RunLimit::new(Duration::from_secs(30), "signal ready");
//! match vcpu::run(&mut cpu, &bus, &limit)? { vcpu::Paused::ByDevice => .., vcpu::Paused::Hlt => .. }
//! ```
//!
//! # API for the lead (CLI, runner, env)
//!
//! ```ignore
//! // the platform (VMM in the versus process; boot timing):
//! let p = versus::platform::vm::bare::VmBarePlatform::new();
//! // the same guest with its VMM in a `versus-vmm` process (pids() = that process):
//! let p = versus::platform::vm::vmm_process::VmBareProcessPlatform::new()?;
//! // mem.host (PSS) and mem.vmm (RSS outside guest RAM) of one idle guest:
//! let m: VmMemory = versus::platform::vm::vmm_process::measure_memory(&spec)?;
//! // the KVM-mode fingerprint for `versus env` / env.json:
//! let s: SpeedRatio = versus::platform::vm::speed::measure()?;   // s.ratio, s.supervisor_emulated()
//! // the raw KVM launch floor (ns), as in `cargo bench --bench vm_launch`:
//! let ns = versus::platform::vm::tiny::raw_floor_ns()?;
//! ```
//!
//! [`vcpu::run`] returns when a device answers [`bus::Flow::Pause`] (the
//! owner then inspects its own `Arc<Mutex<Device>>`), or, if
//! `RunLimit::hlt_pauses` is set, on HLT. Every other exit is an error:
//! unknown port -> [`VmError::UnknownPort`], unmapped address ->
//! [`VmError::Mmio`], triple fault -> [`VmError::Shutdown`], deadline ->
//! [`VmError::Timeout`] (the vCPU is kicked out of KVM_RUN by a per-thread
//! POSIX timer signal, so an endless guest loop never hangs the host),
//! anything else -> [`VmError::UnexpectedExit`]. `VmError` converts into
//! [`crate::error::LaunchError`].
//!
//! Drop order matters for every VM: vCPU fds, then the VM fd, then the
//! guest memory (see [`bare::BareVm`] for the pattern).

pub mod bare;
pub mod devices;
pub mod linux;
pub mod speed;
pub mod tiny;
pub mod vmm_process;

pub use versus_vmm::{abi, bus, hostcall, layout, memory, vcpu, vm, VmError};

impl From<VmError> for crate::error::LaunchError {
    fn from(e: VmError) -> crate::error::LaunchError {
        use crate::error::LaunchError;
        match e {
            VmError::Timeout { what, after } => LaunchError::Timeout { what, after },
            VmError::Aborted(s) => LaunchError::Aborted(s),
            VmError::Protocol { line, reason } => LaunchError::Protocol { line, reason },
            VmError::Interrupted => LaunchError::Interrupted,
            other => LaunchError::VmGuest(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::LaunchError;
    use std::time::Duration;

    #[test]
    fn vm_errors_become_launch_errors() {
        let l: LaunchError = VmError::Shutdown { rip: 0x42 }.into();
        assert!(matches!(&l, LaunchError::VmGuest(b) if matches!(**b, VmError::Shutdown { rip: 0x42 })));
        assert!(l.to_string().contains("triple fault"));
        let l: LaunchError = VmError::Timeout { what: "signal ready", after: Duration::from_millis(5) }.into();
        assert!(matches!(l, LaunchError::Timeout { what: "signal ready", .. }));
    }
}
