//! `container`: versus' own launcher. The workload program runs as pid 1 of
//! new pid, mount, uts, ipc, net and cgroup namespaces (plus a user namespace
//! when not root), in a read-only minimal rootfs reached by pivot_root, inside
//! a cgroup with memory, pids and cpu limits, hardened as runc and Docker
//! harden a container by default unless the profile is `privileged`. No
//! container runtime involved. It is started the way every host child of
//! versus is ([`crate::platform::spawn`]), with namespaces and a set-up of
//! its own.
//!
//! Files: [`rootfs`] (image and mount sequence), [`hardening`] (profiles:
//! capabilities, seccomp, masked paths), [`setup`] (the child's part between
//! its cgroup and execve). The cgroup and the system-call trait are shared
//! with the other launchers ([`crate::platform::cgroup`],
//! [`crate::platform::syscall`]) and re-exported here.

pub mod hardening;
pub mod rootfs;
pub mod setup;

pub use crate::platform::{cgroup, syscall};

use std::time::Duration;

use nix::sched::CloneFlags;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use crate::error::{LaunchError, Result};
use crate::host::{self, CgroupMode};
use crate::measure::clock::now_ns;
use crate::measure::Boot;
use crate::platform::child::ChildWorkload;
use crate::platform::process::CHANNEL_FD;
use crate::platform::registry::PlatformOptions;
use crate::platform::spawn::{self, Environment, Program, Spawn};
use crate::platform::{
    Finished, Group, Guest, ImageMode, Instance, InstanceRoot, Isolation, LaunchSpec, MemoryAccounting, Platform, PlatformInfo, Storage, Unavailable,
};
use cgroup::{Cgroup, Controls};
use hardening::Hardening;
pub use hardening::Profile;
use rootfs::{Image, RootfsPlan};
use setup::{ContainerSetup, MARK_HARDENED, MARK_MOUNTS, MARK_ROOTFS};

/// Options of the container launcher.
#[derive(Debug, Clone)]
pub struct ContainerOptions {
    /// Create a pid namespace. Only tests turn this off, as a control for
    /// the host-PIDs probe.
    pub pid_namespace: bool,
    /// Apply cgroup limits. Rootless launches without a delegated cgroup
    /// turn this off and say so in the notes.
    pub cgroup: bool,
    /// The security profile (`--container-profile`).
    pub profile: Profile,
}

impl Default for ContainerOptions {
    fn default() -> Self {
        ContainerOptions { pid_namespace: true, cgroup: true, profile: Profile::Default }
    }
}

/// versus' own container launcher.
pub const INFO: PlatformInfo = PlatformInfo {
    name: "container",
    article: "a container",
    summary: "versus' own launcher: new pid, mount, uts, ipc, net and cgroup namespaces (user namespace when not root), a minimal read-only rootfs reached by pivot_root, a cgroup with memory, pids and cpu limits, and by default the hardening runc and Docker apply (14 capabilities, seccomp, no_new_privs, masked /proc paths)",
    colour: (0x00, 0x72, 0xB2),
    group: Group::Versus,
    isolation: Isolation::Namespaces,
    guest: Guest::HostKernel,
    memory: MemoryAccounting::OwnProcesses,
    baseline: false,
};

/// The registry's constructor.
pub fn create(opts: &PlatformOptions) -> std::result::Result<Box<dyn Platform>, Unavailable> {
    let o = ContainerOptions { profile: opts.container_profile, ..ContainerOptions::default() };
    Ok(Box::new(ContainerPlatform::new(o).map_err(|e| Unavailable::Host(e.to_string()))?))
}

pub struct ContainerPlatform {
    image: Image,
    opts: ContainerOptions,
    cgroup_mode: CgroupMode,
    controllers: Vec<String>,
    rootless: bool,
    /// The profile, prepared once: its /proc paths under the image's
    /// rootfs and its compiled seccomp filters.
    hardening: Hardening,
}

