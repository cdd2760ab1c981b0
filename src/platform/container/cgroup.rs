//! One cgroup per container instance, with memory, pids and cpu limits, on
//! cgroup v2 and on v1/hybrid hosts. Removed on drop (after killing anything
//! still inside it).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let p = dir.join(file);
    std::fs::write(&p, value).map_err(|e| LaunchError::Cgroup { path: p, source: e })
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

    /// Creates the cgroup `name` and applies `limits`. On any error the
    /// directories created so far are removed.
    pub fn create(mode: CgroupMode, name: &str, limits: &Limits) -> Result<Cgroup> {
        Self::create_under(mode, Path::new(ROOT), name, limits)
    }

    fn create_under(mode: CgroupMode, root: &Path, name: &str, limits: &Limits) -> Result<Cgroup> {
        let version = if mode == CgroupMode::V2 { Version::V2 } else { Version::V1 };
        let mut cg = Cgroup { version, dirs: Vec::new(), memory_limit: limits.memory_bytes };
        for d in Self::dirs_for(mode, root, name) {
            std::fs::create_dir(&d).map_err(|e| LaunchError::Cgroup { path: d.clone(), source: e })?;
            cg.dirs.push(d);
        }
        cg.apply(limits)?;
        Ok(cg)
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

    fn apply(&self, l: &Limits) -> Result<()> {
        let period = 100_000u64;
        let quota = (l.cpus * period as f64).round().max(1000.0) as u64;
        match self.version {
            Version::V2 => {
                let d = &self.dirs[0];
                write(d, "memory.max", &l.memory_bytes.to_string())?;
                // No swap, so the limit is a hard limit as on v1 without swap.
                if d.join("memory.swap.max").exists() {
                    write(d, "memory.swap.max", "0")?;
                }
                write(d, "pids.max", &l.pids.to_string())?;
                write(d, "cpu.max", &format!("{quota} {period}"))?;
            }
            Version::V1 => {
                let m = self.dir("memory");
                write(m, "memory.limit_in_bytes", &l.memory_bytes.to_string())?;
                if m.join("memory.memsw.limit_in_bytes").exists() {
                    write(m, "memory.memsw.limit_in_bytes", &l.memory_bytes.to_string())?;
                }
                write(self.dir("pids"), "pids.max", &l.pids.to_string())?;
                let c = self.dir("cpu");
                write(c, "cpu.cfs_period_us", &period.to_string())?;
                write(c, "cpu.cfs_quota_us", &quota.to_string())?;
            }
        }
        Ok(())
    }

    /// Moves `pid` into the cgroup (every v1 hierarchy).
    pub fn add(&self, pid: i32) -> Result<()> {
        for d in &self.dirs {
            write(d, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
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
        assert_eq!(
            Cgroup::dirs_for(CgroupMode::Hybrid, r, "x"),
            vec![PathBuf::from("/r/memory/x"), PathBuf::from("/r/pids/x"), PathBuf::from("/r/cpu/x")]
        );
    }

    #[test]
    fn missing_controller_is_named() {
        let err = Cgroup::check(CgroupMode::V1, &["memory".into(), "cpu".into()]).unwrap_err();
        assert!(err.to_string().contains("`pids`"), "{err}");
        assert!(Cgroup::check(CgroupMode::V2, &["memory".into(), "pids".into(), "cpu".into()]).is_ok());
    }

    #[test]
    fn limits_are_written_and_removed_in_a_fake_tree() {
        // A plain directory tree stands in for cgroupfs: files are created by
        // the writes, and removal must clean up what creation made.
        let t = tempfile::tempdir().unwrap();
        for c in CONTROLLERS {
            std::fs::create_dir(t.path().join(c)).unwrap();
        }
        let limits = Limits { memory_bytes: 1234, pids: 7, cpus: 0.5 };
        let mut cg = Cgroup::create_under(CgroupMode::V1, t.path(), "versus-test", &limits).unwrap();
        let read = |p: &str| std::fs::read_to_string(t.path().join(p)).unwrap();
        assert_eq!(read("memory/versus-test/memory.limit_in_bytes"), "1234");
        assert_eq!(read("pids/versus-test/pids.max"), "7");
        assert_eq!(read("cpu/versus-test/cpu.cfs_quota_us"), "50000");
        for d in cg.dirs().to_vec() {
            for f in std::fs::read_dir(&d).unwrap() {
                std::fs::remove_file(f.unwrap().path()).unwrap();
            }
        }
        cg.remove().unwrap();
        assert!(!t.path().join("memory/versus-test").exists());
    }
}
