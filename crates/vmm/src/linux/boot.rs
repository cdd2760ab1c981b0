//! Building a Linux guest on the VMM's building blocks ([`super::super::vm`],
//! [`super::super::memory`], [`crate::vcpu`], [`crate::bus`])
//! and running its vCPU on a thread of its own.
//!
//! The vCPU runs in short slices of [`crate::vcpu::run`] so that a
//! stop request, the overall deadline and Ctrl-C are noticed within
//! [`SLICE`], without changing the shared run loop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_ioctls::{VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use vmm_sys_util::eventfd::EventFd;

use super::bootparams::{self, E820};
use super::cpu;
use super::error::LinuxError;
use super::kernel::{self, LoadedKernel};
use crate::bus::Bus;
use crate::devices::boot_done::{BootDone, BOOT_DONE_PORT};
use crate::devices::i8042::{I8042, I8042_COMMAND_PORT, I8042_PORT};
use crate::devices::rtc::{Rtc, RTC_PORT, RTC_PORTS};
use crate::devices::serial::{Role, SerialDevice, Tail, COM1_IRQ, COM1_PORT, COM2_IRQ, COM2_PORT, UART_PORTS};
use crate::devices::sink::{self, Sink};
use crate::devices::virtio::block::Block;
use crate::devices::virtio::mmio::MmioTransport;
use crate::devices::{Events, GuestEvent};
use crate::vcpu::{self, Paused, RunLimit};
use crate::{memory, vm, VmError};

/// Longest time the vCPU thread runs without looking at its stop flag.
pub const SLICE: Duration = Duration::from_millis(10);

/// What to boot.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// A vmlinux ELF or a bzImage.
    pub kernel: Arc<Vec<u8>>,
    pub initramfs: Option<Arc<Vec<u8>>>,
    pub cmdline: String,
    pub mem_bytes: u64,
    /// Stream the console UART's output to stderr.
    pub console_echo: bool,
    /// Hide CPUID features the host's instruction emulator cannot run
    /// (XSAVE, AVX, CMPXCHG16B): for hosts where guest kernel code is
    /// emulated (kvm_pvm).
    pub hide_unemulated: bool,
    /// How guest RAM is mapped (mergeable by KSM, ...).
    pub ram: memory::RamOptions,
    /// A raw disk image attached as a virtio-blk device (virtio-mmio at
    /// [`VIRTIO_BLK_BASE`], interrupt [`VIRTIO_BLK_IRQ`], announced to the
    /// kernel by ACPI tables: [`super::acpi`]). `None`: no device, no ACPI
    /// tables, the boot is as it always was.
    pub disk: Option<std::path::PathBuf>,
}

/// Where the virtio-blk device's registers are (in the 32-bit MMIO gap).
pub const VIRTIO_BLK_BASE: u64 = 0xd000_0000;
/// Its interrupt: IOAPIC pin 5 (free of the serial ports' 3 and 4).
pub const VIRTIO_BLK_IRQ: u32 = 5;

