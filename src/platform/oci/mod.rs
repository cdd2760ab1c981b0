//! `oci-runc`, `oci-crun`, `oci-youki`, `oci-runsc`: the OCI runtimes people
//! deploy, each running a bundle of the same read-only rootfs as
//! `container` with the same limits and the same workload program. One
//! implementation, parameterised by the runtime ([`runtime::RuntimeKind`]).
//!
//! | file | job |
//! |---|---|
//! | [`runtime`] | the runtime binary: detection, version, its commands |
//! | [`bundle`] | config.json (from the `oci-spec` crate) and the bundle directory |
//! | [`cgroup`] | the cgroup the runtime made: processes, OOM kills, clean-up |
//! | this file | the [`OciPlatform`] and its instances |
//!
//! A launch times the runtime's own commands separately: `create` (the
//! runtime sets up namespaces, cgroup, mounts and leaves the init process
//! waiting), `start` (it lets it exec the workload) and `ready` (to the
//! receipt of READY); they add up to `boot`. Teardown is `kill` (SIGKILL,
//! when the workload still runs) then `delete`. The workload speaks the
//! protocol on fd 3 (`--preserve-fds 1`) or, for runsc, on its standard
//! output; its standard input is a pipe versus closes to stop an `idle`
//! workload; its standard error and the runtime's go to the bundle's log.

pub mod bundle;
pub mod cgroup;
pub mod runtime;

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use crate::channel::{Channel, Received};
use crate::error::{LaunchError, Result};
use crate::host::CgroupMode;
use crate::measure::clock::now_ns;
use crate::measure::seccomp::ProcessSeccomp;
use crate::measure::Boot;
use crate::model::ProbeLine;
use crate::platform::command;
use crate::platform::container::rootfs::Image;
use crate::platform::registry::PlatformOptions;
use crate::platform::{AttackSurface, Finished, Group, Guest, Instance, Isolation, LaunchSpec, MemoryAccounting, Platform, PlatformInfo, Storage, Unavailable};
use bundle::{Bundle, BundleConfig};
use cgroup::RuntimeCgroup;
pub use runtime::{Runtime, RuntimeKind};

/// Boot phases of an OCI runtime, in order.
pub const PHASES: [&str; 3] = ["create", "start", "ready"];

const fn info(name: &'static str, article: &'static str, summary: &'static str, colour: (u8, u8, u8), isolation: Isolation, guest: Guest) -> PlatformInfo {
    PlatformInfo { name, article, summary, colour, group: Group::ContainerRuntime, isolation, guest, memory: MemoryAccounting::OwnProcesses, baseline: false }
}

/// runc, the reference OCI runtime.
pub const RUNC_INFO: PlatformInfo = info(
    "oci-runc",
    "a runc container",
    "runc (the runtime under Docker, containerd and Kubernetes) running an OCI bundle of the same rootfs, with the same limits",
    (0x56, 0xB4, 0xE9),
    Isolation::Namespaces,
    Guest::HostKernel,
);
/// crun, the C runtime.
pub const CRUN_INFO: PlatformInfo = info(
    "oci-crun",
    "a crun container",
    "crun (podman's default runtime, in C) running the same OCI bundle",
    (0x33, 0x88, 0xAA),
    Isolation::Namespaces,
    Guest::HostKernel,
);
/// youki, the Rust runtime.
pub const YOUKI_INFO: PlatformInfo = info(
    "oci-youki",
    "a youki container",
    "youki (the OCI runtime in Rust) running the same OCI bundle",
    (0x88, 0xCC, 0xEE),
    Isolation::Namespaces,
    Guest::HostKernel,
);
/// gVisor's runsc.
pub const RUNSC_INFO: PlatformInfo = info(
    "oci-runsc",
    "a gVisor sandbox",
    "gVisor's runsc running the same OCI bundle: the workload runs on gVisor's user-space kernel (the sentry), which alone calls the host kernel, through a seccomp filter",
    (0x11, 0x77, 0x33),
    Isolation::UserspaceKernel,
    Guest::OwnKernel,
);

