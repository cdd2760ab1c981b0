//! The one way versus starts a host child: the workload program as a plain
//! process, the pid 1 of a container, the `versus-vmm` process of a VM.
//!
//! The child is cloned with `CLONE_VM | CLONE_VFORK`, as posix_spawn starts
//! a process: it runs on a small stack of its own in the parent's memory
//! (no copy of the parent's page tables to make, nor to tear down again at
//! execve), and the calling thread sleeps until the child has called
//! execve or exited. Because the child shares the parent's memory it only
//! makes system calls on data the parent prepared ([`Program`], the
//! [`CgroupPlan`], a launcher's [`ChildSetup`]): no allocation, no locks,
//! nothing written but its own stack. Its steps, in order:
//!
//! 1. (a user namespace only) wait for the parent's byte: its uid/gid maps
//!    are written;
//! 2. the launcher's set-up that needs no cgroup
//!    ([`ChildSetup::before_cgroup`]: a container's mounts);
//! 3. join its own cgroup, when the instance has one. A thread of the
//!    launcher creates it and writes its limits ([`CgroupPlan::make`])
//!    while the kernel clones the child into its namespaces (on another
//!    CPU where there is one: a v1 memory cgroup alone takes about 0.1 ms
//!    to create); the child waits for that thread's word on a pipe, then
//!    joins ([`CgroupPlan::join`]). Where no thread can be started the
//!    child makes the cgroup itself ([`CgroupPlan::apply`]);
//! 4. the rest of the launcher's set-up ([`ChildSetup::run`]: a
//!    container's pivot_root and hardening); a plain process has none;
//! 5. versus' handled and ignored signals back to their defaults, then an
//!    empty signal mask (as posix_spawn and `std::process::Command` leave a
//!    new program; it is cloned with every signal blocked, so that no
//!    handler of versus runs in it);
//! 6. its fds: the control pipe as standard input, the stderr pipe as
//!    standard output and error, the channel as fd `channel_fd` (3);
//! 7. a record of its timestamps, then execve.
//!
//! The calling thread sleeps in the clone (`CLONE_VFORK`) when it has
//! nothing else to do. When a thread makes the child's cgroup the clone
//! has `CLONE_VM` alone and the caller waits for the child's exec on the
//! status pipe instead: a vfork parent cannot be stopped, and a child
//! waiting for a stopped thread of its parent would hold a stopped versus
//! (Ctrl-Z, SIGSTOP) in the kernel until its timeout. Either way the
//! launch returns only once the child has exec'd or exited, and the child
//! touches nothing of the parent's but the prepared data, its own stack
//! and its record: it runs on the calling thread's thread-local block, so
//! its system calls go through no libc wrapper ([`LinuxSyscall`]).
//!
//! A plain process and a VMM process get no namespaces; a container gets
//! its own. In a user namespace (rootless containers) the parent must write
//! the child's uid/gid maps while the child waits, which a suspended parent
//! cannot do: that child is cloned with its own copy of the memory instead.
//!
//! The status pipe (CLOEXEC) carries an error record naming the failed
//! step; a child with its own copy of the memory writes its record of
//! timestamps there too, just before execve, and a child sharing the
//! parent's memory stores it in the plan. execve closes the pipe, so end of
//! file means the program is running.
//!
//! Every clone holds [`crate::workload::fork_guard`], so that no child
//! inherits an executable another thread is writing (ETXTBSY at exec).

use std::ffi::{c_char, CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::unistd::{pipe2, Pid};

use super::cgroup::{Cgroup, CgroupPlan, CgroupStep};
use super::child::ChildWorkload;
use super::syscall::{LinuxSyscall, Syscall};
use crate::channel::Channel;
use crate::error::{LaunchError, Result};
use crate::measure::clock::now_ns;

/// An environment for a program: `NAME=value` C strings and their
/// NULL-terminated pointer array, prepared once and shared by the launches
/// that use it (building one per launch would be most of what a plain
/// process's launch costs before its clone).
pub struct Environment {
    _vars: Vec<CString>,
    ptrs: Vec<*const c_char>,
}

// SAFETY: the pointers point into the CStrings the Environment owns, which
// are never changed or dropped while it lives; sharing it only reads them.
unsafe impl Send for Environment {}
// SAFETY: as for Send: nothing mutates an Environment after `new`.
unsafe impl Sync for Environment {}

impl Environment {
    /// `vars` are `NAME=value` strings.
    pub fn new(vars: Vec<OsString>) -> Result<Environment> {
        let vars = vars.iter().map(|e| cstring(e, "an environment variable")).collect::<Result<Vec<_>>>()?;
        let ptrs = vars.iter().map(|e| e.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        Ok(Environment { _vars: vars, ptrs })
    }

    /// No variables (a container's /init).
    pub fn empty() -> &'static Environment {
        static EMPTY: std::sync::OnceLock<Environment> = std::sync::OnceLock::new();
        EMPTY.get_or_init(|| Environment { _vars: Vec::new(), ptrs: vec![std::ptr::null()] })
    }

    /// versus' own environment, as a plain process inherits it (`Command`
    /// gives it the same), read at the first launch that asks: versus does
    /// not change its environment while it runs.
    pub fn inherited() -> Result<&'static Environment> {
        static INHERITED: std::sync::OnceLock<Environment> = std::sync::OnceLock::new();
        if let Some(e) = INHERITED.get() {
            return Ok(e);
        }
        let e = Environment::new(inherited_env(&[]))?;
        Ok(INHERITED.get_or_init(|| e))
    }
}

