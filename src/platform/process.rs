//! `process`: the workload program started as a plain host process, no
//! isolation. The baseline every overhead is measured against. It is
//! started the way every host child of versus is ([`super::spawn`]: a
//! vfork-like clone, as posix_spawn does), without namespaces; in a cgroup
//! of its own only when a measurement asks for one
//! ([`LaunchSpec::cgroup`]).

use crate::error::{LaunchError, Result};
use crate::measure::clock::now_ns;
use crate::measure::Boot;
use crate::platform::cgroup::Controls;
use crate::platform::child::{spawn_program, ChildInstance};
use crate::platform::spawn::{Environment, Program};
use crate::platform::{Group, Guest, Instance, Isolation, LaunchSpec, MemoryAccounting, Platform, PlatformInfo, Storage, Unavailable};
use crate::workload::EmbeddedProgram;

/// The fd number the workload reads its channel from, in every platform
/// that runs it as a Linux program.
pub const CHANNEL_FD: i32 = 3;

/// The baseline.
pub const INFO: PlatformInfo = PlatformInfo {
    name: "process",
    article: "a plain process",
    summary: "the workload program as a plain host process (vfork-like clone + exec, as posix_spawn): the baseline",
    colour: (0x55, 0x55, 0x55),
    group: Group::Versus,
    isolation: Isolation::None,
    guest: Guest::HostKernel,
    memory: MemoryAccounting::OwnProcesses,
    baseline: true,
};

/// The registry's constructor.
pub fn create(_: &crate::platform::registry::PlatformOptions) -> std::result::Result<Box<dyn Platform>, Unavailable> {
    Ok(Box::new(ProcessPlatform::new().map_err(|e| Unavailable::Host(e.to_string()))?))
}

pub struct ProcessPlatform {
    guest: EmbeddedProgram,
}

impl ProcessPlatform {
    pub fn new() -> Result<ProcessPlatform> {
        Ok(ProcessPlatform { guest: EmbeddedProgram::guest().map_err(|e| LaunchError::io("writing the workload program to a temp dir", e))? })
    }
}

impl Platform for ProcessPlatform {
    fn info(&self) -> &'static PlatformInfo {
        &INFO
    }
    /// Always: its cgroup, when a measurement asks for one, is checked at
    /// that launch (the error names the missing controller).
    fn available(&self) -> std::result::Result<(), Unavailable> {
        Ok(())
    }
    fn storage(&self) -> Vec<Storage> {
        vec![Storage::Shared(vec![self.guest.path()])]
    }
    /// Its OS is the host's: its userland is patched once, on the host.
    fn image_mode(&self) -> crate::platform::ImageMode {
        crate::platform::ImageMode::HostRoot
    }
    fn notes(&self) -> Vec<String> {
        vec![
            "call: one getpid() system call per round trip".into(),
            "no isolation, no limits: the baseline; started with a vfork-like clone (CLONE_VM | CLONE_VFORK, as posix_spawn) and execve, like every host child of versus (CLONE_VM alone when a thread of versus makes its cgroup meanwhile, as a container's)".into(),
            "a cgroup of its own only where a measurement asks for one: memory accounting (mem.cgroup) for the memory and density measurements, without a limit; a one-CPU quota for the interference neighbours, as a container's".into(),
        ]
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        spec.refuse_root("process")?;
        let start = now_ns();
        let args = ["--fd".to_string(), CHANNEL_FD.to_string()].into_iter().chain(spec.guest_args());
        let program = Program::new(self.guest.path(), args, Environment::inherited()?)?;
        let (mut child, _) = spawn_program(&program, CHANNEL_FD, "the workload program", spec.timeout, Controls::needs(spec.cgroup, &spec.limits))?;
        let (ready_ns, started) = child.wait_ready()?;
        let started = started.unwrap_or(ready_ns);
        let boot = Boot::from_marks(start, &[("spawn", started), ("ready", ready_ns)]);
        Ok(Box::new(ChildInstance { child, boot }))
    }
}
