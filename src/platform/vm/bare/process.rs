//! `vm-bare`: the kernel-less guest with one VMM process per instance
//! (`versus-vmm`, harness/vmm, linked statically and embedded by build.rs):
//! the Firecracker model, and the same footing as `process` and
//! `container` (one new host process per instance). Boot includes the VMM
//! process's spawn (phase `vmm_spawn`); memory is that process's PSS (guest
//! RAM it touched included) and `mem.vmm` its resident memory outside the
//! guest-RAM mapping, as Firecracker measures its overhead.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::probes::Attempt;
use super::{common_notes, guest_run_of, image, GuestRun, INFO, SURFACE};
use crate::channel::Received;
use crate::error::{LaunchError, Result};
use crate::measure::clock::now_ns;
use crate::measure::smaps;
use crate::measure::Boot;
use crate::model::ProbeLine;
use crate::platform::cgroup::Controls;
use crate::platform::child::{spawn_program, ChildInstance, ChildWorkload};
use crate::platform::registry::PlatformOptions;
use crate::platform::spawn::{inherited_env, Environment, Program};
use crate::platform::{AttackSurface, Finished, Instance, LaunchSpec, Platform, PlatformInfo, Storage, Unavailable, VmmMemory};
use crate::workload::EmbeddedProgram;
use versus_vmm::VmError;

/// The fd the VMM process writes the protocol to.
const CHANNEL_FD: i32 = 3;

/// The static `versus-vmm` program, built by build.rs from harness/vmm.
pub static VMM_BINARY: &[u8] = include_bytes!(env!("VERSUS_VMM_BIN"));

/// Where the `versus-vmm` program runs from: `$VERSUS_VMM` if set, else the
/// embedded static one, written to a temp dir that lives as long as this.
pub enum VmmBinary {
    Given(PathBuf),
    Embedded(EmbeddedProgram),
}

impl VmmBinary {
    pub fn path(&self) -> PathBuf {
        match self {
            VmmBinary::Given(p) => p.clone(),
            VmmBinary::Embedded(p) => p.path(),
        }
    }
}

/// Finds or writes the `versus-vmm` program (see [`VmmBinary`]).
pub fn vmm_binary() -> std::result::Result<VmmBinary, VmError> {
    if let Some(p) = std::env::var_os("VERSUS_VMM") {
        return Ok(VmmBinary::Given(PathBuf::from(p)));
    }
    EmbeddedProgram::write("versus-vmm", VMM_BINARY)
        .map(VmmBinary::Embedded)
        .map_err(|e| VmError::VmmProcess(format!("cannot write the versus-vmm program to a temp dir: {e}; set TMPDIR to a writable directory")))
}

/// `vm-bare`, one `versus-vmm` process per instance.
pub struct VmBarePlatform {
    /// The program (a written-out embedded one lives as long as this).
    program: VmmBinary,
    /// The guest image written out for the footprint, removed with the platform.
    image_file: std::sync::OnceLock<Option<EmbeddedProgram>>,
}

/// The registry's constructor.
pub fn create(_: &PlatformOptions) -> std::result::Result<Box<dyn Platform>, Unavailable> {
    Ok(Box::new(VmBarePlatform::new().map_err(|e| Unavailable::Host(e.to_string()))?))
}

impl VmBarePlatform {
    pub fn new() -> std::result::Result<VmBarePlatform, VmError> {
        Ok(VmBarePlatform { program: vmm_binary()?, image_file: Default::default() })
    }
    pub fn with_binary(bin: &Path) -> VmBarePlatform {
        VmBarePlatform { program: VmmBinary::Given(bin.to_path_buf()), image_file: Default::default() }
    }

    /// Starts a `versus-vmm` process running `run`, bounded by `timeout`,
    /// in a cgroup of its own when `controls` asks for one (`ksm`: its
    /// guest RAM mergeable by KSM, `versus-vmm --ksm`).
    fn spawn(&self, run: GuestRun, timeout: Duration, controls: Option<Controls>, ksm: bool) -> Result<ChildWorkload> {
        let bin = self.program.path();
        let mut args = vec!["--fd".to_string(), CHANNEL_FD.to_string()];
        if ksm {
            args.push("--ksm".to_string());
        }
        args.extend([run.mode.to_string(), run.param.to_string()]);
        let timeout_ms = timeout.as_millis().to_string();
        let env = Environment::new(inherited_env(&[("VERSUS_VMM_TIMEOUT_MS", &timeout_ms)]))?;
        let program = Program::new(&bin, args, &env)?;
        spawn_program(&program, CHANNEL_FD, &format!("the VMM process {}", bin.display()), timeout, controls).map(|(child, _)| child)
    }

