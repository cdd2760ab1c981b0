//! The system calls a launched child makes between the clone and execve,
//! behind a trait (after youki) so that every launcher's set-up sequence
//! can be checked in unit tests without root, and so that the real
//! implementation stays allocation-free: it runs in a freshly cloned child
//! that shares the memory of a possibly multi-threaded parent (see
//! [`super::spawn`]), where only async-signal-safe work is allowed.

use std::ffi::{c_char, CStr};
use std::os::fd::RawFd;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

pub trait Syscall {
    fn mount(&self, source: Option<&CStr>, target: &CStr, fstype: Option<&CStr>, flags: MsFlags) -> nix::Result<()>;
    fn umount2(&self, target: &CStr, flags: MntFlags) -> nix::Result<()>;
    /// A mount with filesystem data (`source` of type `fstype` on `target`,
    /// no flags): an overlayfs with its options.
    fn mount_data(&self, source: &CStr, target: &CStr, fstype: &CStr, data: &CStr) -> nix::Result<()>;
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> nix::Result<()>;
    fn chdir(&self, dir: &CStr) -> nix::Result<()>;
    fn sethostname(&self, name: &CStr) -> nix::Result<()>;
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()>;
    fn mkdir(&self, path: &CStr) -> nix::Result<()>;
    /// Opens an existing file write-only, writes `data` in one write, closes it.
    fn write_file(&self, path: &CStr, data: &CStr) -> nix::Result<()>;

    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
    fn set_no_new_privs(&self) -> nix::Result<()>;
    /// `seccomp(SECCOMP_SET_MODE_FILTER, 0, prog)`: installs one BPF filter.
    fn seccomp_filter(&self, prog: &libc::sock_fprog) -> nix::Result<()>;
    /// `prctl(PR_CAPBSET_DROP, cap)`.
    fn drop_bounding_cap(&self, cap: u32) -> nix::Result<()>;
    /// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)`.
    fn clear_ambient_caps(&self) -> nix::Result<()>;
    /// `capset` of this process's effective, permitted and inheritable sets
    /// (bit n = capability n).
    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> nix::Result<()>;

    /// The signals versus handles or ignores ([`RESET_SIGNALS`]) back to
    /// their default actions, then an empty signal mask, as posix_spawn
    /// and `std::process::Command` leave a new program. The child is
    /// cloned with every signal blocked (see [`super::spawn`]): a signal
    /// that reached it before this point is delivered here, to the
    /// default action, never to versus' handler in versus' memory.
    fn reset_signals(&self) -> nix::Result<()>;
    /// Reads one byte from `fd` (the rootless child waits for its maps).
    fn read_byte(&self, fd: RawFd) -> nix::Result<u8>;
    /// Waits up to `timeout_ns` for `fd` to be readable, then reads one
    /// word (the child waits for the cgroup a thread of its launcher
    /// makes). ETIMEDOUT when nothing came, EPIPE at end of file or a
    /// short read.
    fn read_word(&self, fd: RawFd, timeout_ns: u64) -> nix::Result<u64>;
    /// Closes `fd` (errors ignored: the descriptor is gone either way).
    fn close(&self, fd: RawFd);
    /// `dup2(from, to)` (clears FD_CLOEXEC on `to`).
    fn dup2(&self, from: RawFd, to: RawFd) -> nix::Result<()>;
    /// Writes `data` to `fd` in one write (a status record: at most
    /// PIPE_BUF bytes, so one write is atomic).
    fn write(&self, fd: RawFd, data: &[u8]) -> nix::Result<()>;
    /// `execve`: returns only when it failed.
    ///
    /// # Safety
    ///
    /// `argv` and `envp` must be NULL-terminated arrays of pointers to
    /// NUL-terminated strings, alive for the call.
    unsafe fn execve(&self, path: &CStr, argv: *const *const c_char, envp: *const *const c_char) -> Errno;
}