/// A program to execute: its path and argv as C strings and a
/// NULL-terminated pointer array, prepared by the parent, and its
/// environment.
pub struct Program<'e> {
    path: CString,
    _args: Vec<CString>,
    argv: Vec<*const c_char>,
    env: &'e Environment,
}

fn cstring(s: &OsStr, what: &str) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| LaunchError::Unsupported(format!("{what} `{}` contains a NUL byte", s.to_string_lossy())))
}

impl<'e> Program<'e> {
    /// `path` with `args` (argv[0] is `path`) and the environment `env`.
    pub fn new<A: AsRef<OsStr>>(path: impl AsRef<OsStr>, args: impl IntoIterator<Item = A>, env: &'e Environment) -> Result<Program<'e>> {
        let path = cstring(path.as_ref(), "the program path")?;
        let mut all = vec![path.clone()];
        for a in args {
            all.push(cstring(a.as_ref(), "an argument")?);
        }
        let argv = all.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
        Ok(Program { path, _args: all, argv, env })
    }

    /// The program's path.
    pub fn path(&self) -> &std::ffi::CStr {
        &self.path
    }
}

/// versus' own environment with `set` added or replaced (`NAME`, value):
/// what a plain process inherits, as `Command` gives it.
pub fn inherited_env(set: &[(&str, &str)]) -> Vec<OsString> {
    let mut out: Vec<OsString> = std::env::vars_os()
        .filter(|(k, _)| !set.iter().any(|(n, _)| OsStr::new(n) == k))
        .map(|(k, v)| {
            let mut e = k;
            e.push("=");
            e.push(v);
            e
        })
        .collect();
    out.extend(set.iter().map(|(k, v)| OsString::from(format!("{k}={v}"))));
    out
}

/// How many timestamps a [`ChildSetup`] may stamp.
pub const SETUP_MARKS: usize = 3;

/// A failed step of the child: its name (one of the launcher's
/// [`ChildSetup::steps`] or of [`GENERIC_STEPS`]), the error, and a
/// step-specific detail word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub step: &'static str,
    pub errno: Errno,
    pub detail: u64,
}

/// What a launcher adds to the child's set-up around its cgroup: a
/// container's rootfs, namespaces and hardening.
pub trait ChildSetup {
    /// Every step name `before_cgroup` and `run` may fail at.
    fn steps(&self) -> &'static [&'static str];
    /// Runs in the child before it joins its cgroup, while a thread of the
    /// launcher may still be making it (system calls on prepared data
    /// only, no allocation). Stamps its progress into `marks` (they start
    /// as the child's first stamp).
    fn before_cgroup(&self, _sys: &dyn Syscall, _marks: &mut [u64; SETUP_MARKS]) -> std::result::Result<(), Failure> {
        Ok(())
    }
    /// Runs in the child once it is in its cgroup (sharing the parent's
    /// memory: system calls on prepared data only, no allocation). Stamps
    /// its own progress into `marks`.
    fn run(&self, sys: &dyn Syscall, marks: &mut [u64; SETUP_MARKS]) -> std::result::Result<(), Failure>;
    /// The error the parent reports for a failure of `run`.
    fn error(&self, f: Failure) -> LaunchError {
        LaunchError::ChildSetup { step: f.step, errno: f.errno }
    }
}

/// The child's own steps, whatever the launcher.
pub const GENERIC_STEPS: [&str; 5] = ["wait for the parent", "set up the cgroup", "reset signals", "set up stdio", "execve"];

/// Step codes in status records: generic steps by index, a launcher's from
/// [`SETUP_BASE`] on.
const SETUP_BASE: u64 = 100;

fn generic(name: &str) -> u64 {
    GENERIC_STEPS.iter().position(|s| *s == name).unwrap_or(0) as u64
}

/// Everything the child reads, prepared by the parent.
struct ChildPlan<'a> {
    program: &'a Program<'a>,
    cgroup: Option<&'a CgroupPlan>,
    setup: Option<&'a dyn ChildSetup>,
    /// The read end of the sync pipe, or -1.
    wait_fd: RawFd,
    /// The read end of the pipe on which the launcher's thread says the
    /// cgroup is made (0, or the failed step and errno), or -1: the child
    /// makes it itself.
    cgroup_made: RawFd,
    /// The thread's write end, which the child closes (its copy), so that
    /// the pipe ends when the thread does.
    cgroup_made_w: RawFd,
    /// How long the child waits for that word.
    cgroup_wait_ns: u64,
    /// Where a child sharing the parent's memory stores its record of
    /// timestamps (None: it writes it to the status pipe).
    record: Option<&'a [AtomicU64; REC_WORDS]>,
    status_w: RawFd,
    stdin: RawFd,
    stderr: RawFd,
    channel: RawFd,
    channel_fd: RawFd,
}

