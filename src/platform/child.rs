//! A workload running as a host child process (directly, as the pid 1 of a
//! container, or a VMM process): its channel, its standard error, its stop
//! pipe, its cgroup, waiting and reaping. Shared by every platform that
//! starts host processes; they start them with [`super::spawn`].

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::channel::{Channel, Received};
use crate::error::{LaunchError, Result};
use crate::measure::clock::now_ns;
use crate::measure::Boot;
use crate::platform::cgroup::{self, Cgroup, Controls};
use crate::platform::spawn::{self, ChildStatus, Program, Spawn};
use crate::platform::{Finished, Instance, ProbeLine};

/// Starts `program` (a program speaking the workload protocol, e.g. the
/// workload program or `versus-vmm`) as a plain host child: no namespaces,
/// the channel as fd `channel_fd`, in a cgroup of its own when `controls`
/// asks for one (see [`Controls::needs`]). Returns once it has exec'd,
/// with its timestamps. `what` names the program in errors.
pub fn spawn_program(program: &Program, channel_fd: i32, what: &str, timeout: Duration, controls: Option<Controls>) -> Result<(ChildWorkload, ChildStatus)> {
    let cgroup = match controls {
        Some(c) => {
            let (mode, available) = cgroup::host_mode();
            Cgroup::check(*mode, available, &c)?;
            Some(Cgroup::plan(*mode, &cgroup::instance_name(), &c)?)
        }
        None => None,
    };
    let req = Spawn { program, namespaces: nix::sched::CloneFlags::empty(), cgroup, setup: None, wait_for_parent: false, channel_fd, timeout, what };
    spawn::spawn(req)?.wait_exec()
}

/// Starts a peer's command line (`podman run`, QEMU) through the same
/// clone primitive as [`spawn_program`]: its program (an absolute path) and
/// arguments, versus' environment with the variables the command sets.
pub fn spawn_command(
    cmd: &std::process::Command,
    channel_fd: i32,
    what: &str,
    timeout: Duration,
    controls: Option<Controls>,
) -> Result<(ChildWorkload, ChildStatus)> {
    let set: Vec<(String, String)> =
        cmd.get_envs().filter_map(|(k, v)| Some((k.to_str()?.to_string(), v.and_then(|v| v.to_str()).unwrap_or_default().to_string()))).collect();
    let pairs: Vec<(&str, &str)> = set.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let env = spawn::Environment::new(spawn::inherited_env(&pairs))?;
    let program = Program::new(cmd.get_program(), cmd.get_args(), &env)?;
    spawn_program(&program, channel_fd, what, timeout, controls)
}

/// A launched child. Dropping it kills and reaps it.
pub struct ChildWorkload {
    pid: Option<Pid>,
    pub channel: Channel,
    stderr: Option<File>,
    /// The child's standard input; closing it asks an `idle` workload to stop.
    control: Option<OwnedFd>,
    pub timeout: Duration,
    /// When the spawn began: READY is due `timeout` after it, so the set-up
    /// before the exec counts against the timeout as it counts in boot.
    spawned: Instant,
    exit: Option<WaitStatus>,
    /// The child's own cgroup, removed once the child is reaped (on drop
    /// too: fields drop after [`Drop::drop`] has reaped it).
    cgroup: Option<Cgroup>,
}

