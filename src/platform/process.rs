//! `process`: plain fork+exec of the workload program, no isolation. The
//! baseline every overhead is measured against.

use std::process::Command;

use crate::error::{LaunchError, Result};
use crate::measure::clock::now_ns;
use crate::measure::Boot;
use crate::platform::child::{spawn_program, ChildInstance};
use crate::platform::{Group, Guest, Instance, Isolation, LaunchSpec, MemoryAccounting, Platform, PlatformInfo, Storage, Unavailable};
use crate::workload::EmbeddedProgram;

/// The fd number the workload reads its channel from, in every platform
/// that runs it as a Linux program.
pub const CHANNEL_FD: i32 = 3;

/// The baseline.
pub const INFO: PlatformInfo = PlatformInfo {
    name: "process",
    article: "a plain process",
    summary: "plain fork+exec of the workload program: the baseline",
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
    fn available(&self) -> std::result::Result<(), Unavailable> {
        Ok(())
    }
    fn storage(&self) -> Vec<Storage> {
        vec![Storage::Shared(vec![self.guest.path()])]
    }
    fn notes(&self) -> Vec<String> {
        vec!["call: one getpid() system call per round trip".into(), "no isolation, no limits: the baseline".into()]
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        let start = now_ns();
        let mut cmd = Command::new(self.guest.path());
        cmd.arg("--fd").arg(CHANNEL_FD.to_string()).args(spec.guest_args());
        let mut child = spawn_program(cmd, CHANNEL_FD, "the workload program", spec.timeout)?;
        let (ready_ns, started) = child.wait_ready()?;
        let started = started.unwrap_or(ready_ns);
        let boot = Boot::from_marks(start, &[("spawn", started), ("ready", ready_ns)]);
        Ok(Box::new(ChildInstance { child, boot }))
    }
}
