//! Errors a launch can end with. Each message says what happened and, where
//! the user can do something about it, what to do.

use std::path::PathBuf;
use std::time::Duration;

use versus_vmm::VmError;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("this platform cannot run on this host: {0}")]
    Unsupported(String),

    #[error("not running as root and unprivileged user namespaces are disabled: run versus as root, or enable them (sysctl kernel.unprivileged_userns_clone=1 / user.max_user_namespaces)")]
    NoUserNamespaces,

    #[error(
        "cgroup controller `{controller}` is not available at {path}: mount it (cgroup v1) or enable it in cgroup.subtree_control (v2), or run without limits"
    )]
    MissingCgroupController { controller: String, path: PathBuf },

    #[error("cannot set up the instance's cgroup at {path}: {source}; run as root or delegate a writable cgroup to this user")]
    Cgroup { path: PathBuf, source: std::io::Error },

    #[error("the launched child's set-up failed at step `{step}`: {errno}")]
    ChildSetup { step: &'static str, errno: nix::errno::Errno },

    #[error("the workload crashed before finishing ({status}){}", fmt_stderr(.stderr))]
    Crashed { status: String, stderr: String },

    #[error("the workload was killed by the out-of-memory killer: it exceeded the instance's memory limit of {limit_bytes} bytes")]
    OomKilled { limit_bytes: u64 },

    #[error("the workload did not {what} within {after:?}; it was killed (raise --timeout if it is just slow)")]
    Timeout { what: &'static str, after: Duration },

    #[error("the workload aborted: {0}")]
    Aborted(String),

    #[error("the workload sent a line that is not part of the protocol: {line:?} ({reason})")]
    Protocol { line: String, reason: String },

    #[error("interrupted")]
    Interrupted,

    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },

    #[error("{context}: {source}")]
    Sys { context: String, source: nix::errno::Errno },

    #[error("virtual machine error: {0}")]
    Vm(String),

    /// A KVM guest ended with a VMM-detected error (exit kind, port or
    /// address, guest RIP): see [`versus_vmm::VmError`].
    #[error(transparent)]
    VmGuest(Box<VmError>),
}

fn fmt_stderr(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        String::new()
    } else {
        let tail: String = s.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join(" | ");
        format!("; its stderr ends: {tail}")
    }
}

impl LaunchError {
    /// An I/O error with what versus was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LaunchError::Io { context: context.into(), source }
    }
    /// A failed system call with what versus was doing.
    pub fn sys(context: impl Into<String>, source: nix::errno::Errno) -> Self {
        LaunchError::Sys { context: context.into(), source }
    }
}

impl From<VmError> for LaunchError {
    fn from(e: VmError) -> LaunchError {
        match e {
            VmError::Timeout { what, after } => LaunchError::Timeout { what, after },
            VmError::Aborted(s) => LaunchError::Aborted(s),
            VmError::Protocol { line, reason } => LaunchError::Protocol { line, reason },
            VmError::Interrupted => LaunchError::Interrupted,
            other => LaunchError::VmGuest(Box::new(other)),
        }
    }
}

/// Shorthand used across the launchers.
pub type Result<T, E = LaunchError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_errors_become_launch_errors() {
        let l: LaunchError = VmError::Shutdown { rip: 0x42 }.into();
        assert!(matches!(&l, LaunchError::VmGuest(b) if matches!(**b, VmError::Shutdown { rip: 0x42 })));
        assert!(l.to_string().contains("triple fault"));
        let l: LaunchError = VmError::Timeout { what: "signal ready", after: Duration::from_millis(5) }.into();
        assert!(matches!(l, LaunchError::Timeout { what: "signal ready", .. }));
    }
}
