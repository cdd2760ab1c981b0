//! One cgroup per container instance, with memory, pids and cpu limits, on
//! cgroup v2 and on v1/hybrid hosts. The parent prepares a [`CgroupPlan`]
//! (every path and value as a C string) and holds the [`Cgroup`] handle;
//! the container's child carries the plan out itself, before its rootfs
//! set-up: it creates the directories, writes the limits and joins them.
//! The handle removes whatever exists of the cgroup on drop (after killing
//! anything still inside it), also when the child failed half-way.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::syscall::Syscall;
use crate::error::{LaunchError, Result};
use crate::host::CgroupMode;
use crate::platform::Limits;

const ROOT: &str = "/sys/fs/cgroup";

/// The controllers a container cgroup uses.
pub const CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// A created cgroup (one directory per v1 controller, or one v2 directory).
#[derive(Debug)]
pub struct Cgroup {
    version: Version,
    dirs: Vec<PathBuf>,
    memory_limit: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// The cgroup set-up, prepared by the parent and carried out by the child
/// (which must not allocate): directories to create, limit files to write,
/// then the `cgroup.procs` files to write "0" to (joining the cgroup).
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
        for (i, d) in self.dirs.iter().enumerate() {
            sys.mkdir(d).map_err(|e| (CgroupStep::Create(i), e))?;
        }
        for (i, (file, value, optional)) in self.limits.iter().enumerate() {
            match sys.write_file(file, value) {
                Err(nix::errno::Errno::ENOENT) if *optional => {}
                r => r.map_err(|e| (CgroupStep::Limit(i), e))?,
            }
        }
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

impl Cgroup {
    /// The directories a cgroup named `name` would use under `root` for the
    /// given mode (v1 controllers in their own hierarchies).
    fn dirs_for(mode: CgroupMode, root: &Path, name: &str) -> Vec<PathBuf> {
        match mode {
            CgroupMode::V2 => vec![root.join(name)],
            _ => CONTROLLERS.iter().map(|c| root.join(c).join(name)).collect(),
        }
    }

    /// Checks that every controller is available; the error names the
    /// missing one.
    pub fn check(mode: CgroupMode, controllers: &[String]) -> Result<()> {
        if mode == CgroupMode::None {
            return Err(LaunchError::MissingCgroupController { controller: "memory".into(), path: ROOT.into() });
        }
        for c in CONTROLLERS {
            if !controllers.iter().any(|h| h == c) {
                let path = match mode {
                    CgroupMode::V2 => PathBuf::from(ROOT).join("cgroup.controllers"),
                    _ => PathBuf::from(ROOT).join(c),
                };
                return Err(LaunchError::MissingCgroupController { controller: c.into(), path });
            }
        }
        Ok(())
    }

    /// Plans the cgroup `name` with `limits`: the handle (which removes
    /// whatever of it exists when dropped) and the plan for the child.
    /// Nothing is created yet.
    pub fn plan(mode: CgroupMode, name: &str, limits: &Limits) -> Result<(Cgroup, CgroupPlan)> {
        Self::plan_under(mode, Path::new(ROOT), name, limits)
    }

    fn plan_under(mode: CgroupMode, root: &Path, name: &str, limits: &Limits) -> Result<(Cgroup, CgroupPlan)> {
        let version = if mode == CgroupMode::V2 { Version::V2 } else { Version::V1 };
        let cg = Cgroup { version, dirs: Self::dirs_for(mode, root, name), memory_limit: limits.memory_bytes };
        let mut plan = CgroupPlan { dirs: Vec::new(), limits: Vec::new(), procs: Vec::new() };
        for d in &cg.dirs {
            plan.dirs.push(cstring(d)?);
            plan.procs.push(cstring(&d.join("cgroup.procs"))?);
        }
        for (file, value, optional) in cg.limit_files(root, limits) {
            let value = CString::new(value).map_err(|_| LaunchError::Unsupported("a cgroup limit contains a NUL byte".into()))?;
            plan.limits.push((cstring(&file)?, value, optional));
        }
        Ok((cg, plan))
    }

    /// The directory holding `controller`'s files. Only valid while the
    /// cgroup exists (`dirs` complete); callers after removal get a path
    /// that does not exist, so reads fail softly.
    fn dir(&self, controller: &str) -> &Path {
        let i = match self.version {
            Version::V2 => 0,
            Version::V1 => CONTROLLERS.iter().position(|c| *c == controller).unwrap_or(0),
        };
        self.dirs.get(i).map(PathBuf::as_path).unwrap_or(Path::new("/nonexistent-versus-cgroup"))
    }