impl ContainerPlatform {
    /// Builds the shared image. Fails with a clear error when containers
    /// cannot run here (not root and no user namespaces).
    pub fn new(opts: ContainerOptions) -> Result<ContainerPlatform> {
        let rootless = !nix::unistd::geteuid().is_root();
        if rootless && !host::user_namespaces_available() {
            return Err(LaunchError::NoUserNamespaces);
        }
        let (cgroup_mode, controllers) = host::cgroup_mode();
        let image = Image::build().map_err(|e| LaunchError::io("building the container rootfs in a temp dir", e))?;
        let hardening = Hardening::new(opts.profile, &image.rootfs())?;
        Ok(ContainerPlatform { image, opts, cgroup_mode, controllers, rootless, hardening })
    }

    /// The security profile its containers run with.
    pub fn profile(&self) -> Profile {
        self.opts.profile
    }

    /// The shared image (for leak checks in tests).
    pub fn image(&self) -> &Image {
        &self.image
    }

    fn flags(&self) -> CloneFlags {
        let mut f = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWNET;
        if self.opts.pid_namespace {
            f |= CloneFlags::CLONE_NEWPID;
        }
        if self.rootless {
            f |= CloneFlags::CLONE_NEWUSER;
        }
        f
    }
}

/// A running container. Its child handle holds its cgroup, removed once
/// the child is reaped.
pub struct ContainerInstance {
    child: ChildWorkload,
    boot: Boot,
    name: String,
}

impl ContainerInstance {
    /// The instance's name (its hostname and cgroup name).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn check_oom(&mut self, err: LaunchError) -> LaunchError {
        if let Some(cg) = self.child.cgroup() {
            let killed = matches!(self.child.exit_status(), Some(WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)));
            if killed && cg.oom_kills() > 0 {
                return LaunchError::OomKilled { limit_bytes: cg.memory_limit().unwrap_or(0) };
            }
        }
        err
    }
}

fn write_id_maps(pid: Pid) -> Result<()> {
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    let w = |file: &str, v: String| {
        let p = format!("/proc/{pid}/{file}");
        std::fs::write(&p, v).map_err(|e| LaunchError::io(format!("writing {p}"), e))
    };
    w("setgroups", "deny".into())?;
    w("uid_map", format!("0 {uid} 1"))?;
    w("gid_map", format!("0 {gid} 1"))
}

