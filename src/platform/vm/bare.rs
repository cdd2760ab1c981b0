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
use crate::error::{LaunchError, Result};
use crate::measure::clock::now_ns;
use crate::measure::probes::{Outcome, SurfaceRow};
use crate::measure::Boot;
use crate::platform::{Finished, Instance, LaunchSpec, Platform, ProbeLine};
use crate::workload::{GuestMode, StressKind, Workload, WorkloadSpec};

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

    /// What a [`WorkloadSpec`] runs in the bare guest. A mode the kernel-less
    /// guest cannot run is refused (never replaced by another workload):
    /// `stress-fork` has no meaning without a kernel (there are no
    /// processes to fork).
    pub fn from_spec(spec: &WorkloadSpec) -> std::result::Result<GuestRun, LaunchError> {
        match *spec {
            WorkloadSpec::Bench(w) => Ok(GuestRun::workload(w)),
            WorkloadSpec::Mode(GuestMode::Probe { .. }) => Ok(GuestRun { mode: mode::PROBE, param: 0 }),
            WorkloadSpec::Mode(GuestMode::Stress { kind: StressKind::Cpu, ms, .. }) => Ok(GuestRun { mode: mode::STRESS_CPU, param: ms }),
            WorkloadSpec::Mode(GuestMode::Stress { kind: StressKind::Mem, ms, .. }) => Ok(GuestRun { mode: mode::STRESS_MEM, param: ms }),
            WorkloadSpec::Mode(GuestMode::Stress { kind: StressKind::Fork, .. }) => Err(LaunchError::Unsupported(format!(
                "vm-bare cannot run `{spec}`: the kernel-less guest has no kernel and so no processes to fork; a fork bomb has no meaning there (run it on process, container or vm-linux)"
            ))),
        }
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
        let Ok(h) = self.host.lock() else {
            return String::new();
        };
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

    /// The guest's log lines so far (kept after an error ends it).
    pub fn log_lines(&self) -> Vec<String> {
        let Ok(h) = self.host.lock() else {
            return Vec::new();
        };
        h.received.iter().filter_map(|m| if let Received::Log(l) = m { Some(l.clone()) } else { None }).collect()
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
    running: Option<Running>,
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
        let run = GuestRun::from_spec(&spec.workload)?;
        let vm = BareVm::launch(run, spec.timeout)?;
        let boot = vm.boot.clone();
        if !run.is_stress() {
            return Ok(Box::new(BareInstance { vm: Some(vm), boot, running: None }));
        }
        // A noisy neighbour must run while versus does other things: its
        // vCPU gets a thread of its own until the guest is done or stopped.
        let stop = vm.stop_handle();
        let thread = std::thread::Builder::new()
            .name("vm-bare-stress".into())
            .spawn(move || {
                let mut vm = vm;
                let r = vm.finish();
                drop(vm);
                r
            })
            .map_err(|e| LaunchError::io("starting the stress guest's vCPU thread", e))?;
        Ok(Box::new(BareInstance { vm: None, boot, running: Some(Running { thread: Some(thread), stop, result: None }) }))
    }
}

/// A guest whose vCPU runs on a thread of its own (a stress neighbour).
struct Running {
    thread: Option<std::thread::JoinHandle<std::result::Result<Finished, VmError>>>,
    stop: StopHandle,
    result: Option<std::result::Result<Finished, VmError>>,
}

impl Running {
    /// Waits for the vCPU thread (bounded by the guest's own deadline and
    /// the launch timeout, which the thread's run loop enforces).
    fn join(&mut self) -> std::result::Result<Finished, VmError> {
        if let Some(t) = self.thread.take() {
            self.result = Some(t.join().unwrap_or_else(|_| Err(VmError::VmmProcess("the stress guest's vCPU thread panicked".into()))));
        }
        match self.result.take() {
            Some(r) => r,
            None => Err(VmError::VmmProcess("the stress guest's results were already taken".into())),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stop.request();
            let _ = t.join();
        }
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
        if let Some(r) = self.running.as_mut() {
            return Ok(r.join()?);
        }
        match self.vm.as_mut() {
            Some(vm) => Ok(vm.finish()?),
            None => Err(VmError::VmmProcess("the VM was already stopped".into()).into()),
        }
    }
    fn stop(mut self: Box<Self>) -> Result<f64> {
        let t = Instant::now();
        // A running stress guest is asked to stop and its thread joined.
        drop(self.running.take());
        drop(self.vm.take());
        Ok(t.elapsed().as_secs_f64() * 1e3)
    }
}

