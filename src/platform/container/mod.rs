//! `container`: versus' own launcher. The workload program runs as pid 1 of
//! new pid, mount, uts, ipc, net and cgroup namespaces (plus a user namespace
//! when not root), in a read-only minimal rootfs reached by pivot_root, inside
//! a cgroup with memory, pids and cpu limits. No container runtime involved.
//!
//! Files: [`cgroup`] (limits), [`rootfs`] (image and mount sequence),
//! [`spawn`] (clone and the child up to execve), [`syscall`] (the child's
//! system calls behind a trait).

pub mod cgroup;
pub mod rootfs;
pub mod spawn;
pub mod syscall;

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::wait::WaitStatus;
use nix::unistd::{pipe2, Pid};

use crate::channel::Channel;
use crate::error::{LaunchError, Result};
use crate::host::{self, CgroupMode};
use crate::measure::clock::now_ns;
use crate::measure::Boot;
use crate::platform::child::ChildWorkload;
use crate::platform::registry::PlatformOptions;
use crate::platform::{Finished, Group, Guest, Instance, Isolation, LaunchSpec, MemoryAccounting, Platform, PlatformInfo, Storage, Unavailable};
use cgroup::Cgroup;
use rootfs::{Image, RootfsPlan};
use spawn::{ChildFds, ChildPlan, ChildStatus};

/// Options of the container launcher.
#[derive(Debug, Clone)]
pub struct ContainerOptions {
    /// Create a pid namespace. Only tests turn this off, as a control for
    /// the host-PIDs probe.
    pub pid_namespace: bool,
    /// Apply cgroup limits. Rootless launches without a delegated cgroup
    /// turn this off and say so in the notes.
    pub cgroup: bool,
}

impl Default for ContainerOptions {
    fn default() -> Self {
        ContainerOptions { pid_namespace: true, cgroup: true }
    }
}

/// versus' own container launcher.
pub const INFO: PlatformInfo = PlatformInfo {
    name: "container",
    article: "a container",
    summary: "versus' own launcher: new pid, mount, uts, ipc, net and cgroup namespaces (user namespace when not root), a minimal read-only rootfs reached by pivot_root, a cgroup with memory, pids and cpu limits",
    colour: (0x00, 0x72, 0xB2),
    group: Group::Versus,
    isolation: Isolation::Namespaces,
    guest: Guest::HostKernel,
    memory: MemoryAccounting::OwnProcesses,
    baseline: false,
};

/// The registry's constructor.
pub fn create(_: &PlatformOptions) -> std::result::Result<Box<dyn Platform>, Unavailable> {
    Ok(Box::new(ContainerPlatform::new(ContainerOptions::default()).map_err(|e| Unavailable::Host(e.to_string()))?))
}

pub struct ContainerPlatform {
    image: Image,
    opts: ContainerOptions,
    cgroup_mode: CgroupMode,
    controllers: Vec<String>,
    rootless: bool,
    /// Spare stacks for the children: a launch takes one (or maps a new
    /// one when every stack is in use by a concurrent launch, as in a boot
    /// storm) and puts it back once its child has exec'd, so concurrent
    /// launches never wait on each other here.
    stacks: std::sync::Mutex<Vec<spawn::ChildStack>>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

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
        let stacks = std::sync::Mutex::new(vec![spawn::ChildStack::new()?]);
        Ok(ContainerPlatform { image, opts, cgroup_mode, controllers, rootless, stacks })
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

/// A running container.
pub struct ContainerInstance {
    // Field order is drop order: the child is killed and reaped before its
    // cgroup is removed.
    child: ChildWorkload,
    cgroup: Option<Cgroup>,
    boot: Boot,
    name: String,
}

impl ContainerInstance {
    /// The instance's name (its hostname and cgroup name).
    pub fn name(&self) -> &str {
        &self.name
    }

