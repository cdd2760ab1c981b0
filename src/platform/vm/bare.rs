//! `vm-bare`: the kernel-less guest as a platform. The VMM and the guest
//! are [`versus_vmm::bare`]; here they get versus' types (boot phases,
//! parsed results), the [`Platform`] implementation with the VMM in the
//! versus process, and the VMM-answered isolation probes (`vm.*`).

use std::time::{Duration, Instant};

use crate::channel::{self, Received};
use crate::error::{LaunchError, Result};
use crate::measure::probes::{Outcome, SurfaceRow};
use crate::measure::Boot;
use crate::platform::{Finished, Instance, LaunchSpec, Platform, ProbeLine};
use crate::workload::{GuestMode, StressKind, Workload, WorkloadSpec};
use versus_vmm::abi::{self, mode};
use versus_vmm::{vm, VmError};

pub use versus_vmm::bare::{image, parse_elf, GuestRun, Image, Segment, StopHandle, BARE_BINARY, PHASES};

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
            Err(e) => {
                return Err(VmError::Protocol {
                    line: l.clone(),
                    reason: e.to_string(),
                })
            }
        }
    }
    Ok(out)
}

/// A bare guest with versus' types: [`versus_vmm::bare::BareVm`], its boot
/// as a [`Boot`], its reports as a [`Finished`].
pub struct BareVm {
    vm: versus_vmm::bare::BareVm,
    /// Boot timing (start before KVM_CREATE_VM, end at the READY exit).
    pub boot: Boot,
}

impl BareVm {
    /// Creates the VM, loads the image, enters it, and runs it until it
    /// signals ready (or fails: every error ends and frees the VM).
    pub fn launch(run: GuestRun, timeout: Duration) -> std::result::Result<BareVm, VmError> {
        let vm = versus_vmm::bare::BareVm::launch(run, timeout)?;
        let boot = Boot::from_marks(vm.boot.start_ns, &vm.boot.marks);
        Ok(BareVm { vm, boot })
    }

    /// Runs the guest until it is done (or parks itself, for `idle`), and
    /// returns what it reported.
    pub fn finish(&mut self) -> std::result::Result<Finished, VmError> {
        finished_of(&self.vm.finish()?)
    }

    /// Host virtual ranges of the guest RAM.
    pub fn guest_ram_host_ranges(&self) -> Vec<(u64, u64)> {
        self.vm.guest_ram_host_ranges()
    }

    /// Host calls the guest made on `PORT_CALL`.
    pub fn host_calls(&self) -> u64 {
        self.vm.host_calls()
    }

    /// The guest's log lines so far (kept after an error ends it).
    pub fn log_lines(&self) -> Vec<String> {
        self.vm.log_lines()
    }