/// The registry's constructors, one per runtime.
pub fn create_runc(_: &PlatformOptions) -> std::result::Result<Box<dyn Platform>, Unavailable> {
    create(RuntimeKind::Runc)
}
pub fn create_crun(_: &PlatformOptions) -> std::result::Result<Box<dyn Platform>, Unavailable> {
    create(RuntimeKind::Crun)
}
pub fn create_youki(_: &PlatformOptions) -> std::result::Result<Box<dyn Platform>, Unavailable> {
    create(RuntimeKind::Youki)
}
pub fn create_runsc(_: &PlatformOptions) -> std::result::Result<Box<dyn Platform>, Unavailable> {
    create(RuntimeKind::Runsc)
}

fn create(kind: RuntimeKind) -> std::result::Result<Box<dyn Platform>, Unavailable> {
    Ok(Box::new(OciPlatform::new(kind)?))
}

/// The descriptor of a runtime's row.
pub fn info_of(kind: RuntimeKind) -> &'static PlatformInfo {
    match kind {
        RuntimeKind::Runc => &RUNC_INFO,
        RuntimeKind::Crun => &CRUN_INFO,
        RuntimeKind::Youki => &YOUKI_INFO,
        RuntimeKind::Runsc => &RUNSC_INFO,
    }
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// An OCI runtime as a platform.
pub struct OciPlatform {
    runtime: Runtime,
    /// The same files as `container`'s image (its own copy, so that the
    /// mount points the runtime's default mounts need can be added), shared
    /// read-only by every instance.
    image: Image,
    no_swap: bool,
    /// Whether the runtime runs a container on this host at all (checked
    /// once, by a trial launch).
    trial: OnceLock<std::result::Result<(), Unavailable>>,
    /// runsc's measured attack surface (one instance, read once).
    surface: OnceLock<AttackSurface>,
}