    /// Launches one guest in a fresh `versus-vmm` process and waits for READY.
    pub fn launch_process(&self, spec: &LaunchSpec) -> Result<VmmProcessInstance> {
        // Refuse what the kernel-less guest cannot run before spawning.
        let run = guest_run_of(&spec.workload)?;
        let start = now_ns();
        let mut child = self.spawn(run, spec.timeout, Controls::needs(spec.cgroup, &spec.limits), spec.ksm_merge)?;
        let deadline = Instant::now() + spec.timeout;
        let mut guest_ram = Vec::new();
        let mut marks: Vec<(String, u64)> = Vec::new();
        let ready_ns = loop {
            match child.channel.recv(deadline, "signal ready", spec.timeout)? {
                Some((Received::Ready { .. }, t)) => break t,
                Some((Received::Log(l), _)) => {
                    if let Some((r, m)) = parse_vmm_log(&l) {
                        guest_ram = r;
                        marks = m;
                    }
                }
                Some(_) => {}
                None => return Err(child.crash_error("the VMM process exited before the guest signalled ready")),
            }
        };
        let get = |k: &str| marks.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        let mut m: Vec<(&'static str, u64)> = vec![("vmm_spawn", get("start").unwrap_or(start))];
        for p in super::PHASES {
            if p == "ready" {
                m.push(("ready", ready_ns));
            } else if let Some(t) = get(p) {
                m.push((p, t));
            }
        }
        let boot = Boot::from_marks(start, &m);
        Ok(VmmProcessInstance { instance: ChildInstance { child, boot }, guest_ram })
    }

    /// Runs one probe attempt in a fresh VMM process: how its guest ended
    /// (read back from the process's `vmm-error` line) and what it logged.
    pub fn run_attempt(&self, a: &Attempt, timeout: Duration) -> (std::result::Result<Finished, VmError>, Vec<String>) {
        let mut child = match self.spawn(a.run, timeout, None, false) {
            Ok(c) => c,
            Err(e) => return (Err(VmError::VmmProcess(e.to_string())), Vec::new()),
        };
        let deadline = Instant::now() + timeout;
        let mut out = Finished::default();
        let mut ended: Option<VmError> = None;
        loop {
            match child.channel.recv(deadline, "finish", timeout) {
                Ok(Some((Received::Log(l), _))) => match l.strip_prefix("vmm-error ") {
                    Some(w) => ended = Some(VmError::from_wire(w).unwrap_or_else(|| VmError::VmmProcess(format!("unreadable error line from the VMM: {w}")))),
                    None if l.starts_with("vmm ") => {}
                    None => out.logs.push(l),
                },
                Ok(Some((Received::Result(r), _))) => out.results.push(r),
                Ok(Some((Received::Probe { id, result, evidence }, _))) => out.probes.push(ProbeLine { id, result, evidence }),
                Ok(Some((Received::Ready { .. }, _))) => {}
                Ok(None) => break,
                // An ABORT line ends the channel with an error: what ended the
                // guest was reported just before it.
                Err(e) => {
                    if ended.is_none() {
                        ended = Some(VmError::VmmProcess(e.to_string()));
                    }
                    break;
                }
            }
        }
        let _ = child.kill_and_reap();
        let logs = out.logs.clone();
        match ended {
            Some(e) => (Err(e), logs),
            None => (Ok(out), logs),
        }
    }
}

/// A ready guest in its own VMM process.
pub struct VmmProcessInstance {
    /// The VMM process, as an [`Instance`].
    pub instance: ChildInstance,
    /// Host address ranges of the guest RAM inside the VMM process.
    pub guest_ram: Vec<(u64, u64)>,
}

impl Instance for VmmProcessInstance {
    fn boot(&self) -> &Boot {
        self.instance.boot()
    }
    fn pids(&self) -> Vec<i32> {
        self.instance.pids()
    }
    fn vmm_memory(&self) -> Option<Result<VmmMemory>> {
        let Some(pid) = self.instance.child.pid() else {
            return Some(Err(VmError::VmmProcess("the VMM process has exited".into()).into()));
        };
        Some(
            smaps::split(pid.as_raw(), &self.guest_ram)
                .map(|s| VmmMemory { rss_excl_guest: s.outside().rss, pss_excl_guest: s.outside().pss, guest_ram_rss: s.in_ranges.rss })
                .map_err(|e| LaunchError::Vm(format!("reading the VMM process's smaps: {e}"))),
        )
    }
    fn finish(&mut self) -> Result<Finished> {
        self.instance.finish()
    }
    fn stop(self: Box<Self>) -> Result<f64> {
        Box::new(self.instance).stop()
    }
}

/// Parses `LOG vmm guest_ram=<hex>+<hex> ... boot started=<ns> start=<ns> <phase>=<ns>...`:
/// guest RAM host ranges, and named monotonic-ns boot marks.
type VmmLog = (Vec<(u64, u64)>, Vec<(String, u64)>);

fn parse_vmm_log(l: &str) -> Option<VmmLog> {
    let rest = l.strip_prefix("vmm ")?;
    let mut ram = Vec::new();
    let mut marks = Vec::new();
    let mut in_boot = false;
    for tok in rest.split(' ') {
        if tok == "boot" {
            in_boot = true;
            continue;
        }
        let (k, v) = tok.split_once('=')?;
        if !in_boot && k == "guest_ram" {
            let (a, n) = v.split_once('+')?;
            ram.push((u64::from_str_radix(a, 16).ok()?, u64::from_str_radix(n, 16).ok()?));
        } else if in_boot {
            marks.push((k.to_string(), v.parse().ok()?));
        }
    }
    Some((ram, marks))
}

impl Platform for VmBarePlatform {
    fn info(&self) -> &'static PlatformInfo {
        &INFO
    }
    fn available(&self) -> std::result::Result<(), Unavailable> {
        versus_vmm::vm::available().map_err(Unavailable::NoKvm)?;
        image().map_err(|e| Unavailable::Missing(e.to_string()))?;
        let bin = self.program.path();
        if !bin.is_file() {
            return Err(Unavailable::Missing(format!("the VMM binary {} does not exist (unset VERSUS_VMM to use the embedded one)", bin.display())));
        }
        Ok(())
    }
    fn notes(&self) -> Vec<String> {
        let mut n = common_notes();
        n.push("the VMM is its own process (versus-vmm, static), started like every host child of versus (vfork-like clone + execve): boot includes that (phase vmm_spawn); mem.host is that process's PSS, mem.vmm its resident memory outside guest RAM, mem.cgroup the charge of its own memory cgroup (guest RAM and KVM's kernel memory included)".into());
        n.push("interference: the neighbour VM has one vCPU, and its VMM process a one-CPU quota (cpu cgroup), as a container neighbour".into());
        n
    }
    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        Ok(Box::new(self.launch_process(spec)?))
    }
    fn extra_probes(&self, timeout: Duration) -> Vec<ProbeLine> {
        super::probes::vmm_probes(|a| self.run_attempt(a, timeout))
    }
    fn attack_surface(&self) -> AttackSurface {
        SURFACE
    }
    fn storage(&self) -> Vec<Storage> {
        let img = self.image_file.get_or_init(|| EmbeddedProgram::write("vm-bare-guest.elf", super::BARE_BINARY).ok());
        img.as_ref().map(|p| vec![Storage::Shared(vec![p.path()])]).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_vmm_log() {
        let (ram, marks) = parse_vmm_log("vmm guest_ram=7f0000000000+600000 boot started=5 start=7 vm_create=9 ready=12").unwrap();
        assert_eq!(ram, vec![(0x7f00_0000_0000, 0x60_0000)]);
        assert_eq!(marks[1], ("start".to_string(), 7));
        assert!(parse_vmm_log("something else").is_none());
    }
}