    /// Asks a stress guest to finish now.
    pub fn stop_handle(&self) -> StopHandle {
        self.vm.stop_handle()
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
        let run = guest_run_of(&spec.workload)?;
        let vm = BareVm::launch(run, spec.timeout)?;
        let boot = vm.boot.clone();
        if !run.is_stress() {
            return Ok(Box::new(BareInstance {
                vm: Some(vm),
                boot,
                running: None,
            }));
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
        Ok(Box::new(BareInstance {
            vm: None,
            boot,
            running: Some(Running {
                thread: Some(thread),
                stop,
                result: None,
            }),
        }))
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
            self.result = Some(
                t.join()
                    .unwrap_or_else(|_| Err(VmError::VmmProcess("the stress guest's vCPU thread panicked".into()))),
            );
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
    Attempt {
        probe: "vm.mem_outside_ram",
        what,
        run: GuestRun { mode: mode::PROBE_MEM, param },
        expect,
    }
}

fn port_attempt(what: &str, port: u16, input: bool) -> Attempt {
    let param = port as u32 | if input { 0x1_0000 } else { 0 };
    Attempt {
        probe: "vm.unknown_port",
        what: what.into(),
        run: GuestRun { mode: mode::PROBE_PORT, param },
        expect: Expect::Port { port },
    }
}

/// Every attempt of the `vm.*` probes, in report order.
pub fn vmm_probe_attempts() -> Vec<Attempt> {
    let ram = GuestRun {
        mode: mode::PROBE_MEM,
        param: 0,
    }
    .ram_bytes();
    let hole = abi::MAX_RAM; // never RAM, still identity-mapped
    let unmapped = abi::MAPPED_LIMIT + (1 << 30);
    let mut v = vec![
        mem_attempt(
            format!("read {ram:#x} (first byte past its {} MiB of RAM)", ram >> 20),
            ram,
            false,
            Expect::Mmio { addr: ram, dir: "read" },
        ),
        mem_attempt(
            format!("write {ram:#x} (first byte past its RAM)"),
            ram,
            true,
            Expect::Mmio { addr: ram, dir: "write" },
        ),
        mem_attempt(
            format!("read {hole:#x} (mapped, never RAM)"),
            hole,
            false,
            Expect::Mmio { addr: hole, dir: "read" },
        ),
        mem_attempt(
            format!("write {hole:#x} (mapped, never RAM)"),
            hole,
            true,
            Expect::Mmio { addr: hole, dir: "write" },
        ),
        mem_attempt(format!("read {unmapped:#x} (beyond its page tables)"), unmapped, false, Expect::Fault),
        port_attempt("out 0x80 (POST code port)", 0x80, false),
        port_attempt("out 0x3f8 (COM1)", 0x3f8, false),
        port_attempt("in 0xcf8 (PCI configuration address)", 0xcf8, true),
        port_attempt("in 0x7e3 (next to the host-call ports)", abi::PORT_FIRST + abi::PORT_COUNT, true),
        port_attempt("in 0x7e0 (the write-only line port)", abi::PORT_LINE, true),
        port_attempt("out 0x7e1 (the read-only call port)", abi::PORT_CALL, false),
    ];
    for (param, what) in abi::supervisor::ATTEMPTS {
        v.push(Attempt {
            probe: "vm.supervisor",
            what: what.into(),
            run: GuestRun {
                mode: mode::PROBE_SUPERVISOR,
                param,
            },
            expect: Expect::FaultAtSite,
        });
    }
    v
}

/// Positive controls: the same probes pointed at what the guest may do
/// (a read inside its RAM, the served call port, an unprivileged
/// instruction). Each must come out `exposed`, which proves the probes can.
pub fn vmm_probe_controls() -> Vec<Attempt> {
    vec![
        mem_attempt(
            format!("read {:#x} (inside its RAM)", abi::HEAP_BASE),
            abi::HEAP_BASE,
            false,
            Expect::Mmio {
                addr: abi::HEAP_BASE,
                dir: "read",
            },
        ),
        port_attempt("in 0x7e1 (the served call port)", abi::PORT_CALL, true),
        Attempt {
            probe: "vm.supervisor",
            what: "rdtsc (unprivileged)".into(),
            run: GuestRun {
                mode: mode::PROBE_SUPERVISOR,
                param: abi::supervisor::CONTROL,
            },
            expect: Expect::FaultAtSite,
        },
    ]
}

/// Judges one attempt from how the guest ended (`r`) and its log lines.
pub fn judge_attempt(a: &Attempt, r: std::result::Result<Finished, VmError>, logs: &[String]) -> (Outcome, String) {
    let site = logs
        .iter()
        .find_map(|l| l.strip_prefix("site="))
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok());
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
                        return (
                            Outcome::Exposed,
                            format!("control left the instruction at {s:#x}: the guest ended at RIP {rip:#x}{why}: {e}"),
                        );
                    }
                    None => return (Outcome::Error, format!("the guest logged no instruction address before it ended: {e}")),
                },
                _ => false,
            };
            if stopped {
                (Outcome::Isolated, format!("the VMM ended the guest: {e}"))
            } else {
                (
                    Outcome::Error,
                    format!("the guest ended otherwise than this probe expects ({:?}): {e}", a.expect),
                )
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
            None => out.push(ProbeLine {
                id: a.probe.into(),
                result: o.as_str().into(),
                evidence: ev,
            }),
        }
    }
    out
}

/// The attack surface of `vm-bare` (rows for [`crate::measure::probes`]'s
/// surface table): the VM-exit kinds its run loop serves and the host calls
/// its VMM answers.
pub fn attack_surface() -> Vec<SurfaceRow> {
    crate::measure::probes::vm_surface("vm-bare", versus_vmm::hostcall::SERVED_EXITS, versus_vmm::hostcall::HOST_CALLS)
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
        let lines = [
            "RESULT workload=cpu checksum=ab".to_string(),
            "LOG hello".into(),
            "PROBE id=x result=isolated evidence=e f".into(),
        ];
        let f = finished_of(&lines).unwrap();
        assert_eq!(f.results[0].checksum(), Some("ab"));
        assert_eq!(f.logs, ["hello"]);
        assert_eq!((f.probes[0].id.as_str(), f.probes[0].evidence.as_str()), ("x", "e f"));
        assert!(finished_of(&["BOGUS".into()]).is_err());
    }
}