/// The real system calls, made with the `syscall` instruction itself
/// ([`raw`]): no libc wrapper, so nothing is written to errno or to any
/// other thread-local state. A child cloned with `CLONE_VM` runs on the
/// thread-local block of the thread that cloned it, and when a thread of
/// the launcher makes the child's cgroup (see [`super::spawn`]) that
/// thread is not suspended while the child runs: the child must not touch
/// it (glibc's wrappers set errno and, in a multi-threaded process, the
/// thread's cancellation state).
pub struct LinuxSyscall;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The kernel's `struct sigaction` on x86_64 (rt_sigaction).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// The signals versus handles (SIGINT and SIGTERM: the interrupt flag) or
/// ignores (SIGPIPE), which a new program gets back at their defaults.
pub const RESET_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGPIPE];

/// The kernel's signal set size on x86_64 (64 signals).
const SIGSET_BYTES: usize = 8;

/// System calls without libc.
pub mod raw {
    use nix::errno::Errno;

    #[cfg(not(target_arch = "x86_64"))]
    compile_error!("versus launches its children with x86_64 system calls (src/platform/syscall.rs)");

    /// System call `nr` with six arguments (unused ones 0): the kernel's
    /// result, or its error number. No errno, no thread-local state.
    ///
    /// # Safety
    ///
    /// The arguments must be what system call `nr` expects: pointers to
    /// live memory of the kinds and sizes it reads or writes.
    #[inline(always)]
    pub unsafe fn syscall(nr: libc::c_long, a: [usize; 6]) -> Result<usize, Errno> {
        let ret: isize;
        // SAFETY: the x86_64 Linux system-call convention: the number in
        // rax, the arguments in rdi, rsi, rdx, r10, r8, r9, the result in
        // rax; the kernel clobbers rcx and r11 and uses no user stack. The
        // caller vouches for the arguments (see above); memory is not
        // declared untouched, as the kernel may read and write it.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") nr as isize => ret,
                in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
                in("r10") a[3], in("r8") a[4], in("r9") a[5],
                lateout("rcx") _, lateout("r11") _,
                options(nostack),
            );
        }
        match ret {
            -4095..=-1 => Err(Errno::from_raw(-ret as i32)),
            r => Ok(r as usize),
        }
    }

    /// Ends the process (exit_group) without running anything of the
    /// parent's: no atexit handler, no destructor, no libc state.
    pub fn exit(code: i32) -> ! {
        loop {
            // SAFETY: exit_group takes one integer and does not return.
            let _ = unsafe { syscall(libc::SYS_exit_group, [code as usize, 0, 0, 0, 0, 0]) };
        }
    }
}

fn ptr<T>(p: *const T) -> usize {
    p as usize
}

fn opt(c: Option<&CStr>) -> usize {
    c.map_or(0, |c| ptr(c.as_ptr()))
}

