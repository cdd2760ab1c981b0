//! `podman`: the engine a user types, `podman run --rm -i` of an image
//! imported from the same rootfs as `container` (`podman import`, cached by
//! the workload program's hash), with the same limits, no network, a
//! read-only root, and the channel passed through conmon as fd 3
//! (`--preserve-fds 1`). Boot runs from the start of `podman run` to READY:
//! `run` (to the workload's first instruction, its `started` stamp on the
//! host clock) and `ready`; podman reports no finer phases without debug
//! logging, and start to ready is the figure its users feel.
//!
//! Each instance gets a cgroup parent of its own (`--cgroup-parent
//! /versus-...`), under which podman puts the container's cgroup and its
//! conmon's, so that memory accounting and clean-up see exactly this
//! instance. On this host podman 4.3 needs: the cgroupfs cgroup manager
//! and the file events backend (no systemd; podman picks both itself),
//! `--runtime runc` where its default crun refuses the host, and explicit
//! `--ulimit nofile=1024:1024 --ulimit nproc=32768:32768` (capped at this
//! process's hard limits): podman's default nofile limit (1048576) is above
//! the hard limit of a process without CAP_SYS_RESOURCE, which the runtime
//! then fails to set (`error setting rlimit type 7: operation not
//! permitted`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{LaunchError, Result};
use crate::host::CgroupMode;
use crate::measure::clock::now_ns;
use crate::measure::Boot;
use crate::platform::child::{spawn_command, ChildWorkload};
use crate::platform::command;
use crate::platform::container::rootfs::Image;
use crate::platform::oci::cgroup::RuntimeCgroup;
use crate::platform::process::CHANNEL_FD;
use crate::platform::registry::PlatformOptions;
use crate::platform::{Finished, Group, Guest, Instance, Isolation, LaunchSpec, MemoryAccounting, Platform, PlatformInfo, Storage, Unavailable};
use crate::workload::{Workload, WorkloadSpec};

/// Boot phases of `podman run`, in order.
pub const PHASES: [&str; 2] = ["run", "ready"];

/// The engine users type.
pub const INFO: PlatformInfo = PlatformInfo {
    name: "podman",
    article: "a podman container",
    summary:
        "podman run --rm of an image imported from the same rootfs, with the same limits: the engine a user types (conmon, an OCI runtime, overlay storage)",
    colour: (0xAA, 0x44, 0x99),
    group: Group::ContainerRuntime,
    isolation: Isolation::Namespaces,
    guest: Guest::HostKernel,
    memory: MemoryAccounting::OwnProcesses,
    baseline: false,
};

/// The registry's constructor.
pub fn create(_: &PlatformOptions) -> std::result::Result<Box<dyn Platform>, Unavailable> {
    Ok(Box::new(PodmanPlatform::new()?))
}

/// The rlimits versus passes (see the module documentation): nofile as the
/// OCI default spec has it, nproc as podman's containers.conf does; both
/// lowered to this process's own hard limits, which runc cannot exceed.
fn ulimits() -> [String; 2] {
    use nix::sys::resource::{getrlimit, Resource};
    let hard = |r: Resource, want: u64| getrlimit(r).map(|(_, h)| h.min(want)).unwrap_or(want);
    let nofile = hard(Resource::RLIMIT_NOFILE, 1024);
    let nproc = hard(Resource::RLIMIT_NPROC, 32768);
    [format!("nofile={nofile}:{nofile}"), format!("nproc={nproc}:{nproc}")]
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// podman as a platform.
pub struct PodmanPlatform {
    podman: PathBuf,
    version: String,
    /// The imported image (`localhost/versus-rootfs:<hash>`).
    tag: String,
    /// The rootfs the image was imported from (footprint).
    image: Image,
    no_swap: bool,
    /// The runtime podman runs with: its default, or runc where the
    /// default refuses this host (found by trial launches, once).
    runtime: OnceLock<std::result::Result<RuntimeChoice, Unavailable>>,
}

#[derive(Debug, Clone)]
struct RuntimeChoice {
    /// `Some("runc")` for `--runtime runc`; `None`: podman's default.
    runtime: Option<String>,
    /// Why, when not the default.
    note: Option<String>,
}

/// The image tag for the current workload program: its content hash, so a
/// new program gets a new image and an unchanged one is imported once.
pub fn image_tag() -> String {
    let h = crate::workload::GUEST_BINARY.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3));
    format!("localhost/versus-rootfs:{h:016x}")
}

