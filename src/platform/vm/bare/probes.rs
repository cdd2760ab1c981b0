//! The VMM-answered isolation probes (`vm.*`): each attempt is a
//! guest-ending access, so each gets a launch of its own. The guest signals
//! ready, logs where it is (for the supervisor attempts), tries, and, if the
//! access returns, reports `exposed` itself. The VMM's error must match the
//! attempt (the port, the address, the faulting instruction), or the
//! verdict is not `isolated`.

use super::GuestRun;
use crate::model::{Outcome, ProbeLine};
use crate::platform::Finished;
use versus_vmm::abi::{self, mode};
use versus_vmm::VmError;

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

/// The `vm.*` probe lines (final results with evidence), one launch per
/// attempt. A probe is `exposed` if any attempt got through, `error` if any
/// attempt ended unexpectedly, else `isolated`.
/// `run` launches one attempt in a fresh guest of the platform's own kind
/// (in versus' VMM, or a `versus-vmm` process) and returns how the guest
/// ended and what it logged.
pub fn vmm_probes(mut run: impl FnMut(&Attempt) -> (Result<Finished, VmError>, Vec<String>)) -> Vec<ProbeLine> {
    let attempts = vmm_probe_attempts();
    let mut out: Vec<ProbeLine> = Vec::new();
    for a in &attempts {
        let (r, logs) = run(a);
        let (o, ev) = judge_attempt(a, r, &logs);
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
