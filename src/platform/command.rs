//! Running a peer's own commands (an OCI runtime's `create` and `start`,
//! `podman`, QEMU's helpers) with a bound: the exit is awaited on a pidfd,
//! so a phase timed around a command ends when the command does, not at the
//! next tick of a polling loop; the wait gives up at a deadline (the command
//! is then killed and reaped) and when the user interrupts.

use std::fs::File;
use std::io::{Read, Seek};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::{LaunchError, Result};
use crate::measure::clock::now_ns;

/// How often a wait wakes up to look at the interrupt flag.
const SLICE: Duration = Duration::from_millis(50);

/// A command line in words, for errors (program and arguments, space-joined).
pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1;
    // no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether a wait gives up when the user interrupts. Clean-up commands
/// (`delete`, `podman rm`) must run to their end even then: an interrupt is
/// exactly when they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnInterrupt {
    Stop,
    Continue,
}

/// Waits for `child` to exit, up to `deadline`. Returns its status and the
/// monotonic ns at which its exit was seen. On timeout or interrupt the
/// child is killed and reaped, and the error says which (`what` names what
/// was awaited).
pub fn wait_child(child: &mut Child, deadline: Instant, what: &'static str, timeout: Duration) -> Result<(ExitStatus, u64)> {
    wait_child_with(child, deadline, what, timeout, OnInterrupt::Stop)
}

/// [`wait_child`], saying whether an interrupt ends the wait.
pub fn wait_child_with(child: &mut Child, deadline: Instant, what: &'static str, timeout: Duration, on: OnInterrupt) -> Result<(ExitStatus, u64)> {
    let pidfd = pidfd_open(child.id());
    loop {
        if let Some(st) = child.try_wait().map_err(|e| LaunchError::io(format!("waiting for {what}"), e))? {
            return Ok((st, now_ns()));
        }
        if on == OnInterrupt::Stop && crate::interrupt::requested() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LaunchError::Interrupted);
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LaunchError::Timeout { what, after: timeout });
        }
        let slice = (deadline - now).min(SLICE);
        match &pidfd {
            Some(fd) => {
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                let ms = PollTimeout::try_from(slice.as_millis().max(1) as i32).unwrap_or(PollTimeout::MAX);
                match poll(&mut fds, ms) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(LaunchError::sys(format!("waiting for {what}"), e)),
                }
            }
            // Kernels before 5.3 have no pidfd: poll the status.
            None => std::thread::sleep(slice.min(Duration::from_micros(200))),
        }
    }
}

/// What a finished command printed, and how it ended.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Monotonic ns at which its exit was seen.
    pub exited_ns: u64,
    /// The command line (for errors).
    pub command: String,
}

impl Output {
    /// `Ok(self)` when it exited with status 0, else the error naming the
    /// command, its status and the end of its stderr.
    pub fn success(self) -> Result<Output> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(self.error())
        }
    }

    /// The error for this command having failed.
    pub fn error(&self) -> LaunchError {
        LaunchError::PeerCommand { command: self.command.clone(), status: status_words(&self.status), stderr: self.stderr.clone() }
    }
}

/// An exit status in words.
pub fn status_words(s: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown status".into(),
    }
}

fn read_back(mut f: File) -> String {
    let mut s = String::new();
    let _ = f.rewind();
    let mut b = Vec::new();
    if f.read_to_end(&mut b).is_ok() {
        s = String::from_utf8_lossy(&b).into_owned();
    }
    s
}

/// Runs `cmd` to completion (standard input from /dev/null, standard
/// output and error captured in anonymous files, so nothing blocks when it
/// prints a lot or leaves a process holding them), bounded by `timeout`; an
/// interrupt stops it.
pub fn run(cmd: Command, timeout: Duration, what: &'static str) -> Result<Output> {
    run_with(cmd, timeout, what, OnInterrupt::Stop)
}

/// [`run`] for clean-up: an interrupt does not stop it (the timeout does).
pub fn run_cleanup(cmd: Command, timeout: Duration, what: &'static str) -> Result<Output> {
    run_with(cmd, timeout, what, OnInterrupt::Continue)
}

fn run_with(mut cmd: Command, timeout: Duration, what: &'static str, on: OnInterrupt) -> Result<Output> {
    let command = display(&cmd);
    let out = tempfile::tempfile().map_err(|e| LaunchError::io("creating a temp file for a command's output", e))?;
    let err = tempfile::tempfile().map_err(|e| LaunchError::io("creating a temp file for a command's errors", e))?;
    let (out2, err2) = (
        out.try_clone().map_err(|e| LaunchError::io("duplicating a temp file", e))?,
        err.try_clone().map_err(|e| LaunchError::io("duplicating a temp file", e))?,
    );
    cmd.stdin(Stdio::null()).stdout(Stdio::from(out2)).stderr(Stdio::from(err2));
    let mut child = {
        let _fork = crate::workload::fork_guard();
        cmd.spawn().map_err(|e| LaunchError::io(format!("starting `{command}`"), e))?
    };
    drop(cmd);
    let (status, exited_ns) = wait_child_with(&mut child, Instant::now() + timeout, what, timeout, on)?;
    Ok(Output { status, stdout: read_back(out), stderr: read_back(err), exited_ns, command })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_bounded_and_captures() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let o = run(c, Duration::from_secs(10), "sh").unwrap();
        assert_eq!((o.stdout.trim(), o.stderr.trim(), o.status.code()), ("out", "err", Some(3)));
        let e = o.success().unwrap_err().to_string();
        assert!(e.contains("sh -c") && e.contains("exit status 3") && e.contains("err"), "{e}");
        let mut c = Command::new("sleep");
        c.arg("10");
        match run(c, Duration::from_millis(100), "sleep") {
            Err(LaunchError::Timeout { what: "sleep", .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}