    /// The limit files to write: (file, value, optional).
    fn limit_files(&self, root: &Path, l: &Limits) -> Vec<(PathBuf, String, bool)> {
        let period = 100_000u64;
        let quota = (l.cpus * period as f64).round().max(1000.0) as u64;
        let mem = l.memory_bytes.to_string();
        match self.version {
            Version::V2 => {
                let d = &self.dirs[0];
                vec![
                    (d.join("memory.max"), mem, false),
                    // No swap, so the limit is a hard limit as on v1 without
                    // swap. Absent without swap accounting.
                    (d.join("memory.swap.max"), "0".into(), true),
                    (d.join("pids.max"), l.pids.to_string(), false),
                    (d.join("cpu.max"), format!("{quota} {period}"), false),
                ]
            }
            Version::V1 => {
                let m = self.dir("memory");
                let mut v = vec![(m.join("memory.limit_in_bytes"), mem.clone(), false)];
                // Swap accounting is on where the root has the file; the
                // memory+swap limit must not be below the memory limit.
                if root.join("memory").join("memory.memsw.limit_in_bytes").exists() {
                    v.push((m.join("memory.memsw.limit_in_bytes"), mem, false));
                }
                v.push((self.dir("pids").join("pids.max"), l.pids.to_string(), false));
                // A new cgroup's period is the kernel's default, 100 ms
                // (`period`), so the quota alone sets the share (one write
                // less per launch; tests/container.rs reads the period back).
                v.push((self.dir("cpu").join("cpu.cfs_quota_us"), quota.to_string(), false));
                v
            }
        }
    }

    /// The memory limit applied.
    pub fn memory_limit(&self) -> u64 {
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

    /// Memory charged to the cgroup now, in bytes.
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
        if self.dirs.len() < CONTROLLERS.len() && self.version == Version::V1 {
            return Vec::new();
        }
        let text = std::fs::read_to_string(self.dir("pids").join("cgroup.procs")).unwrap_or_default();
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

    #[test]
    fn dirs_follow_the_mode() {
        let r = Path::new("/r");
        assert_eq!(Cgroup::dirs_for(CgroupMode::V2, r, "x"), vec![PathBuf::from("/r/x")]);
        assert_eq!(Cgroup::dirs_for(CgroupMode::Hybrid, r, "x"), vec![PathBuf::from("/r/memory/x"), PathBuf::from("/r/pids/x"), PathBuf::from("/r/cpu/x")]);
    }

    #[test]
    fn missing_controller_is_named() {
        let err = Cgroup::check(CgroupMode::V1, &["memory".into(), "cpu".into()]).unwrap_err();
        assert!(err.to_string().contains("`pids`"), "{err}");
        assert!(Cgroup::check(CgroupMode::V2, &["memory".into(), "pids".into(), "cpu".into()]).is_ok());
    }

    use super::super::syscall::recording::RecordingSyscall;

    fn fake_root() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for c in CONTROLLERS {
            std::fs::create_dir(t.path().join(c)).unwrap();
        }
        t
    }

    #[test]
    fn plan_creates_limits_then_joins_every_hierarchy() {
        let t = fake_root();
        std::fs::write(t.path().join("memory/memory.memsw.limit_in_bytes"), "").unwrap();
        let limits = Limits { memory_bytes: 1234, pids: 7, cpus: 0.5 };
        let (cg, plan) = Cgroup::plan_under(CgroupMode::V1, t.path(), "versus-test", &limits).unwrap();
        assert_eq!(cg.dirs().len(), 3);
        assert!(!t.path().join("memory/versus-test").exists(), "planning creates nothing");
        let sys = RecordingSyscall::default();
        plan.apply(&sys).unwrap();
        let r = t.path().display().to_string();
        let calls: Vec<String> = sys.calls.borrow().iter().map(|c| c.replace(&r, "R")).collect();
        assert_eq!(
            calls,
            [
                "mkdir R/memory/versus-test",
                "mkdir R/pids/versus-test",
                "mkdir R/cpu/versus-test",
                "write R/memory/versus-test/memory.limit_in_bytes 1234",
                "write R/memory/versus-test/memory.memsw.limit_in_bytes 1234",
                "write R/pids/versus-test/pids.max 7",
                "write R/cpu/versus-test/cpu.cfs_quota_us 50000",
                "write R/memory/versus-test/cgroup.procs 0",
                "write R/pids/versus-test/cgroup.procs 0",
                "write R/cpu/versus-test/cgroup.procs 0",
            ]
        );
        drop(cg); // nothing was created: removal finds nothing and is quiet
    }

    #[test]
    fn swap_limit_only_where_swap_is_accounted() {
        let t = fake_root();
        let (_cg, plan) = Cgroup::plan_under(CgroupMode::Hybrid, t.path(), "x", &Limits::default()).unwrap();
        assert!(plan.limits.iter().all(|l| !l.0.to_bytes().ends_with(b"memsw.limit_in_bytes")));
        let (_cg, plan) = Cgroup::plan_under(CgroupMode::V2, t.path(), "x", &Limits::default()).unwrap();
        let swap = plan.limits.iter().find(|l| l.0.to_bytes().ends_with(b"memory.swap.max")).unwrap();
        assert!(swap.2, "memory.swap.max is optional on v2");
    }

    #[test]
    fn a_failed_step_is_reported_with_its_path() {
        let t = fake_root();
        let (_cg, plan) = Cgroup::plan_under(CgroupMode::V1, t.path(), "x", &Limits::default()).unwrap();
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
        let (mut cg, plan) = Cgroup::plan_under(CgroupMode::V1, t.path(), "half", &Limits::default()).unwrap();
        super::super::syscall::LinuxSyscall.mkdir(&plan.dirs[0]).unwrap();
        assert!(t.path().join("memory/half").is_dir());
        cg.remove().unwrap();
        assert!(!t.path().join("memory/half").exists());
        assert!(cg.dirs().is_empty());
    }
}