impl OciPlatform {
    /// Finds the runtime and builds the image. Whether the runtime accepts
    /// this host is known only from a launch: [`Platform::available`] makes
    /// one.
    pub fn new(kind: RuntimeKind) -> std::result::Result<OciPlatform, Unavailable> {
        if !nix::unistd::geteuid().is_root() {
            return Err(Unavailable::Host(format!(
                "{} rows need root: versus runs the runtime as root with cgroup limits (rootless runtimes need a delegated cgroup); run versus as root",
                kind.program()
            )));
        }
        let runtime = Runtime::detect(kind)?;
        let image = Image::build().map_err(|e| Unavailable::Host(format!("building the rootfs in a temp dir: {e}; set TMPDIR to a writable directory")))?;
        // The default mounts of the spec need these mount points (/proc,
        // /dev and /tmp are in every image): a runtime would otherwise make
        // them in the shared directory itself.
        std::fs::create_dir_all(image.rootfs().join("sys"))
            .map_err(|e| Unavailable::Host(format!("adding /sys to the rootfs in {}: {e}", image.rootfs().display())))?;
        let (mode, _) = crate::host::cgroup_mode();
        let no_swap = mode == CgroupMode::V2 || std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
        Ok(OciPlatform { runtime, image, no_swap, trial: OnceLock::new(), surface: OnceLock::new() })
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The shared image (leak checks in tests).
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// Launches one instance (see the module documentation).
    pub fn launch_oci(&self, spec: &LaunchSpec) -> Result<OciInstance> {
        let kind = self.runtime.kind;
        let name = format!("versus-{}-{}-{}", std::process::id(), kind.program(), SEQ.fetch_add(1, Ordering::Relaxed));
        let cgroups_path = format!("/{name}");
        let fd = if kind.preserves_fds() { crate::platform::process::CHANNEL_FD } else { 1 };
        let mut args = vec!["/init".to_string(), "--fd".into(), fd.to_string()];
        args.extend(spec.workload.guest_args());
        let cfg = BundleConfig { rootfs: &self.image.rootfs(), hostname: &name, cgroups_path: &cgroups_path, args, limits: spec.limits, no_swap: self.no_swap };
        let bundle = Bundle::write(&cfg).map_err(|e| LaunchError::Unsupported(e.to_string()))?;

        let pipe = |what: &str| pipe2(OFlag::O_CLOEXEC).map_err(|e| LaunchError::sys(format!("creating the {what} pipe"), e));
        let (chan_r, chan_w) = pipe("channel")?;
        let (ctl_r, ctl_w) = pipe("control")?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(bundle.log_path())
            .map_err(|e| LaunchError::io(format!("creating {}", bundle.log_path().display()), e))?;
        // From here on every path releases the container: the instance's
        // drop deletes it, removes its cgroup and its bundle.
        let mut inst = OciInstance {
            runtime: self.runtime.clone(),
            id: name,
            cgroup: RuntimeCgroup::new(&cgroups_path),
            channel: Channel::new(chan_r),
            control: Some(ctl_w),
            boot: Boot::default(),
            timeout: spec.timeout,
            memory_limit: spec.limits.memory_bytes,
            released: false,
            ended: false,
            bundle,
        };

        let mut create = self.runtime.command(&["create", "--bundle"]);
        create.arg(inst.bundle.path());
        if kind.preserves_fds() {
            create.args(["--preserve-fds", "1"]);
        }
        create.arg(&inst.id);
        let stdout = match kind.preserves_fds() {
            true => Stdio::null(),
            false => Stdio::from(chan_w.try_clone().map_err(|e| LaunchError::io("duplicating the channel pipe", e))?),
        };
        let stderr = log.try_clone().map_err(|e| LaunchError::io("duplicating the log file", e))?;
        create.stdin(Stdio::from(ctl_r)).stdout(stdout).stderr(Stdio::from(stderr));
        if kind.preserves_fds() {
            let raw = chan_w.as_raw_fd();
            let target = crate::platform::process::CHANNEL_FD;
            // SAFETY: the closure runs in the forked child before exec and
            // only calls dup2, which is async-signal-safe; dup2 clears
            // FD_CLOEXEC on the new descriptor, so the runtime inherits the
            // channel as fd 3 and passes it on (--preserve-fds 1).
            unsafe {
                create.pre_exec(move || {
                    if libc::dup2(raw, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let what = command::display(&create);
        let deadline = Instant::now() + spec.timeout;
        let t0 = now_ns();
        let mut child = {
            let _fork = crate::workload::fork_guard();
            create.spawn().map_err(|e| LaunchError::io(format!("starting `{what}`"), e))?
        };
        // The runtime and the container hold their own copies now; ours
        // must close so that end of file reaches versus when the workload
        // exits.
        drop(create);
        drop(chan_w);
        let (status, t_create) = command::wait_child(&mut child, deadline, "create the container", spec.timeout)?;
        if !status.success() {
            return Err(LaunchError::PeerCommand { command: what, status: command::status_words(&status), stderr: inst.bundle.log_text() });
        }
        let start = self.runtime.command(&["start", &inst.id]);
        let what = command::display(&start);
        let o = command::run(start, deadline.saturating_duration_since(Instant::now()), "start the container")?;
        let t_start = o.exited_ns;
        if !o.status.success() {
            return Err(LaunchError::PeerCommand {
                command: what,
                status: command::status_words(&o.status),
                stderr: format!("{}{}", o.stderr, inst.bundle.log_text()),
            });
        }
        let t_ready = loop {
            match inst.channel.recv(deadline, "signal ready", spec.timeout) {
                Ok(Some((Received::Ready { .. }, t))) => break t,
                Ok(Some(_)) => continue,
                Ok(None) => {
                    inst.ended = true;
                    return Err(inst.ended_error("exited before signalling ready"));
                }
                Err(e) => return Err(e),
            }
        };
        inst.boot = Boot::from_marks(t0, &[(PHASES[0], t_create), (PHASES[1], t_start), (PHASES[2], t_ready)]);
        Ok(inst)
    }

    /// Whether the runtime runs a container here: one `ready` launch, once.
    fn trial(&self) -> std::result::Result<(), Unavailable> {
        self.trial
            .get_or_init(|| {
                let spec = LaunchSpec::new(crate::workload::WorkloadSpec::Bench(crate::workload::Workload::Ready));
                let r = self.launch_oci(&spec).and_then(|mut i| {
                    let f = i.finish();
                    Box::new(i).stop()?;
                    f.map(|_| ())
                });
                r.map_err(|e| refusal(&self.runtime, &e))
            })
            .clone()
    }
}

/// The reason a runtime cannot run here, from its trial launch's error:
/// the runtime's own message, and what on this host it likely refers to.
fn refusal(rt: &Runtime, e: &LaunchError) -> Unavailable {
    let said = match e {
        LaunchError::PeerCommand { command, stderr, .. } => {
            let last = stderr.lines().map(str::trim).rfind(|l| !l.is_empty()).unwrap_or("(nothing on stderr)");
            format!("`{command}` said: {last}")
        }
        other => other.to_string(),
    };
    let (mode, _) = crate::host::cgroup_mode();
    let unified = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    let context = if mode == CgroupMode::Hybrid && !unified.trim().is_empty() {
        format!(" (this host is cgroup v1 hybrid, and its v2 hierarchy at /sys/fs/cgroup/unified has the controllers: {})", unified.trim())
    } else {
        String::new()
    };
    Unavailable::Host(format!("{} refuses this host: {said}{context}", rt.describe()))
}

impl Platform for OciPlatform {
    fn info(&self) -> &'static PlatformInfo {
        info_of(self.runtime.kind)
    }

    fn available(&self) -> std::result::Result<(), Unavailable> {
        self.trial()
    }

    fn notes(&self) -> Vec<String> {
        let kind = self.runtime.kind;
        let mut n = vec![
            format!("runtime: {} ({})", self.runtime.version, self.runtime.path.display()),
            "config.json: oci-spec's default spec (as `runc spec`: capabilities AUDIT_WRITE, KILL, NET_BIND_SERVICE; no seccomp profile; masked and read-only paths; new pid, network, ipc, uts, mount and cgroup namespaces) over the shared read-only rootfs, with the memory, pids and cpu limits; written before the clock starts".into(),
            "boot phases: create (the runtime's `create`: namespaces, cgroup, mounts, init waiting), start (its `start`), ready (to READY received); teardown: `kill` (SIGKILL, unless the workload already ended) + `delete`".into(),
            format!("memory: PSS of every process in the instance's cgroup ({}), plus that cgroup's charge", if kind == RuntimeKind::Runsc { "the sentry, the gofer and the ptrace stubs that hold the workload's address space" } else { "the workload" }),
        ];
        match kind {
            RuntimeKind::Runsc => {
                n.push(format!(
                    "runsc options: --network=none (its default network wants a namespace prepared by the caller and refuses the root one), --platform={}",
                    RuntimeKind::runsc_platform()
                ));
                n.push("the workload speaks the protocol on its standard output (runsc has no --preserve-fds); its timestamps are on the sentry's clock, so no phase uses them".into());
                n.push("call: a getpid() answered by the sentry (gVisor's user-space kernel), trapped on the ptrace platform: not a host system call".into());
                n.push("the pids limit counts the sentry's and gofer's threads (Go programs), not only the workload's processes: under pids.max 17 the sandbox does not start (`waiting for sandbox to start: EOF`)".into());
                if RuntimeKind::runsc_platform() == "ptrace" {
                    n.push("platform ptrace: every system call of the workload is a ptrace stop of the sentry, the slowest of gVisor's platforms; production gVisor uses systrap (runsc from 2023) or kvm (hardware KVM), so boot and call numbers here overstate gVisor's costs".into());
                }
            }
            _ => {
                n.push("call: one getpid() system call per round trip (host kernel)".into());
                n.push("the workload gets the channel as fd 3 through `create --preserve-fds 1`".into());
            }
        }
        n
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        spec.refuse_root(self.name())?;
        Ok(Box::new(self.launch_oci(spec)?))
    }

    fn storage(&self) -> Vec<Storage> {
        vec![Storage::Shared(vec![self.image.rootfs()])]
    }

    fn attack_surface(&self) -> AttackSurface {
        if self.runtime.kind != RuntimeKind::Runsc {
            return AttackSurface::HostSyscalls;
        }
        self.surface.get_or_init(|| runsc_surface(self)).clone()
    }
}

/// runsc's attack surface: the host system calls the seccomp filter of its
/// running sentry allows (and the gofer's), read from one idle instance.
fn runsc_surface(p: &OciPlatform) -> AttackSurface {
    let spec = LaunchSpec::new(crate::workload::WorkloadSpec::Bench(crate::workload::Workload::Idle { mib: 1 }));
    let inst = match p.launch_oci(&spec) {
        Ok(i) => i,
        Err(e) => return AttackSurface::Sandbox { allowed: None, note: format!("not measured: launching runsc to read its seccomp filter failed: {e}") },
    };
    let procs = inst.cgroup.procs();
    let role = |pid: i32| {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let words: Vec<String> = cmd.split(|b| *b == 0).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
        if words.iter().any(|w| w == "boot") {
            Some("sentry")
        } else if words.iter().any(|w| w == "gofer") {
            Some("gofer")
        } else {
            None
        }
    };
    let mut found = Vec::new();
    for pid in procs {
        if let Some(r) = role(pid) {
            found.push((r, crate::measure::seccomp::read_process(pid)));
        }
    }
    let _ = Box::new(inst).stop();
    sandbox_surface(&found)
}

/// The surface of a gVisor sandbox from what was read of its processes:
/// the sentry's allowed host system calls, the gofer's beside them.
pub fn sandbox_surface(found: &[(&str, ProcessSeccomp)]) -> AttackSurface {
    let describe = |role: &str, p: &ProcessSeccomp| -> String {
        let status = match (p.mode, p.filters) {
            (Some(m), Some(f)) => format!("/proc/{}/status: Seccomp {m}, {f} filter(s)", p.pid),
            _ => format!("/proc/{}/status: no Seccomp line", p.pid),
        };
        match &p.allowed {
            Ok(a) => format!("{role}: {} host system calls allowed by its filter ({status})", a.len()),
            Err(e) => format!("{role}: filter not readable ({e}; {status})"),
        }
    };
    let sentry = found.iter().find(|(r, _)| *r == "sentry");
    let text: Vec<String> = found.iter().map(|(r, p)| describe(r, p)).collect();
    match sentry {
        None => AttackSurface::Sandbox { allowed: None, note: "not measured: no sentry (runsc boot) process found in the instance's cgroup".into() },
        Some((_, p)) => AttackSurface::Sandbox {
            allowed: p.allowed.as_ref().ok().map(|a| a.len() as u64),
            note: format!(
                "the workload's system calls go to gVisor's sentry; the host system calls the sentry's seccomp filter lets through (numbers an argument check may allow count): {}",
                text.join("; ")
            ),
        },
    }
}

/// A running OCI container. Dropping it deletes the container (forcibly)
/// and removes its cgroup and bundle.
pub struct OciInstance {
    runtime: Runtime,
    id: String,
    cgroup: RuntimeCgroup,
    channel: Channel,
    /// The workload's standard input; closing it asks `idle` to stop.
    control: Option<OwnedFd>,
    boot: Boot,
    timeout: Duration,
    memory_limit: u64,
    /// Deleted, and its cgroup removed.
    released: bool,
    /// The workload ended (its channel reached end of file).
    ended: bool,
    // Last: removed after the container is gone.
    bundle: Bundle,
}

impl OciInstance {
    /// The container id (also its hostname and cgroup name).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The bundle directory (leak checks).
    pub fn bundle_path(&self) -> &std::path::Path {
        self.bundle.path()
    }

    /// The error for a workload whose channel closed early: an OOM kill
    /// when the cgroup counted one, else a crash with the log's end.
    fn ended_error(&self, what: &str) -> LaunchError {
        if self.cgroup.oom_kills() > 0 {
            return LaunchError::OomKilled { limit_bytes: self.cgroup.memory_limit().unwrap_or(self.memory_limit) };
        }
        LaunchError::Crashed { status: format!("the workload {what}"), stderr: self.bundle.log_text() }
    }

    /// Kill and delete, bounded; then the cgroup's leftovers.
    fn release(&mut self) -> Result<()> {
        self.control = None;
        let t = self.timeout.max(Duration::from_secs(5));
        let deadline = Instant::now() + t;
        // What a user types: `kill` (skipped once the workload ended: its
        // channel closed) and `delete`, retried while the runtime still
        // sees the killed process.
        if !self.ended {
            let _ = self.runtime.cleanup(&["kill", &self.id, "KILL"], t, "kill the container");
        }
        let mut nap = Duration::from_micros(200);
        loop {
            let o = self.runtime.cleanup(&["delete", &self.id], t, "delete the container")?;
            if o.status.success() || self.runtime.state(&self.id, t)?.is_none() {
                break;
            }
            if Instant::now() >= deadline {
                let f = self.runtime.cleanup(&["delete", "--force", &self.id], t, "delete the container")?;
                if !f.status.success() && self.runtime.state(&self.id, t)?.is_some() {
                    return Err(o.error());
                }
                break;
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(20));
        }
        let left = self.cgroup.remove();
        self.released = true;
        if !left.is_empty() {
            return Err(LaunchError::Cgroup {
                path: left[0].clone(),
                source: std::io::Error::other("the runtime's cgroup is still busy after delete; remove it by hand (rmdir) once its processes exited"),
            });
        }
        Ok(())
    }
}

impl Instance for OciInstance {
    fn boot(&self) -> &Boot {
        &self.boot
    }

    fn pids(&self) -> Vec<i32> {
        self.cgroup.procs()
    }

    fn finish(&mut self) -> Result<Finished> {
        let deadline = Instant::now() + self.timeout;
        let mut out = Finished::default();
        loop {
            match self.channel.recv(deadline, "finish", self.timeout) {
                Ok(Some((Received::Result(r), _))) => out.results.push(r),
                Ok(Some((Received::Probe { id, result, evidence }, _))) => out.probes.push(ProbeLine { id, result, evidence }),
                Ok(Some((Received::Log(l), _))) => out.logs.push(l),
                Ok(Some((Received::Ready { .. }, _))) => {}
                Ok(None) => break,
                Err(e) => return Err(e),
            }
        }
        self.ended = true;
        if self.cgroup.oom_kills() > 0 {
            return Err(self.ended_error("was killed"));
        }
        Ok(out)
    }

    fn stop(mut self: Box<Self>) -> Result<f64> {
        let t = now_ns();
        self.release()?;
        Ok((now_ns() - t) as f64 / 1e6)
    }
}

impl Drop for OciInstance {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        self.control = None;
        let t = Duration::from_secs(10);
        let _ = self.runtime.cleanup(&["delete", "--force", &self.id], t, "delete the container");
        self.cgroup.remove();
        // A runtime that failed half-way may leave its state behind.
        if let Ok(rd) = std::fs::read_dir(self.runtime.kind.state_dir()) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n == self.id || n.starts_with(&format!("{}_", self.id)) {
                    let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
                }
            }
        }
    }
}
