//! The image as a VM disk and as container layers, and a package applied to
//! either:
//!
//! - [`make_disk`]: an ext4 image of a tree (`mkfs.ext4 -d`, no loop mount),
//!   with the workload program written into it as `/versus-init` (debugfs),
//!   so that a kernel can boot it with `root=/dev/vda init=/versus-init`;
//! - [`OverlayMount`] and [`LoopMount`]: mounts on the host (a new
//!   container layer is built in an overlay's upper dir; a disk is patched
//!   through a loop mount), each unmounted on drop, on every path;
//! - [`dpkg_install`]: `dpkg --root` of .deb files into a mounted tree, as
//!   an administrator patches an offline image.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::cmd::{self, Ran};
use super::{ImageError, Result};

/// Where the workload program lives in an image: the VM's `init=` and the
/// container's pid 1.
pub const INIT_PATH: &str = "/versus-init";

/// A disk holding `tree` (with `init` as [`INIT_PATH`] when given) of
/// `size` bytes at `dest`. Returns the commands run.
pub fn make_disk(tree: &Path, init: Option<&Path>, dest: &Path, size: u64) -> Result<Vec<Ran>> {
    let mkfs = cmd::need("mkfs.ext4", "e2fsprogs")?;
    let f = std::fs::File::create(dest).map_err(|e| ImageError::io(format!("creating {}", dest.display()), e))?;
    f.set_len(size).map_err(|e| ImageError::io(format!("sizing {}", dest.display()), e))?;
    drop(f);
    let mut c = Command::new(mkfs);
    c.args(["-q", "-F", "-E", "nodiscard", "-L", "versus-root", "-d"]).arg(tree).arg(dest);
    let mut ran = vec![cmd::run(c, Duration::from_secs(600))?];
    if let Some(init) = init {
        let debugfs = cmd::need("debugfs", "e2fsprogs")?;
        let mut c = Command::new(debugfs);
        let name = INIT_PATH.trim_start_matches('/');
        c.arg("-w").arg("-R").arg(format!("write {} {name}", init.display())).arg(dest);
        ran.push(cmd::run(c, Duration::from_secs(60))?);
        let mut c = Command::new(cmd::need("debugfs", "e2fsprogs")?);
        c.arg("-w").arg("-R").arg(format!("sif {name} mode 0100755")).arg(dest);
        ran.push(cmd::run(c, Duration::from_secs(60))?);
    }
    Ok(ran)
}

/// A size for a disk holding `tree_bytes`: twice that (room for instance
/// data and a package update), at least 512 MiB, rounded to MiB.
pub fn disk_size_for(tree_bytes: u64) -> u64 {
    (tree_bytes.saturating_mul(2).max(512 << 20) + (1 << 20) - 1) & !((1 << 20) - 1)
}

fn umount(target: &Path) -> std::result::Result<(), String> {
    match nix::mount::umount2(target, nix::mount::MntFlags::empty()) {
        Ok(()) => Ok(()),
        // Busy (a process still in it): detach it now, freed when unused.
        Err(nix::errno::Errno::EBUSY) => nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// An overlayfs on the host: `lowers` (top first) under a writable `upper`;
/// unmounted on drop.
pub struct OverlayMount {
    merged: PathBuf,
    mounted: bool,
}

impl OverlayMount {
    pub fn mount(lowers: &[PathBuf], upper: &Path, work: &Path, merged: &Path) -> Result<OverlayMount> {
        let lower: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let opts = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), upper.display(), work.display());
        nix::mount::mount(Some("overlay"), merged, Some("overlay"), nix::mount::MsFlags::empty(), Some(opts.as_str()))
            .map_err(|e| ImageError::Failed(format!("mounting overlayfs at {} ({opts}): {e}; needs root and the overlay module", merged.display())))?;
        Ok(OverlayMount { merged: merged.to_path_buf(), mounted: true })
    }
    pub fn path(&self) -> &Path {
        &self.merged
    }
    pub fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            umount(&self.merged).map_err(|e| ImageError::Failed(format!("unmounting {}: {e}", self.merged.display())))?;
            self.mounted = false;
        }
        Ok(())
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            tracing::warn!("{e}");
        }
    }
}