impl PodmanPlatform {
    /// Finds podman and imports the rootfs as an image unless it is there.
    pub fn new() -> std::result::Result<PodmanPlatform, Unavailable> {
        if !nix::unistd::geteuid().is_root() {
            return Err(Unavailable::Host("the podman row needs root (rootful podman with cgroup limits); run versus as root".into()));
        }
        let podman = crate::host::find_peer("podman")
            .ok_or_else(|| Unavailable::Missing("podman is not installed: apt-get install podman (harness/setup-test-host does)".into()))?;
        let version = crate::host::program_version(&podman).ok_or_else(|| Unavailable::Missing(format!("{} does not answer --version", podman.display())))?;
        let image = Image::build().map_err(|e| Unavailable::Host(format!("building the rootfs in a temp dir: {e}; set TMPDIR to a writable directory")))?;
        std::fs::create_dir_all(image.rootfs().join("sys")).map_err(|e| Unavailable::Host(format!("adding /sys to the rootfs: {e}")))?;
        let tag = image_tag();
        import(&podman, &image.rootfs(), &tag).map_err(|e| Unavailable::Host(format!("podman cannot import the rootfs: {e}")))?;
        let (mode, _) = crate::host::cgroup_mode();
        let no_swap = mode == CgroupMode::V2 || Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
        Ok(PodmanPlatform { podman, version, tag, image, no_swap, runtime: OnceLock::new() })
    }

    /// The image tag instances run.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    fn launch_with(&self, spec: &LaunchSpec, runtime: Option<&str>) -> Result<PodmanInstance> {
        let name = format!("versus-{}-podman-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let parent = format!("/{name}");
        let l = spec.limits;
        let mut cmd = Command::new(&self.podman);
        if let Some(r) = runtime {
            cmd.args(["--runtime", r]);
        }
        cmd.args(["run", "--rm", "-i", "--name", &name, "--network", "none", "--read-only", "--cgroup-parent", &parent]);
        for u in ulimits() {
            cmd.arg("--ulimit").arg(u);
        }
        cmd.arg("--memory").arg(format!("{}b", l.memory_bytes));
        if self.no_swap {
            cmd.arg("--memory-swap").arg(format!("{}b", l.memory_bytes));
        }
        cmd.arg("--pids-limit").arg(l.pids.to_string());
        cmd.arg("--cpus").arg(format!("{:.3}", l.cpus));
        cmd.args(["--preserve-fds", "1", &self.tag, "/init", "--fd", &CHANNEL_FD.to_string()]);
        cmd.args(spec.workload.guest_args());
        let what = command::display(&cmd);
        let t0 = now_ns();
        let (child, _) = spawn_command(&cmd, CHANNEL_FD, &format!("`{what}`"), spec.timeout, None)?;
        let mut inst = PodmanInstance {
            child,
            podman: self.podman.clone(),
            name,
            cgroup: RuntimeCgroup::new(&parent),
            boot: Boot::default(),
            timeout: spec.timeout,
            memory_limit: l.memory_bytes,
            released: false,
            command: what,
        };
        let (t_ready, started) = match inst.child.wait_ready() {
            Ok(v) => v,
            Err(e) => return Err(inst.failure(e)),
        };
        inst.boot = Boot::from_marks(t0, &[(PHASES[0], started.unwrap_or(t_ready)), (PHASES[1], t_ready)]);
        Ok(inst)
    }