/// Status records: `[kind, step, errno, detail, t_start, t_cgroup, marks..., t_exec]`.
const REC_READY_TO_EXEC: u64 = 0;
const REC_ERROR: u64 = 1;
const REC_WORDS: usize = 7 + SETUP_MARKS;

fn record_bytes(rec: &[u64; REC_WORDS]) -> [u8; REC_WORDS * 8] {
    let mut out = [0u8; REC_WORDS * 8];
    for (i, w) in rec.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&w.to_ne_bytes());
    }
    out
}

/// Writes an error record; returns the child's exit status. A failed
/// write only makes the parent's report less precise.
fn fail(plan: &ChildPlan, sys: &dyn Syscall, step: u64, errno: Errno, detail: u64) -> i32 {
    let mut rec = [0u64; REC_WORDS];
    rec[..4].copy_from_slice(&[REC_ERROR, step, errno as i32 as u64, detail]);
    let _ = sys.write(plan.status_w, &record_bytes(&rec));
    127
}

/// The word the cgroup thread sends: 0 when the cgroup is made, else the
/// failed step ([`CgroupStep::encode`], below bit 48) and the errno above.
fn made_word(r: std::result::Result<(), (CgroupStep, Errno)>) -> u64 {
    match r {
        Ok(()) => 0,
        Err((step, e)) => (e as i32 as u64) << 48 | step.encode() & ((1 << 48) - 1),
    }
}

fn made_error(word: u64) -> (CgroupStep, Errno) {
    let step = CgroupStep::decode(word & ((1 << 48) - 1)).unwrap_or(CgroupStep::Create(0));
    (step, Errno::from_raw((word >> 48) as i32))
}

/// The status code of a launcher's failed step.
fn setup_failure(plan: &ChildPlan, sys: &dyn Syscall, setup: &dyn ChildSetup, f: Failure) -> i32 {
    let code = setup.steps().iter().position(|s| *s == f.step).map_or(generic("execve"), |i| SETUP_BASE + i as u64);
    fail(plan, sys, code, f.errno, f.detail)
}

/// The child's body (see the module documentation). Returns only when a
/// step failed, with the exit status to end with (the record is written).
fn child_main(plan: &ChildPlan, sys: &dyn Syscall) -> i32 {
    if plan.cgroup_made_w >= 0 {
        sys.close(plan.cgroup_made_w);
    }
    if plan.wait_fd >= 0 && sys.read_byte(plan.wait_fd).is_err() {
        // The parent gave up (error or crash) before letting us run.
        return 126;
    }
    let t_start = now_ns();
    let mut marks = [t_start; SETUP_MARKS];
    if let Some(setup) = plan.setup {
        if let Err(f) = setup.before_cgroup(sys, &mut marks) {
            return setup_failure(plan, sys, setup, f);
        }
    }
    if let Some(cg) = plan.cgroup {
        let r = match plan.cgroup_made {
            -1 => cg.apply(sys),
            fd => match sys.read_word(fd, plan.cgroup_wait_ns) {
                Ok(0) => cg.join(sys),
                Ok(word) => Err(made_error(word)),
                // The thread ended without a word, or took too long.
                Err(e) => Err((CgroupStep::Create(0), e)),
            },
        };
        if let Err((step, e)) = r {
            return fail(plan, sys, generic("set up the cgroup"), e, step.encode());
        }
    }
    let t_cgroup = now_ns();
    if let Some(setup) = plan.setup {
        if let Err(f) = setup.run(sys, &mut marks) {
            return setup_failure(plan, sys, setup, f);
        }
    }
    if let Err(e) = sys.reset_signals() {
        return fail(plan, sys, generic("reset signals"), e, 0);
    }
    for (from, to) in [(plan.stdin, 0), (plan.stderr, 1), (plan.stderr, 2), (plan.channel, plan.channel_fd)] {
        if let Err(e) = sys.dup2(from, to) {
            return fail(plan, sys, generic("set up stdio"), e, to as u64);
        }
    }
    let mut rec = [0u64; REC_WORDS];
    rec[4] = t_start;
    rec[5] = t_cgroup;
    rec[6..6 + SETUP_MARKS].copy_from_slice(&marks);
    rec[REC_WORDS - 1] = now_ns();
    rec[0] = REC_READY_TO_EXEC;
    match plan.record {
        // The parent reads it after end of file on the status pipe, which
        // execve's close (or the exit) publishes.
        Some(shared) => shared.iter().zip(rec).for_each(|(w, v)| w.store(v, Ordering::Release)),
        None => {
            let _ = sys.write(plan.status_w, &record_bytes(&rec));
        }
    }
    // SAFETY: argv and the environment's pointers are the NULL-terminated
    // arrays of the Program and its Environment, which the parent keeps
    // alive across the clone.
    let e = unsafe { sys.execve(plan.program.path(), plan.program.argv.as_ptr(), plan.program.env.ptrs.as_ptr()) };
    fail(plan, sys, generic("execve"), e, 0)
}

