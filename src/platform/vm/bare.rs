//! `vm-bare`: the kernel-less guest. The VMM loads the freestanding image
//! of `harness/bare`, builds identity page tables and a GDT, and enters it
//! in 64-bit mode at CPL3 with IOPL 3; the guest runs the same workload code
//! as every other platform and talks to the host through port-I/O host calls
//! ([`super::hostcall`]). The vCPU runs on the calling thread only while
//! versus waits on the guest (launch, finish); a parked guest costs no CPU.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use kvm_ioctls::{VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress};

use super::abi::{self, mode, BootArgs};
use super::bus::Bus;
use super::hostcall::{Event, HostCall};
use super::layout::{self, Cpl};
use super::memory::{self, GuestMemoryMmap};
use super::vcpu::{self, Paused, RunLimit};
use super::{vm, VmError};
use crate::channel::Received;
use crate::error::Result;
use crate::measure::clock::now_ns;
use crate::measure::Boot;
use crate::platform::{Finished, Instance, LaunchSpec, Platform, ProbeLine};
use crate::workload::Workload;

/// The kernel-less guest image, built by build.rs from `harness/bare`.
pub static BARE_BINARY: &[u8] = include_bytes!(env!("VERSUS_BARE_BIN"));

/// The boot phases of a `vm-bare` launch, in order; they add up to `boot`.
pub const PHASES: [&str; 5] = ["vm_create", "guest_memory", "image_load", "vcpu_setup", "ready"];

/// One loadable segment of the image.
#[derive(Debug, Clone)]
pub struct Segment {
    pub addr: u64,
    pub data: &'static [u8],
    pub mem_size: u64,
}

/// A parsed static ELF image.
#[derive(Debug, Clone)]
pub struct Image {
    pub entry: u64,
    pub segments: Vec<Segment>,
}

fn rd_u16(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn rd_u32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn rd_u64(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// Parses a static x86-64 ELF executable whose PT_LOAD segments lie in
/// `[IMAGE_BASE, IMAGE_LIMIT)`.
pub fn parse_elf(b: &'static [u8]) -> std::result::Result<Image, VmError> {
    let bad = |why: &str| VmError::Image(format!("{why}; rebuild versus so that harness/bare is rebuilt"));
    if b.get(..4) != Some(b"\x7fELF") || b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err(bad("not a 64-bit little-endian ELF"));
    }
    if rd_u16(b, 16) != Some(2) || rd_u16(b, 18) != Some(62) {
        return Err(bad("not a static x86-64 executable (ET_EXEC, EM_X86_64)"));
    }
    let entry = rd_u64(b, 24).ok_or_else(|| bad("truncated header"))?;
    let phoff = rd_u64(b, 32).ok_or_else(|| bad("truncated header"))? as usize;
    let phentsize = rd_u16(b, 54).ok_or_else(|| bad("truncated header"))? as usize;
    let phnum = rd_u16(b, 56).ok_or_else(|| bad("truncated header"))? as usize;
    let mut segments = Vec::new();
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let p_type = rd_u32(b, o).ok_or_else(|| bad("truncated program header"))?;
        if p_type != 1 {
            continue;
        }
        let (Some(off), Some(paddr), Some(filesz), Some(memsz)) = (rd_u64(b, o + 8), rd_u64(b, o + 24), rd_u64(b, o + 32), rd_u64(b, o + 40)) else {
            return Err(bad("truncated program header"));
        };
        if paddr < abi::IMAGE_BASE || paddr.saturating_add(memsz) > abi::IMAGE_LIMIT || filesz > memsz {
            return Err(bad(&format!("segment {paddr:#x}+{memsz:#x} outside the image area {:#x}..{:#x}", abi::IMAGE_BASE, abi::IMAGE_LIMIT)));
        }
        let data = b.get(off as usize..(off + filesz) as usize).ok_or_else(|| bad("segment beyond the end of the file"))?;
        segments.push(Segment { addr: paddr, data, mem_size: memsz });
    }
    if !segments.iter().any(|s| entry >= s.addr && entry < s.addr + s.mem_size) {
        return Err(bad("entry point outside every segment"));
    }
    Ok(Image { entry, segments })
}

