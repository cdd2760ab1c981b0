//! One cgroup per instance: a container's (memory, pids and cpu limits),
//! or the cgroup a plain process or a VMM process gets when a measurement
//! asks for one ([`crate::platform::CgroupNeeds`]: memory accounting, a CPU
//! quota), on cgroup v2 and on v1/hybrid hosts. The parent prepares a
//! [`CgroupPlan`] (every path and value as a C string) and holds the
//! [`Cgroup`] handle; the launched child carries the plan out itself, before
//! anything else ([`super::spawn`]): it creates the directories, writes the
//! limits and joins them. The handle removes whatever exists of the cgroup
//! on drop (after killing anything still inside it), also when the child
//! failed half-way.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::syscall::Syscall;
use crate::error::{LaunchError, Result};
use crate::host::CgroupMode;
use crate::platform::{CgroupNeeds, Limits};

const ROOT: &str = "/sys/fs/cgroup";

/// Every controller an instance's cgroup may use, in the order of its v1
/// directories.
pub const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// What an instance's cgroup controls.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Controls {
    /// The memory controller: charged memory (`mem.cgroup`), with a limit
    /// in bytes or accounting only (`None`).
    pub memory: Option<Option<u64>>,
    /// The pids controller with its limit.
    pub pids: Option<u64>,
    /// The cpu controller with a quota in CPUs (1.0 = one full core).
    pub cpus: Option<f64>,
}

impl Controls {
    /// A container's cgroup: memory, pids and cpu, each limited.
    pub fn limits(l: &Limits) -> Controls {
        Controls { memory: Some(Some(l.memory_bytes)), pids: Some(l.pids), cpus: Some(l.cpus) }
    }

    /// The cgroup a measurement asks of an instance that has none of its
    /// own otherwise (a plain process, a VMM process): memory accounting
    /// without a limit, and the CPU quota of `l.cpus`. `None` when nothing
    /// is asked.
    pub fn needs(n: CgroupNeeds, l: &Limits) -> Option<Controls> {
        let c = Controls { memory: n.memory.then_some(None), pids: None, cpus: n.cpu.then_some(l.cpus) };
        (c != Controls::default()).then_some(c)
    }

    /// The controllers used, in [`CONTROLLERS`] order.
    pub fn controllers(&self) -> Vec<&'static str> {
        let used = [self.memory.is_some(), self.pids.is_some(), self.cpus.is_some()];
        CONTROLLERS.iter().zip(used).filter(|(_, u)| *u).map(|(c, _)| *c).collect()
    }
}

/// A created cgroup (one directory per v1 controller, or one v2 directory).
#[derive(Debug)]
pub struct Cgroup {
    version: Version,
    /// The controllers, parallel to `dirs` on v1.
    controllers: Vec<&'static str>,
    dirs: Vec<PathBuf>,
    /// How many directories the cgroup has while it exists.
    full: usize,
    memory_limit: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// The cgroup set-up, prepared by the parent and carried out by the child
/// (which must not allocate): directories to create, limit files to write,
/// then the files to write "0" to (joining the cgroup): on v1 each
/// hierarchy's `tasks`, on v2 `cgroup.procs` (see [`Cgroup::plan`]).
#[derive(Debug)]
pub struct CgroupPlan {
    dirs: Vec<CString>,
    /// (file, value, optional: a missing file is skipped).
    limits: Vec<(CString, CString, bool)>,
    procs: Vec<CString>,
}

/// Which part of a [`CgroupPlan`] failed, with its index in that part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupStep {
    Create(usize),
    Limit(usize),
    Join(usize),
}

impl CgroupStep {
    /// Packs the step into one word for the child's status record.
    pub fn encode(self) -> u64 {
        let (kind, i) = match self {
            CgroupStep::Create(i) => (1u64, i),
            CgroupStep::Limit(i) => (2, i),
            CgroupStep::Join(i) => (3, i),
        };
        kind << 32 | i as u64
    }

    pub fn decode(w: u64) -> Option<CgroupStep> {
        let i = (w & 0xffff_ffff) as usize;
        match w >> 32 {
            1 => Some(CgroupStep::Create(i)),
            2 => Some(CgroupStep::Limit(i)),
            3 => Some(CgroupStep::Join(i)),
            _ => None,
        }
    }
}