/// A child's stack: anonymous memory with an inaccessible guard page below
/// it, so an overflow faults instead of writing into the parent's memory
/// (the child shares it). Touched up front, so a launch's child takes no
/// page faults on it; unmapped on drop. Stacks are kept in a pool and
/// reused, one clone at a time each.
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
            return Err(LaunchError::sys("mapping a child's stack (out of memory?)", Errno::last()));
        }
        let mut stack = ChildStack { base, len };
        // SAFETY: the lowest page of the mapping made above.
        if unsafe { libc::mprotect(base, GUARD_BYTES, libc::PROT_NONE) } != 0 {
            return Err(LaunchError::sys("protecting a child's stack guard page", Errno::last()));
        }
        stack.usable().fill(0);
        Ok(stack)
    }

    /// The top of the stack, 16-byte aligned: where a clone starts it.
    fn top(&mut self) -> *mut libc::c_void {
        let end = self.usable().as_mut_ptr_range().end as usize;
        (end & !15) as *mut libc::c_void
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

/// Stacks not in use; concurrent launches (from several threads) each take
/// one.
static STACKS: Mutex<Vec<ChildStack>> = Mutex::new(Vec::new());

/// A stack taken from the pool, returned to it on drop.
struct PooledStack(Option<ChildStack>);

impl PooledStack {
    fn take() -> Result<PooledStack> {
        let s = STACKS.lock().unwrap_or_else(|e| e.into_inner()).pop();
        Ok(PooledStack(Some(match s {
            Some(s) => s,
            None => ChildStack::new()?,
        })))
    }
}

impl Drop for PooledStack {
    fn drop(&mut self) {
        if let Some(s) = self.0.take() {
            STACKS.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        }
    }
}

/// How the child gets the parent's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Memory {
    /// Shared, the calling thread asleep in the clone until the child has
    /// exec'd (`CLONE_VM | CLONE_VFORK`, as posix_spawn).
    Vfork,
    /// Shared, the calling thread awake (`CLONE_VM`): a thread of the
    /// launcher makes the cgroup meanwhile, and the caller waits for the
    /// exec on the status pipe.
    Shared,
    /// A copy (no flag): the child waits for its parent's uid/gid maps.
    Copy,
}

/// The flags of the clone: the namespaces and the memory flags (SIGCHLD,
/// the exit signal, is added at the clone).
pub fn clone_flags(namespaces: CloneFlags, memory: Memory) -> CloneFlags {
    match memory {
        Memory::Vfork => namespaces | CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK,
        Memory::Shared => namespaces | CloneFlags::CLONE_VM,
        Memory::Copy => namespaces,
    }
}

/// A launch to make.
pub struct Spawn<'a> {
    pub program: &'a Program<'a>,
    /// Namespaces to create (empty for a plain process or a VMM).
    pub namespaces: CloneFlags,
    /// The instance's own cgroup (handle and plan), if it has one. The
    /// handle ends up in the [`ChildWorkload`], which removes the cgroup
    /// after reaping the child, on every path.
    pub cgroup: Option<(Cgroup, CgroupPlan)>,
    pub setup: Option<&'a dyn ChildSetup>,
    /// The child waits for [`Spawned::release`] before anything else (a
    /// user namespace's maps); it then gets a copy of the memory, not the
    /// parent's own.
    pub wait_for_parent: bool,
    /// The fd number the program reads its channel from.
    pub channel_fd: RawFd,
    /// Bound on the waits of the launch.
    pub timeout: Duration,
    /// Names the program in errors.
    pub what: &'a str,
}

/// A cloned child that has not yet reported its set-up.
pub struct Spawned<'a> {
    child: ChildWorkload,
    status_r: OwnedFd,
    sync_w: Option<OwnedFd>,
    cgroup_plan: Option<CgroupPlan>,
    setup: Option<&'a dyn ChildSetup>,
    what: &'a str,
    /// What a child that shared our memory reported, read before the
    /// launch returned.
    early: Option<Outcome>,
}

/// What the child reported: its timestamps when it started running, when
/// it had joined its cgroup, its launcher's marks, and just before execve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildStatus {
    pub t_start: u64,
    pub t_cgroup: u64,
    pub marks: [u64; SETUP_MARKS],
    pub t_exec: u64,
}

impl ChildStatus {
    fn of(rec: &[u64; REC_WORDS]) -> ChildStatus {
        let mut marks = [0u64; SETUP_MARKS];
        marks.copy_from_slice(&rec[6..6 + SETUP_MARKS]);
        ChildStatus { t_start: rec[4], t_cgroup: rec[5], marks, t_exec: rec[REC_WORDS - 1] }
    }
}

/// Every signal blocked in the calling thread while it lives (the mask
/// before it is restored on drop).
struct BlockedSignals(Option<nix::sys::signal::SigSet>);

