//! Helpers shared by the integration tests: scoped leak checks. Only what
//! this test process created is looked at, so tests can run in parallel with
//! other versus processes on the same host.
//! [`kvm_host`] runs a versus command where KVM is hardware-style (here, or
//! in harness/kvm-host's emulated host).
#![allow(dead_code)]

pub mod kvm_host;

use std::path::PathBuf;

/// cgroup directories of this process's instances (`versus-<pid>-*`).
pub fn own_cgroups() -> Vec<PathBuf> {
    cgroups_named(&format!("versus-{}-", std::process::id()))
}

/// cgroup directories whose name starts with `prefix`, on cgroup v1 (every
/// controller's hierarchy), v2 and hybrid: /sys/fs/cgroup searched three
/// levels deep (a v2 instance cgroup sits under versus' own cgroup).
pub fn cgroups_named(prefix: &str) -> Vec<PathBuf> {
    fn walk(dir: &std::path::Path, prefix: &str, depth: u32, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let Ok(t) = e.file_type() else { continue };
            if !t.is_dir() {
                continue;
            }
            if e.file_name().to_string_lossy().starts_with(prefix) {
                out.push(e.path());
            } else if depth > 0 {
                walk(&e.path(), prefix, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(std::path::Path::new("/sys/fs/cgroup"), prefix, 3, &mut out);
    out
}

/// Live (not yet reaped or zombie) children of this process, all threads.
pub fn own_children() -> Vec<i32> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc/self/task") {
        for t in rd.flatten() {
            let text = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            out.extend(text.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    out
}

/// Mount points in this (the host's) mount namespace under `dir`.
pub fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let d = dir.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(1).map(String::from))
        .filter(|m| m.starts_with(&d))
        .collect()
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether this host has a usable /dev/kvm; prints a visible SKIPPED line
/// with the reason when not.
pub fn kvm_or_skip() -> bool {
    match versus_vmm::vm::available() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("SKIPPED: no usable KVM on this host: {why}");
            false
        }
    }
}
