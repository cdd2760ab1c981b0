//! Runs a versus command on a host with hardware-style KVM (kvm_intel or
//! kvm_amd): this host when it has one, else the QEMU/TCG-emulated AMD host
//! of harness/kvm-host (whose kvm_amd gives a /dev/kvm that boots Linux
//! guests, unlike kvm_pvm). Tests that need a hardware-style KVM call
//! [`run_versus`]; it returns `None`, after printing the reason, only when
//! neither is possible (no such KVM here and no qemu-system-x86_64).
//!
//! The versus binary is the one cargo built for the tests
//! (`CARGO_BIN_EXE_versus`). An emulated run takes about half a minute plus
//! what the command itself takes there (one vm-linux boot: 15-30 s).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use versus::host::{kvm_mode, which, KvmMode};

/// Where the command runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmHost {
    /// This host: its /dev/kvm is kvm_intel or kvm_amd.
    Native { module: String },
    /// The emulated host of harness/kvm-host.
    Emulated,
}

/// What a run gave back.
#[derive(Debug)]
pub struct HostRun {
    pub host: KvmHost,
    /// The command's stdout, and its stderr (plus, when emulated, the
    /// script's own lines: `kvm-host: ...`).
    pub stdout: String,
    pub stderr: String,
    pub status: ExitStatus,
    /// The command's working directory, fetched whole (`reports/` of a
    /// `versus run` lands here).
    pub dir: PathBuf,
    /// Keeps `dir` alive; removed when the run is dropped.
    _tmp: tempfile::TempDir,
}

impl HostRun {
    /// Everything needed to understand a failure.
    pub fn describe(&self) -> String {
        format!("{:?} on {:?}\n--- stdout\n{}\n--- stderr\n{}", self.status, self.host, self.stdout, self.stderr)
    }
}

/// The script, next to the sources.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("harness/kvm-host")
}

/// Where a hardware-style KVM can be had, or why not. `VERSUS_KVM_HOST=emulated`
/// uses the emulated host even where this one has hardware KVM (to test it).
pub fn kvm_host() -> Result<KvmHost, String> {
    let mode = kvm_mode();
    if let KvmMode::Hardware { module, .. } = &mode {
        if std::env::var("VERSUS_KVM_HOST").as_deref() != Ok("emulated") {
            return Ok(KvmHost::Native { module: module.clone() });
        }
    }
    if which("qemu-system-x86_64").is_some() {
        return Ok(KvmHost::Emulated);
    }
    Err(format!(
        "this host's KVM is {mode:?}, not kvm_intel/kvm_amd, and qemu-system-x86_64 is not installed for harness/kvm-host's emulated host (harness/setup-test-host installs it)"
    ))
}

/// Runs `versus <args>` on a hardware-style KVM host, bounded by `timeout`
/// (the emulated host's boot included). `None`, with a visible `SKIPPED:`
/// line, when there is no way to; panics when the run itself cannot start.
pub fn run_versus(args: &[&str], timeout: Duration) -> Option<HostRun> {
    run(Cmd::Versus(args), timeout)
}

/// Runs a shell command line (`sh -c`, busybox sh when emulated) with
/// `versus` on PATH: several commands in one boot of the emulated host.
pub fn run_shell(line: &str, timeout: Duration) -> Option<HostRun> {
    run(Cmd::Shell(line), timeout)
}

/// [`run_shell`] with `disk` attached: the command finds it as
/// `$VERSUS_DISK` (on the emulated host, a copy-on-write virtio disk,
/// /dev/vdb; here, the file itself).
pub fn run_shell_with_disk(line: &str, disk: &Path, timeout: Duration) -> Option<HostRun> {
    run_with(Cmd::Shell(line), Some(disk), None, timeout)
}

/// [`run_versus`] where the OS image `image` (built and cached on this
/// host) and the host tools its experiments run are at hand: on the
/// emulated host, carried in by `harness/kvm-host --image` (with the RAM
/// its disks need); here, this host's own.
pub fn run_versus_with_image(args: &[&str], image: &str, timeout: Duration) -> Option<HostRun> {
    run_with(Cmd::Versus(args), None, Some(image), timeout)
}

enum Cmd<'a> {
    Versus(&'a [&'a str]),
    Shell(&'a str),
}

fn run(what: Cmd, timeout: Duration) -> Option<HostRun> {
    run_with(what, None, None, timeout)
}

fn run_with(what: Cmd, disk: Option<&Path>, image: Option<&str>, timeout: Duration) -> Option<HostRun> {
    let host = match kvm_host() {
        Ok(h) => h,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return None;
        }
    };
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().join("work");
    std::fs::create_dir(&dir).expect("the work directory");
    let versus = env!("CARGO_BIN_EXE_versus");
    let mut cmd = match (&host, &what) {
        (KvmHost::Native { .. }, Cmd::Versus(args)) => {
            let mut c = Command::new(versus);
            c.args(*args).current_dir(&dir);
            c
        }
        (KvmHost::Native { .. }, Cmd::Shell(line)) => {
            let bin = Path::new(versus).parent().map(|p| p.display().to_string()).unwrap_or_default();
            let mut c = Command::new("sh");
            c.arg("-c").arg(line).current_dir(&dir).env("PATH", format!("{bin}:{}", std::env::var("PATH").unwrap_or_default()));
            if let Some(d) = disk {
                c.env("VERSUS_DISK", d);
            }
            c
        }
        (KvmHost::Emulated, _) => {
            let mut c = Command::new(script());
            c.arg("--timeout").arg(timeout.as_secs().max(1).to_string()).arg("--out").arg(&dir).arg("--versus").arg(versus);
            if let Some(d) = disk {
                c.arg("--disk").arg(d);
            }
            if let Some(i) = image {
                c.args(["--image", i, "--mem", "6144"]);
            }
            match what {
                Cmd::Versus(args) => c.arg("--").args(args),
                Cmd::Shell(line) => c.arg("--sh").arg("--").arg(line),
            };
            c
        }
    };
    // Output to files: nothing to drain while waiting, nothing lost on a kill.
    let (out_path, err_path) = (tmp.path().join("stdout"), tmp.path().join("stderr"));
    let out = File::create(&out_path).expect("stdout file");
    let err = File::create(&err_path).expect("stderr file");
    let mut child = cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().unwrap_or_else(|e| panic!("cannot start {:?}: {e}", cmd.get_program()));
    // The script bounds itself; this bound only guards against a hung script.
    let deadline = Instant::now() + timeout + Duration::from_secs(60);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            Ok(None) => {
                // SIGTERM first: the script's trap then stops QEMU and removes
                // its temporary files; SIGKILL if it does not end soon.
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM);
                let grace = Instant::now() + Duration::from_secs(20);
                while Instant::now() < grace && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(200));
                }
                let _ = child.kill();
                let s = child.wait().expect("wait for the stopped run");
                eprintln!("kvm_host: stopped after {timeout:?} + 60 s");
                break s;
            }
            Err(e) => panic!("waiting for the run: {e}"),
        }
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    // The emulated host's step times, for the test log.
    for l in stderr.lines().filter(|l| l.starts_with("kvm-host: time") || l.starts_with("kvm-host: host: kvm_amd")) {
        eprintln!("{l}");
    }
    Some(HostRun { host, stdout, stderr, status, dir, _tmp: tmp })
}