static IMAGE: OnceLock<std::result::Result<Image, String>> = OnceLock::new();

/// The embedded bare image, parsed once.
pub fn image() -> std::result::Result<&'static Image, VmError> {
    match IMAGE.get_or_init(|| parse_elf(BARE_BINARY).map_err(|e| e.to_string())) {
        Ok(i) => Ok(i),
        Err(e) => Err(VmError::Image(e.clone())),
    }
}

static TSC_KHZ: OnceLock<u32> = OnceLock::new();

/// What a bare guest runs: a guest mode of [`abi::mode`] and its parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestRun {
    pub mode: u32,
    pub param: u32,
}

impl GuestRun {
    pub fn workload(w: Workload) -> GuestRun {
        let mode = match w {
            Workload::Ready => mode::READY,
            Workload::Cpu { .. } => mode::CPU,
            Workload::Mem { .. } => mode::MEM,
            Workload::Call { .. } => mode::CALL,
            Workload::Idle { .. } => mode::IDLE,
        };
        GuestRun { mode, param: w.param() }
    }

    /// Heap the guest needs (the MiB it touches for `mem` and `idle`).
    pub fn heap_bytes(&self) -> u64 {
        match self.mode {
            mode::MEM | mode::IDLE => (self.param as u64) << 20,
            _ => 0,
        }
    }

    /// Guest RAM: the fixed low area up to the heap, plus the heap (at
    /// least 2 MiB), rounded up to 2 MiB.
    pub fn ram_bytes(&self) -> u64 {
        let heap = self.heap_bytes().max(2 << 20);
        (abi::HEAP_BASE + heap + (2 << 20) - 1) & !((2 << 20) - 1)
    }
}

/// A bare guest: its vCPU, VM, device bus and memory. Fields drop in
/// declaration order: vCPU fd, VM fd, devices, then the guest memory.
pub struct BareVm {
    vcpu: VcpuFd,
    #[allow(dead_code)]
    vm: VmFd,
    bus: Bus,
    host: Arc<Mutex<HostCall>>,
    mem: GuestMemoryMmap,
    /// Boot timing (start before KVM_CREATE_VM, end at the READY exit).
    pub boot: Boot,
    timeout: Duration,
    finished: bool,
}