const JOIN_SELF: &std::ffi::CStr = c"0";

impl CgroupPlan {
    /// Creates, limits and joins, in that order; stops at the first error.
    /// Allocation-free with [`super::syscall::LinuxSyscall`].
    pub fn apply(&self, sys: &dyn Syscall) -> std::result::Result<(), (CgroupStep, nix::errno::Errno)> {
        self.make(sys)?;
        self.join(sys)
    }

    /// Creates and limits (what [`super::spawn`] has a thread of the
    /// launcher do while the kernel clones the child); stops at the first
    /// error.
    pub fn make(&self, sys: &dyn Syscall) -> std::result::Result<(), (CgroupStep, nix::errno::Errno)> {
        for (i, d) in self.dirs.iter().enumerate() {
            sys.mkdir(d).map_err(|e| (CgroupStep::Create(i), e))?;
        }
        for (i, (file, value, optional)) in self.limits.iter().enumerate() {
            match sys.write_file(file, value) {
                Err(nix::errno::Errno::ENOENT) if *optional => {}
                r => r.map_err(|e| (CgroupStep::Limit(i), e))?,
            }
        }
        Ok(())
    }

    /// Moves the calling process into the made cgroup. Allocation-free
    /// with [`super::syscall::LinuxSyscall`].
    pub fn join(&self, sys: &dyn Syscall) -> std::result::Result<(), (CgroupStep, nix::errno::Errno)> {
        for (i, p) in self.procs.iter().enumerate() {
            sys.write_file(p, JOIN_SELF).map_err(|e| (CgroupStep::Join(i), e))?;
        }
        Ok(())
    }

    /// The error for a failed step, naming the file or directory.
    pub fn error(&self, step: CgroupStep, errno: nix::errno::Errno) -> LaunchError {
        let path = |c: Option<&CString>| PathBuf::from(std::ffi::OsStr::from_bytes(c.map(|c| c.to_bytes()).unwrap_or(b"?")));
        let path = match step {
            CgroupStep::Create(i) => path(self.dirs.get(i)),
            CgroupStep::Limit(i) => path(self.limits.get(i).map(|l| &l.0)),
            CgroupStep::Join(i) => path(self.procs.get(i)),
        };
        LaunchError::Cgroup { path, source: std::io::Error::from_raw_os_error(errno as i32) }
    }
}

fn cstring(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| LaunchError::Unsupported(format!("cgroup path {} contains a NUL byte", p.display())))
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// This host's cgroup mode and controllers ([`crate::host::cgroup_mode`]),
/// read once: launchers that make a cgroup per instance ask for it on
/// every launch.
pub fn host_mode() -> &'static (CgroupMode, Vec<String>) {
    static MODE: std::sync::OnceLock<(CgroupMode, Vec<String>)> = std::sync::OnceLock::new();
    MODE.get_or_init(crate::host::cgroup_mode)
}

