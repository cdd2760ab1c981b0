//! versus' own small VMM on the rust-vmm crates: every line of versus that
//! talks to KVM. The kernel-less guest (`vm-bare`) it runs, the raw KVM
//! floor and the KVM-mode speed fingerprint, and (feature `linux`) the Linux
//! guest of `vm-linux` with its devices. A crate of its own so that the
//! `versus-vmm` process (harness/vmm) can be linked statically from it
//! alone, as Firecracker's VMM is: a dynamically linked VMM maps about
//! 1.2 MiB of glibc pages, which `mem.vmm` would count.
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
//! | [`layout`] | the bare guest's physical layout, GDT, identity page tables, long-mode sregs |
//! | [`hostcall`] | the port-I/O host-call protocol of the bare guest ([`hostcall::HostCall`] device) |
//! | [`bare`] | [`bare::BareVm`]: the kernel-less guest (image, launch to READY, finish), [`bare::GuestRun`] |
//! | [`tiny`] | a VM around a few bytes of code: the raw KVM floor ([`tiny::raw_floor_ns`]) and the speed loop |
//! | [`speed`] | [`speed::measure`]: guest CPL0 vs CPL3 loop rates (the KVM-mode fingerprint) |
//! | `linux` (feature `linux`) | the Linux guest: kernel formats, decompression and loading, boot parameters, CPU set-up, initramfs, the vCPU thread |
//! | `devices` (feature `linux`) | legacy PC devices of the Linux guest: 16550 UARTs, i8042, the boot-done port, a sink |
//! | [`clock`] | [`clock::now_ns`], the monotonic clock every timestamp uses |
//! | [`interrupt`] | the Ctrl-C flag the run loop polls |
//!
//! Port I/O from guest CPL3: the VMM sets IOPL 3 *and* gives the TSS an
//! I/O permission bitmap that allows every port. kvm_pvm ignores IOPL for
//! guest user mode (its instruction emulator then consults the TSS bitmap),
//! so without the bitmap every `in`/`out` at CPL3 is a #GP, i.e. a triple
//! fault in a guest with no IDT. With it, each access reaches the VMM as
//! KVM_EXIT_IO, and the VMM rejects ports no device serves.
//!
//! # Building a VM from the blocks (as linux/boot.rs does)
//!
//! ```text
//! use versus_vmm::{bus::{Bus, Flow, PioDevice, MmioDevice}, memory, vcpu, vm, VmError};
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
//! [`vcpu::run`] returns when a device answers [`bus::Flow::Pause`] (the
//! owner then inspects its own `Arc<Mutex<Device>>`), or, if
//! `RunLimit::hlt_pauses` is set, on HLT. Every other exit is an error:
//! unknown port -> [`VmError::UnknownPort`], unmapped address ->
//! [`VmError::Mmio`], triple fault -> [`VmError::Shutdown`], deadline ->
//! [`VmError::Timeout`] (the vCPU is kicked out of KVM_RUN by a per-thread
//! POSIX timer signal, so an endless guest loop never hangs the host),
//! anything else -> [`VmError::UnexpectedExit`]. versus converts `VmError`
//! into its `LaunchError`.
//!
//! Drop order matters for every VM: vCPU fds, then the VM fd, then the
//! guest memory (see [`bare::BareVm`] for the pattern).

pub mod abi;
pub mod bare;
pub mod bus;
pub mod clock;
#[cfg(feature = "linux")]
pub mod devices;
pub mod error;
pub mod hostcall;
pub mod interrupt;
pub mod layout;
#[cfg(feature = "linux")]
pub mod linux;
pub mod memory;
pub mod speed;
pub mod tiny;
pub mod vcpu;
pub mod vm;

pub use error::VmError;
