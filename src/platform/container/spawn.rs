//! Cloning the container's init into new namespaces, and the child side of
//! the launch up to execve. The child runs in a copy of a possibly
//! multi-threaded parent, so it only makes system calls on data prepared
//! by the parent: no allocation, no locks.
//!
//! Parent and child synchronise over two CLOEXEC pipes:
//! - `sync`: in a user namespace the parent first writes one byte once it
//!   has written the uid/gid maps; the child sets up its rootfs meanwhile
//!   (or after that byte), while the parent creates the cgroup and moves the
//!   child into it; then the parent writes one more byte, and the child
//!   unshares its cgroup namespace (rooted at its own cgroup) and execs;
//! - `status`: the child writes a record with its timestamps just before
//!   execve, or an error record naming the failed step. execve closes it, so
//!   end of file means the workload program is running.

use std::ffi::{c_char, CString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{OwnedFd, RawFd};

use nix::sched::CloneFlags;
use nix::unistd::Pid;

use super::rootfs::RootfsPlan;
use super::syscall::{LinuxSyscall, Syscall};
use crate::error::{LaunchError, Result};
use crate::measure::clock::now_ns;
use crate::platform::process::CHANNEL_FD;

/// Everything the child needs, prepared by the parent.
pub struct ChildPlan {
    pub rootfs: RootfsPlan,
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
    pub fn new(rootfs: RootfsPlan, args: Vec<String>, fds: ChildFds, wait_for_maps: bool) -> Result<ChildPlan> {
        let bad = |_| LaunchError::Unsupported("an argument contains a NUL byte".into());
        let args: Vec<CString> = std::iter::once("/init".to_string()).chain(args).map(CString::new).collect::<std::result::Result<_, _>>().map_err(bad)?;
        let mut argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        Ok(ChildPlan {
            rootfs,
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
const STEPS: [&str; 12] = [
    "wait for parent",
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
    write_record(fd, [REC_ERROR, step, errno as i32 as u64, 0, 0]);
    // SAFETY: _exit ends the cloned child without running the parent's
    // atexit handlers or destructors, which belong to the parent.
    unsafe { libc::_exit(127) }
}

/// The child's body: wait for the parent, set up, exec. Never returns on
/// success; on failure writes an error record and exits 127.
fn child_main(plan: &ChildPlan, sys: &dyn Syscall) -> isize {
    let wait_for_parent = || {
        let mut b = [0u8; 1];
        // SAFETY: reads one byte into a local buffer from the sync pipe.
        let n = unsafe { libc::read(plan.sync_r, b.as_mut_ptr().cast(), 1) };
        if n != 1 {
            // The parent gave up (error or crash) before letting us run.
            // SAFETY: see `fail`.
            unsafe { libc::_exit(126) }
        }
    };
    let t_start = now_ns();
    if plan.wait_for_maps {
        wait_for_parent();
    }
    if let Err((step, e)) = plan.rootfs.apply(sys) {
        return fail(plan.status_w, step_index(step), e);
    }
    let t_rootfs = now_ns();
    // In the cgroup from here on; the cgroup namespace is rooted there.
    wait_for_parent();
    let t_cgroup = now_ns();
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
    write_record(plan.status_w, [REC_READY_TO_EXEC, t_start, t_rootfs, t_cgroup, now_ns()]);
    // SAFETY: init, argv and envp are NUL-terminated C strings and
    // NULL-terminated pointer arrays prepared by the parent and alive here.
    unsafe { libc::execve(plan.init.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr()) };
    fail(plan.status_w, STEP_EXEC, nix::errno::Errno::last())
}

/// Clones the child with `flags` (plus SIGCHLD), running [`child_main`].
pub fn clone_child(plan: &ChildPlan, flags: CloneFlags) -> Result<Pid> {
    let mut stack = vec![0u8; 256 * 1024];
    let cb = Box::new(|| child_main(plan, &LinuxSyscall));
    let _fork = crate::workload::fork_guard();
    // SAFETY: without CLONE_VM the child gets a copy of the address space,
    // so `plan` and `stack` stay valid for it; the child only makes
    // async-signal-safe calls (see module docs) and ends in execve or _exit.
    let pid = unsafe { nix::sched::clone(cb, &mut stack, flags, Some(libc::SIGCHLD)) }
        .map_err(|e| LaunchError::sys(format!("clone({flags:?})"), e))?;
    Ok(pid)
}

/// What the child reported on the status pipe: its timestamps when it
/// started running, when its rootfs was set up, when the parent had moved
/// it into its cgroup, and just before execve.
pub struct ChildStatus {
    pub t_start: u64,
    pub t_rootfs: u64,
    pub t_cgroup: u64,
    pub t_exec: u64,
}

/// Reads the child's status: its timestamps, then end of file once execve
/// succeeded; an error record becomes `ChildSetup`.
pub fn read_status(status_r: OwnedFd) -> Result<ChildStatus> {
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
    let err = |rec: [u64; REC_WORDS]| LaunchError::ChildSetup { step: step_name(rec[1]), errno: nix::errno::Errno::from_raw(rec[2] as i32) };
    let first = match read_rec(&mut f)? {
        None => return Err(LaunchError::Crashed { status: "the container child exited during set-up".into(), stderr: String::new() }),
        Some(r) if r[0] == REC_ERROR => return Err(err(r)),
        Some(r) => r,
    };
    match read_rec(&mut f)? {
        None => Ok(ChildStatus { t_start: first[1], t_rootfs: first[2], t_cgroup: first[3], t_exec: first[4] }),
        Some(r) => Err(err(r)),
    }
}