    /// Trial launches: podman's default runtime, then runc.
    fn runtime(&self) -> std::result::Result<RuntimeChoice, Unavailable> {
        self.runtime
            .get_or_init(|| {
                let trial = |rt: Option<&str>| {
                    let spec = LaunchSpec::new(WorkloadSpec::Bench(Workload::Ready));
                    self.launch_with(&spec, rt).and_then(|mut i| {
                        let f = i.finish();
                        Box::new(i).stop()?;
                        f.map(|_| ())
                    })
                };
                let default_err = match trial(None) {
                    Ok(()) => return Ok(RuntimeChoice { runtime: None, note: None }),
                    Err(e) => e,
                };
                match trial(Some("runc")) {
                    Ok(()) => Ok(RuntimeChoice {
                        runtime: Some("runc".into()),
                        note: Some(format!(
                            "podman's default runtime refuses this host ({}); versus runs podman with --runtime runc",
                            last_line(&default_err.to_string())
                        )),
                    }),
                    Err(e) => Err(Unavailable::Host(format!(
                        "podman {} cannot run a container here: with its default runtime: {}; with --runtime runc: {}",
                        crate::host::version_number(&self.version).unwrap_or("?"),
                        last_line(&default_err.to_string()),
                        last_line(&e.to_string())
                    ))),
                }
            })
            .clone()
    }
}

fn last_line(s: &str) -> String {
    s.rsplit(" | ").next().unwrap_or(s).trim().to_string()
}

/// `podman import` of `rootfs` as `tag`, unless `podman image exists` says
/// it is there. The tarball is made with tar(1) in a temp dir.
fn import(podman: &Path, rootfs: &Path, tag: &str) -> std::result::Result<(), String> {
    let t = Duration::from_secs(120);
    let mut exists = Command::new(podman);
    exists.args(["image", "exists", tag]);
    if command::run(exists, t, "podman image exists").map(|o| o.status.success()).unwrap_or(false) {
        return Ok(());
    }
    let dir = tempfile::Builder::new().prefix("versus-podman-import-").tempdir().map_err(|e| format!("creating a temp dir: {e}"))?;
    let tar = dir.path().join("rootfs.tar");
    let mut c = Command::new("tar");
    c.arg("-C").arg(rootfs).arg("-cf").arg(&tar).arg(".");
    command::run(c, t, "tar").and_then(|o| o.success()).map_err(|e| e.to_string())?;
    let mut c = Command::new(podman);
    c.arg("import").arg(&tar).arg(tag);
    command::run(c, t, "podman import").and_then(|o| o.success()).map_err(|e| e.to_string())?;
    Ok(())
}

impl Platform for PodmanPlatform {
    fn info(&self) -> &'static PlatformInfo {
        &INFO
    }

    fn available(&self) -> std::result::Result<(), Unavailable> {
        self.runtime().map(|_| ())
    }

    fn notes(&self) -> Vec<String> {
        let mut n = vec![
            format!("engine: {} ({}); image {} imported from the rootfs (cached)", self.version, self.podman.display(), self.tag),
            format!("podman run --rm -i --network none --read-only --cgroup-parent /versus-... --ulimit {} --memory --pids-limit --cpus --preserve-fds 1: the channel is fd 3, passed through conmon", ulimits().join(" --ulimit ")),
            "boot phases: run (podman run started to the workload's first instruction) and ready (to READY received); teardown: standard input closed (an idle workload exits), podman run's clean-up (--rm) waited for".into(),
            "memory: PSS of the podman run process (it stays attached), conmon and the workload, plus the charge of the instance's cgroups (conmon's and the container's)".into(),
            "--ulimit: podman's defaults (nofile 1048576, and nproc 4194304 once any --ulimit is given) are above this process's hard limits without CAP_SYS_RESOURCE, and the runtime refuses to set them (`error setting rlimit type 7: operation not permitted`)".into(),
            "call: one getpid() system call per round trip (host kernel)".into(),
        ];
        if let Some(Ok(RuntimeChoice { note: Some(why), .. })) = self.runtime.get() {
            n.push(why.clone());
        }
        n
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        spec.refuse_root("podman")?;
        let choice = self.runtime().map_err(|e| LaunchError::Unsupported(e.to_string()))?;
        Ok(Box::new(self.launch_with(spec, choice.runtime.as_deref())?))
    }

    /// An image's layers in podman's overlay storage: shared lower, one
    /// writable layer per container.
    fn storage(&self) -> Vec<Storage> {
        vec![Storage::Overlay { lower: self.image.rootfs(), synthetic: false }]
    }
}