impl BlockedSignals {
    fn new() -> BlockedSignals {
        use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
        let mut old = SigSet::empty();
        match pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), Some(&mut old)) {
            Ok(()) => BlockedSignals(Some(old)),
            Err(_) => BlockedSignals(None),
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        if let Some(old) = self.0.take() {
            let _ = nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&old), None);
        }
    }
}

/// The child's entry point: `arg` is the [`ChildPlan`].
extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `spawn` passes a pointer to its ChildPlan, which stays alive
    // and unchanged until this child has exec'd or exited (see `spawn`).
    let plan = unsafe { &*(arg as *const ChildPlan) };
    crate::platform::syscall::raw::exit(child_main(plan, &LinuxSyscall))
}

/// Clones the child of `req` (see the module documentation). When the
/// child shares our memory it returns once the child has exec'd or failed.
pub fn spawn(req: Spawn<'_>) -> Result<Spawned<'_>> {
    let spawned = std::time::Instant::now();
    let pipe = |p: &str| pipe2(OFlag::O_CLOEXEC).map_err(|e| LaunchError::sys(format!("creating the {p} pipe"), e));
    let (chan_r, chan_w) = pipe("channel")?;
    let (ctl_r, ctl_w) = pipe("control")?;
    let (err_r, err_w) = pipe("stderr")?;
    let (status_r, status_w) = pipe("status")?;
    let sync = match req.wait_for_parent {
        true => Some(pipe("sync")?),
        false => None,
    };
    let (cgroup, cgroup_plan) = match req.cgroup {
        Some((c, p)) => (Some(c), Some(p)),
        None => (None, None),
    };
    let (made_r, made_w) = match (&cgroup_plan, req.wait_for_parent) {
        (Some(_), false) => {
            let (r, w) = pipe("cgroup")?;
            (Some(r), Some(w))
        }
        _ => (None, None),
    };
    let record: [AtomicU64; REC_WORDS] = Default::default();
    let mut plan = ChildPlan {
        program: req.program,
        cgroup: cgroup_plan.as_ref(),
        setup: req.setup,
        wait_fd: sync.as_ref().map_or(-1, |(r, _)| r.as_raw_fd()),
        cgroup_made: -1,
        cgroup_made_w: -1,
        // Longer than the parent waits for the exec: a thread that is
        // late is reported by the parent, which then kills the child.
        cgroup_wait_ns: u64::try_from(req.timeout.saturating_mul(2).as_nanos()).unwrap_or(u64::MAX).saturating_add(1_000_000_000),
        record: match req.wait_for_parent {
            true => None,
            false => Some(&record),
        },
        status_w: status_w.as_raw_fd(),
        stdin: ctl_r.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        channel: chan_w.as_raw_fd(),
        channel_fd: req.channel_fd,
    };
    // Declared before the child's handle, so that on an early return the
    // handle (which kills and reaps the child) goes first.
    let mut stack = PooledStack::take()?;
    let Some(child_stack) = stack.0.as_mut() else { return Err(LaunchError::Unsupported("no child stack".into())) };
    // The scope ends only when the cgroup thread has ended: the cgroup
    // handle, which removes the cgroup on an error, never races its making.
    let (pid, memory) = std::thread::scope(|scope| {
        let mut memory = if req.wait_for_parent { Memory::Copy } else { Memory::Vfork };
        if let (Some(cg), Some(w), Some(r)) = (cgroup_plan.as_ref(), made_w, made_r.as_ref()) {
            let w_fd = w.as_raw_fd();
            let maker = std::thread::Builder::new().name("versus-cgroup".into()).spawn_scoped(scope, move || {
                let word = made_word(cg.make(&LinuxSyscall));
                // A failed write ends the pipe with the thread: the child
                // reads end of file and reports it.
                let _ = LinuxSyscall.write(w.as_raw_fd(), &word.to_ne_bytes());
            });
            // No thread (EAGAIN): the child makes the cgroup itself.
            if maker.is_ok() {
                plan.cgroup_made = r.as_raw_fd();
                plan.cgroup_made_w = w_fd;
                memory = Memory::Shared;
            }
        }
        let flags = clone_flags(req.namespaces, memory);
        let top = child_stack.top();
        let _fork = crate::workload::fork_guard();
        // The child starts with every signal blocked, until it has set the
        // ones versus handles back to their defaults (see
        // `Syscall::reset_signals`): versus' handlers must not run in it
        // (they would count a Ctrl-C twice in versus' memory).
        let _blocked = BlockedSignals::new();
        // SAFETY: the child runs `child_entry` on `child_stack`, which this
        // launch holds exclusively, with a pointer to `plan`. With
        // CLONE_VFORK this thread sleeps until the child has exec'd or
        // exited; with CLONE_VM alone it reads the status pipe to its end
        // (the child's exec or exit) before `plan`, `record`, the program
        // or the stack can go (an error on the way kills and reaps the
        // child first; see below); without CLONE_VM the child has its own
        // copy. The child only makes raw system calls on prepared data
        // (no allocation, no thread-local state) and ends in execve or
        // exit_group; the cgroup thread beside it only reads the plan.
        // It starts with every signal blocked, so no handler of versus
        // runs in it; those signals are back at their defaults before it
        // unblocks them.
        let pid = unsafe { libc::clone(child_entry, top, flags.bits() | libc::SIGCHLD, std::ptr::addr_of!(plan) as *mut libc::c_void) };
        match pid {
            -1 => Err(LaunchError::sys(format!("clone({flags:?})"), Errno::last())),
            pid => Ok((Pid::from_raw(pid), memory)),
        }
    })?;
    drop(made_r);
    // The child holds its own copies; ours must close so that end of file
    // reaches the right side.
    drop((status_w, ctl_r, err_w, chan_w));
    let mut child = ChildWorkload::new(pid, Channel::new(chan_r), err_r, ctl_w, req.timeout, spawned).with_cgroup(cgroup);
    let sync_w = sync.map(|(r, w)| {
        drop(r);
        w
    });
    // A child that shared our memory has exec'd or failed by now (vfork),
    // or will before the timeout; read its status before the plan, the
    // record and the stack go.
    let early = match memory {
        Memory::Copy => None,
        Memory::Vfork | Memory::Shared => match read_status(&status_r, Some(spawned + req.timeout), req.timeout) {
            Ok(status) => Some(status.outcome(Some(&record))),
            Err(e) => {
                // The child may still run on our memory: it must be gone
                // before the stack and the plan are.
                let _ = child.kill_and_reap();
                if child.pid().is_some() {
                    tracing::warn!("a child that did not exec in time could not be reaped; its stack is left mapped");
                    std::mem::forget(stack);
                }
                return Err(e);
            }
        },
    };
    drop(stack);
    Ok(Spawned { child, status_r, sync_w, cgroup_plan, setup: req.setup, what: req.what, early })
}

/// What the status pipe said, read to its end.
enum Status {
    /// End of file (execve), after a record of timestamps where the child
    /// wrote one there (a child with its own copy of the memory).
    Exec(Option<[u64; REC_WORDS]>),
    /// An error record.
    Failed([u64; REC_WORDS]),
}

/// What the child reported: its status, an error record, or None (it
/// ended before execve without one).
type Outcome = std::result::Result<ChildStatus, Option<[u64; REC_WORDS]>>;

impl Status {
    /// The outcome; `shared` is where a child sharing our memory stored
    /// its record of timestamps.
    fn outcome(self, shared: Option<&[AtomicU64; REC_WORDS]>) -> Outcome {
        match self {
            Status::Exec(Some(rec)) => Ok(ChildStatus::of(&rec)),
            Status::Exec(None) => match shared.map(|r| r.each_ref().map(|w| w.load(Ordering::Acquire))) {
                // t_exec is stored last: zero means it never got there.
                Some(rec) if rec[REC_WORDS - 1] != 0 => Ok(ChildStatus::of(&rec)),
                _ => Err(None),
            },
            Status::Failed(rec) => Err(Some(rec)),
        }
    }
}

/// Reads the status pipe to its end, no later than `deadline` where given
/// (`timeout` is what it came from, for the error).
fn read_status(fd: &OwnedFd, deadline: Option<Instant>, timeout: Duration) -> Result<Status> {
    match read_record(fd, deadline, timeout)? {
        Some(r) if r[0] == REC_ERROR => Ok(Status::Failed(r)),
        None => Ok(Status::Exec(None)),
        Some(r) => match read_record(fd, deadline, timeout)? {
            None => Ok(Status::Exec(Some(r))),
            Some(e) => Ok(Status::Failed(e)),
        },
    }
}

impl Spawned<'_> {
    /// The child's pid.
    pub fn pid(&self) -> Pid {
        self.child.pid().unwrap_or(Pid::from_raw(0))
    }

    /// Lets a child that waits for its parent go on.
    pub fn release(&mut self) -> Result<()> {
        if let Some(w) = self.sync_w.take() {
            nix::unistd::write(&w, &[1]).map_err(|e| LaunchError::sys("letting the child go on with its set-up", e))?;
        }
        Ok(())
    }

    /// Waits for the child's status: its timestamps, then end of file once
    /// execve succeeded. A failed step is an error (the child is reaped and
    /// its cgroup removed).
    pub fn wait_exec(mut self) -> Result<(ChildWorkload, ChildStatus)> {
        self.release()?;
        let r = match self.early.take() {
            Some(r) => r,
            None => read_status(&self.status_r, None, Duration::ZERO)?.outcome(None),
        };
        match r {
            Ok(status) => Ok((self.child, status)),
            Err(Some(rec)) => Err(error_of(rec, self.cgroup_plan.as_ref(), self.setup, self.what)),
            Err(None) => Err(self.child.crash_error(&format!("{} exited during its set-up, before execve", self.what))),
        }
    }
}

