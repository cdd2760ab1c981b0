//! Cloning the container's init into new namespaces, and the child side of
//! the launch up to execve.
//!
//! As root the child is cloned with `CLONE_VM | CLONE_VFORK`, as
//! posix_spawn starts a process: it runs on its own small stack in the
//! parent's memory (no copy of the parent's page tables to make, nor to
//! tear down again at execve), and the parent sleeps until the child has
//! called execve or exited. The child creates and joins its own cgroup
//! (see [`super::cgroup::CgroupPlan`]), sets up its rootfs, unshares its
//! cgroup namespace and execs. Because it shares the parent's memory it
//! only makes system calls on data the parent prepared: no allocation, no
//! locks, nothing written but its own stack.
//!
//! Rootless, the parent must write the child's uid/gid maps while the child
//! waits, which a suspended parent cannot do: the child is cloned with its
//! own copy of the memory instead, and waits on the `sync` pipe for one
//! byte that says the maps are written (no cgroup in rootless mode).
//!
//! The `status` pipe (CLOEXEC) carries a record with the child's
//! timestamps just before execve, or an error record naming the failed
//! step. execve closes it, so end of file means the workload program is
//! running.

use std::ffi::{c_char, CString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{OwnedFd, RawFd};

use nix::sched::CloneFlags;
use nix::unistd::Pid;

use super::cgroup::{CgroupPlan, CgroupStep};
use super::rootfs::RootfsPlan;
use super::syscall::{LinuxSyscall, Syscall};
use crate::error::{LaunchError, Result};
use crate::measure::clock::now_ns;
use crate::platform::process::CHANNEL_FD;

/// Everything the child needs, prepared by the parent.
pub struct ChildPlan {
    pub rootfs: RootfsPlan,
    /// The cgroup the child creates and joins first, if any.
    pub cgroup: Option<CgroupPlan>,
    pub init: CString,
    /// argv strings (kept alive for `argv`).
    pub _args: Vec<CString>,
    /// NULL-terminated argv pointer array.
    pub argv: Vec<*const c_char>,
    pub envp: Vec<*const c_char>,
    pub sync_r: RawFd,
    pub status_w: RawFd,
    pub stdin: RawFd,
    pub stderr: RawFd,
    pub channel: RawFd,
    /// Wait for the parent's first byte (uid/gid maps written) before the
    /// rootfs set-up: needed in a user namespace.
    pub wait_for_maps: bool,
}

impl ChildPlan {
    pub fn new(rootfs: RootfsPlan, cgroup: Option<CgroupPlan>, args: Vec<String>, fds: ChildFds, wait_for_maps: bool) -> Result<ChildPlan> {
        let bad = |_| LaunchError::Unsupported("an argument contains a NUL byte".into());
        let args: Vec<CString> = std::iter::once("/init".to_string()).chain(args).map(CString::new).collect::<std::result::Result<_, _>>().map_err(bad)?;
        let mut argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        Ok(ChildPlan {
            rootfs,
            cgroup,
            init: c"/init".into(),
            _args: args,
            argv,
            envp: vec![std::ptr::null()],
            sync_r: fds.sync_r,
            status_w: fds.status_w,
            stdin: fds.stdin,
            stderr: fds.stderr,
            channel: fds.channel,
            wait_for_maps,
        })
    }
}

/// The raw fds the child uses (owned by the parent's launch).
pub struct ChildFds {
    pub sync_r: RawFd,
    pub status_w: RawFd,
    pub stdin: RawFd,
    pub stderr: RawFd,
    pub channel: RawFd,
}

/// Status records: `[kind, a, b, c, d]`.
const REC_READY_TO_EXEC: u64 = 0;
const REC_ERROR: u64 = 1;

/// Names of the child's steps outside the rootfs plan, indexed in records.
const STEPS: [&str; 13] = [
    "wait for parent",
    "set up the cgroup",
    "unshare cgroup namespace",
    "sethostname",
    "make / private",
    "bind rootfs",
    "mount /proc",
    "chdir rootfs",
    "pivot_root",
    "detach old root",
    "chdir /",
    "remount / read-only",
    "set up stdio",
];
const STEP_EXEC: u64 = 100;

fn step_index(name: &str) -> u64 {
    STEPS.iter().position(|s| *s == name).unwrap_or(0) as u64
}

fn step_name(i: u64) -> &'static str {
    if i == STEP_EXEC {
        "execve /init"
    } else {
        STEPS.get(i as usize).copied().unwrap_or("unknown")
    }
}