impl Syscall for LinuxSyscall {
    fn mount(&self, source: Option<&CStr>, target: &CStr, fstype: Option<&CStr>, flags: MsFlags) -> nix::Result<()> {
        // SAFETY: C strings (or NULL) alive for the call, no data.
        unsafe { raw::syscall(libc::SYS_mount, [opt(source), ptr(target.as_ptr()), opt(fstype), flags.bits() as usize, 0, 0]) }.map(drop)
    }
    fn umount2(&self, target: &CStr, flags: MntFlags) -> nix::Result<()> {
        // SAFETY: a C string alive for the call.
        unsafe { raw::syscall(libc::SYS_umount2, [ptr(target.as_ptr()), flags.bits() as usize, 0, 0, 0, 0]) }.map(drop)
    }
    fn mount_data(&self, source: &CStr, target: &CStr, fstype: &CStr, data: &CStr) -> nix::Result<()> {
        // SAFETY: C strings alive for the call; the data is a C string of
        // options, which is what overlayfs reads.
        unsafe { raw::syscall(libc::SYS_mount, [ptr(source.as_ptr()), ptr(target.as_ptr()), ptr(fstype.as_ptr()), 0, ptr(data.as_ptr()), 0]) }.map(drop)
    }
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> nix::Result<()> {
        // SAFETY: C strings alive for the call.
        unsafe { raw::syscall(libc::SYS_pivot_root, [ptr(new_root.as_ptr()), ptr(put_old.as_ptr()), 0, 0, 0, 0]) }.map(drop)
    }
    fn chdir(&self, dir: &CStr) -> nix::Result<()> {
        // SAFETY: a C string alive for the call.
        unsafe { raw::syscall(libc::SYS_chdir, [ptr(dir.as_ptr()), 0, 0, 0, 0, 0]) }.map(drop)
    }
    fn sethostname(&self, name: &CStr) -> nix::Result<()> {
        // SAFETY: the kernel reads `len` bytes of the live string.
        unsafe { raw::syscall(libc::SYS_sethostname, [ptr(name.as_ptr()), name.to_bytes().len(), 0, 0, 0, 0]) }.map(drop)
    }
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        // SAFETY: integer flags only.
        unsafe { raw::syscall(libc::SYS_unshare, [flags.bits() as usize, 0, 0, 0, 0, 0]) }.map(drop)
    }
    fn mkdir(&self, path: &CStr) -> nix::Result<()> {
        // SAFETY: a C string alive for the call.
        unsafe { raw::syscall(libc::SYS_mkdir, [ptr(path.as_ptr()), 0o755, 0, 0, 0, 0]) }.map(drop)
    }
    fn write_file(&self, path: &CStr, data: &CStr) -> nix::Result<()> {
        // SAFETY: a C string alive for the call; O_CLOEXEC so the fd never
        // reaches the workload.
        let fd = unsafe { raw::syscall(libc::SYS_open, [ptr(path.as_ptr()), (libc::O_WRONLY | libc::O_CLOEXEC) as usize, 0, 0, 0, 0]) }?;
        let written = self.write(fd as RawFd, data.to_bytes());
        self.close(fd as RawFd);
        written
    }

    fn set_no_new_privs(&self) -> nix::Result<()> {
        // SAFETY: prctl with integer arguments only.
        unsafe { raw::syscall(libc::SYS_prctl, [libc::PR_SET_NO_NEW_PRIVS as usize, 1, 0, 0, 0, 0]) }.map(drop)
    }
    fn seccomp_filter(&self, prog: &libc::sock_fprog) -> nix::Result<()> {
        // SAFETY: `prog` points to `len` BPF instructions that the caller
        // keeps alive for the call; the kernel copies them.
        unsafe { raw::syscall(libc::SYS_seccomp, [libc::SECCOMP_SET_MODE_FILTER as usize, 0, ptr(prog), 0, 0, 0]) }.map(drop)
    }
    fn drop_bounding_cap(&self, cap: u32) -> nix::Result<()> {
        // SAFETY: prctl with integer arguments only.
        unsafe { raw::syscall(libc::SYS_prctl, [libc::PR_CAPBSET_DROP as usize, cap as usize, 0, 0, 0, 0]) }.map(drop)
    }
    fn clear_ambient_caps(&self) -> nix::Result<()> {
        // SAFETY: prctl with integer arguments only.
        unsafe { raw::syscall(libc::SYS_prctl, [libc::PR_CAP_AMBIENT as usize, libc::PR_CAP_AMBIENT_CLEAR_ALL as usize, 0, 0, 0, 0]) }.map(drop)
    }
    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> nix::Result<()> {
        let header = CapHeader { version: CAP_VERSION_3, pid: 0 };
        let word = |v: u64, i: u32| (v >> (32 * i)) as u32;
        let data = [0, 1].map(|i| CapData { effective: word(effective, i), permitted: word(permitted, i), inheritable: word(inheritable, i) });
        // SAFETY: a version-3 header and the two data words it expects,
        // both local and alive for the call; pid 0 is this thread.
        unsafe { raw::syscall(libc::SYS_capset, [ptr(&header), ptr(data.as_ptr()), 0, 0, 0, 0]) }.map(drop)
    }

    fn reset_signals(&self) -> nix::Result<()> {
        let dfl = KernelSigaction { handler: libc::SIG_DFL, flags: 0, restorer: 0, mask: 0 };
        for sig in RESET_SIGNALS {
            // SAFETY: a local kernel sigaction for the default action (no
            // handler, so no restorer); the child has its own copy of the
            // handler table (no CLONE_SIGHAND).
            unsafe { raw::syscall(libc::SYS_rt_sigaction, [sig as usize, ptr(&dfl), 0, SIGSET_BYTES, 0, 0]) }?;
        }
        let empty: u64 = 0;
        // SAFETY: a local, empty signal set of the kernel's size; only this
        // process's own mask changes.
        unsafe { raw::syscall(libc::SYS_rt_sigprocmask, [libc::SIG_SETMASK as usize, ptr(&empty), 0, SIGSET_BYTES, 0, 0]) }.map(drop)
    }
    fn read_byte(&self, fd: RawFd) -> nix::Result<u8> {
        let mut b = [0u8; 1];
        // SAFETY: reads at most one byte into a local buffer.
        match unsafe { raw::syscall(libc::SYS_read, [fd as usize, ptr(b.as_mut_ptr()), 1, 0, 0, 0]) }? {
            1 => Ok(b[0]),
            _ => Err(Errno::EPIPE),
        }
    }
    fn read_word(&self, fd: RawFd, timeout_ns: u64) -> nix::Result<u64> {
        let deadline = crate::measure::clock::now_ns().saturating_add(timeout_ns);
        loop {
            let left = deadline.saturating_sub(crate::measure::clock::now_ns());
            let ts = libc::timespec { tv_sec: (left / 1_000_000_000) as libc::time_t, tv_nsec: (left % 1_000_000_000) as libc::c_long };
            let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // SAFETY: one local pollfd, a local timeout, no signal mask.
            match unsafe { raw::syscall(libc::SYS_ppoll, [std::ptr::addr_of_mut!(p) as usize, 1, ptr(&ts), 0, SIGSET_BYTES, 0]) } {
                Ok(0) => return Err(Errno::ETIMEDOUT),
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
        let mut b = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a local buffer.
        match unsafe { raw::syscall(libc::SYS_read, [fd as usize, ptr(b.as_mut_ptr()), b.len(), 0, 0, 0]) }? {
            8 => Ok(u64::from_ne_bytes(b)),
            _ => Err(Errno::EPIPE),
        }
    }
    fn close(&self, fd: RawFd) {
        // SAFETY: closes one descriptor of this process's own table; the
        // caller no longer uses it.
        let _ = unsafe { raw::syscall(libc::SYS_close, [fd as usize, 0, 0, 0, 0, 0]) };
    }
    fn dup2(&self, from: RawFd, to: RawFd) -> nix::Result<()> {
        // SAFETY: dup2 on descriptors of this process; the new descriptor
        // has no FD_CLOEXEC, so it survives execve.
        unsafe { raw::syscall(libc::SYS_dup2, [from as usize, to as usize, 0, 0, 0, 0]) }.map(drop)
    }
    fn write(&self, fd: RawFd, data: &[u8]) -> nix::Result<()> {
        // SAFETY: the kernel reads `data.len()` bytes of a live buffer.
        match unsafe { raw::syscall(libc::SYS_write, [fd as usize, ptr(data.as_ptr()), data.len(), 0, 0, 0]) }? {
            n if n == data.len() => Ok(()),
            _ => Err(Errno::EIO),
        }
    }
    unsafe fn execve(&self, path: &CStr, argv: *const *const c_char, envp: *const *const c_char) -> Errno {
        // SAFETY: the caller guarantees argv and envp (see the trait); the
        // path is a live C string.
        match unsafe { raw::syscall(libc::SYS_execve, [ptr(path.as_ptr()), ptr(argv), ptr(envp), 0, 0, 0]) } {
            Err(e) => e,
            Ok(_) => Errno::UnknownErrno,
        }
    }
}

/// Records calls instead of making them (tests only).
#[cfg(test)]
pub mod recording {
    use super::*;
    use std::cell::RefCell;

    #[derive(Default)]
    pub struct RecordingSyscall {
        pub calls: RefCell<Vec<String>>,
        /// Fail the call whose description starts with this, with EPERM.
        pub fail_on: Option<&'static str>,
    }

    impl RecordingSyscall {
        fn rec(&self, s: String) -> nix::Result<()> {
            let fail = self.fail_on.is_some_and(|f| s.starts_with(f));
            self.calls.borrow_mut().push(s);
            if fail {
                Err(Errno::EPERM)
            } else {
                Ok(())
            }
        }

        /// The calls so far.
        pub fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    fn s(c: Option<&CStr>) -> String {
        c.map(|c| c.to_string_lossy().into_owned()).unwrap_or_else(|| "-".into())
    }

    impl Syscall for RecordingSyscall {
        fn mount(&self, source: Option<&CStr>, target: &CStr, fstype: Option<&CStr>, flags: MsFlags) -> nix::Result<()> {
            self.rec(format!("mount {} {} {} {:?}", s(source), s(Some(target)), s(fstype), flags))
        }
        fn umount2(&self, target: &CStr, flags: MntFlags) -> nix::Result<()> {
            self.rec(format!("umount2 {} {:?}", s(Some(target)), flags))
        }
        fn mount_data(&self, source: &CStr, target: &CStr, fstype: &CStr, data: &CStr) -> nix::Result<()> {
            self.rec(format!("mount {} {} {} {}", s(Some(source)), s(Some(target)), s(Some(fstype)), s(Some(data))))
        }
        fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> nix::Result<()> {
            self.rec(format!("pivot_root {} {}", s(Some(new_root)), s(Some(put_old))))
        }
        fn chdir(&self, dir: &CStr) -> nix::Result<()> {
            self.rec(format!("chdir {}", s(Some(dir))))
        }
        fn sethostname(&self, name: &CStr) -> nix::Result<()> {
            self.rec(format!("sethostname {}", s(Some(name))))
        }
        fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
            self.rec(format!("unshare {flags:?}"))
        }
        fn mkdir(&self, path: &CStr) -> nix::Result<()> {
            self.rec(format!("mkdir {}", s(Some(path))))
        }
        fn write_file(&self, path: &CStr, data: &CStr) -> nix::Result<()> {
            self.rec(format!("write {} {}", s(Some(path)), s(Some(data))))
        }
        fn set_no_new_privs(&self) -> nix::Result<()> {
            self.rec("no_new_privs".into())
        }
        fn seccomp_filter(&self, prog: &libc::sock_fprog) -> nix::Result<()> {
            self.rec(format!("seccomp {} instructions", prog.len))
        }
        fn drop_bounding_cap(&self, cap: u32) -> nix::Result<()> {
            self.rec(format!("capbset_drop {cap}"))
        }
        fn clear_ambient_caps(&self) -> nix::Result<()> {
            self.rec("ambient_clear".into())
        }
        fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> nix::Result<()> {
            self.rec(format!("capset eff={effective:x} prm={permitted:x} inh={inheritable:x}"))
        }
        fn reset_signals(&self) -> nix::Result<()> {
            self.rec("reset_signals".into())
        }
        fn read_byte(&self, fd: RawFd) -> nix::Result<u8> {
            self.rec(format!("read {fd}")).map(|_| 1)
        }
        fn read_word(&self, fd: RawFd, _timeout_ns: u64) -> nix::Result<u64> {
            self.rec(format!("read_word {fd}")).map(|_| 0)
        }
        fn close(&self, fd: RawFd) {
            let _ = self.rec(format!("close {fd}"));
        }
        fn dup2(&self, from: RawFd, to: RawFd) -> nix::Result<()> {
            self.rec(format!("dup2 {from} {to}"))
        }
        fn write(&self, fd: RawFd, data: &[u8]) -> nix::Result<()> {
            self.rec(format!("write_fd {fd} {} bytes", data.len()))
        }
        unsafe fn execve(&self, path: &CStr, _argv: *const *const c_char, _envp: *const *const c_char) -> Errno {
            let _ = self.rec(format!("execve {}", s(Some(path))));
            Errno::ENOEXEC
        }
    }
}