/// This VMM serves raw images only: a qcow2 file (magic `QFI\xfb`) would
/// be served as its raw bytes, which no guest can mount, so it is refused.
fn refuse_qcow2(file: &std::fs::File, path: &std::path::Path) -> Result<(), LinuxError> {
    use std::os::unix::fs::FileExt;
    let mut magic = [0u8; 4];
    if file.read_exact_at(&mut magic, 0).is_ok() && &magic == b"QFI\xfb" {
        return Err(LinuxError::Load(format!(
            "{} is a qcow2 image; versus-vmm attaches raw images only (convert it: qemu-img convert -O raw {} disk.raw)",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

/// The ACPI description of the disk's device.
fn disk_device() -> super::acpi::MmioDev {
    super::acpi::MmioDev { base: VIRTIO_BLK_BASE, len: crate::devices::virtio::mmio::MMIO_LEN, irq: VIRTIO_BLK_IRQ }
}

/// What [`load_guest`] put where.
#[derive(Debug, Clone)]
pub struct GuestLayout {
    pub kernel: LoadedKernel,
    pub e820: Vec<E820>,
    pub initrd: Option<bootparams::Initrd>,
}

/// Fills guest memory for a boot: kernel, command line, initrd, zero page,
/// GDT/IDT and page tables. Needs no KVM (tests use it directly).
pub fn load_guest(mem: &GuestMemoryMmap, cfg: &VmConfig) -> Result<GuestLayout, LinuxError> {
    let k = kernel::load(mem, &cfg.kernel)?;
    let max = bootparams::cmdline_max(&k);
    bootparams::load_cmdline(mem, &cfg.cmdline, max)?;
    let initrd = match &cfg.initramfs {
        Some(data) => Some(bootparams::load_initrd(mem, &k, bootparams::initrd_addr_max(&k), data)?),
        None => None,
    };
    let e820 = bootparams::e820_map(cfg.mem_bytes);
    let mut params = bootparams::build_boot_params(&k, cfg.cmdline.len(), initrd, &e820)?;
    if cfg.disk.is_some() {
        params.acpi_rsdp_addr = super::acpi::write(mem, &[disk_device()])?;
    }
    bootparams::write_boot_params(mem, &params)?;
    cpu::write_tables(mem)?;
    Ok(GuestLayout { kernel: k, e820, initrd })
}

/// A guest whose memory, vCPU and devices are set up, not yet running.
/// Field order is drop order: vCPU, then VM, then guest memory.
pub struct LinuxVm {
    vcpu: VcpuFd,
    vm: VmFd,
    pub mem: GuestMemoryMmap,
    bus: Bus,
    pub kernel: LoadedKernel,
    pub e820: Vec<E820>,
    pub cmdline: String,
    pub initrd: Option<bootparams::Initrd>,
    /// MSRs KVM refused (diagnostics).
    pub refused_msrs: Vec<u32>,
    console: Arc<Mutex<SerialDevice>>,
    i8042: Arc<Mutex<I8042>>,
    pub events: Receiver<GuestEvent>,
}

fn vmerr(e: VmError) -> LinuxError {
    LinuxError::Vm(Box::new(e))
}

impl LinuxVm {
    /// KVM_CREATE_VM, irqchip and PIT, guest RAM, kernel + initramfs +
    /// command line + zero page, vCPU state, devices.
    pub fn build(cfg: &VmConfig) -> Result<LinuxVm, LinuxError> {
        let vmfd = vm::create_vm().map_err(vmerr)?;
        cpu::setup_irqchip(&vmfd)?;
        let mem = memory::allocate_with(&bootparams::memory_regions(cfg.mem_bytes), cfg.ram).map_err(vmerr)?;
        memory::register(&vmfd, &mem).map_err(vmerr)?;

        let GuestLayout { kernel: k, e820, initrd } = load_guest(&mem, cfg)?;

        let vcpu = vcpu::create_vcpu(&vmfd, 0).map_err(vmerr)?;
        let supported = vcpu::supported_cpuid().map_err(vmerr)?;
        vcpu.set_cpuid2(&cpu::guest_cpuid(supported, 0, cfg.hide_unemulated)).map_err(LinuxError::kvm("KVM_SET_CPUID2"))?;
        let refused_msrs = cpu::setup_msrs(&vcpu)?;
        cpu::setup_regs(&vcpu, k.entry.0)?;
        cpu::setup_fpu(&vcpu)?;
        cpu::setup_sregs(&vcpu)?;
        cpu::setup_lapic(&vcpu)?;

        let (tx, rx) = channel();
        let events = Events(Some(tx));
        let irq = |gsi: u32| -> Result<EventFd, LinuxError> {
            let e = EventFd::new(libc::EFD_NONBLOCK).map_err(|x| LinuxError::Load(format!("eventfd: {x}")))?;
            vmfd.register_irqfd(&e, gsi).map_err(LinuxError::kvm("KVM_IRQFD"))?;
            Ok(e)
        };
        let console = Arc::new(Mutex::new(SerialDevice::new(COM1_PORT, Role::Console, irq(COM1_IRQ)?, events.clone(), cfg.console_echo)));
        let chan = Arc::new(Mutex::new(SerialDevice::new(COM2_PORT, Role::Channel, irq(COM2_IRQ)?, events.clone(), false)));
        let i8042 = Arc::new(Mutex::new(I8042::new(events.clone())));
        let boot_done = Arc::new(Mutex::new(BootDone::new(events)));
        let mut bus = Bus::new();
        let overlap = |e: crate::bus::Overlap| LinuxError::Load(e.to_string());
        bus.add_pio(COM1_PORT, UART_PORTS, console.clone()).map_err(overlap)?;
        bus.add_pio(COM2_PORT, UART_PORTS, chan).map_err(overlap)?;
        bus.add_pio(I8042_PORT, 1, i8042.clone()).map_err(overlap)?;
        bus.add_pio(I8042_COMMAND_PORT, 1, i8042.clone()).map_err(overlap)?;
        bus.add_pio(BOOT_DONE_PORT, 4, boot_done).map_err(overlap)?;
        bus.add_pio(RTC_PORT, RTC_PORTS, Arc::new(Mutex::new(Rtc::new()))).map_err(overlap)?;
        let used = [(COM1_PORT, UART_PORTS), (COM2_PORT, UART_PORTS), (I8042_PORT, 1), (I8042_COMMAND_PORT, 1), (BOOT_DONE_PORT, 4), (RTC_PORT, RTC_PORTS)];
        if let Some(path) = &cfg.disk {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| LinuxError::Load(format!("cannot open the disk image {} read-write: {e}", path.display())))?;
            refuse_qcow2(&file, path)?;
            let blk = Block::new(file, false).map_err(|e| LinuxError::Load(format!("the disk image {}: {e}", path.display())))?;
            let dev = MmioTransport::new(VIRTIO_BLK_BASE, blk, mem.clone(), irq(VIRTIO_BLK_IRQ)?).map_err(LinuxError::Load)?;
            bus.add_mmio(VIRTIO_BLK_BASE, crate::devices::virtio::mmio::MMIO_LEN, Arc::new(Mutex::new(dev))).map_err(overlap)?;
        }
        let sinkdev = Arc::new(Mutex::new(Sink::default()));
        for (base, len) in sink::gaps(&used) {
            bus.add_pio(base, len, sinkdev.clone()).map_err(overlap)?;
        }
        Ok(LinuxVm { vcpu, vm: vmfd, mem, bus, kernel: k, e820, cmdline: cfg.cmdline.clone(), initrd, refused_msrs, console, i8042, events: rx })
    }

    /// The console tail (last lines).
    pub fn console_tail(&self) -> Tail {
        self.console.lock().map(|c| c.tail_handle()).unwrap_or_default()
    }

    /// Starts the vCPU thread. It ends when the guest resets (reboot), on
    /// an error, at `deadline`, or when [`Running::stop`] is called.
    pub fn start(self, timeout: Duration, what: &'static str) -> Running {
        let deadline = Instant::now() + timeout;
        let stop = Arc::new(AtomicBool::new(false));
        let tail = self.console_tail();
        let LinuxVm { vcpu, vm, mem, bus, console, i8042, events, .. } = self;
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("versus-linux-vcpu".into()).spawn(move || {
            let mut vcpu = vcpu;
            let out = run_vcpu(&mut vcpu, &mem, &bus, &i8042, &console, &flag, (deadline, timeout), what);
            // Drop order: vCPU, VM, memory.
            drop(vcpu);
            drop(vm);
            drop(bus);
            drop(mem);
            out
        });
        match thread {
            Ok(t) => Running { thread: Some(t), stop, events, tail },
            Err(e) => {
                let (_tx, rx) = channel();
                Running { thread: None, stop, events: rx, tail: Arc::new(Mutex::new(std::iter::once(format!("cannot start the vCPU thread: {e}")).collect())) }
            }
        }
    }
}

/// How a guest ended.
#[derive(Debug)]
pub enum Ended {
    /// The guest reset the CPU (Linux reboot through the i8042).
    Reset,
    /// The host stopped it.
    Stopped,
    /// An error (with diagnostics).
    Failed(Box<Failure>),
}

/// What went wrong and where.
#[derive(Debug)]
pub struct Failure {
    pub error: VmError,
    /// Instruction bytes at the guest RIP, when readable.
    pub insn: Option<Vec<u8>>,
    /// KVM_EXIT_INTERNAL_ERROR sub-error, when that was the exit.
    pub suberror: Option<u32>,
    /// The last console lines.
    pub console: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.error)?;
        if let Some(s) = self.suberror {
            let what = match s {
                1 => " (KVM_INTERNAL_ERROR_EMULATION: the instruction could not be emulated)",
                2 => " (KVM_INTERNAL_ERROR_SIMUL_EX: exception during exception delivery)",
                3 => " (KVM_INTERNAL_ERROR_DELIVERY_EV)",
                _ => "",
            };
            write!(f, "; internal error sub-code {s}{what}")?;
        }
        match &self.insn {
            Some(b) => write!(f, "; instruction bytes at RIP: {}", b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" "))?,
            None => write!(f, "; instruction bytes at RIP unreadable")?,
        }
        if self.console.is_empty() {
            write!(f, "; the guest console printed nothing")
        } else {
            write!(f, "; last console lines:")?;
            for l in &self.console {
                write!(f, "\n  | {l}")?;
            }
            Ok(())
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_vcpu(
    vcpu: &mut VcpuFd,
    mem: &GuestMemoryMmap,
    bus: &Bus,
    i8042: &Mutex<I8042>,
    console: &Mutex<SerialDevice>,
    stop: &AtomicBool,
    (deadline, timeout): (Instant, Duration),
    what: &'static str,
) -> Ended {
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ended::Stopped;
        }
        let now = Instant::now();
        if now >= deadline {
            let e = VmError::Timeout { what, after: timeout };
            return Ended::Failed(Box::new(diagnose(vcpu, mem, console, e)));
        }
        let limit = RunLimit::new(SLICE.min(deadline - now), what);
        match vcpu::run(vcpu, bus, &limit) {
            Ok(Paused::ByDevice) | Ok(Paused::Hlt) => {
                if i8042.lock().map(|k| k.reset_requested()).unwrap_or(true) {
                    return Ended::Reset;
                }
            }
            Err(VmError::Timeout { .. }) => continue,
            Err(e) => return Ended::Failed(Box::new(diagnose(vcpu, mem, console, e))),
        }
    }
}

/// Collects what explains a failure: instruction bytes at RIP (through the
/// guest's page tables), the internal-error sub-code, the console tail.
fn diagnose(vcpu: &mut VcpuFd, mem: &GuestMemoryMmap, console: &Mutex<SerialDevice>, error: VmError) -> Failure {
    let rip = vcpu::rip(vcpu);
    let insn = vcpu.translate_gva(rip).ok().filter(|t| t.valid != 0).and_then(|t| {
        let mut b = vec![0u8; 15];
        mem.read_slice(&mut b, GuestAddress(t.physical_address)).ok().map(|_| b)
    });
    let suberror = match &error {
        VmError::UnexpectedExit { exit, .. } if exit.contains("InternalError") => {
            let run = vcpu.get_kvm_run();
            // SAFETY: the exit reason was KVM_EXIT_INTERNAL_ERROR, so the
            // `internal` member of the kvm_run union is the active one.
            Some(unsafe { run.__bindgen_anon_1.internal.suberror })
        }
        _ => None,
    };
    let console = console.lock().map(|c| c.tail()).unwrap_or_default();
    Failure { error, insn, suberror, console }
}

/// A guest whose vCPU thread is running.
pub struct Running {
    thread: Option<JoinHandle<Ended>>,
    stop: Arc<AtomicBool>,
    pub events: Receiver<GuestEvent>,
    tail: Tail,
}

/// The next thing that happened, or that the guest ended.
#[derive(Debug)]
pub enum Next {
    Event(GuestEvent),
    Ended(Ended),
    /// Nothing before the deadline (the guest still runs).
    TimedOut,
}

impl Running {
    /// Waits for the next device event until `deadline`; when the vCPU
    /// thread has ended and every event is drained, returns how it ended.
    pub fn next(&mut self, deadline: Instant) -> Next {
        loop {
            let wait = deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(50));
            match self.events.recv_timeout(wait) {
                Ok(e) => return Next::Event(e),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
            }
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                // Drain what the devices sent before the end.
                if let Ok(e) = self.events.try_recv() {
                    return Next::Event(e);
                }
                return Next::Ended(self.join());
            }
            if crate::interrupt::requested() {
                self.stop.store(true, Ordering::SeqCst);
            }
            if Instant::now() >= deadline {
                return Next::TimedOut;
            }
        }
    }

    fn join(&mut self) -> Ended {
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| {
                Ended::Failed(Box::new(Failure {
                    error: VmError::VmmProcess("the vCPU thread panicked".into()),
                    insn: None,
                    suberror: None,
                    console: Vec::new(),
                }))
            }),
            None => Ended::Failed(Box::new(Failure {
                error: VmError::VmmProcess("the vCPU thread did not start".into()),
                insn: None,
                suberror: None,
                console: self.console_tail(),
            })),
        }
    }

    /// Stops the guest (if it still runs) and releases the VM; returns how
    /// it ended.
    pub fn stop(mut self) -> Ended {
        self.stop.store(true, Ordering::SeqCst);
        self.join()
    }

    /// A handle that stops the guest from another thread (the vCPU notices
    /// within [`SLICE`]); [`Running::next`] then reports how it ended.
    pub fn stop_handle(&self) -> StopFlag {
        StopFlag(self.stop.clone())
    }

    /// The last console lines.
    pub fn console_tail(&self) -> Vec<String> {
        self.tail.lock().map(|t| t.iter().cloned().collect()).unwrap_or_default()
    }
}

