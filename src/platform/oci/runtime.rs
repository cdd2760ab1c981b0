//! An OCI runtime binary: which one ([`RuntimeKind`]), where it is and the
//! version it reports ([`Runtime::detect`]), and its commands (`create`,
//! `start`, `state`, `kill`, `delete`), each bounded by a timeout.
//!
//! What each runtime needs on a host like the development one (Debian 12,
//! cgroup v1 hybrid, kvm_pvm, kernel 6.18):
//!
//! - runc 1.1.5 runs as is.
//! - crun 1.8.1 refuses the host: `cgroups in hybrid mode not supported,
//!   drop all controllers from cgroupv2` (the v2 hierarchy mounted at
//!   /sys/fs/cgroup/unified has `hugetlb`); the row is skipped with that
//!   message, found by a trial launch.
//! - youki 0.7.0 runs when built with the `v1`, `v2` and `seccomp`
//!   features (libseccomp-dev and pkg-config to build); its commands run
//!   without `RUST_BACKTRACE` (see [`Runtime::command`]).
//! - runsc (Debian's 0.0~20221219) runs with `--network=none` (its default
//!   `sandbox` network wants a network namespace prepared by the caller and
//!   refuses the root one: `cannot run with network enabled in root network
//!   namespace`) on the `ptrace` platform: this version has no `systrap`,
//!   and on `kvm` over kvm_pvm `create` did not return within a minute
//!   while the sandbox spun at 100% CPU. It cannot take `--preserve-fds`,
//!   so its workload speaks the protocol on its standard output; its pids
//!   limit counts the sentry's threads (17 is too few to start it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{LaunchError, Result};
use crate::platform::command::{self, Output};
use crate::platform::Unavailable;

/// The OCI runtimes versus compares against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// runc, the reference runtime (Docker, containerd, Kubernetes).
    Runc,
    /// crun, the C runtime (podman's default).
    Crun,
    /// youki, the Rust runtime.
    Youki,
    /// gVisor's runsc: the workload runs on a user-space kernel (the
    /// sentry), which alone calls the host kernel, through a seccomp filter.
    Runsc,
}

/// The runsc platform used unless `VERSUS_RUNSC_PLATFORM` names another
/// (`kvm` on a hardware-KVM host, `systrap` with a runsc from 2023 on).
pub const RUNSC_DEFAULT_PLATFORM: &str = "ptrace";

impl RuntimeKind {
    /// The program's name.
    pub fn program(self) -> &'static str {
        match self {
            RuntimeKind::Runc => "runc",
            RuntimeKind::Crun => "crun",
            RuntimeKind::Youki => "youki",
            RuntimeKind::Runsc => "runsc",
        }
    }

    /// How to install it, for the reason of a skipped row.
    pub fn install_hint(self) -> &'static str {
        match self {
            RuntimeKind::Runc => "apt-get install runc (harness/setup-test-host does)",
            RuntimeKind::Crun => "apt-get install crun (harness/setup-test-host does)",
            RuntimeKind::Youki => {
                "cargo install youki --locked --version 0.7.0 --no-default-features --features v1,v2,seccomp (harness/setup-test-host does, into ~/.cache/versus/youki)"
            }
            RuntimeKind::Runsc => "apt-get install runsc, gVisor's Debian package (harness/setup-test-host does)",
        }
    }

    /// Where it keeps the state of its containers by default (leak checks).
    pub fn state_dir(self) -> &'static Path {
        Path::new(match self {
            RuntimeKind::Runc => "/run/runc",
            RuntimeKind::Crun => "/run/crun",
            RuntimeKind::Youki => "/run/youki",
            RuntimeKind::Runsc => "/var/run/runsc",
        })
    }

    /// Whether `create` passes extra file descriptors (`--preserve-fds`):
    /// the channel is then fd 3, as for every other platform; runsc (2022)
    /// has no such option, and its workload writes to standard output.
    pub fn preserves_fds(self) -> bool {
        self != RuntimeKind::Runsc
    }

    /// The runsc platform to run on (`--platform`).
    pub fn runsc_platform() -> String {
        std::env::var("VERSUS_RUNSC_PLATFORM").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| RUNSC_DEFAULT_PLATFORM.into())
    }

    /// Options given before every command.
    pub fn global_args(self) -> Vec<String> {
        match self {
            RuntimeKind::Runsc => vec!["--network=none".into(), format!("--platform={}", Self::runsc_platform())],
            _ => Vec::new(),
        }
    }
}

/// What `state` says about a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// `creating`, `created`, `running`, `stopped`, `paused`.
    pub status: String,
    /// Its init process on the host (runsc: the sandbox), when alive.
    pub pid: Option<i32>,
}

