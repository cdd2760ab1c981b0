//! What the kernel charged to a process's memory cgroup: v1
//! `memory.usage_in_bytes`, v2 `memory.current`. Both count kernel memory
//! the cgroup's tasks caused (page tables, KVM's own allocations, page
//! cache) besides their pages.

use std::path::{Path, PathBuf};

/// The memory cgroup of `pid` (`"self"` for this process): `(is_v1, path)`
/// relative to the hierarchy root.
pub fn memory_cgroup_of(pid: &str) -> Option<(bool, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    parse_memory_cgroup(&text)
}

/// From a `/proc/PID/cgroup` text: `(is_v1, path)` of the memory controller
/// (the v1 `memory` hierarchy, else the v2 `0::` line).
pub fn parse_memory_cgroup(text: &str) -> Option<(bool, String)> {
    let mut v2 = None;
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
        if ctrls.split(',').any(|c| c == "memory") {
            return Some((true, path.to_string()));
        }
        if ctrls.is_empty() {
            v2 = Some((false, path.to_string()));
        }
    }
    v2
}

/// The charged-memory file of a memory cgroup.
pub fn charged_file(v1: bool, path: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    if v1 {
        Path::new("/sys/fs/cgroup/memory").join(rel).join("memory.usage_in_bytes")
    } else {
        Path::new("/sys/fs/cgroup").join(rel).join("memory.current")
    }
}

/// Memory charged to the memory cgroup of `pid`, unless that cgroup is the
/// root or the one this process is in (an instance that shares versus'
/// cgroup has no charge of its own: the whole session's is not its).
pub fn own_cgroup_charge(pid: i32) -> Option<u64> {
    let theirs = memory_cgroup_of(&pid.to_string())?;
    let ours = memory_cgroup_of("self");
    if ours.as_ref() == Some(&theirs) || theirs.1 == "/" {
        return None;
    }
    std::fs::read_to_string(charged_file(theirs.0, &theirs.1)).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cgroup_files() {
        let v1 = "9:name=systemd:/\n4:memory:/versus-1-2\n0::/\n";
        assert_eq!(parse_memory_cgroup(v1), Some((true, "/versus-1-2".into())));
        let v2 = "0::/system.slice/x\n";
        assert_eq!(parse_memory_cgroup(v2), Some((false, "/system.slice/x".into())));
        assert_eq!(charged_file(true, "/a"), PathBuf::from("/sys/fs/cgroup/memory/a/memory.usage_in_bytes"));
        assert_eq!(charged_file(false, "/a"), PathBuf::from("/sys/fs/cgroup/a/memory.current"));
    }

    #[test]
    fn our_own_cgroup_is_not_an_instance_charge() {
        assert_eq!(own_cgroup_charge(std::process::id() as i32), None);
    }
}