static INSTANCE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl BareVm {
    /// Creates the VM, loads the image, enters it, and runs it until it
    /// signals ready (or fails: every error ends and frees the VM).
    pub fn launch(run: GuestRun, timeout: Duration) -> std::result::Result<BareVm, VmError> {
        let image = image()?;
        let start = now_ns();
        let vmfd = vm::create_vm()?;
        let t_vm = now_ns();

        let ram = run.ram_bytes();
        if ram > abi::MAX_RAM {
            return Err(VmError::Memory {
                bytes: ram,
                reason: format!("a vm-bare guest has at most {} MiB of RAM (its identity map ends at 4 GiB)", abi::MAX_RAM >> 20),
            });
        }
        let mem = memory::allocate(&[(GuestAddress(0), ram as usize)])?;
        memory::register(&vmfd, &mem)?;
        let t_mem = now_ns();

        layout::write_tables(&mem)?;
        for s in &image.segments {
            mem.write_slice(s.data, GuestAddress(s.addr)).map_err(|e| VmError::Image(format!("loading a segment at {:#x}: {e}", s.addr)))?;
        }
        let t_img = now_ns();

        let cpu = vcpu::create_vcpu(&vmfd, 0)?;
        vcpu::set_supported_cpuid(&cpu)?;
        let tsc_khz = match TSC_KHZ.get() {
            Some(k) => *k,
            None => {
                let k = cpu.get_tsc_khz().map_err(|e| VmError::kvm("KVM_GET_TSC_KHZ", e))?;
                *TSC_KHZ.get_or_init(|| k)
            }
        };
        let instance_id = INSTANCE_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let args = BootArgs {
            magic: abi::BOOT_MAGIC,
            mode: run.mode,
            param: run.param,
            tsc_khz: tsc_khz as u64,
            heap_base: abi::HEAP_BASE,
            heap_size: ram - abi::HEAP_BASE,
            instance_id,
            ram_size: ram,
        };
        mem.write_slice(&args.to_bytes(), GuestAddress(abi::BOOT_ARGS_ADDR)).map_err(|e| VmError::Image(format!("writing the boot block: {e}")))?;
        let sregs = cpu.get_sregs().map_err(|e| VmError::kvm("KVM_GET_SREGS", e))?;
        cpu.set_sregs(&layout::long_mode_sregs(sregs, Cpl::Three)).map_err(|e| VmError::kvm("KVM_SET_SREGS", e))?;
        cpu.set_regs(&layout::entry_regs(image.entry, abi::STACK_TOP - 8)).map_err(|e| VmError::kvm("KVM_SET_REGS", e))?;

        let host = Arc::new(Mutex::new(HostCall::new(mem.clone(), instance_id)));
        let mut bus = Bus::new();
        bus.add_pio(abi::PORT_FIRST, abi::PORT_COUNT, host.clone()).map_err(|e| VmError::VmmProcess(e.to_string()))?;
        let t_cpu = now_ns();

        let mut vm = BareVm { vcpu: cpu, vm: vmfd, bus, host, mem, boot: Boot::default(), timeout, finished: false };
        let ready_ns = match vm.resume("signal ready")? {
            Event::Ready(t) => t,
            Event::Done | Event::Idle => {
                let logs = vm.logs();
                return Err(VmError::Aborted(format!("the guest exited before signalling ready{logs}")));
            }
        };
        vm.boot = Boot::from_marks(start, &[("vm_create", t_vm), ("guest_memory", t_mem), ("image_load", t_img), ("vcpu_setup", t_cpu), ("ready", ready_ns)]);
        Ok(vm)
    }

    fn logs(&self) -> String {
        let Ok(h) = self.host.lock() else { return String::new() };
        let logs: Vec<&str> = h.received.iter().filter_map(|m| if let Received::Log(l) = m { Some(l.as_str()) } else { None }).collect();
        if logs.is_empty() {
            String::new()
        } else {
            format!("; its log: {}", logs.join(" | "))
        }
    }

    /// Runs the vCPU until the guest pauses it; returns the event.
    fn resume(&mut self, what: &'static str) -> std::result::Result<Event, VmError> {
        let limit = RunLimit::new(self.timeout, what);
        loop {
            match vcpu::run(&mut self.vcpu, &self.bus, &limit)? {
                Paused::ByDevice | Paused::Hlt => {}
            }
            let mut h = self.host.lock().map_err(|_| VmError::VmmProcess("host-call device poisoned".into()))?;
            match h.take() {
                Ok(Some(ev)) => return Ok(ev),
                Ok(None) => continue,
                Err(e) => {
                    drop(h);
                    // Attach the guest's own log lines to a guest-reported error.
                    return Err(match e {
                        VmError::Aborted(s) => VmError::Aborted(format!("{s}{}", self.logs())),
                        other => other,
                    });
                }
            }
        }
    }

    /// Runs the guest until it is done (or parks itself, for `idle`), and
    /// returns what it reported.
    pub fn finish(&mut self) -> std::result::Result<Finished, VmError> {
        if !self.finished {
            match self.resume("finish")? {
                Event::Done | Event::Idle => {}
                Event::Ready(_) => return Err(VmError::Protocol { line: "READY".into(), reason: "the guest signalled ready twice".into() }),
            }
            self.finished = true;
        }
        let mut out = Finished::default();
        let mut h = self.host.lock().map_err(|_| VmError::VmmProcess("host-call device poisoned".into()))?;
        for m in h.received.drain(..) {
            match m {
                Received::Result(r) => out.results.push(r),
                Received::Log(l) => out.logs.push(l),
                Received::Probe { id, result, evidence } => out.probes.push(ProbeLine { id, result, evidence }),
                Received::Ready { .. } => {}
            }
        }
        Ok(out)
    }

    /// Host virtual ranges of the guest RAM (to exclude from `mem.vmm`).
    pub fn guest_ram_host_ranges(&self) -> Vec<(u64, u64)> {
        memory::host_ranges(&self.mem)
    }

    /// Host calls the guest made on `PORT_CALL`.
    pub fn host_calls(&self) -> u64 {
        self.host.lock().map(|h| h.calls).unwrap_or(0)
    }
}