/// Words in a status record.
const REC_WORDS: usize = 5;

fn write_record(fd: RawFd, rec: [u64; REC_WORDS]) {
    // SAFETY: writes 40 bytes from a local array to a pipe fd; a short or
    // failed write only makes the parent report a less precise error.
    unsafe { libc::write(fd, rec.as_ptr().cast(), std::mem::size_of_val(&rec)) };
}

fn fail(fd: RawFd, step: u64, errno: nix::errno::Errno) -> isize {
    fail_with(fd, step, errno, 0)
}

/// [`fail`] with a step-specific detail word (the failed cgroup step).
fn fail_with(fd: RawFd, step: u64, errno: nix::errno::Errno, detail: u64) -> isize {
    write_record(fd, [REC_ERROR, step, errno as i32 as u64, detail, 0]);
    // SAFETY: _exit ends the cloned child without running the parent's
    // atexit handlers or destructors, which belong to the parent.
    unsafe { libc::_exit(127) }
}

/// The child's body: (rootless: wait for the uid/gid maps), create and
/// join the cgroup, set up the rootfs, exec. Never returns on success; on
/// failure writes an error record and exits 127.
fn child_main(plan: &ChildPlan, sys: &dyn Syscall) -> isize {
    if plan.wait_for_maps {
        let mut b = [0u8; 1];
        // SAFETY: reads one byte into a local buffer from the sync pipe.
        let n = unsafe { libc::read(plan.sync_r, b.as_mut_ptr().cast(), 1) };
        if n != 1 {
            // The parent gave up (error or crash) before letting us run.
            // SAFETY: see `fail`.
            unsafe { libc::_exit(126) }
        }
    }
    let t_start = now_ns();
    if let Some(cg) = &plan.cgroup {
        if let Err((step, e)) = cg.apply(sys) {
            return fail_with(plan.status_w, step_index("set up the cgroup"), e, step.encode());
        }
    }
    let t_cgroup = now_ns();
    if let Err((step, e)) = plan.rootfs.apply(sys) {
        return fail(plan.status_w, step_index(step), e);
    }
    let t_rootfs = now_ns();
    // In the cgroup from here on; the cgroup namespace is rooted there.
    if let Err(e) = sys.unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP) {
        return fail(plan.status_w, step_index("unshare cgroup namespace"), e);
    }
    for (from, to) in [(plan.stdin, 0), (plan.stderr, 1), (plan.stderr, 2), (plan.channel, CHANNEL_FD)] {
        // SAFETY: dup2 on fds owned by this process; it clears CLOEXEC on
        // the new descriptor so it survives execve.
        if unsafe { libc::dup2(from, to) } < 0 {
            return fail(plan.status_w, step_index("set up stdio"), nix::errno::Errno::last());
        }
    }
    write_record(plan.status_w, [REC_READY_TO_EXEC, t_start, t_cgroup, t_rootfs, now_ns()]);
    // SAFETY: init, argv and envp are NUL-terminated C strings and
    // NULL-terminated pointer arrays prepared by the parent and alive here.
    unsafe { libc::execve(plan.init.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr()) };
    fail(plan.status_w, STEP_EXEC, nix::errno::Errno::last())
}

/// The child's stack: anonymous memory with an inaccessible guard page
/// below it, so an overflow faults instead of writing into the parent's
/// memory (the child may share it). Made once per platform and reused
/// (touched up front, so a launch's child takes no page faults on it);
/// unmapped on drop.
pub struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

/// The child only makes system calls, so a small stack is plenty.
const STACK_BYTES: usize = 64 * 1024;
const GUARD_BYTES: usize = 4096;

// SAFETY: the mapping is owned by the ChildStack and only used through
// `&mut self` (one clone at a time).
unsafe impl Send for ChildStack {}