/// A raw disk image mounted through a loop device (`mount -o loop`, whose
/// loop device is released with the mount); unmounted on drop.
pub struct LoopMount {
    target: PathBuf,
    mounted: bool,
    pub ran: Ran,
}

impl LoopMount {
    pub fn mount(disk: &Path, target: &Path) -> Result<LoopMount> {
        let mut c = Command::new(cmd::need("mount", "mount")?);
        c.args(["-o", "loop", "-t", "ext4"]).arg(disk).arg(target);
        let ran = cmd::run(c, Duration::from_secs(60))?;
        Ok(LoopMount { target: target.to_path_buf(), mounted: true, ran })
    }
    pub fn path(&self) -> &Path {
        &self.target
    }
    pub fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            umount(&self.target).map_err(|e| ImageError::Failed(format!("unmounting {}: {e}", self.target.display())))?;
            self.mounted = false;
        }
        Ok(())
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            tracing::warn!("{e}");
        }
    }
}

/// Installs `debs` into the tree mounted at `root` (`dpkg --root`: its
/// maintainer scripts run chrooted there).
pub fn dpkg_install(root: &Path, debs: &[PathBuf]) -> Result<Ran> {
    let mut c = Command::new(cmd::need("dpkg", "dpkg")?);
    c.arg(format!("--root={}", root.display())).args(["--force-unsafe-io", "--no-triggers", "-i"]).args(debs);
    // A chroot's PATH, whatever versus' own is.
    c.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").env("DEBIAN_FRONTEND", "noninteractive");
    cmd::run(c, Duration::from_secs(600))
}

/// Copies `src` to `dst` keeping holes (`cp --sparse=always`).
pub fn copy_sparse(src: &Path, dst: &Path) -> Result<Ran> {
    let mut c = Command::new(cmd::need("cp", "coreutils")?);
    c.arg("--sparse=always").arg(src).arg(dst);
    cmd::run(c, Duration::from_secs(600))
}

/// Flushes `path`'s data to its disk.
pub fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).map_err(|e| ImageError::io(format!("syncing {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_are_sized_with_room() {
        assert_eq!(disk_size_for(10 << 20), 512 << 20);
        assert_eq!(disk_size_for(300 << 20), 600 << 20);
        assert_eq!(disk_size_for((300 << 20) + 1) % (1 << 20), 0);
    }

    #[test]
    fn a_disk_holds_the_tree_and_the_init() {
        if crate::host::which("mkfs.ext4").is_none() || crate::host::which("debugfs").is_none() {
            panic!("mkfs.ext4 and debugfs are needed: apt-get install e2fsprogs (harness/setup-test-host installs it)");
        }
        let t = tempfile::tempdir().unwrap();
        let tree = t.path().join("tree");
        std::fs::create_dir_all(tree.join("etc")).unwrap();
        std::fs::write(tree.join("etc/debian_version"), b"12.0\n").unwrap();
        let init = t.path().join("init");
        std::fs::write(&init, b"#!init\n").unwrap();
        let disk = t.path().join("d.ext4");
        make_disk(&tree, Some(&init), &disk, 16 << 20).unwrap();
        let cat = |p: &str| {
            let out = Command::new("debugfs").arg("-R").arg(format!("cat {p}")).arg(&disk).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert_eq!(cat("/etc/debian_version"), "12.0\n");
        assert_eq!(cat(INIT_PATH), "#!init\n");
        let st = Command::new("debugfs").arg("-R").arg(format!("stat {INIT_PATH}")).arg(&disk).output().unwrap();
        assert!(String::from_utf8_lossy(&st.stdout).contains("Mode:  0755"), "{}", String::from_utf8_lossy(&st.stdout));
    }
}