impl Platform for ContainerPlatform {
    fn info(&self) -> &'static PlatformInfo {
        &INFO
    }

    fn available(&self) -> std::result::Result<(), Unavailable> {
        if self.opts.cgroup && !self.rootless {
            Cgroup::check_host(self.cgroup_mode, &self.controllers, &Controls::limits(&crate::platform::Limits::default()))
                .map_err(|e| Unavailable::Host(e.to_string()))?;
        }
        Ok(())
    }

    /// Its read-only rootfs is shared by every instance (how versus'
    /// container runs); a writable overlay layer per instance is what a
    /// runtime with image layers adds: synthetic here, as versus' container
    /// writes nothing to its rootfs.
    fn storage(&self) -> Vec<Storage> {
        vec![Storage::Shared(vec![self.image.rootfs()]), Storage::Overlay { lower: self.image.rootfs(), synthetic: true }]
    }

    /// An OS image's layers under an overlay upper dir of its own.
    fn image_mode(&self) -> ImageMode {
        ImageMode::Overlay
    }

    fn notes(&self) -> Vec<String> {
        let mut n = vec![
            "call: one getpid() system call per round trip (host kernel)".to_string(),
            format!("namespaces: {:?}; cgroup namespace after joining the cgroup", self.flags()),
            self.opts.profile.describe().to_string(),
        ];
        if self.rootless {
            n.push("rootless: user namespace, uid 0 mapped to the invoking user; no cgroup limits".into());
        } else {
            n.push(format!("cgroup {:?}: memory, pids and cpu limits; a thread of versus makes the cgroup while the kernel clones the child, which makes its mounts meanwhile and joins the cgroup before pivot_root", self.cgroup_mode));
            if self.cgroup_mode == CgroupMode::V2 && !host::cgroup_favordynmods() {
                // Measured here: 7-20 ms for the first join after 100 ms
                // without one, 25-65 us back to back (kernel 6.18, kvm_pvm).
                n.push(
                    "boot.cgroup: joining a v2 cgroup (cgroup.procs) takes the kernel's cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period when no task moved between cgroups in the last few milliseconds (no hierarchy is mounted with favordynmods): launches spaced out by a longer workload pay milliseconds there, launches back to back do not (on v1 the child joins through `tasks`, moving only itself, which skips that lock)"
                        .into(),
                );
            }
        }
        n
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        let start = now_ns();
        let name = cgroup::instance_name();
        let use_cgroup = self.opts.cgroup && !self.rootless;
        let controls = Controls::limits(&spec.limits);
        if use_cgroup {
            Cgroup::check(self.cgroup_mode, &self.controllers, &controls)?;
        }
        let mut rootfs = RootfsPlan::new(&self.image.rootfs(), &name).map_err(|e| LaunchError::io("preparing the rootfs mounts", e))?;
        match &spec.root {
            None => {}
            Some(InstanceRoot::Overlay { lowers, upper, work }) => {
                rootfs = rootfs.with_overlay(&self.image.rootfs(), lowers, upper, work).map_err(|e| LaunchError::io("preparing the image's overlay", e))?;
            }
            Some(_) => spec.refuse_root("container")?,
        }
        // The handle removes the cgroup on every path from here on; spawn
        // has a thread make it beside the clone, and the child joins it.
        let cgroup = match use_cgroup {
            true => Some(Cgroup::plan(self.cgroup_mode, &name, &controls)?),
            false => None,
        };
        let args = ["--fd".to_string(), CHANNEL_FD.to_string()].into_iter().chain(spec.guest_args());
        // An empty environment, as a container image defines its own.
        let program = Program::new("/init", args, Environment::empty())?;
        let setup = ContainerSetup { rootfs, hardening: &self.hardening };
        let req = Spawn {
            program: &program,
            namespaces: self.flags(),
            cgroup,
            setup: Some(&setup),
            // Rootless, the child waits for its uid/gid maps.
            wait_for_parent: self.rootless,
            channel_fd: CHANNEL_FD,
            timeout: spec.timeout,
            what: "the container's /init",
        };
        // As root the clone shares our memory and returns once the child
        // has exec'd (or failed); rootless it returns at once.
        let spawned = spawn::spawn(req)?;
        if self.rootless {
            write_id_maps(spawned.pid())?;
        }
        let (child, st) = spawned.wait_exec()?;
        let mut inst = ContainerInstance { child, boot: Boot::default(), name };
        let (ready_ns, started) = match inst.child.wait_ready() {
            Ok(v) => v,
            Err(e) => return Err(inst.check_oom(e)),
        };
        inst.boot = Boot::from_marks(
            start,
            &[
                ("namespaces", st.t_start),
                ("mounts", st.marks[MARK_MOUNTS]),
                ("cgroup", st.t_cgroup),
                ("rootfs", st.marks[MARK_ROOTFS]),
                ("hardening", st.marks[MARK_HARDENED]),
                ("exec", started.unwrap_or(ready_ns)),
                ("ready", ready_ns),
            ],
        );
        Ok(Box::new(inst))
    }
}

impl Instance for ContainerInstance {
    fn boot(&self) -> &Boot {
        &self.boot
    }
    fn pids(&self) -> Vec<i32> {
        match self.child.cgroup() {
            Some(cg) => cg.pids(),
            None => self.child.pid().map(|p| p.as_raw()).into_iter().collect(),
        }
    }
    fn read_result(&mut self, timeout: Duration) -> Result<crate::workload::WorkloadResult> {
        self.child.next_result(timeout)
    }
    fn finish(&mut self) -> Result<Finished> {
        match self.child.finish() {
            Ok(f) => Ok(f),
            Err(e) => Err(self.check_oom(e)),
        }
    }
    fn stop(mut self: Box<Self>) -> Result<f64> {
        let t = now_ns();
        // Reaps the child, then removes its cgroup.
        self.child.stop(Duration::from_secs(2))?;
        Ok((now_ns() - t) as f64 / 1e6)
    }
}
