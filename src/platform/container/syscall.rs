//! The system calls the container child makes, behind a trait (after youki)
//! so the set-up sequence can be checked in unit tests without root, and so
//! the real implementation stays allocation-free: it runs in a freshly
//! cloned child that shares the memory of a possibly multi-threaded parent
//! (see `spawn`), where only async-signal-safe work is allowed.

use std::ffi::CStr;

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

pub trait Syscall {
    fn mount(&self, source: Option<&CStr>, target: &CStr, fstype: Option<&CStr>, flags: MsFlags) -> nix::Result<()>;
    fn umount2(&self, target: &CStr, flags: MntFlags) -> nix::Result<()>;
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> nix::Result<()>;
    fn chdir(&self, dir: &CStr) -> nix::Result<()>;
    fn sethostname(&self, name: &CStr) -> nix::Result<()>;
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()>;
    fn mkdir(&self, path: &CStr) -> nix::Result<()>;
    /// Opens an existing file write-only, writes `data` in one write, closes it.
    fn write_file(&self, path: &CStr, data: &CStr) -> nix::Result<()>;
}

/// The real system calls.
pub struct LinuxSyscall;

impl Syscall for LinuxSyscall {
    fn mount(&self, source: Option<&CStr>, target: &CStr, fstype: Option<&CStr>, flags: MsFlags) -> nix::Result<()> {
        nix::mount::mount::<CStr, CStr, CStr, CStr>(source, target, fstype, flags, None)
    }
    fn umount2(&self, target: &CStr, flags: MntFlags) -> nix::Result<()> {
        nix::mount::umount2(target, flags)
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
        nix::errno::Errno::result(r).map(drop)
    }
    fn unshare(&self, flags: CloneFlags) -> nix::Result<()> {
        nix::sched::unshare(flags)
    }
    fn mkdir(&self, path: &CStr) -> nix::Result<()> {
        // SAFETY: `path` is a valid C string.
        let r = unsafe { libc::mkdir(path.as_ptr(), 0o755) };
        nix::errno::Errno::result(r).map(drop)
    }
    fn write_file(&self, path: &CStr, data: &CStr) -> nix::Result<()> {
        // SAFETY: `path` is a valid C string; O_CLOEXEC so the fd never
        // reaches the workload.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
        let fd = nix::errno::Errno::result(fd)?;
        let bytes = data.to_bytes();
        // SAFETY: writes `bytes.len()` bytes of a live buffer to the fd
        // just opened.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        let written = nix::errno::Errno::result(n);
        // SAFETY: closes the fd opened above, exactly once.
        unsafe { libc::close(fd) };
        match written? {
            n if n as usize == bytes.len() => Ok(()),
            _ => Err(nix::errno::Errno::EIO),
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
                Err(nix::errno::Errno::EPERM)
            } else {
                Ok(())
            }
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
    }
}