/// The `vm-bare` platform (VMM in the versus process).
#[derive(Debug, Default)]
pub struct VmBarePlatform;

impl VmBarePlatform {
    pub fn new() -> VmBarePlatform {
        VmBarePlatform
    }
}

/// A ready bare guest.
pub struct BareInstance {
    vm: Option<BareVm>,
    boot: Boot,
}

impl Platform for VmBarePlatform {
    fn name(&self) -> &'static str {
        "vm-bare"
    }
    fn available(&self) -> std::result::Result<(), String> {
        vm::available()?;
        image().map(|_| ()).map_err(|e| e.to_string())
    }
    fn notes(&self) -> Vec<String> {
        let mut n = vec![
            "kernel-less KVM guest: the workload runs in 64-bit user mode (CPL3), entered directly by versus' VMM".into(),
            "call: one port-I/O host call to the VMM per round trip (a VM exit and re-entry; the guest has no kernel to make a system call to)".into(),
            "elapsed_ns: measured in the guest with rdtsc, converted with the guest TSC frequency from KVM_GET_TSC_KHZ".into(),
            "the VMM runs inside the versus process: mem.host / mem.vmm come from vm::vmm_process::measure_memory (a separate versus-vmm process)".into(),
        ];
        if crate::host::kvm_mode() == crate::host::KvmMode::Pvm {
            n.push(
                "kvm_pvm: guest user code runs natively, but each port-I/O host call is a #GP trap plus instruction emulation, dearer than a hardware VM exit"
                    .into(),
            );
        }
        n
    }
    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        let vm = BareVm::launch(GuestRun::workload(spec.workload.0), spec.timeout)?;
        let boot = vm.boot.clone();
        Ok(Box::new(BareInstance { vm: Some(vm), boot }))
    }
}

impl Instance for BareInstance {
    fn boot(&self) -> &Boot {
        &self.boot
    }
    /// The VMM is this process; its memory is measured with a separate
    /// VMM process instead (see `vmm_process`), so no pid is claimed here.
    fn pids(&self) -> Vec<i32> {
        Vec::new()
    }
    fn finish(&mut self) -> Result<Finished> {
        match self.vm.as_mut() {
            Some(vm) => Ok(vm.finish()?),
            None => Err(VmError::VmmProcess("the VM was already stopped".into()).into()),
        }
    }
    fn stop(mut self: Box<Self>) -> Result<f64> {
        let t = Instant::now();
        drop(self.vm.take());
        Ok(t.elapsed().as_secs_f64() * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_image_parses_inside_the_image_area() {
        let img = image().unwrap();
        assert!(!img.segments.is_empty());
        assert!(img.entry >= abi::IMAGE_BASE && img.entry < abi::IMAGE_LIMIT);
    }

    #[test]
    fn rejects_bad_images() {
        assert!(parse_elf(b"not an elf").is_err());
        let mut b = BARE_BINARY.to_vec();
        b[18] = 3; // EM_386
        let leaked: &'static [u8] = Box::leak(b.into_boxed_slice());
        assert!(parse_elf(leaked).unwrap_err().to_string().contains("x86-64"));
    }

    #[test]
    fn ram_fits_the_heap() {
        let r = GuestRun::workload(Workload::Mem { mib: 64 });
        assert!(r.ram_bytes() >= abi::HEAP_BASE + (64 << 20));
        assert_eq!(r.ram_bytes() % (2 << 20), 0);
        assert_eq!(GuestRun::workload(Workload::Ready).ram_bytes(), abi::HEAP_BASE + (2 << 20));
    }
}