// ---------------------------------------------------------------------------
// The VMM-answered isolation probes (`vm.*`): each attempt is a guest-ending
// access, so each gets a launch of its own. The guest signals ready, logs
// where it is (for the supervisor attempts), tries, and, if the access
// returns, reports `exposed` itself. The VMM's error must match the attempt
// (the port, the address, the faulting instruction), or the verdict is not
// `isolated`.

/// What ending the guest must look like for an attempt to count as stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// An MMIO exit at `addr` in direction `dir` (`read`/`write`) that the
    /// VMM rejected.
    Mmio { addr: u64, dir: &'static str },
    /// A page fault with no IDT: a triple fault (shutdown), anywhere.
    Fault,
    /// A fault (shutdown or another guest-ending exit) at the instruction
    /// the guest logged as `site=<addr>`.
    FaultAtSite,
    /// An I/O exit on `port` that the VMM rejected (unknown port, or a
    /// host-call port used in the wrong direction).
    Port { port: u16 },
}

/// One guest-ending probe attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// `vm.mem_outside_ram`, `vm.unknown_port` or `vm.supervisor`.
    pub probe: &'static str,
    pub what: String,
    pub run: GuestRun,
    pub expect: Expect,
}

fn mem_attempt(what: String, addr: u64, write: bool, expect: Expect) -> Attempt {
    let param = (((addr >> 20) as u32) << 1) | write as u32;
    Attempt { probe: "vm.mem_outside_ram", what, run: GuestRun { mode: mode::PROBE_MEM, param }, expect }
}

fn port_attempt(what: &str, port: u16, input: bool) -> Attempt {
    let param = port as u32 | if input { 0x1_0000 } else { 0 };
    Attempt { probe: "vm.unknown_port", what: what.into(), run: GuestRun { mode: mode::PROBE_PORT, param }, expect: Expect::Port { port } }
}

/// Every attempt of the `vm.*` probes, in report order.
pub fn vmm_probe_attempts() -> Vec<Attempt> {
    let ram = GuestRun { mode: mode::PROBE_MEM, param: 0 }.ram_bytes();
    let hole = abi::MAX_RAM; // never RAM, still identity-mapped
    let unmapped = abi::MAPPED_LIMIT + (1 << 30);
    let mut v = vec![
        mem_attempt(format!("read {ram:#x} (first byte past its {} MiB of RAM)", ram >> 20), ram, false, Expect::Mmio { addr: ram, dir: "read" }),
        mem_attempt(format!("write {ram:#x} (first byte past its RAM)"), ram, true, Expect::Mmio { addr: ram, dir: "write" }),
        mem_attempt(format!("read {hole:#x} (mapped, never RAM)"), hole, false, Expect::Mmio { addr: hole, dir: "read" }),
        mem_attempt(format!("write {hole:#x} (mapped, never RAM)"), hole, true, Expect::Mmio { addr: hole, dir: "write" }),
        mem_attempt(format!("read {unmapped:#x} (beyond its page tables)"), unmapped, false, Expect::Fault),
        port_attempt("out 0x80 (POST code port)", 0x80, false),
        port_attempt("out 0x3f8 (COM1)", 0x3f8, false),
        port_attempt("in 0xcf8 (PCI configuration address)", 0xcf8, true),
        port_attempt("in 0x7e3 (next to the host-call ports)", abi::PORT_FIRST + abi::PORT_COUNT, true),
        port_attempt("in 0x7e0 (the write-only line port)", abi::PORT_LINE, true),
        port_attempt("out 0x7e1 (the read-only call port)", abi::PORT_CALL, false),
    ];
    for (param, what) in abi::supervisor::ATTEMPTS {
        v.push(Attempt { probe: "vm.supervisor", what: what.into(), run: GuestRun { mode: mode::PROBE_SUPERVISOR, param }, expect: Expect::FaultAtSite });
    }
    v
}

/// Positive controls: the same probes pointed at what the guest may do
/// (a read inside its RAM, the served call port, an unprivileged
/// instruction). Each must come out `exposed`, which proves the probes can.
pub fn vmm_probe_controls() -> Vec<Attempt> {
    vec![
        mem_attempt(format!("read {:#x} (inside its RAM)", abi::HEAP_BASE), abi::HEAP_BASE, false, Expect::Mmio { addr: abi::HEAP_BASE, dir: "read" }),
        port_attempt("in 0x7e1 (the served call port)", abi::PORT_CALL, true),
        Attempt {
            probe: "vm.supervisor",
            what: "rdtsc (unprivileged)".into(),
            run: GuestRun { mode: mode::PROBE_SUPERVISOR, param: abi::supervisor::CONTROL },
            expect: Expect::FaultAtSite,
        },
    ]
}