fn read_record(fd: &OwnedFd, deadline: Option<Instant>, timeout: Duration) -> Result<Option<[u64; REC_WORDS]>> {
    let mut buf = [0u8; REC_WORDS * 8];
    let mut got = 0;
    while got < buf.len() {
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            let ts = nix::sys::time::TimeSpec::from_duration(left);
            let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
            match nix::poll::ppoll(&mut fds, Some(ts), None) {
                Ok(0) => return Err(LaunchError::Timeout { what: "get through its set-up to execve", after: timeout }),
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(LaunchError::sys("waiting for the child's status", e)),
            }
        }
        match nix::unistd::read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => {}
            Err(e) => return Err(LaunchError::sys("reading the child's status", e)),
        }
    }
    if got == 0 {
        return Ok(None);
    }
    let mut rec = [0u64; REC_WORDS];
    for (i, w) in rec.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&buf[i * 8..i * 8 + 8]);
        *w = u64::from_ne_bytes(b);
    }
    Ok(Some(rec))
}

fn error_of(rec: [u64; REC_WORDS], cgroup: Option<&CgroupPlan>, setup: Option<&dyn ChildSetup>, what: &str) -> LaunchError {
    let (code, errno, detail) = (rec[1], Errno::from_raw(rec[2] as i32), rec[3]);
    if code >= SETUP_BASE {
        if let Some(s) = setup {
            if let Some(step) = s.steps().get((code - SETUP_BASE) as usize) {
                return s.error(Failure { step, errno, detail });
            }
        }
    }
    let step = GENERIC_STEPS.get(code as usize).copied().unwrap_or("execve");
    match (step, cgroup, CgroupStep::decode(detail)) {
        ("set up the cgroup", Some(cg), Some(s)) => cg.error(s, errno),
        ("execve", _, _) => LaunchError::sys(format!("executing {what}"), errno),
        _ => LaunchError::ChildSetup { step, errno },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::syscall::recording::RecordingSyscall;

    fn plan<'a>(program: &'a Program<'a>, cgroup: Option<&'a CgroupPlan>, setup: Option<&'a dyn ChildSetup>) -> ChildPlan<'a> {
        ChildPlan {
            program,
            cgroup,
            setup,
            wait_fd: -1,
            cgroup_made: -1,
            cgroup_made_w: -1,
            cgroup_wait_ns: 1_000_000_000,
            record: None,
            status_w: 9,
            stdin: 5,
            stderr: 6,
            channel: 7,
            channel_fd: 3,
        }
    }

    #[test]
    fn a_plain_process_is_cloned_vfork_like_without_namespaces() {
        assert_eq!(clone_flags(CloneFlags::empty(), Memory::Vfork), CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK);
        let ns = CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID;
        assert_eq!(clone_flags(ns, Memory::Vfork), ns | CloneFlags::CLONE_VM | CloneFlags::CLONE_VFORK);
        assert_eq!(clone_flags(ns, Memory::Shared), ns | CloneFlags::CLONE_VM, "the caller stays awake (and stoppable) while a thread makes the cgroup");
        assert_eq!(clone_flags(ns, Memory::Copy), ns, "a child that waits for its parent gets a copy of the memory");
    }

    #[test]
    fn a_cgroup_made_by_the_launchers_thread_is_only_joined() {
        let p = Program::new("/bin/prog", Vec::<String>::new(), Environment::empty()).unwrap();
        let controls = crate::platform::cgroup::Controls { memory: Some(Some(1 << 20)), ..Default::default() };
        let (_cg, cgplan) = Cgroup::plan(crate::host::CgroupMode::V2, "versus-test-y", &controls).unwrap();
        let mut cp = plan(&p, Some(&cgplan), Some(&TwoSteps));
        cp.cgroup_made = 11;
        cp.cgroup_made_w = 12;
        let sys = RecordingSyscall::default();
        child_main(&cp, &sys);
        let calls = sys.calls();
        assert_eq!(calls[0], "close 12", "the child drops its copy of the thread's end, so the pipe ends with the thread");
        assert_eq!(calls[1], "chdir /x", "the launcher's set-up before the cgroup runs while the thread makes it");
        assert_eq!(calls[2], "read_word 11", "then the child waits for the thread's word");
        assert_eq!(calls[3], "write /sys/fs/cgroup/versus-test-y/cgroup.procs 0", "then joins: no mkdir, no limit");
        assert_eq!(calls[4], "sethostname h", "and the rest of the set-up follows in the cgroup");
        assert!(calls.iter().all(|c| !c.starts_with("mkdir")));
        // The thread's failure travels as one word and names its step.
        let word = made_word(Err((CgroupStep::Limit(1), Errno::EACCES)));
        assert_ne!(word, 0);
        assert_eq!(made_error(word), (CgroupStep::Limit(1), Errno::EACCES));
        assert_eq!(made_word(Ok(())), 0);
        let mut rec = [0u64; REC_WORDS];
        let (step, errno) = made_error(word);
        rec[..4].copy_from_slice(&[REC_ERROR, generic("set up the cgroup"), errno as u64, step.encode()]);
        let e = error_of(rec, Some(&cgplan), None, "prog").to_string();
        assert!(e.contains("versus-test-y/"), "{e}");
    }

    #[test]
    fn the_child_sets_up_its_fds_reports_then_execs() {
        let env = Environment::new(vec!["A=1".into()]).unwrap();
        let p = Program::new("/bin/prog", ["--fd", "3", "ready"], &env).unwrap();
        let sys = RecordingSyscall::default();
        let code = child_main(&plan(&p, None, None), &sys);
        assert_eq!(code, 127, "the recording execve fails");
        assert_eq!(
            sys.calls(),
            [
                "reset_signals",
                "dup2 5 0",
                "dup2 6 1",
                "dup2 6 2",
                "dup2 7 3",
                &format!("write_fd 9 {} bytes", REC_WORDS * 8),
                "execve /bin/prog",
                &format!("write_fd 9 {} bytes", REC_WORDS * 8),
            ]
        );
    }

    #[test]
    fn the_cgroup_comes_first_and_its_failure_is_reported_with_its_path() {
        let p = Program::new("/bin/prog", Vec::<String>::new(), Environment::empty()).unwrap();
        let controls = crate::platform::cgroup::Controls { memory: Some(None), ..Default::default() };
        let (_cg, cgplan) = Cgroup::plan(crate::host::CgroupMode::V2, "versus-test-x", &controls).unwrap();
        let sys = RecordingSyscall::default();
        child_main(&plan(&p, Some(&cgplan), None), &sys);
        let calls = sys.calls();
        assert_eq!(calls[0], "mkdir /sys/fs/cgroup/versus-test-x");
        assert_eq!(calls[1], "write /sys/fs/cgroup/versus-test-x/cgroup.procs 0");
        assert_eq!(calls[2], "reset_signals");
        // A failed join: an error record, nothing after it.
        let sys = RecordingSyscall { fail_on: Some("write /sys"), ..Default::default() };
        assert_eq!(child_main(&plan(&p, Some(&cgplan), None), &sys), 127);
        assert!(sys.calls().last().unwrap().starts_with("write_fd 9"));
        let mut rec = [0u64; REC_WORDS];
        rec[..4].copy_from_slice(&[REC_ERROR, generic("set up the cgroup"), Errno::EPERM as u64, CgroupStep::Join(0).encode()]);
        let e = error_of(rec, Some(&cgplan), None, "prog").to_string();
        assert!(e.contains("versus-test-x/cgroup.procs"), "{e}");
    }

    struct TwoSteps;
    impl ChildSetup for TwoSteps {
        fn steps(&self) -> &'static [&'static str] {
            &["first", "second"]
        }
        fn before_cgroup(&self, sys: &dyn Syscall, marks: &mut [u64; SETUP_MARKS]) -> std::result::Result<(), Failure> {
            sys.chdir(c"/x").map_err(|errno| Failure { step: "first", errno, detail: 0 })?;
            marks[0] = 1;
            Ok(())
        }
        fn run(&self, sys: &dyn Syscall, _marks: &mut [u64; SETUP_MARKS]) -> std::result::Result<(), Failure> {
            sys.sethostname(c"h").map_err(|errno| Failure { step: "second", errno, detail: 7 })
        }
    }

    #[test]
    fn a_launcher_setup_runs_between_the_cgroup_and_stdio_and_its_steps_are_named() {
        let p = Program::new("/init", Vec::<String>::new(), Environment::empty()).unwrap();
        let sys = RecordingSyscall::default();
        child_main(&plan(&p, None, Some(&TwoSteps)), &sys);
        assert_eq!(&sys.calls()[..3], ["chdir /x", "sethostname h", "reset_signals"]);
        let sys = RecordingSyscall { fail_on: Some("sethostname"), ..Default::default() };
        child_main(&plan(&p, None, Some(&TwoSteps)), &sys);
        let mut rec = [0u64; REC_WORDS];
        rec[..4].copy_from_slice(&[REC_ERROR, SETUP_BASE + 1, Errno::EPERM as u64, 7]);
        assert!(matches!(error_of(rec, None, Some(&TwoSteps), "x"), LaunchError::ChildSetup { step: "second", errno: Errno::EPERM }));
    }

    #[test]
    fn the_environment_is_inherited_with_overrides() {
        let env = inherited_env(&[("VERSUS_TEST_VAR", "1"), ("PATH", "/x")]);
        assert!(env.contains(&OsString::from("VERSUS_TEST_VAR=1")));
        assert_eq!(env.iter().filter(|e| e.as_bytes().starts_with(b"PATH=")).count(), 1);
        assert!(env.contains(&OsString::from("PATH=/x")));
        assert!(Program::new("/x", ["a\0b"], Environment::empty()).is_err(), "a NUL byte is refused, not truncated");
        assert!(Environment::new(vec!["A=\0".into()]).is_err());
        let inherited = Environment::inherited().unwrap();
        assert_eq!(inherited.ptrs.len(), std::env::vars_os().count() + 1, "every variable, NULL-terminated");
        assert!(inherited.ptrs.last().unwrap().is_null());
    }
}