impl ChildStack {
    pub fn new() -> Result<ChildStack> {
        let len = STACK_BYTES + GUARD_BYTES;
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // touched.
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK, -1, 0)
        };
        if base == libc::MAP_FAILED {
            return Err(LaunchError::sys("mapping the container child's stack", nix::errno::Errno::last()));
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of the mapping made above.
        if unsafe { libc::mprotect(base, GUARD_BYTES, libc::PROT_NONE) } != 0 {
            return Err(LaunchError::sys("protecting the container child's stack guard page", nix::errno::Errno::last()));
        }
        let mut stack = stack;
        stack.usable().fill(0);
        Ok(stack)
    }

    fn usable(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, readable and writable above
        // the guard page, and lives as long as `self`.
        unsafe { std::slice::from_raw_parts_mut(self.base.cast::<u8>().add(GUARD_BYTES), self.len - GUARD_BYTES) }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Clones the child with `flags` (plus SIGCHLD), running [`child_main`].
/// With `share_memory` the clone adds `CLONE_VM | CLONE_VFORK` and returns
/// once the child has exec'd or exited.
pub fn clone_child(plan: &ChildPlan, stack: &mut ChildStack, flags: CloneFlags, share_memory: bool) -> Result<Pid> {
    let cb = Box::new(|| child_main(plan, &LinuxSyscall));
    let flags = match share_memory {
        true => flags | CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK,
        false => flags,
    };
    let _fork = crate::workload::fork_guard();
    // SAFETY: the child runs `child_main` on `stack`, which the caller
    // holds exclusively across this call: with CLONE_VM the parent is
    // suspended (CLONE_VFORK) until the child has exec'd or exited, so
    // `plan`, `cb` and `stack` stay valid and untouched for it; without
    // CLONE_VM it has its own copy of them. The child only makes system
    // calls on prepared data (see module docs) and ends in execve or _exit.
    // Signal handlers it inherits (the interrupt flag) only store atomics,
    // which is as right in the child as in the parent.
    let pid = unsafe { nix::sched::clone(cb, stack.usable(), flags, Some(libc::SIGCHLD)) }.map_err(|e| LaunchError::sys(format!("clone({flags:?})"), e))?;
    Ok(pid)
}

/// What the child reported on the status pipe: its timestamps when it
/// started running, when it had joined its cgroup, when its rootfs was set
/// up, and just before execve.
pub struct ChildStatus {
    pub t_start: u64,
    pub t_cgroup: u64,
    pub t_rootfs: u64,
    pub t_exec: u64,
}

/// Reads the child's status: its timestamps, then end of file once execve
/// succeeded; an error record becomes `ChildSetup`.
pub fn read_status(status_r: OwnedFd, cgroup: Option<&CgroupPlan>) -> Result<ChildStatus> {
    let mut f = File::from(status_r);
    let read_rec = |f: &mut File| -> Result<Option<[u64; REC_WORDS]>> {
        let mut buf = [0u8; REC_WORDS * 8];
        let mut got = 0;
        while got < buf.len() {
            match f.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(LaunchError::io("reading the container child's status", e)),
            }
        }
        if got == 0 {
            return Ok(None);
        }
        let w = |i: usize| u64::from_ne_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        Ok(Some([w(0), w(1), w(2), w(3), w(4)]))
    };
    let err = |rec: [u64; REC_WORDS]| {
        let errno = nix::errno::Errno::from_raw(rec[2] as i32);
        match (cgroup, CgroupStep::decode(rec[3])) {
            (Some(cg), Some(step)) if rec[1] == step_index("set up the cgroup") => cg.error(step, errno),
            _ => LaunchError::ChildSetup { step: step_name(rec[1]), errno },
        }
    };
    let first = match read_rec(&mut f)? {
        None => return Err(LaunchError::Crashed { status: "the container child exited during set-up".into(), stderr: String::new() }),
        Some(r) if r[0] == REC_ERROR => return Err(err(r)),
        Some(r) => r,
    };
    match read_rec(&mut f)? {
        None => Ok(ChildStatus { t_start: first[1], t_cgroup: first[2], t_rootfs: first[3], t_exec: first[4] }),
        Some(r) => Err(err(r)),
    }
}
