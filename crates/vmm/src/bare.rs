//! The kernel-less guest. The VMM loads the freestanding image of
//! `harness/bare`, builds identity page tables and a GDT, and enters it in
//! 64-bit mode at CPL3 with IOPL 3; the guest runs the same workload code
//! as every other platform and talks to the host through port-I/O host
//! calls ([`crate::hostcall`]). The vCPU runs on the calling thread only
//! while the caller waits on the guest (launch, finish); a parked guest
//! costs no CPU.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use kvm_ioctls::{VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress};

use crate::abi::{self, mode, BootArgs};
use crate::bus::Bus;
use crate::clock::now_ns;
use crate::hostcall::{Event, HostCall};
use crate::layout::{self, Cpl};
use crate::memory::{self, GuestMemoryMmap};
use crate::vcpu::{self, Paused, RunLimit};
use crate::{vm, VmError};

/// The kernel-less guest image, built by this crate's build.rs from
/// `harness/bare`.
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
    /// The guest mode named as on the `versus-vmm` command line: a
    /// workload or mode name of [`abi::mode`] (`ready`, `cpu`, `mem`,
    /// `call`, `idle`, `probe`, `stress-cpu`, `stress-mem`), or a number.
    pub fn parse_mode(name: &str) -> Option<u32> {
        Some(match name {
            "ready" => mode::READY,
            "cpu" => mode::CPU,
            "mem" => mode::MEM,
            "call" => mode::CALL,
            "idle" => mode::IDLE,
            "probe" => mode::PROBE,
            "stress-cpu" => mode::STRESS_CPU,
            "stress-mem" => mode::STRESS_MEM,
            n => return n.parse().ok(),
        })
    }

    /// A noisy-neighbour mode: its vCPU keeps running after READY.
    pub fn is_stress(&self) -> bool {
        matches!(self.mode, mode::STRESS_CPU | mode::STRESS_MEM)
    }

    /// Heap the guest needs (the MiB it touches for `mem` and `idle`).
    pub fn heap_bytes(&self) -> u64 {
        match self.mode {
            mode::MEM | mode::IDLE => (self.param as u64) << 20,
            mode::STRESS_MEM => abi::STRESS_MEM_BYTES,
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

/// When a launch reached each boot phase: its start and the end of each
/// of [`PHASES`], in monotonic ns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootMarks {
    pub start_ns: u64,
    pub marks: Vec<(&'static str, u64)>,
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
    /// Boot timing: start before KVM_CREATE_VM, then the end of each of
    /// [`PHASES`] (monotonic ns).
    pub boot: BootMarks,
    timeout: Duration,
    finished: bool,
}

static INSTANCE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl BareVm {
    /// Creates the VM, loads the image, enters it, and runs it until it
    /// signals ready (or fails: every error ends and frees the VM).
    pub fn launch(run: GuestRun, timeout: Duration) -> std::result::Result<BareVm, VmError> {
        BareVm::launch_with(run, timeout, memory::RamOptions::default())
    }

    /// [`BareVm::launch`] with the guest RAM mapped as `ram` says (e.g.
    /// mergeable by KSM).
    pub fn launch_with(run: GuestRun, timeout: Duration, ram_opts: memory::RamOptions) -> std::result::Result<BareVm, VmError> {
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
        let mem = memory::allocate_with(&[(GuestAddress(0), ram as usize)], ram_opts)?;
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

        let mut vm = BareVm { vcpu: cpu, vm: vmfd, bus, host, mem, boot: BootMarks::default(), timeout, finished: false };
        let ready_ns = match vm.resume("signal ready")? {
            Event::Ready(t) => t,
            Event::Done | Event::Idle => {
                let logs = vm.logs();
                return Err(VmError::Aborted(format!("the guest exited before signalling ready{logs}")));
            }
        };
        vm.boot = BootMarks {
            start_ns: start,
            marks: vec![("vm_create", t_vm), ("guest_memory", t_mem), ("image_load", t_img), ("vcpu_setup", t_cpu), ("ready", ready_ns)],
        };
        Ok(vm)
    }

    fn logs(&self) -> String {
        let Ok(h) = self.host.lock() else {
            return String::new();
        };
        let logs = h.log_lines();
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
    /// returns the protocol lines it sent after READY (RESULT, LOG, PROBE).
    pub fn finish(&mut self) -> std::result::Result<Vec<String>, VmError> {
        if !self.finished {
            match self.resume("finish")? {
                Event::Done | Event::Idle => {}
                Event::Ready(_) => return Err(VmError::Protocol { line: "READY".into(), reason: "the guest signalled ready twice".into() }),
            }
            self.finished = true;
        }
        let mut h = self.host.lock().map_err(|_| VmError::VmmProcess("host-call device poisoned".into()))?;
        Ok(h.received.drain(..).collect())
    }

    /// Host virtual ranges of the guest RAM (to exclude from `mem.vmm`).
    pub fn guest_ram_host_ranges(&self) -> Vec<(u64, u64)> {
        memory::host_ranges(&self.mem)
    }

    /// Host calls the guest made on `PORT_CALL`.
    pub fn host_calls(&self) -> u64 {
        self.host.lock().map(|h| h.calls).unwrap_or(0)
    }

    /// The guest's log lines so far (kept after an error ends it).
    pub fn log_lines(&self) -> Vec<String> {
        self.host.lock().map(|h| h.log_lines()).unwrap_or_default()
    }

    /// Asks a stress guest to finish now (it polls [`abi::STOP_FLAG_ADDR`]).
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.mem.clone())
    }
}

/// Sets a running guest's stop flag from another thread.
#[derive(Clone)]
pub struct StopHandle(GuestMemoryMmap);

impl StopHandle {
    pub fn request(&self) {
        let _ = self.0.write_obj(1u32, GuestAddress(abi::STOP_FLAG_ADDR));
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
        let r = GuestRun { mode: mode::MEM, param: 64 };
        assert!(r.ram_bytes() >= abi::HEAP_BASE + (64 << 20));
        assert_eq!(r.ram_bytes() % (2 << 20), 0);
        assert_eq!(GuestRun { mode: mode::READY, param: 0 }.ram_bytes(), abi::HEAP_BASE + (2 << 20));
    }

    #[test]
    fn modes_parse_by_name_or_number() {
        assert_eq!(GuestRun::parse_mode("cpu"), Some(mode::CPU));
        assert_eq!(GuestRun::parse_mode("stress-mem"), Some(mode::STRESS_MEM));
        assert_eq!(GuestRun::parse_mode("256"), Some(256));
        assert_eq!(GuestRun::parse_mode("fork"), None);
    }
}