/// A fresh instance name, `versus-<pid>-<n>`: the cgroup's name (and a
/// container's hostname). Tests find what this process left behind by the
/// prefix.
pub fn instance_name() -> String {
    format!("versus-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed))
}

impl Cgroup {
    /// The directories a cgroup named `name` would use under `root` for the
    /// given mode (v1 controllers in their own hierarchies).
    fn dirs_for(mode: CgroupMode, root: &Path, name: &str, controllers: &[&str]) -> Vec<PathBuf> {
        match mode {
            CgroupMode::V2 => vec![root.join(name)],
            _ => controllers.iter().map(|c| root.join(c).join(name)).collect(),
        }
    }

    /// Checks that every controller of `controls` is available (from
    /// [`crate::host::cgroup_mode`]); the error names the missing one.
    pub fn check(mode: CgroupMode, available: &[String], controls: &Controls) -> Result<()> {
        if mode == CgroupMode::None {
            return Err(LaunchError::MissingCgroupController { controller: "memory".into(), path: ROOT.into() });
        }
        for c in controls.controllers() {
            if !available.iter().any(|h| h == c) {
                let path = match mode {
                    CgroupMode::V2 => PathBuf::from(ROOT).join("cgroup.controllers"),
                    _ => PathBuf::from(ROOT).join(c),
                };
                return Err(LaunchError::MissingCgroupController { controller: c.into(), path });
            }
        }
        Ok(())
    }

    /// [`Cgroup::check`], and on cgroup v2 that the root delegates every
    /// controller to its children (`cgroup.subtree_control`): an instance's
    /// cgroup is a child of the root, and has a controller's files only
    /// when the root enables it there. Reads the host: call it once per
    /// platform, not per launch.
    pub fn check_host(mode: CgroupMode, available: &[String], controls: &Controls) -> Result<()> {
        Self::check(mode, available, controls)?;
        if mode == CgroupMode::V2 {
            let file = PathBuf::from(ROOT).join("cgroup.subtree_control");
            let enabled = std::fs::read_to_string(&file).unwrap_or_default();
            Self::check_subtree(&enabled, &file, controls)?;
        }
        Ok(())
    }

    fn check_subtree(enabled: &str, file: &Path, controls: &Controls) -> Result<()> {
        match controls.controllers().into_iter().find(|c| !enabled.split_whitespace().any(|e| e == *c)) {
            Some(c) => Err(LaunchError::MissingCgroupController { controller: c.into(), path: file.to_path_buf() }),
            None => Ok(()),
        }
    }

    /// Plans the cgroup `name` with `controls`: the handle (which removes
    /// whatever of it exists when dropped) and the plan for the child.
    /// Nothing is created yet.
    pub fn plan(mode: CgroupMode, name: &str, controls: &Controls) -> Result<(Cgroup, CgroupPlan)> {
        Self::plan_under(mode, Path::new(ROOT), name, controls)
    }

    fn plan_under(mode: CgroupMode, root: &Path, name: &str, controls: &Controls) -> Result<(Cgroup, CgroupPlan)> {
        let version = if mode == CgroupMode::V2 { Version::V2 } else { Version::V1 };
        let controllers = controls.controllers();
        let dirs = Self::dirs_for(mode, root, name, &controllers);
        let cg = Cgroup { version, full: dirs.len(), dirs, controllers, memory_limit: controls.memory.flatten() };
        let mut plan = CgroupPlan { dirs: Vec::new(), limits: Vec::new(), procs: Vec::new() };
        // How the child joins. It is a fresh clone with one thread, so
        // moving that thread moves the process. On v1, writing "0" (itself)
        // to `tasks` moves the thread without taking the kernel's
        // cgroup_threadgroup_rwsem for writing, which `cgroup.procs` takes
        // and which waits for an RCU grace period when no task moved
        // between cgroups in the last few milliseconds: measured here
        // (kernel 6.18, 2 loaded vCPUs) 9-16 ms for `cgroup.procs` after
        // 300 ms without a move, 20-40 us for `tasks`. v2 has no such file
        // outside threaded subtrees: `cgroup.procs` it is (favordynmods on
        // the hierarchy, or clone3's CLONE_INTO_CGROUP, would avoid the wait).
        let join = match version {
            Version::V1 => "tasks",
            Version::V2 => "cgroup.procs",
        };
        for d in &cg.dirs {
            plan.dirs.push(cstring(d)?);
            plan.procs.push(cstring(&d.join(join))?);
        }
        for (file, value, optional) in cg.limit_files(root, controls) {
            let value = CString::new(value).map_err(|_| LaunchError::Unsupported("a cgroup limit contains a NUL byte".into()))?;
            plan.limits.push((cstring(&file)?, value, optional));
        }
        Ok((cg, plan))
    }

    /// The directory holding `controller`'s files. Only valid while the
    /// cgroup exists (`dirs` complete); callers after removal get a path
    /// that does not exist, so reads fail softly.
    fn dir(&self, controller: &str) -> &Path {
        let missing = Path::new("/nonexistent-versus-cgroup");
        if self.dirs.len() != self.full {
            return missing;
        }
        let i = match self.version {
            Version::V2 => Some(0),
            Version::V1 => self.controllers.iter().position(|c| *c == controller),
        };
        i.and_then(|i| self.dirs.get(i)).map(PathBuf::as_path).unwrap_or(missing)
    }

    /// The limit files to write: (file, value, optional).
    fn limit_files(&self, root: &Path, c: &Controls) -> Vec<(PathBuf, String, bool)> {
        let period = 100_000u64;
        let quota = |cpus: f64| (cpus * period as f64).round().max(1000.0) as u64;
        let mut v = Vec::new();
        match self.version {
            Version::V2 => {
                let d = &self.dirs[0];
                if let Some(Some(mem)) = c.memory {
                    v.push((d.join("memory.max"), mem.to_string(), false));
                    // No swap, so the limit is a hard limit as on v1 without
                    // swap. Absent without swap accounting.
                    v.push((d.join("memory.swap.max"), "0".into(), true));
                }
                if let Some(pids) = c.pids {
                    v.push((d.join("pids.max"), pids.to_string(), false));
                }
                if let Some(cpus) = c.cpus {
                    v.push((d.join("cpu.max"), format!("{} {period}", quota(cpus)), false));
                }
            }
            Version::V1 => {
                if let Some(Some(mem)) = c.memory {
                    let m = self.dir("memory");
                    v.push((m.join("memory.limit_in_bytes"), mem.to_string(), false));
                    // Swap accounting is on where the root has the file; the
                    // memory+swap limit must not be below the memory limit.
                    if root.join("memory").join("memory.memsw.limit_in_bytes").exists() {
                        v.push((m.join("memory.memsw.limit_in_bytes"), mem.to_string(), false));
                    }
                }
                if let Some(pids) = c.pids {
                    v.push((self.dir("pids").join("pids.max"), pids.to_string(), false));
                }
                if let Some(cpus) = c.cpus {
                    // A new cgroup's period is the kernel's default, 100 ms
                    // (`period`), so the quota alone sets the share (one write
                    // less per launch; tests/container.rs reads the period back).
                    v.push((self.dir("cpu").join("cpu.cfs_quota_us"), quota(cpus).to_string(), false));
                }
            }
        }
        v
    }

    /// The memory limit applied, if any.
    pub fn memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }

    /// How many times the OOM killer killed a task of this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let (file, key) = match self.version {
            Version::V2 => ("memory.events", "oom_kill"),
            Version::V1 => ("memory.oom_control", "oom_kill"),
        };
        let text = std::fs::read_to_string(self.dir("memory").join(file)).unwrap_or_default();
        text.lines().find_map(|l| l.strip_prefix(key).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
    }

    /// Memory charged to the cgroup now, in bytes (`None` without the
    /// memory controller).
    pub fn memory_current(&self) -> Option<u64> {
        let file = match self.version {
            Version::V2 => "memory.current",
            Version::V1 => "memory.usage_in_bytes",
        };
        std::fs::read_to_string(self.dir("memory").join(file)).ok()?.trim().parse().ok()
    }

    /// The cgroup's directories (for tests and leak checks).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Process ids currently in the cgroup.
    pub fn pids(&self) -> Vec<i32> {
        let Some(first) = self.controllers.first() else { return Vec::new() };
        let text = std::fs::read_to_string(self.dir(first).join("cgroup.procs")).unwrap_or_default();
        text.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// Kills whatever is left inside and removes the directories, retrying
    /// while the kernel still reports the cgroup busy.
    pub fn remove(&mut self) -> Result<()> {
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(d) = self.dirs.last().cloned() {
            match std::fs::remove_dir(&d) {
                Ok(()) => {
                    self.dirs.pop();
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.dirs.pop();
                }
                Err(e) if Instant::now() < deadline && e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(LaunchError::Cgroup { path: d, source: e }),
            }
        }
        Ok(())
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!("leaving a cgroup behind: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Controls {
        Controls::limits(&Limits::default())
    }

    #[test]
    fn dirs_follow_the_mode() {
        let r = Path::new("/r");
        assert_eq!(Cgroup::dirs_for(CgroupMode::V2, r, "x", &CONTROLLERS), vec![PathBuf::from("/r/x")]);
        assert_eq!(
            Cgroup::dirs_for(CgroupMode::Hybrid, r, "x", &CONTROLLERS),
            vec![PathBuf::from("/r/memory/x"), PathBuf::from("/r/pids/x"), PathBuf::from("/r/cpu/x")]
        );
        assert_eq!(Cgroup::dirs_for(CgroupMode::V1, r, "x", &["memory"]), vec![PathBuf::from("/r/memory/x")]);
    }

    #[test]
    fn needs_become_controls() {
        let l = Limits { cpus: 0.5, ..Limits::default() };
        assert_eq!(Controls::needs(CgroupNeeds::default(), &l), None, "nothing asked: no cgroup");
        let m = Controls::needs(CgroupNeeds { memory: true, cpu: false }, &l).unwrap();
        assert_eq!((m.controllers(), m.memory), (vec!["memory"], Some(None)), "memory accounting, no limit");
        let c = Controls::needs(CgroupNeeds { memory: false, cpu: true }, &l).unwrap();
        assert_eq!((c.controllers(), c.cpus), (vec!["cpu"], Some(0.5)));
        assert_eq!(all().controllers(), CONTROLLERS);
    }

    #[test]
    fn missing_controller_is_named() {
        let err = Cgroup::check(CgroupMode::V1, &["memory".into(), "cpu".into()], &all()).unwrap_err();
        assert!(err.to_string().contains("`pids`"), "{err}");
        assert!(Cgroup::check(CgroupMode::V2, &["memory".into(), "pids".into(), "cpu".into()], &all()).is_ok());
        // A memory-only cgroup needs only the memory controller.
        let mem = Controls { memory: Some(None), ..Controls::default() };
        assert!(Cgroup::check(CgroupMode::V1, &["memory".into()], &mem).is_ok());
        // v2: the root must enable the controller for its children.
        let f = Path::new("/sys/fs/cgroup/cgroup.subtree_control");
        let err = Cgroup::check_subtree("cpu pids", f, &mem).unwrap_err().to_string();
        assert!(err.contains("`memory`") && err.contains("subtree_control"), "{err}");
        assert!(Cgroup::check_subtree("cpuset cpu io memory pids", f, &all()).is_ok());
    }

    use super::super::syscall::recording::RecordingSyscall;

    fn fake_root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for c in CONTROLLERS {
            std::fs::create_dir(t.path().join(c)).unwrap();
        }
        t
    }

    fn applied(mode: CgroupMode, root: &Path, name: &str, c: &Controls) -> Vec<String> {
        let (_cg, plan) = Cgroup::plan_under(mode, root, name, c).unwrap();
        let sys = RecordingSyscall::default();
        plan.apply(&sys).unwrap();
        let r = root.display().to_string();
        sys.calls().iter().map(|c| c.replace(&r, "R")).collect()
    }

    #[test]
    fn plan_creates_limits_then_joins_every_hierarchy() {
        let t = fake_root();
        std::fs::write(t.path().join("memory/memory.memsw.limit_in_bytes"), "").unwrap();
        let limits = Limits { memory_bytes: 1234, pids: 7, cpus: 0.5 };
        let (cg, _) = Cgroup::plan_under(CgroupMode::V1, t.path(), "versus-test", &Controls::limits(&limits)).unwrap();
        assert_eq!(cg.dirs().len(), 3);
        assert!(!t.path().join("memory/versus-test").exists(), "planning creates nothing");
        drop(cg); // nothing was created: removal finds nothing and is quiet
        assert_eq!(
            applied(CgroupMode::V1, t.path(), "versus-test", &Controls::limits(&limits)),
            [
                "mkdir R/memory/versus-test",
                "mkdir R/pids/versus-test",
                "mkdir R/cpu/versus-test",
                "write R/memory/versus-test/memory.limit_in_bytes 1234",
                "write R/memory/versus-test/memory.memsw.limit_in_bytes 1234",
                "write R/pids/versus-test/pids.max 7",
                "write R/cpu/versus-test/cpu.cfs_quota_us 50000",
                "write R/memory/versus-test/tasks 0",
                "write R/pids/versus-test/tasks 0",
                "write R/cpu/versus-test/tasks 0",
            ]
        );
    }

    #[test]
    fn v2_plans_one_directory_with_every_file() {
        let r = Path::new("/v2root");
        let limits = Limits { memory_bytes: 1234, pids: 7, cpus: 0.25 };
        assert_eq!(
            applied(CgroupMode::V2, r, "versus-1-2", &Controls::limits(&limits)),
            [
                "mkdir R/versus-1-2",
                "write R/versus-1-2/memory.max 1234",
                "write R/versus-1-2/memory.swap.max 0",
                "write R/versus-1-2/pids.max 7",
                "write R/versus-1-2/cpu.max 25000 100000",
                "write R/versus-1-2/cgroup.procs 0",
            ]
        );
        // A process's memory cgroup: accounting only, nothing to write but
        // the join; with the CPU quota, cpu.max.
        let mem = Controls::needs(CgroupNeeds { memory: true, cpu: false }, &limits).unwrap();
        assert_eq!(applied(CgroupMode::V2, r, "p", &mem), ["mkdir R/p", "write R/p/cgroup.procs 0"]);
        let both = Controls::needs(CgroupNeeds { memory: true, cpu: true }, &Limits { cpus: 1.0, ..limits }).unwrap();
        assert_eq!(applied(CgroupMode::V2, r, "p", &both), ["mkdir R/p", "write R/p/cpu.max 100000 100000", "write R/p/cgroup.procs 0"]);
        // Reading it back uses the v2 file names.
        let (cg, _) = Cgroup::plan_under(CgroupMode::V2, r, "p", &mem).unwrap();
        assert_eq!(cg.dir("memory"), Path::new("/v2root/p"));
        assert_eq!(cg.dir("cpu"), Path::new("/v2root/p"));
        assert_eq!(cg.memory_limit(), None);
    }

    #[test]
    fn v1_memory_only_and_cpu_only() {
        let t = fake_root();
        std::fs::write(t.path().join("memory/memory.memsw.limit_in_bytes"), "").unwrap();
        let l = Limits { cpus: 1.0, ..Limits::default() };
        let mem = Controls::needs(CgroupNeeds { memory: true, cpu: false }, &l).unwrap();
        assert_eq!(applied(CgroupMode::Hybrid, t.path(), "p", &mem), ["mkdir R/memory/p", "write R/memory/p/tasks 0"], "no limit, no memsw");
        let cpu = Controls::needs(CgroupNeeds { memory: false, cpu: true }, &l).unwrap();
        assert_eq!(applied(CgroupMode::V1, t.path(), "p", &cpu), ["mkdir R/cpu/p", "write R/cpu/p/cpu.cfs_quota_us 100000", "write R/cpu/p/tasks 0"]);
        let (cg, _) = Cgroup::plan_under(CgroupMode::V1, t.path(), "p", &cpu).unwrap();
        assert_eq!(cg.dir("memory"), Path::new("/nonexistent-versus-cgroup"), "no memory directory to read");
        assert_eq!(cg.memory_current(), None);
    }

    #[test]
    fn swap_limit_only_where_swap_is_accounted() {
        let t = fake_root();
        let (_cg, plan) = Cgroup::plan_under(CgroupMode::Hybrid, t.path(), "x", &all()).unwrap();
        assert!(plan.limits.iter().all(|l| !l.0.to_bytes().ends_with(b"memsw.limit_in_bytes")));
        let (_cg, plan) = Cgroup::plan_under(CgroupMode::V2, t.path(), "x", &all()).unwrap();
        let swap = plan.limits.iter().find(|l| l.0.to_bytes().ends_with(b"memory.swap.max")).unwrap();
        assert!(swap.2, "memory.swap.max is optional on v2");
    }

    #[test]
    fn a_failed_step_is_reported_with_its_path() {
        let t = fake_root();
        let (_cg, plan) = Cgroup::plan_under(CgroupMode::V1, t.path(), "x", &all()).unwrap();
        let sys = RecordingSyscall { fail_on: Some("write"), ..Default::default() };
        let (step, errno) = plan.apply(&sys).unwrap_err();
        assert_eq!(step, CgroupStep::Limit(0));
        assert_eq!(CgroupStep::decode(step.encode()), Some(step));
        let msg = plan.error(step, errno).to_string();
        assert!(msg.contains("memory/x/memory.limit_in_bytes"), "{msg}");
    }

    #[test]
    fn removal_cleans_up_a_half_made_cgroup() {
        // The child may fail after creating some directories: the handle
        // removes those and ignores the rest.
        let t = fake_root();
        let (mut cg, plan) = Cgroup::plan_under(CgroupMode::V1, t.path(), "half", &all()).unwrap();
        super::super::syscall::LinuxSyscall.mkdir(&plan.dirs[0]).unwrap();
        assert!(t.path().join("memory/half").is_dir());
        cg.remove().unwrap();
        assert!(!t.path().join("memory/half").exists());
        assert!(cg.dirs().is_empty());
    }

    #[test]
    fn instance_names_are_unique_and_carry_our_pid() {
        let (a, b) = (instance_name(), instance_name());
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("versus-{}-", std::process::id())));
    }
}
