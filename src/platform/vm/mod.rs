//! versus' own small VMM on the rust-vmm crates, and the kernel-less
//! `vm-bare` platform built on it.
//!
//! # Layout (one job per file)
//!
//! | file | job |
//! |---|---|
//! | [`error`] | [`VmError`]: every way a guest can end, with exit kind, port/address and guest RIP |
//! | [`vm`] | the process-wide `/dev/kvm` handle ([`vm::kvm`]) and [`vm::create_vm`] |
//! | [`memory`] | guest RAM as a vm-memory `GuestMemoryMmap`: [`memory::allocate`], [`memory::register`], [`memory::host_ranges`] |
//! | [`vcpu`] | [`vcpu::create_vcpu`], CPUID, and the run loop [`vcpu::run`] that dispatches exits to a [`bus::Bus`] under a deadline |
//! | [`bus`] | the device bus: [`bus::PioDevice`] on port ranges, [`bus::MmioDevice`] on address ranges, [`bus::Flow`] |
//! | [`abi`] | the VMM/guest contract (layout, boot block, ports, modes), `no_std`, included by the guest itself |
//! | [`tiny`] | a VM around a few bytes of code: the raw KVM floor ([`tiny::raw_floor_ns`]) and the speed loop |
//! | [`layout`] | the bare guest's physical layout, GDT, identity page tables, long-mode sregs |
//! | [`hostcall`] | the port-I/O host-call protocol of the bare guest ([`hostcall::HostCall`] device) |
//! | [`bare`] | [`bare::VmBarePlatform`]: the `vm-bare` [`crate::platform::Platform`] |
//! | [`speed`] | [`speed::measure`]: guest CPL0 vs CPL3 loop rates (the KVM-mode fingerprint) |
//! | [`vmm_process`] | running a bare guest in the small `versus-vmm` process, for honest `mem.host` / `mem.vmm` ([`vmm_process::measure_memory`]) |
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

pub mod abi;
pub mod bare;
pub mod bus;
pub mod devices;
pub mod error;
pub mod hostcall;
pub mod layout;
pub mod linux;
pub mod memory;
pub mod speed;
pub mod tiny;
pub mod vcpu;
#[allow(clippy::module_inception)] // `vm::vm`: the VM-creation file of the VMM, by the one-job-per-file layout
pub mod vm;
pub mod vmm_process;

pub use error::VmError;
