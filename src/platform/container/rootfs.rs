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

use super::hardening::{PathKind, ProcPath};
use crate::platform::spawn::Failure;
use crate::platform::syscall::Syscall;
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
    /// An OS image's root: the overlayfs options (lowerdir, upperdir,
    /// workdir) mounted on `rootfs` inside the instance's mount namespace
    /// before anything else, so that the instance sees the image's layers
    /// under its own writable upper dir. `None`: the minimal rootfs itself.
    pub overlay: Option<CString>,
    /// Remount the root read-only at the end (the minimal rootfs); an OS
    /// image's root stays writable, its writes landing in the upper dir.
    pub read_only: bool,
}

const ROOT: &CStr = c"/";
const DOT: &CStr = c".";
const PROC: &CStr = c"proc";
const DEV_NULL: &CStr = c"/dev/null";
const TMPFS: &CStr = c"tmpfs";
const OVERLAY: &CStr = c"overlay";

/// The steps of [`RootfsPlan::apply`], in order, for error reports.
pub const STEPS: [&str; 12] = [
    "sethostname",
    "make / private",
    "mount the image's overlay",
    "bind rootfs",
    "mount /proc",
    "mask a /proc path",
    "make a /proc path read-only",
    "chdir rootfs",
    "pivot_root",
    "detach old root",
    "chdir /",
    "remount / read-only",
];

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
            overlay: None,
            read_only: true,
        })
    }

    /// The plan for an OS image's root: an overlayfs of `lowers` (top
    /// first; the minimal rootfs, with /init, is put above them) under
    /// `upper`, mounted on the rootfs dir in the instance's namespace.
    pub fn with_overlay(mut self, rootfs: &Path, lowers: &[std::path::PathBuf], upper: &Path, work: &Path) -> std::io::Result<RootfsPlan> {
        let mut l = vec![rootfs.display().to_string()];
        l.extend(lowers.iter().map(|p| p.display().to_string()));
        let opts = format!("lowerdir={},upperdir={},workdir={}", l.join(":"), upper.display(), work.display());
        self.overlay = Some(CString::new(opts).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path contains a NUL byte"))?);
        self.read_only = false;
        Ok(self)
    }

    /// The child's set-up, in order ([`Self::mount`], then
    /// [`Self::enter`]): what the tests check as one sequence.
    #[cfg(test)]
    pub fn apply(&self, sys: &dyn Syscall, paths: &[ProcPath]) -> Result<(), Failure> {
        self.mount(sys, paths)?;
        self.enter(sys)
    }

    /// The mounts, up to pivot_root (what the child does while a thread of
    /// its launcher makes its cgroup); on failure returns the step's name
    /// and the error (for a masked or read-only path, its index in `paths`
    /// as the detail). `paths` are the profile's masked and read-only /proc
    /// paths ([`super::hardening::Hardening::proc_paths`]): mounted on the
    /// rootfs's /proc before pivot_root, while the host's /dev/null can
    /// still be bound (a bind needs its source in this mount namespace,
    /// which the old root leaves at the detach). A path this kernel's /proc
    /// lacks is skipped. Allocation-free with the real system calls.
    pub fn mount(&self, sys: &dyn Syscall, paths: &[ProcPath]) -> Result<(), Failure> {
        let step = |name: &'static str| move |errno| Failure { step: name, errno, detail: 0 };
        sys.sethostname(&self.hostname).map_err(step("sethostname"))?;
        // Nothing below may propagate back to the host's mounts.
        sys.mount(None, ROOT, None, MsFlags::MS_REC | MsFlags::MS_PRIVATE).map_err(step("make / private"))?;
        if let Some(opts) = &self.overlay {
            sys.mount_data(OVERLAY, &self.rootfs, OVERLAY, opts).map_err(step("mount the image's overlay"))?;
        }
        // pivot_root needs the new root to be a mount point.
        sys.mount(Some(&self.rootfs), &self.rootfs, None, MsFlags::MS_BIND | MsFlags::MS_REC).map_err(step("bind rootfs"))?;
        let proc_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        sys.mount(Some(PROC), &self.proc_target, Some(PROC), proc_flags).map_err(step("mount /proc"))?;
        for (i, p) in paths.iter().enumerate() {
            let t = p.target.as_c_str();
            let (name, r) = match p.kind {
                PathKind::MaskFile => ("mask a /proc path", sys.mount(Some(DEV_NULL), t, None, MsFlags::MS_BIND)),
                PathKind::MaskDir => ("mask a /proc path", sys.mount(Some(TMPFS), t, Some(TMPFS), MsFlags::MS_RDONLY | proc_flags)),
                PathKind::ReadOnly => ("make a /proc path read-only", {
                    match sys.mount(Some(t), t, None, MsFlags::MS_BIND | MsFlags::MS_REC) {
                        Ok(()) => sys.mount(None, t, None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | proc_flags),
                        e => e,
                    }
                }),
            };
            match r {
                Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                Err(errno) => return Err(Failure { step: name, errno, detail: i as u64 }),
            }
        }
        Ok(())
    }

    /// Into the rootfs: pivot_root, the old root detached, / read-only
    /// unless an image's overlay is the root (after the cgroup is joined,
    /// by its host path).
    pub fn enter(&self, sys: &dyn Syscall) -> Result<(), Failure> {
        let step = |name: &'static str| move |errno| Failure { step: name, errno, detail: 0 };
        sys.chdir(&self.rootfs).map_err(step("chdir rootfs"))?;
        // pivot_root(".", ".") stacks the old root on top of the new one;
        // detaching "." then removes the old root (as runc does).
        sys.pivot_root(DOT, DOT).map_err(step("pivot_root"))?;
        sys.umount2(DOT, MntFlags::MNT_DETACH).map_err(step("detach old root"))?;
        sys.chdir(ROOT).map_err(step("chdir /"))?;
        if self.read_only {
            sys.mount(None, ROOT, None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | self.locked_flags)
                .map_err(step("remount / read-only"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::hardening::{Hardening, Profile};
    use super::*;
    use crate::platform::syscall::recording::RecordingSyscall;

    fn plan() -> RootfsPlan {
        RootfsPlan {
            rootfs: c"/img/rootfs".into(),
            proc_target: c"/img/rootfs/proc".into(),
            hostname: c"versus-1".into(),
            locked_flags: MsFlags::MS_NOSUID,
            overlay: None,
            read_only: true,
        }
    }

    #[test]
    fn an_image_root_is_an_overlay_mounted_first_and_stays_writable() {
        let p = plan().with_overlay(Path::new("/img/rootfs"), &["/cache/debian/rootfs".into()], Path::new("/i/upper"), Path::new("/i/work")).unwrap();
        let sys = RecordingSyscall::default();
        p.apply(&sys, &[]).unwrap();
        let calls = sys.calls();
        let pos = |p: &str| calls.iter().position(|c| c.starts_with(p)).unwrap_or_else(|| panic!("no {p} in {calls:?}"));
        let ov = pos("mount overlay /img/rootfs overlay lowerdir=/img/rootfs:/cache/debian/rootfs,upperdir=/i/upper,workdir=/i/work");
        assert!(pos("mount - / - MsFlags(MS_REC | MS_PRIVATE)") < ov && ov < pos("mount /img/rootfs /img/rootfs"));
        assert!(!calls.iter().any(|c| c.contains("MS_RDONLY")), "the image's root stays writable: {calls:?}");
    }

    #[test]
    fn sequence_privatises_before_mounting_and_pivots() {
        let sys = RecordingSyscall::default();
        plan().apply(&sys, &[]).unwrap();
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
        let err = plan().apply(&sys, &[]).unwrap_err();
        assert_eq!((err.step, err.errno), ("pivot_root", nix::errno::Errno::EPERM));
        assert!(sys.calls.borrow().last().unwrap().starts_with("pivot_root"));
    }

    #[test]
    fn masked_and_read_only_paths_go_between_proc_and_pivot_root() {
        let h = Hardening::new(Profile::Default, Path::new("/img/rootfs")).unwrap();
        let sys = RecordingSyscall::default();
        plan().apply(&sys, h.proc_paths()).unwrap();
        let calls = sys.calls();
        let pos = |p: &str| calls.iter().position(|c| c.starts_with(p)).unwrap_or_else(|| panic!("no {p} in {calls:?}"));
        let file = h.proc_paths().iter().find(|p| p.kind == PathKind::MaskFile).unwrap();
        let kcore = pos(&format!("mount /dev/null /img/rootfs{} - MsFlags(MS_BIND)", file.path));
        let sys_bind = pos("mount /img/rootfs/proc/sys /img/rootfs/proc/sys - MsFlags(MS_BIND | MS_REC)");
        let sys_ro = pos("mount - /img/rootfs/proc/sys - MsFlags(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_REMOUNT | MS_BIND)");
        assert!(pos("mount proc /img/rootfs/proc proc") < kcore.min(sys_bind));
        assert!(sys_bind < sys_ro);
        assert!(kcore.max(sys_ro) < pos("pivot_root"));
        // A path missing from this kernel's /proc is skipped; another error
        // names the path's index.
        let sys = RecordingSyscall { fail_on: Some("mount /dev/null"), ..Default::default() };
        let f = plan().apply(&sys, h.proc_paths()).unwrap_err();
        assert_eq!(f.step, "mask a /proc path");
        assert!(h.proc_paths()[f.detail as usize].target.to_str().unwrap().starts_with("/img/rootfs/proc/"));
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