/// Judges one attempt from how the guest ended (`r`) and its log lines.
pub fn judge_attempt(a: &Attempt, r: std::result::Result<Finished, VmError>, logs: &[String]) -> (Outcome, String) {
    let site = logs.iter().find_map(|l| l.strip_prefix("site=")).and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok());
    match r {
        Ok(f) => match f.probes.iter().find(|p| p.id == a.probe) {
            Some(p) if p.result == "exposed" => (Outcome::Exposed, p.evidence.clone()),
            Some(p) => (Outcome::Error, format!("the guest reported `{}`: {}", p.result, p.evidence)),
            None => (Outcome::Error, "the guest finished without reporting and without being stopped".into()),
        },
        Err(e) => {
            let stopped = match (&e, a.expect) {
                (VmError::Mmio { addr, dir, .. }, Expect::Mmio { addr: want, dir: want_dir }) => *addr == want && *dir == want_dir,
                (VmError::Shutdown { .. }, Expect::Fault) => true,
                (VmError::UnknownPort { port, .. }, Expect::Port { port: want }) => *port == want,
                (VmError::Device { port, .. }, Expect::Port { port: want }) => *port == want as u64,
                (VmError::Shutdown { rip } | VmError::UnexpectedExit { rip, .. }, Expect::FaultAtSite) => match site {
                    Some(s) if *rip == s => true,
                    Some(s) => {
                        let why = if a.run.mode == mode::PROBE_SUPERVISOR && a.run.param == abi::supervisor::SYSCALL && *rip == 0 {
                            " (RIP 0 is IA32_LSTAR, which the VMM leaves 0: the CPU took the system call into guest supervisor mode although EFER.SCE is clear, and nothing is mapped at 0, so the first fetch there faulted and the VMM ended the guest)"
                        } else {
                            ""
                        };
                        return (Outcome::Exposed, format!("control left the instruction at {s:#x}: the guest ended at RIP {rip:#x}{why}: {e}"));
                    }
                    None => return (Outcome::Error, format!("the guest logged no instruction address before it ended: {e}")),
                },
                _ => false,
            };
            if stopped {
                (Outcome::Isolated, format!("the VMM ended the guest: {e}"))
            } else {
                (Outcome::Error, format!("the guest ended otherwise than this probe expects ({:?}): {e}", a.expect))
            }
        }
    }
}

/// Runs one attempt in a fresh guest (everything is freed before return).
pub fn run_attempt(a: &Attempt, timeout: Duration) -> (Outcome, String) {
    let mut vm = match BareVm::launch(a.run, timeout) {
        Ok(vm) => vm,
        Err(e) => return judge_attempt(a, Err(e), &[]),
    };
    let r = vm.finish();
    let logs = vm.log_lines();
    judge_attempt(a, r, &logs)
}

/// The `vm.*` probe lines (final results with evidence), one launch per
/// attempt. A probe is `exposed` if any attempt got through, `error` if any
/// attempt ended unexpectedly, else `isolated`.
pub fn vmm_probes(timeout: Duration) -> Vec<ProbeLine> {
    let attempts = vmm_probe_attempts();
    let mut out: Vec<ProbeLine> = Vec::new();
    for a in &attempts {
        let (o, ev) = run_attempt(a, timeout);
        let ev = format!("{}: {o}: {ev}", a.what);
        match out.iter_mut().find(|l| l.id == a.probe) {
            Some(l) => {
                let prev = Outcome::parse(&l.result).unwrap_or(Outcome::Error);
                let worst = match (prev, o) {
                    (Outcome::Exposed, _) | (_, Outcome::Exposed) => Outcome::Exposed,
                    (Outcome::Error, _) | (_, Outcome::Error) => Outcome::Error,
                    _ => Outcome::Isolated,
                };
                l.result = worst.as_str().into();
                l.evidence = format!("{}; {ev}", l.evidence);
            }
            None => out.push(ProbeLine { id: a.probe.into(), result: o.as_str().into(), evidence: ev }),
        }
    }
    out
}

/// The attack surface of `vm-bare` (rows for [`crate::measure::probes`]'s
/// surface table): the VM-exit kinds its run loop serves and the host calls
/// its VMM answers.
pub fn attack_surface() -> Vec<SurfaceRow> {
    crate::measure::probes::vm_surface("vm-bare", super::hostcall::SERVED_EXITS, super::hostcall::HOST_CALLS)
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