/// A running `podman run`. Dropping it removes the container and its
/// cgroups.
pub struct PodmanInstance {
    child: ChildWorkload,
    podman: PathBuf,
    name: String,
    cgroup: RuntimeCgroup,
    boot: Boot,
    timeout: Duration,
    memory_limit: u64,
    released: bool,
    command: String,
}

impl PodmanInstance {
    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What a failed wait turns into: an OOM kill when the cgroups counted
    /// one, else podman's own error with its stderr.
    fn failure(&mut self, e: LaunchError) -> LaunchError {
        if self.cgroup.oom_kills() > 0 {
            return LaunchError::OomKilled { limit_bytes: self.cgroup.memory_limit().unwrap_or(self.memory_limit) };
        }
        // podman removed the container's cgroup, and with it (on v1) its
        // OOM-kill count; what is left is podman's exit status (137: the
        // workload was SIGKILLed) and our parent cgroup's peak, which
        // reached the limit.
        let killed = matches!(self.child.exit_status(), Some(nix::sys::wait::WaitStatus::Exited(_, 137)));
        if killed && self.cgroup.peak_usage().is_some_and(|p| p >= self.memory_limit) {
            return LaunchError::OomKilled { limit_bytes: self.memory_limit };
        }
        match e {
            LaunchError::Crashed { status, stderr } => LaunchError::PeerCommand { command: self.command.clone(), status, stderr },
            other => other,
        }
    }

    fn release(&mut self) -> Result<()> {
        let grace = self.timeout.max(Duration::from_secs(5));
        let clean = self.child.stop(grace).is_ok() && self.child.exit_status().is_some();
        if !clean {
            let mut rm = Command::new(&self.podman);
            rm.args(["rm", "--force", "--time", "0", &self.name]);
            let _ = command::run_cleanup(rm, grace, "podman rm");
        }
        let left = self.cgroup.remove();
        self.released = true;
        if let Some(d) = left.first() {
            return Err(LaunchError::Cgroup {
                path: d.clone(),
                source: std::io::Error::other("podman's cgroup is still busy after the container ended; remove it by hand (rmdir)"),
            });
        }
        Ok(())
    }
}

impl Instance for PodmanInstance {
    fn boot(&self) -> &Boot {
        &self.boot
    }

    fn pids(&self) -> Vec<i32> {
        let mut p: Vec<i32> = self.child.pid().map(|p| p.as_raw()).into_iter().collect();
        for q in self.cgroup.procs() {
            if !p.contains(&q) {
                p.push(q);
            }
        }
        p
    }

    fn finish(&mut self) -> Result<Finished> {
        match self.child.finish() {
            Ok(f) => Ok(f),
            Err(e) => Err(self.failure(e)),
        }
    }

    fn stop(mut self: Box<Self>) -> Result<f64> {
        let t = now_ns();
        self.release()?;
        Ok((now_ns() - t) as f64 / 1e6)
    }
}

impl Drop for PodmanInstance {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.child.kill_and_reap();
            let mut rm = Command::new(&self.podman);
            rm.args(["rm", "--force", "--time", "0", &self.name]);
            let _ = command::run_cleanup(rm, Duration::from_secs(30), "podman rm");
            self.cgroup.remove();
        }
    }
}
