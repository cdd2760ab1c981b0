//! The cgroup a runtime made for an instance, seen from versus: the runtime
//! creates it where config.json's `cgroupsPath` says (an absolute path is
//! relative to the root of every hierarchy) and removes it on `delete`.
//! versus reads its processes (memory accounting), its OOM-kill count, and
//! removes what a failed or interrupted runtime left behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const ROOT: &str = "/sys/fs/cgroup";

/// An instance's cgroup, by its path under each hierarchy's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeCgroup {
    /// The path relative to a hierarchy root, without leading slash.
    rel: String,
    root: PathBuf,
}

impl RuntimeCgroup {
    /// The cgroup `cgroups_path` (`/versus-1-runc-0`).
    pub fn new(cgroups_path: &str) -> RuntimeCgroup {
        RuntimeCgroup { rel: cgroups_path.trim_start_matches('/').to_string(), root: PathBuf::from(ROOT) }
    }

    #[cfg(test)]
    fn under(root: &Path, cgroups_path: &str) -> RuntimeCgroup {
        RuntimeCgroup { rel: cgroups_path.trim_start_matches('/').to_string(), root: root.to_path_buf() }
    }

    /// Every directory of the cgroup that exists now: the v2 one
    /// (`/sys/fs/cgroup/<path>`, or under `unified/` on a hybrid host) and
    /// one per v1 hierarchy (`/sys/fs/cgroup/<controller>/<path>`).
    pub fn dirs(&self) -> Vec<PathBuf> {
        if self.rel.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        let direct = self.root.join(&self.rel);
        // On v2 the root itself is the hierarchy; on v1 the root is a
        // tmpfs of hierarchy mount points, and `<root>/<rel>` exists only
        // if `rel` names one of them (it never does: versus' names start
        // with `versus-`).
        if direct.join("cgroup.procs").exists() {
            out.push(direct);
        }
        if let Ok(rd) = std::fs::read_dir(&self.root) {
            for e in rd.flatten() {
                let d = e.path().join(&self.rel);
                if d.join("cgroup.procs").exists() && !out.contains(&d) {
                    out.push(d);
                }
            }
        }
        out
    }

    /// Every directory of the cgroup and of the cgroups below it (an
    /// engine's parent cgroup holds the container's and its monitor's).
    pub fn tree(&self) -> Vec<PathBuf> {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            out.push(d.to_path_buf());
            if let Ok(rd) = std::fs::read_dir(d) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        walk(&e.path(), out);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for d in self.dirs() {
            walk(&d, &mut out);
        }
        out
    }

    /// The processes in the cgroup and below it (each once).
    pub fn procs(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = Vec::new();
        for d in self.tree() {
            let text = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for p in text.lines().filter_map(|l| l.trim().parse().ok()) {
                if !pids.contains(&p) {
                    pids.push(p);
                }
            }
        }
        pids
    }

    /// How many times the OOM killer killed a task of the cgroup or of one
    /// below it (v1 `memory.oom_control`, v2 `memory.events`).
    pub fn oom_kills(&self) -> u64 {
        self.tree()
            .iter()
            .flat_map(|d| [d.join("memory.oom_control"), d.join("memory.events")])
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|t| t.lines().filter_map(|l| l.strip_prefix("oom_kill ").and_then(|v| v.trim().parse::<u64>().ok())).collect::<Vec<_>>())
            .max()
            .unwrap_or(0)
    }

    /// The highest memory use the cgroup saw, its own and its children's
    /// (v1 `memory.max_usage_in_bytes`, v2 `memory.peak`): what is left to
    /// tell an OOM kill by once an engine removed the container's cgroup
    /// below this one (v1 counts OOM kills per cgroup, not up the tree).
    pub fn peak_usage(&self) -> Option<u64> {
        self.dirs()
            .iter()
            .flat_map(|d| [d.join("memory.max_usage_in_bytes"), d.join("memory.peak")])
            .filter_map(|f| std::fs::read_to_string(f).ok()?.trim().parse::<u64>().ok())
            .max()
    }

    /// The lowest memory limit in the cgroup's tree (v1
    /// `memory.limit_in_bytes`, v2 `memory.max`), if one is set.
    pub fn memory_limit(&self) -> Option<u64> {
        self.tree()
            .iter()
            .flat_map(|d| [d.join("memory.limit_in_bytes"), d.join("memory.max")])
            .filter_map(|f| std::fs::read_to_string(f).ok()?.trim().parse::<u64>().ok())
            .min()
    }

    /// Kills whatever is left inside and removes every directory, retrying
    /// while the kernel still reports it busy (bounded). Returns the
    /// directories that could not be removed.
    pub fn remove(&self) -> Vec<PathBuf> {
        for pid in self.procs() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left: Vec<PathBuf> = self.dirs().into_iter().filter(|d| remove_tree(d).is_err()).collect();
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Removes a cgroup directory and the cgroups below it (deepest first).
fn remove_tree(d: &Path) -> std::io::Result<()> {
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path())?;
            }
        }
    }
    match std::fs::remove_dir(d) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_hierarchy_and_reads_procs_and_oom() {
        let t = tempfile::tempdir().unwrap();
        for c in ["memory", "pids"] {
            std::fs::create_dir_all(t.path().join(c).join("versus-1-x")).unwrap();
        }
        std::fs::write(t.path().join("memory/versus-1-x/cgroup.procs"), "7\n8\n").unwrap();
        std::fs::write(t.path().join("pids/versus-1-x/cgroup.procs"), "8\n9\n").unwrap();
        std::fs::write(t.path().join("memory/versus-1-x/memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").unwrap();
        std::fs::write(t.path().join("memory/versus-1-x/memory.limit_in_bytes"), "67108864\n").unwrap();
        let cg = RuntimeCgroup::under(t.path(), "/versus-1-x");
        assert_eq!(cg.dirs().len(), 2);
        std::fs::create_dir_all(t.path().join("pids/versus-1-x/child")).unwrap();
        std::fs::write(t.path().join("pids/versus-1-x/child/cgroup.procs"), "10\n").unwrap();
        let mut p = cg.procs();
        p.sort();
        assert_eq!(p, vec![7, 8, 9, 10], "processes of the cgroups below count");
        assert_eq!(cg.oom_kills(), 2);
        assert_eq!(cg.memory_limit(), Some(64 << 20));
        assert!(RuntimeCgroup::under(t.path(), "/").dirs().is_empty(), "the root is never an instance's cgroup");
    }
}
