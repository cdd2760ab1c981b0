//! Helpers shared by the integration tests: scoped leak checks. Only what
//! this test process created is looked at, so tests can run in parallel with
//! other versus processes on the same host.
//! [`kvm_host`] runs a versus command where KVM is hardware-style (here, or
//! in harness/kvm-host's emulated host).
#![allow(dead_code)]

pub mod kvm_host;

use std::path::PathBuf;

/// cgroup directories of this process's containers (`versus-<pid>-*`).
pub fn own_cgroups() -> Vec<PathBuf> {
    let prefix = format!("versus-{}-", std::process::id());
    let mut out = Vec::new();
    for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu"] {
        if let Ok(rd) = std::fs::read_dir(root) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    out.push(e.path());
                }
            }
        }
    }
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
    match versus::platform::vm::vm::available() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("SKIPPED: no usable KVM on this host: {why}");
            false
        }
    }
}