    fn check_oom(&mut self, err: LaunchError) -> LaunchError {
        if let Some(cg) = &self.cgroup {
            let killed = matches!(self.child.exit_status(), Some(WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGKILL, _)));
            if killed && cg.oom_kills() > 0 {
                return LaunchError::OomKilled { limit_bytes: cg.memory_limit() };
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
            Cgroup::check(self.cgroup_mode, &self.controllers).map_err(|e| Unavailable::Host(e.to_string()))?;
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

    fn notes(&self) -> Vec<String> {
        let mut n = vec![
            "call: one getpid() system call per round trip (host kernel)".to_string(),
            format!("namespaces: {:?}; cgroup namespace after joining the cgroup", self.flags()),
        ];
        if self.rootless {
            n.push("rootless: user namespace, uid 0 mapped to the invoking user; no cgroup limits".into());
        } else {
            n.push(format!("cgroup {:?}: memory, pids and cpu limits; the child makes its cgroup and joins it before its rootfs", self.cgroup_mode));
            if !host::cgroup_favordynmods() {
                // Measured here: 7-20 ms for the first join after 100 ms
                // without one, 25-65 us back to back (kernel 6.18, kvm_pvm).
                n.push(
                    "boot.cgroup: joining a cgroup takes the kernel's cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period when no task moved between cgroups in the last few milliseconds (no hierarchy is mounted with favordynmods): launches spaced out by a longer workload pay milliseconds there, launches back to back do not"
                        .into(),
                );
            }
        }
        n
    }

    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        let start = now_ns();
        let name = format!("versus-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
        let use_cgroup = self.opts.cgroup && !self.rootless;
        if use_cgroup {
            Cgroup::check(self.cgroup_mode, &self.controllers)?;
        }

        let pipe = |what: &str| pipe2(OFlag::O_CLOEXEC).map_err(|e| LaunchError::sys(format!("creating the {what} pipe"), e));
        let (chan_r, chan_w) = pipe("channel")?;
        let (ctl_r, ctl_w) = pipe("control")?;
        let (err_r, err_w) = pipe("stderr")?;
        let (status_r, status_w) = pipe("status")?;
        // Rootless only: the child waits for its uid/gid maps.
        let sync = match self.rootless {
            true => Some(pipe("sync")?),
            false => None,
        };
        let rootfs = RootfsPlan::new(&self.image.rootfs(), &name).map_err(|e| LaunchError::io("preparing the rootfs mounts", e))?;
        // The handle removes the cgroup on every path from here on; the
        // child creates and joins it.
        let (cgroup, cgroup_plan) = match use_cgroup {
            true => {
                let (cg, plan) = Cgroup::plan(self.cgroup_mode, &name, &spec.limits)?;
                (Some(cg), Some(plan))
            }
            false => (None, None),
        };
        let fds = ChildFds {
            sync_r: sync.as_ref().map_or(-1, |(r, _)| r.as_raw_fd()),
            status_w: status_w.as_raw_fd(),
            stdin: ctl_r.as_raw_fd(),
            stderr: err_w.as_raw_fd(),
            channel: chan_w.as_raw_fd(),
        };
        let plan = ChildPlan::new(rootfs, cgroup_plan, spec.guest_args(), fds, self.rootless)?;
        // As root the clone shares our memory and returns once the child
        // has exec'd (or failed); rootless it returns at once.
        let mut stack = match self.stacks.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            Some(s) => s,
            None => spawn::ChildStack::new()?,
        };
        let pid = spawn::clone_child(&plan, &mut stack, self.flags(), !self.rootless);
        self.stacks.lock().unwrap_or_else(|e| e.into_inner()).push(stack);
        let pid = pid?;
        // The child holds its own copies; ours must close so that end of
        // file reaches the right side.
        drop((status_w, ctl_r, err_w, chan_w));
        let child = ChildWorkload::new(pid, Channel::new(chan_r), err_r, ctl_w, spec.timeout);
        let mut inst = ContainerInstance { child, cgroup, boot: Boot::default(), name };

        if let Some((sync_r, sync_w)) = sync {
            drop(sync_r);
            write_id_maps(pid)?;
            nix::unistd::write(&sync_w, &[1]).map_err(|e| LaunchError::sys("letting the container child set up its rootfs", e))?;
        }
        let st: ChildStatus = spawn::read_status(status_r, plan.cgroup.as_ref())?;
        let (ready_ns, started) = match inst.child.wait_ready() {
            Ok(v) => v,
            Err(e) => return Err(inst.check_oom(e)),
        };
        inst.boot = Boot::from_marks(
            start,
            &[("namespaces", st.t_start), ("cgroup", st.t_cgroup), ("rootfs", st.t_rootfs), ("exec", started.unwrap_or(ready_ns)), ("ready", ready_ns)],
        );
        Ok(Box::new(inst))
    }
}

impl Instance for ContainerInstance {
    fn boot(&self) -> &Boot {
        &self.boot
    }
    fn pids(&self) -> Vec<i32> {
        match &self.cgroup {
            Some(cg) => cg.pids(),
            None => self.child.pid().map(|p| p.as_raw()).into_iter().collect(),
        }
    }
    fn finish(&mut self) -> Result<Finished> {
        match self.child.finish() {
            Ok(f) => Ok(f),
            Err(e) => Err(self.check_oom(e)),
        }
    }
    fn stop(mut self: Box<Self>) -> Result<f64> {
        let t = now_ns();
        self.child.stop(Duration::from_secs(2))?;
        if let Some(mut cg) = self.cgroup.take() {
            cg.remove()?;
        }
        Ok((now_ns() - t) as f64 / 1e6)
    }
}