/// Parses the JSON `state` prints.
pub fn parse_state(json: &str) -> Option<State> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let status = v.get("status")?.as_str()?.to_string();
    let pid = v.get("pid").and_then(|p| p.as_i64()).filter(|p| *p > 0).map(|p| p as i32);
    Some(State { status, pid })
}

/// The reason for a runtime that is not installed.
pub fn missing(kind: RuntimeKind) -> Unavailable {
    Unavailable::Missing(format!("{} is not installed: {}", kind.program(), kind.install_hint()))
}

/// An installed OCI runtime.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub kind: RuntimeKind,
    pub path: PathBuf,
    /// The first line of its `--version`.
    pub version: String,
}

impl Runtime {
    /// Finds the runtime (PATH, and ~/.cache/versus/youki for youki) and
    /// reads its version.
    pub fn detect(kind: RuntimeKind) -> std::result::Result<Runtime, Unavailable> {
        let program = kind.program();
        let path = crate::host::find_peer(program).ok_or_else(|| missing(kind))?;
        let version = crate::host::program_version(&path)
            .ok_or_else(|| Unavailable::Missing(format!("{} does not answer `--version`: reinstall it ({})", path.display(), kind.install_hint())))?;
        Ok(Runtime { kind, path, version })
    }

    /// `program version` in words (`runc 1.1.5+ds1`).
    pub fn describe(&self) -> String {
        match crate::host::version_number(&self.version) {
            Some(v) => format!("{} {v}", self.kind.program()),
            None => format!("{} ({})", self.kind.program(), self.version),
        }
    }

    /// The runtime with its global options and `args`. Without
    /// `RUST_BACKTRACE`: youki would otherwise spend about 300 ms capturing
    /// a backtrace for every error it reports (such as `kill` of a
    /// container that already stopped), which is the caller's setting, not
    /// the runtime's cost.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.path);
        c.args(self.kind.global_args()).args(args).env_remove("RUST_BACKTRACE").env_remove("RUST_LIB_BACKTRACE");
        c
    }

    /// Runs one of its short commands to completion, bounded; an interrupt
    /// stops it.
    pub fn run(&self, args: &[&str], timeout: Duration, what: &'static str) -> Result<Output> {
        command::run(self.command(args), timeout, what)
    }

    /// Runs a clean-up command (`kill`, `delete`, `state`) to completion,
    /// bounded, through an interrupt.
    pub fn cleanup(&self, args: &[&str], timeout: Duration, what: &'static str) -> Result<Output> {
        command::run_cleanup(self.command(args), timeout, what)
    }

    /// The container's state; `Ok(None)` when the runtime does not know it.
    /// A clean-up command: it runs through an interrupt.
    pub fn state(&self, id: &str, timeout: Duration) -> Result<Option<State>> {
        let o = self.cleanup(&["state", id], timeout, "the runtime's state command")?;
        if !o.status.success() {
            return Ok(None);
        }
        parse_state(&o.stdout).map(Some).ok_or_else(|| LaunchError::PeerCommand {
            command: o.command.clone(),
            status: "unreadable output".into(),
            stderr: o.stdout.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_state_of_each_runtime() {
        let runc =
            r#"{"ociVersion":"1.0.2-dev","id":"x","pid":42,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2026-01-01T00:00:00Z","owner":""}"#;
        assert_eq!(parse_state(runc), Some(State { status: "running".into(), pid: Some(42) }));
        let stopped = r#"{"id":"x","pid":0,"status":"stopped"}"#;
        assert_eq!(parse_state(stopped), Some(State { status: "stopped".into(), pid: None }));
        let runsc = "{\n  \"ociVersion\": \"1.0.2-dev\",\n  \"id\": \"x\",\n  \"status\": \"stopped\",\n  \"pid\": -1\n}";
        assert_eq!(parse_state(runsc).map(|s| s.pid), Some(None));
        assert_eq!(parse_state("not json"), None);
    }

    #[test]
    fn runsc_has_its_host_options_and_no_preserve_fds() {
        assert!(!RuntimeKind::Runsc.preserves_fds() && RuntimeKind::Runc.preserves_fds());
        let g = RuntimeKind::Runsc.global_args();
        assert!(g.contains(&"--network=none".to_string()) && g.iter().any(|a| a.starts_with("--platform=")), "{g:?}");
        assert!(RuntimeKind::Youki.global_args().is_empty());
        assert_eq!(RuntimeKind::Crun.state_dir(), Path::new("/run/crun"));
    }

    #[test]
    fn a_missing_runtime_says_how_to_install_it() {
        let e = missing(RuntimeKind::Youki).to_string();
        assert!(e.contains("youki is not installed") && e.contains("cargo install youki"), "{e}");
    }
}
