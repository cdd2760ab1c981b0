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

    /// An empty signal mask and SIGPIPE back to its default action, as
    /// posix_spawn and `std::process::Command` leave a new program (the
    /// child inherits the mask of the thread that cloned it and versus'
    /// ignored SIGPIPE).
    fn reset_signals(&self) -> nix::Result<()>;
    /// Reads one byte from `fd` (the rootless child waits for its maps).
    fn read_byte(&self, fd: RawFd) -> nix::Result<u8>;
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

/// The real system calls.
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

impl Syscall for LinuxSyscall {
    fn mount(&self, source: Option<&CStr>, target: &CStr, fstype: Option<&CStr>, flags: MsFlags) -> nix::Result<()> {
        nix::mount::mount::<CStr, CStr, CStr, CStr>(source, target, fstype, flags, None)
    }
    fn umount2(&self, target: &CStr, flags: MntFlags) -> nix::Result<()> {
        nix::mount::umount2(target, flags)
    }
    fn mount_data(&self, source: &CStr, target: &CStr, fstype: &CStr, data: &CStr) -> nix::Result<()> {
        nix::mount::mount(Some(source), target, Some(fstype), MsFlags::empty(), Some(data))
    }
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> nix::Result<()> {
        nix::unistd::pivot_root(new_root, put_old)
    }
    fn chdir(&self, dir: &CStr) -> nix::Result<()> {
        nix::unistd::chdir(dir)
    }
    fn sethostname(&self, name: &CStr) -> nix::Result<()> {
        // SAFETY: `name` is a valid C string; sethostname reads `len` bytes of it.
        let r = unsafe { libc::sethostname(name.as_ptr(), name.to_bytes().len()) };
        Errno::result(r).map(drop)
    }
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        nix::sched::unshare(flags)
    }
    fn mkdir(&self, path: &CStr) -> nix::Result<()> {
        // SAFETY: `path` is a valid C string.
        let r = unsafe { libc::mkdir(path.as_ptr(), 0o755) };
        Errno::result(r).map(drop)
    }
    fn write_file(&self, path: &CStr, data: &CStr) -> nix::Result<()> {
        // SAFETY: `path` is a valid C string; O_CLOEXEC so the fd never
        // reaches the workload.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        let fd = Errno::result(fd)?;
        let bytes = data.to_bytes();
        // SAFETY: writes `bytes.len()` bytes of a live buffer to the fd
        // just opened.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        let written = Errno::result(n);
        // SAFETY: closes the fd opened above, exactly once.
        unsafe { libc::close(fd) };
        match written? {
            n if n as usize == bytes.len() => Ok(()),
            _ => Err(Errno::EIO),
        }
    }

    fn set_no_new_privs(&self) -> nix::Result<()> {
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong) };
        Errno::result(r).map(drop)
    }
    fn seccomp_filter(&self, prog: &libc::sock_fprog) -> nix::Result<()> {
        // SAFETY: `prog` points to `len` BPF instructions that the caller
        // keeps alive for the call; the kernel copies them.
        let r = unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0 as libc::c_ulong, prog as *const libc::sock_fprog) };
        Errno::result(r).map(drop)
    }
    fn drop_bounding_cap(&self, cap: u32) -> nix::Result<()> {
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong) };
        Errno::result(r).map(drop)
    }
    fn clear_ambient_caps(&self) -> nix::Result<()> {
        // SAFETY: prctl with integer arguments only.
        let r = unsafe {
            libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong)
        };
        Errno::result(r).map(drop)
    }
    fn capset(&self, effective: u64, permitted: u64, inheritable: u64) -> nix::Result<()> {
        let mut header = CapHeader { version: CAP_VERSION_3, pid: 0 };
        let word = |v: u64, i: u32| (v >> (32 * i)) as u32;
        let data = [0, 1].map(|i| CapData { effective: word(effective, i), permitted: word(permitted, i), inheritable: word(inheritable, i) });
        // SAFETY: a version-3 header and the two data words it expects,
        // both local and alive for the call; pid 0 is this thread.
        let r = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) };
        Errno::result(r).map(drop)
    }

    fn reset_signals(&self) -> nix::Result<()> {
        // SAFETY: a local, empty signal set; sigprocmask and signal only
        // change this process's own signal state (the child has its own
        // copy of the handler table: no CLONE_SIGHAND).
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            Errno::result(libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()))?;
            if libc::signal(libc::SIGPIPE, libc::SIG_DFL) == libc::SIG_ERR {
                return Err(Errno::last());
            }
        }
        Ok(())
    }
    fn read_byte(&self, fd: RawFd) -> nix::Result<u8> {
        let mut b = [0u8; 1];
        // SAFETY: reads one byte into a local buffer.
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        match Errno::result(n)? {
            1 => Ok(b[0]),
            _ => Err(Errno::EPIPE),
        }
    }
    fn dup2(&self, from: RawFd, to: RawFd) -> nix::Result<()> {
        // SAFETY: dup2 on descriptors of this process; it clears CLOEXEC on
        // the new descriptor so that it survives execve.
        Errno::result(unsafe { libc::dup2(from, to) }).map(drop)
    }
    fn write(&self, fd: RawFd, data: &[u8]) -> nix::Result<()> {
        // SAFETY: writes `data.len()` bytes of a live buffer.
        let n = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        match Errno::result(n)? {
            n if n as usize == data.len() => Ok(()),
            _ => Err(Errno::EIO),
        }
    }
    unsafe fn execve(&self, path: &CStr, argv: *const *const c_char, envp: *const *const c_char) -> Errno {
        // SAFETY: the caller guarantees argv and envp (see the trait).
        unsafe { libc::execve(path.as_ptr(), argv, envp) };
        Errno::last()
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