impl ChildWorkload {
    pub fn new(pid: Pid, channel: Channel, stderr: OwnedFd, control: OwnedFd, timeout: Duration, spawned: Instant) -> ChildWorkload {
        // Non-blocking so a crash report never waits on a child that holds
        // its stderr open.
        let _ = nix::fcntl::fcntl(&stderr, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
        ChildWorkload { pid: Some(pid), channel, stderr: Some(File::from(stderr)), control: Some(control), timeout, spawned, exit: None, cgroup: None }
    }

    /// Gives the child's cgroup to this handle, which removes it after
    /// reaping the child.
    pub fn with_cgroup(mut self, cgroup: Option<Cgroup>) -> ChildWorkload {
        self.cgroup = cgroup;
        self
    }

    /// The child's own cgroup, while it exists.
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    pub fn pid(&self) -> Option<Pid> {
        self.pid
    }

    /// Whatever the child wrote to stderr so far (bounded).
    pub fn stderr_text(&mut self) -> String {
        let mut out = Vec::new();
        if let Some(f) = self.stderr.as_mut() {
            let mut buf = [0u8; 4096];
            while out.len() < 64 * 1024 {
                match f.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Waits for READY; returns (host receive ns, workload's `started` ns).
    pub fn wait_ready(&mut self) -> Result<(u64, Option<u64>)> {
        let deadline = self.spawned + self.timeout;
        loop {
            match self.channel.recv(deadline, "signal ready", self.timeout)? {
                Some((Received::Ready { started_ns, .. }, t)) => return Ok((t, started_ns)),
                Some(_) => continue,
                None => return Err(self.crash_error("exited before signalling ready")),
            }
        }
    }

    /// The next `RESULT` of a workload that keeps running after sending it
    /// (`image-check`), within `timeout`.
    pub fn next_result(&mut self, timeout: Duration) -> Result<crate::workload::WorkloadResult> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.channel.recv(deadline, "report its result", timeout)? {
                Some((Received::Result(r), _)) => return Ok(r),
                Some(_) => continue,
                None => return Err(self.crash_error("exited before reporting its result")),
            }
        }
    }

    /// Reads reports until the workload closes its channel, then reaps it.
    pub fn finish(&mut self) -> Result<Finished> {
        let deadline = Instant::now() + self.timeout;
        let mut out = Finished::default();
        while let Some((msg, _)) = self.channel.recv(deadline, "finish", self.timeout)? {
            match msg {
                Received::Result(r) => out.results.push(r),
                Received::Probe { id, result, evidence } => out.probes.push(ProbeLine { id, result, evidence }),
                Received::Log(l) => out.logs.push(l),
                Received::Ready { .. } => {}
            }
        }
        let status = self.wait_exit(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100)))?;
        match status {
            WaitStatus::Exited(_, 0) => Ok(out),
            _ => Err(self.crash_error("exited abnormally")),
        }
    }

    /// The error for a child that ended early: its exit status and stderr.
    pub fn crash_error(&mut self, what: &str) -> LaunchError {
        let status = match self.wait_exit(Duration::from_secs(2)) {
            Ok(s) => describe(&s),
            Err(e) => format!("{what}; {e}"),
        };
        LaunchError::Crashed { status: format!("{what}: {status}"), stderr: self.stderr_text() }
    }

    /// The exit status, if the child has been reaped.
    pub fn exit_status(&self) -> Option<WaitStatus> {
        self.exit
    }

    /// Waits up to `limit` for the child to exit and reaps it.
    pub fn wait_exit(&mut self, limit: Duration) -> Result<WaitStatus> {
        if let Some(s) = self.exit {
            return Ok(s);
        }
        let Some(pid) = self.pid else {
            return Err(LaunchError::Vm("no child to wait for".into()));
        };
        let deadline = Instant::now() + limit;
        let mut nap = Duration::from_micros(50);
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => {}
                Ok(s) => {
                    self.exit = Some(s);
                    self.pid = None;
                    return Ok(s);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(LaunchError::sys("waiting for the workload", e)),
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::Timeout { what: "exit", after: limit });
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(5));
        }
    }

    /// Stops the child: closes its standard input (an `idle` workload exits
    /// on end of file), waits `grace`, then SIGKILLs it and reaps it; then
    /// removes its cgroup.
    pub fn stop(&mut self, grace: Duration) -> Result<()> {
        self.control = None;
        if self.pid.is_some() && self.wait_exit(grace).is_err() {
            self.kill_and_reap()?;
        }
        if let Some(mut cg) = self.cgroup.take() {
            cg.remove()?;
        }
        Ok(())
    }

    /// SIGKILL and reap (no-op once reaped).
    pub fn kill_and_reap(&mut self) -> Result<()> {
        if let Some(pid) = self.pid {
            let _ = kill(pid, Signal::SIGKILL);
            self.wait_exit(Duration::from_secs(10))?;
        }
        Ok(())
    }
}

impl Drop for ChildWorkload {
    fn drop(&mut self) {
        let _ = self.kill_and_reap();
    }
}

/// An instance that is one host child process (the workload program as a
/// plain process, or a VMM process) and its boot timing.
pub struct ChildInstance {
    pub child: ChildWorkload,
    pub boot: Boot,
}

impl Instance for ChildInstance {
    fn boot(&self) -> &Boot {
        &self.boot
    }
    fn pids(&self) -> Vec<i32> {
        self.child.pid().map(|p| p.as_raw()).into_iter().collect()
    }
    fn read_result(&mut self, timeout: Duration) -> Result<crate::workload::WorkloadResult> {
        self.child.next_result(timeout)
    }
    fn finish(&mut self) -> Result<Finished> {
        self.child.finish()
    }
    fn stop(mut self: Box<Self>) -> Result<f64> {
        let t = now_ns();
        self.child.stop(self.child.timeout)?;
        Ok((now_ns() - t) as f64 / 1e6)
    }
}

/// A wait status in words.
pub fn describe(s: &WaitStatus) -> String {
    match s {
        WaitStatus::Exited(_, c) => format!("exit status {c}"),
        WaitStatus::Signaled(_, sig, core) => format!("killed by {sig}{}", if *core { " (core dumped)" } else { "" }),
        other => format!("{other:?}"),
    }
}
