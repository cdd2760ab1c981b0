//! The container's root filesystem: a minimal image directory built by
//! versus (the static workload program as /init, and the empty directories
//! it mounts on), shared read-only by every instance of a run, and the
//! mount sequence that turns it into an instance's root inside its own
//! mount namespace. Every mount is made inside the instance's mount
//! namespace, so none of them outlives the instance or reaches the host.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};

use super::syscall::Syscall;
use crate::workload::{write_executable, GUEST_BINARY};

/// The shared image directory, removed on drop.
pub struct Image {
    dir: tempfile::TempDir,
}

/// Directories every rootfs has.
pub const ROOTFS_DIRS: [&str; 3] = ["proc", "dev", "tmp"];

impl Image {
    /// Builds the image in a fresh `versus-rootfs-*` temp dir.
    pub fn build() -> std::io::Result<Image> {
        let dir = tempfile::Builder::new().prefix("versus-rootfs-").tempdir()?;
        let root = dir.path().join("rootfs");
        std::fs::create_dir(&root)?;
        for d in ROOTFS_DIRS {
            std::fs::create_dir(root.join(d))?;
        }
        write_executable(&root.join("init"), GUEST_BINARY)?;
        Ok(Image { dir })
    }

    /// The rootfs directory.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// The temp dir holding the image (for leak checks).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Pre-built arguments of the mount sequence (built in the parent: the child
/// must not allocate).
pub struct RootfsPlan {
    pub rootfs: CString,
    pub proc_target: CString,
    pub hostname: CString,
    /// Flags of the mount the rootfs lives on that a remount must keep
    /// (nosuid, nodev, noexec are locked inside a user namespace).
    pub locked_flags: MsFlags,
}

const ROOT: &CStr = c"/";
const DOT: &CStr = c".";
const PROC: &CStr = c"proc";

impl RootfsPlan {
    pub fn new(rootfs: &Path, hostname: &str) -> std::io::Result<RootfsPlan> {
        let cs = |b: &[u8]| CString::new(b).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains a NUL byte"));
        let st = nix::sys::statvfs::statvfs(rootfs).map_err(std::io::Error::from)?;
        let f = st.flags();
        let mut locked = MsFlags::empty();
        use nix::sys::statvfs::FsFlags;
        for (fs, ms) in [(FsFlags::ST_NOSUID, MsFlags::MS_NOSUID), (FsFlags::ST_NODEV, MsFlags::MS_NODEV), (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC)] {
            if f.contains(fs) {
                locked |= ms;
            }
        }
        Ok(RootfsPlan {
            rootfs: cs(rootfs.as_os_str().as_bytes())?,
            proc_target: cs(rootfs.join("proc").as_os_str().as_bytes())?,
            hostname: cs(hostname.as_bytes())?,
            locked_flags: locked,
        })
    }

    /// The child's set-up, in order; on failure returns the step's name and
    /// the error. Allocation-free with [`super::syscall::LinuxSyscall`].
    pub fn apply(&self, sys: &dyn Syscall) -> Result<(), (&'static str, nix::errno::Errno)> {
        sys.sethostname(&self.hostname).map_err(|e| ("sethostname", e))?;
        // Nothing below may propagate back to the host's mounts.
        sys.mount(None, ROOT, None, MsFlags::MS_REC | MsFlags::MS_PRIVATE).map_err(|e| ("make / private", e))?;
        // pivot_root needs the new root to be a mount point.
        sys.mount(Some(&self.rootfs), &self.rootfs, None, MsFlags::MS_BIND | MsFlags::MS_REC).map_err(|e| ("bind rootfs", e))?;
        sys.mount(Some(PROC), &self.proc_target, Some(PROC), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC).map_err(|e| ("mount /proc", e))?;
        sys.chdir(&self.rootfs).map_err(|e| ("chdir rootfs", e))?;
        // pivot_root(".", ".") stacks the old root on top of the new one;
        // detaching "." then removes the old root (as runc does).
        sys.pivot_root(DOT, DOT).map_err(|e| ("pivot_root", e))?;
        sys.umount2(DOT, MntFlags::MNT_DETACH).map_err(|e| ("detach old root", e))?;
        sys.chdir(ROOT).map_err(|e| ("chdir /", e))?;
        sys.mount(None, ROOT, None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | self.locked_flags).map_err(|e| ("remount / read-only", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::syscall::recording::RecordingSyscall;
    use super::*;

    fn plan() -> RootfsPlan {
        RootfsPlan { rootfs: c"/img/rootfs".into(), proc_target: c"/img/rootfs/proc".into(), hostname: c"versus-1".into(), locked_flags: MsFlags::MS_NOSUID }
    }

    #[test]
    fn sequence_privatises_before_mounting_and_pivots() {
        let sys = RecordingSyscall::default();
        plan().apply(&sys).unwrap();
        let calls = sys.calls.borrow();
        let pos = |p: &str| calls.iter().position(|c| c.starts_with(p)).unwrap_or_else(|| panic!("no {p} in {calls:?}"));
        assert!(pos("sethostname") < pos("mount "));
        assert!(pos("mount - / - MsFlags(MS_REC | MS_PRIVATE)") < pos("mount /img/rootfs /img/rootfs"));
        assert!(pos("mount proc /img/rootfs/proc proc") < pos("pivot_root"));
        assert!(pos("pivot_root . .") < pos("umount2 . MntFlags(MNT_DETACH)"));
        let last = calls.last().unwrap();
        assert!(last.contains("MS_RDONLY") && last.contains("MS_NOSUID"), "read-only remount keeps locked flags: {last}");
    }

    #[test]
    fn a_failing_step_is_named_and_stops_the_sequence() {
        let sys = RecordingSyscall { fail_on: Some("pivot_root"), ..Default::default() };
        let err = plan().apply(&sys).unwrap_err();
        assert_eq!(err, ("pivot_root", nix::errno::Errno::EPERM));
        assert!(sys.calls.borrow().last().unwrap().starts_with("pivot_root"));
    }

    #[test]
    fn image_has_init_and_is_removed() {
        let img = Image::build().unwrap();
        assert!(img.rootfs().join("init").is_file());
        for d in ROOTFS_DIRS {
            assert!(img.rootfs().join(d).is_dir());
        }
        let p = img.path().to_path_buf();
        drop(img);
        assert!(!p.exists());
    }
}