/// Stops a [`Running`] guest from another thread.
#[derive(Debug, Clone)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::bootparams::{layout, read_boot_params, E820_RAM};
    use crate::linux::kernel::{bzimage_header, extract_vmlinux, test_kernel, HDRS_MAGIC};
    use crate::linux::{cmdline, initramfs};

    fn check_layout(image: Vec<u8>, bz: bool) {
        let mem_bytes = 512u64 << 20;
        let init = initramfs::guest_initramfs(b"\x7fELF fake init").unwrap();
        let cfg = VmConfig {
            kernel: Arc::new(image),
            initramfs: Some(Arc::new(init.clone())),
            cmdline: cmdline(&["cpu".into(), "7".into()], true, ""),
            mem_bytes,
            console_echo: false,
            hide_unemulated: false,
            ram: memory::RamOptions::default(),
            disk: None,
        };
        let mem = memory::allocate(&bootparams::memory_regions(mem_bytes)).unwrap();
        let l = load_guest(&mem, &cfg).unwrap();
        let p = read_boot_params(&mem).unwrap();
        // Zero page: header, loader, command line, initrd, e820.
        assert_eq!({ p.hdr.header }, HDRS_MAGIC);
        assert_eq!({ p.hdr.type_of_loader }, 0xff);
        assert_ne!({ p.hdr.loadflags } & bootparams::LOADED_HIGH, 0);
        assert_eq!({ p.hdr.cmd_line_ptr } as u64, layout::CMDLINE);
        assert_eq!({ p.hdr.cmdline_size } as usize, cfg.cmdline.len());
        let mut c = vec![0u8; cfg.cmdline.len() + 1];
        mem.read_slice(&mut c, GuestAddress(layout::CMDLINE)).unwrap();
        assert_eq!(&c[..cfg.cmdline.len()], cfg.cmdline.as_bytes());
        assert_eq!(c[cfg.cmdline.len()], 0, "NUL-terminated");
        let rd = l.initrd.unwrap();
        assert_eq!(({ p.hdr.ramdisk_image } as u64, { p.hdr.ramdisk_size } as u64), (rd.addr, rd.size));
        assert_eq!(rd.addr % 4096, 0);
        assert!(rd.addr >= l.kernel.end_addr && rd.addr + rd.size <= mem_bytes, "initrd {rd:?} vs kernel end {:#x}", l.kernel.end_addr);
        let mut back = vec![0u8; init.len()];
        mem.read_slice(&mut back, GuestAddress(rd.addr)).unwrap();
        assert_eq!(initramfs::parse(&back).unwrap(), initramfs::guest_entries(b"\x7fELF fake init"));
        let e820 = bootparams::e820_of(&p);
        assert_eq!(e820, l.e820);
        assert_eq!(e820, vec![E820 { addr: 0, size: 0x9fc00, kind: E820_RAM }, E820 { addr: 0x10_0000, size: mem_bytes - 0x10_0000, kind: E820_RAM }]);
        if bz {
            let orig = bzimage_header(&cfg.kernel).unwrap();
            assert_eq!(l.kernel.entry, GuestAddress(0x10_0200));
            // The kernel's own header fields survive into the zero page.
            assert_eq!(({ p.hdr.version }, { p.hdr.xloadflags }, { p.hdr.init_size }), ({ orig.version }, { orig.xloadflags }, { orig.init_size }));
            assert_eq!({ p.hdr.code32_start }, 0x10_0000);
        } else {
            assert_eq!(l.kernel.entry, GuestAddress(0x100_0000));
            assert_eq!({ p.hdr.boot_flag }, 0xaa55);
            assert_eq!({ p.hdr.kernel_alignment }, 0x100_0000);
        }
        // Boot page tables and GDT are in place.
        let pml4: u64 = mem.read_obj(GuestAddress(layout::PML4)).unwrap();
        assert_eq!(pml4, layout::PDPT | 3);
        let cs: u64 = mem.read_obj(GuestAddress(layout::GDT_ADDR + cpu::BOOT_CS as u64)).unwrap();
        assert_eq!(cs, cpu::GDT[2]);
    }

    #[test]
    fn real_bzimage_guest_layout_and_zero_page() {
        check_layout(std::fs::read(test_kernel()).unwrap(), true);
    }

    #[test]
    fn real_extracted_vmlinux_guest_layout_and_zero_page() {
        check_layout(extract_vmlinux(&std::fs::read(test_kernel()).unwrap()).unwrap(), false);
    }
}
