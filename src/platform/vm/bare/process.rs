//! `vm-bare`: the kernel-less guest with one VMM process per instance
//! (`versus-vmm`, harness/vmm, linked statically and embedded by build.rs):
//! the Firecracker model, and the same footing as `process` and
//! `container` (one new host process per instance). Boot includes the VMM
//! process's spawn (phase `vmm_spawn`); memory is that process's PSS (guest
//! RAM it touched included) and `mem.vmm` its resident memory outside the
//! guest-RAM mapping, as Firecracker measures its overhead.

use std::path::Path;
use std::time::{Duration, Instant};

use super::probes::Attempt;
use super::{common_notes, guest_run_of, image, GuestRun, INFO, SURFACE};
use crate::channel::Received;
use crate::error::Result;
use crate::measure::clock::now_ns;
use crate::measure::Boot;
use crate::model::ProbeLine;
use crate::platform::cgroup::Controls;
use crate::platform::child::ChildWorkload;
use crate::platform::registry::PlatformOptions;
use crate::platform::vm::vmm_process::{vmm_binary, VmmBinary, VmmLog, VmmProcessInstance};
use crate::platform::{AttackSurface, Finished, Instance, LaunchSpec, Platform, PlatformInfo, Storage, Unavailable};
use crate::workload::EmbeddedProgram;
use versus_vmm::VmError;

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

    /// Starts a `versus-vmm` process running `run` (`ksm`: its guest RAM
    /// mergeable by KSM, `versus-vmm --ksm`).
    fn spawn(&self, run: GuestRun, timeout: Duration, controls: Option<Controls>, ksm: bool) -> Result<ChildWorkload> {
        let ksm = ksm.then(|| "--ksm".to_string());
        self.program.spawn(ksm.into_iter().chain([run.mode.to_string(), run.param.to_string()]), timeout, controls)
    }

    /// Launches one guest in a fresh `versus-vmm` process and waits for READY.
    pub fn launch_process(&self, spec: &LaunchSpec) -> Result<VmmProcessInstance> {
        // Refuse what the kernel-less guest cannot run before spawning.
        let run = guest_run_of(&spec.workload)?;
        let start = now_ns();
        let mut child = self.spawn(run, spec.timeout, Controls::needs(spec.cgroup, &spec.limits), spec.ksm_merge)?;
        let deadline = Instant::now() + spec.timeout;
        let mut vmm = VmmLog::default();
        let ready_ns = loop {
            match child.channel.recv(deadline, "signal ready", spec.timeout)? {
                Some((Received::Ready { .. }, t)) => break t,
                Some((Received::Log(l), _)) => {
                    vmm.absorb(&l);
                }
                Some(_) => {}
                None => return Err(child.crash_error("the VMM process exited before the guest signalled ready")),
            }
        };
        let mut m: Vec<(&'static str, u64)> = vec![("vmm_spawn", vmm.mark("start").unwrap_or(start))];
        for p in super::PHASES {
            if p == "ready" {
                m.push(("ready", ready_ns));
            } else if let Some(t) = vmm.mark(p) {
                m.push((p, t));
            }
        }
        let boot = Boot::from_marks(start, &m);
        Ok(VmmProcessInstance::new(child, boot, vmm.guest_ram))
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

impl Platform for VmBarePlatform {
    fn info(&self) -> &'static PlatformInfo {
        &INFO
    }
    fn available(&self) -> std::result::Result<(), Unavailable> {
        versus_vmm::vm::available().map_err(Unavailable::NoKvm)?;
        image().map_err(|e| Unavailable::Missing(e.to_string()))?;
        match self.program.missing() {
            Some(why) => Err(Unavailable::Missing(why)),
            None => Ok(()),
        }
    }
    fn notes(&self) -> Vec<String> {
        let mut n = common_notes();
        n.push("the VMM is its own process (versus-vmm, static), started like every host child of versus (vfork-like clone + execve): boot includes that (phase vmm_spawn); mem.host is that process's PSS, mem.vmm its resident memory outside guest RAM, mem.cgroup the charge of its own memory cgroup (guest RAM and KVM's kernel memory included)".into());
        n.push("interference: the neighbour VM has one vCPU, and its VMM process a one-CPU quota (cpu cgroup), as a container neighbour".into());
        n
    }
    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        spec.refuse_root("vm-bare")?;
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
    /// A VM disk per instance, which the kernel-less guest does not read
    /// (it has no file system): its disk rows and disk patching are real,
    /// its restarts are vm-bare's own.
    fn image_mode(&self) -> crate::platform::ImageMode {
        crate::platform::ImageMode::Disk { boots: false }
    }
}
