//! `vm-bare-inproc`: the kernel-less guest with its VMM inside the versus
//! process (the Hyperlight model): versus' types around
//! [`versus_vmm::bare::BareVm`] (boot phases, parsed results), the
//! [`Platform`], and a stress guest on a vCPU thread of its own.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::probes::Attempt;
use super::{common_notes, finished_of, guest_run_of, image, GuestRun, StopHandle, INPROC_INFO, SURFACE};
use crate::error::{LaunchError, Result};
use crate::measure::Boot;
use crate::model::ProbeLine;
use crate::platform::registry::PlatformOptions;
use crate::platform::{AttackSurface, Finished, Instance, LaunchSpec, Platform, PlatformInfo, Storage, Unavailable};
use crate::workload::EmbeddedProgram;
use versus_vmm::{vm, VmError};

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
        BareVm::launch_with(run, timeout, versus_vmm::memory::RamOptions::default())
    }

    /// [`BareVm::launch`] with the guest RAM mapped as `ram` says.
    pub fn launch_with(run: GuestRun, timeout: Duration, ram: versus_vmm::memory::RamOptions) -> std::result::Result<BareVm, VmError> {
        let vm = versus_vmm::bare::BareVm::launch_with(run, timeout, ram)?;
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

/// `vm-bare-inproc`: the VMM in the versus process.
#[derive(Default)]
pub struct VmBareInprocPlatform {
    /// The guest image written out for the footprint, removed with the platform.
    image_file: OnceLock<Option<EmbeddedProgram>>,
}

impl VmBareInprocPlatform {
    pub fn new() -> VmBareInprocPlatform {
        VmBareInprocPlatform::default()
    }
}

/// The registry's constructor.
pub fn create_inproc(_: &PlatformOptions) -> std::result::Result<Box<dyn Platform>, Unavailable> {
    Ok(Box::new(VmBareInprocPlatform::new()))
}

/// A ready bare guest.
pub struct BareInstance {
    vm: Option<BareVm>,
    boot: Boot,
    running: Option<Running>,
}

impl Platform for VmBareInprocPlatform {
    fn info(&self) -> &'static PlatformInfo {
        &INPROC_INFO
    }
    fn available(&self) -> std::result::Result<(), Unavailable> {
        vm::available().map_err(Unavailable::NoKvm)?;
        image().map(|_| ()).map_err(|e| Unavailable::Missing(e.to_string()))
    }
    fn notes(&self) -> Vec<String> {
        let mut n = common_notes();
        n.push("the VMM runs inside the versus process (no process per instance): mem.host is the growth of versus' PSS across the launch".into());
        n
    }
    fn extra_probes(&self, timeout: Duration) -> Vec<ProbeLine> {
        super::probes::vmm_probes(|a| run_attempt(a, timeout))
    }
    fn attack_surface(&self) -> AttackSurface {
        SURFACE
    }
    fn storage(&self) -> Vec<Storage> {
        let img = self.image_file.get_or_init(|| EmbeddedProgram::write("vm-bare-guest.elf", super::BARE_BINARY).ok());
        img.as_ref().map(|p| vec![Storage::Shared(vec![p.path()])]).unwrap_or_default()
    }
    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        spec.refuse_root("vm-bare-inproc")?;
        let run = guest_run_of(&spec.workload)?;
        let vm = BareVm::launch_with(run, spec.timeout, versus_vmm::memory::RamOptions { mergeable: spec.ksm_merge })?;
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
    /// The VMM is this process: its memory is versus' own growth.
    fn pids(&self) -> Vec<i32> {
        vec![std::process::id() as i32]
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

/// Runs one probe attempt in a fresh in-process guest (everything is freed
/// before return): how the guest ended and what it logged.
pub fn run_attempt(a: &Attempt, timeout: Duration) -> (std::result::Result<Finished, VmError>, Vec<String>) {
    let mut vm = match BareVm::launch(a.run, timeout) {
        Ok(vm) => vm,
        Err(e) => return (Err(e), Vec::new()),
    };
    let r = vm.finish();
    let logs = vm.log_lines();
    (r, logs)
}
