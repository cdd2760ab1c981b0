//! `process`: plain fork+exec of the workload program, no isolation. The
//! baseline every overhead is measured against.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::fcntl::OFlag;
use nix::unistd::{pipe2, Pid};

use crate::channel::Channel;
use crate::error::{LaunchError, Result};
use crate::measure::clock::now_ns;
use crate::measure::Boot;
use crate::platform::child::{ChildInstance, ChildWorkload};
use crate::platform::{Instance, LaunchSpec, Platform};
use crate::workload::GuestProgram;

/// The fd number the workload reads its channel from, in every platform
/// that runs it as a Linux program.
pub const CHANNEL_FD: i32 = 3;

pub struct ProcessPlatform {
    guest: GuestProgram,
}

impl ProcessPlatform {
    pub fn new() -> Result<ProcessPlatform> {
        Ok(ProcessPlatform { guest: GuestProgram::materialize().map_err(|e| LaunchError::io("writing the workload program to a temp dir", e))? })
    }
}

impl Platform for ProcessPlatform {
    fn name(&self) -> &'static str {
        "process"
    }
    fn available(&self) -> std::result::Result<(), String> {
        Ok(())
    }
    fn notes(&self) -> Vec<String> {
        vec!["call: one getpid() system call per round trip".into(), "no isolation, no limits: the baseline".into()]
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        let start = now_ns();
        let (chan_r, chan_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| LaunchError::sys("creating the channel pipe", e))?;
        let (ctl_r, ctl_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| LaunchError::sys("creating the control pipe", e))?;
        let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| LaunchError::sys("creating the stderr pipe", e))?;
        let chan_w_raw = chan_w.as_raw_fd();
        let mut cmd = Command::new(self.guest.path());
        cmd.arg("--fd").arg(CHANNEL_FD.to_string()).args(spec.workload.guest_args());
        cmd.stdin(Stdio::from(ctl_r)).stdout(Stdio::null()).stderr(Stdio::from(err_w));
        // SAFETY: the closure runs in the forked child before exec and only
        // calls dup2, which is async-signal-safe; dup2 clears FD_CLOEXEC on
        // the new descriptor so the channel survives exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(chan_w_raw, CHANNEL_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = {
            let _fork = crate::workload::fork_guard();
            cmd.spawn().map_err(|e| LaunchError::io("starting the workload program", e))?
        };
        let pid = Pid::from_raw(child.id() as i32);
        drop(cmd);
        drop(chan_w);
        let mut child = ChildWorkload::new(pid, Channel::new(chan_r), err_r, ctl_w, spec.timeout);
        let (ready_ns, started) = child.wait_ready()?;
        let started = started.unwrap_or(ready_ns);
        let boot = Boot::from_marks(start, &[("spawn", started), ("ready", ready_ns)]);
        Ok(Box::new(ChildInstance { child, boot }))
    }
}
