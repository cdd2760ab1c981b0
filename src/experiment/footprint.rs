//! Image and disk footprint (difference 2 of docs/design.md): the bytes on disk
//! needed to start one instance and N instances, split into what all
//! instances share (a container's read-only base layer, a VM's kernel and
//! initramfs) and what each instance adds (a container's writable layer, a
//! VM's writable disk), as apparent size (`st_size`, what `ls` shows) and
//! allocated size (`st_blocks`, what the disk really holds).
//!
//! The N-instance cases are built for real and measured after they exist:
//! overlayfs mounts over one shared lower dir ([`overlay_instances`]), VM
//! disks as a full copy, a qcow2 overlay with a backing file
//! (`qemu-img create -b`) and a reflink clone (FICLONE) where the filesystem
//! supports it ([`disk_instances`]).
//!
//! Rows (see [`FootprintResult::samples`]): the `workload` column names the
//! storage method (`shared`, `overlay`, `copy`, `qcow2`, `reflink`); unit
//! `bytes` is the allocated size, unit `bytes_apparent` the apparent size.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{ExperimentError, Result};
use crate::model::{Metric, Sample};
use crate::platform::Storage;

/// A size, apparent and allocated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bytes {
    /// Sum of `st_size`.
    pub apparent: u64,
    /// Sum of `st_blocks * 512`.
    pub allocated: u64,
}

impl std::ops::Add for Bytes {
    type Output = Bytes;
    fn add(self, o: Bytes) -> Bytes {
        Bytes { apparent: self.apparent + o.apparent, allocated: self.allocated + o.allocated }
    }
}

/// The size of a file or a directory tree (not following symlinks; a file
/// with several hard links inside the tree counts once; directories count
/// their own size, as `du` does).
pub fn size_of(path: &Path) -> std::io::Result<Bytes> {
    let mut seen = HashSet::new();
    let mut total = Bytes::default();
    walk(path, &mut seen, &mut total)?;
    Ok(total)
}

/// The size of several files or trees together.
pub fn size_of_all(paths: &[PathBuf]) -> std::io::Result<Bytes> {
    let mut seen = HashSet::new();
    let mut total = Bytes::default();
    for p in paths {
        walk(p, &mut seen, &mut total)?;
    }
    Ok(total)
}

fn walk(path: &Path, seen: &mut HashSet<(u64, u64)>, total: &mut Bytes) -> std::io::Result<()> {
    let m = std::fs::symlink_metadata(path)?;
    if seen.insert((m.dev(), m.ino())) {
        total.apparent += m.size();
        total.allocated += m.blocks() * 512;
    }
    if m.is_dir() {
        for e in std::fs::read_dir(path)? {
            walk(&e?.path(), seen, total)?;
        }
    }
    Ok(())
}

/// How instances get their own storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Nothing per instance: every instance uses the shared artefacts read
    /// only (a process's binary, versus' container's read-only rootfs, a
    /// kernel-less VM's image).
    Shared,
    /// An overlayfs writable layer (upper + work dir) over the shared lower dir.
    Overlay,
    /// A VM disk copied in full.
    Copy,
    /// A qcow2 disk whose backing file is the shared base disk.
    Qcow2,
    /// A reflink clone (FICLONE) of the base disk.
    Reflink,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Shared => "shared",
            Method::Overlay => "overlay",
            Method::Copy => "copy",
            Method::Qcow2 => "qcow2",
            Method::Reflink => "reflink",
        }
    }
}

/// The footprint of one platform and method.
#[derive(Debug, Clone)]
pub struct FootprintResult {
    pub platform: String,
    pub method: Method,
    /// What all instances share.
    pub shared: Bytes,
    /// What instance i added, for each instance built.
    pub per_instance: Vec<Bytes>,
    /// versus wrote the instances' data itself: the platform does not write
    /// to such storage today. The rows' storage column says so
    /// (`overlay-synthetic`).
    pub synthetic: bool,
}

impl FootprintResult {
    /// Bytes on disk for `n` instances: the shared part plus what the first
    /// `n` instances added (beyond the ones built, the last one repeats).
    pub fn total_for(&self, n: usize) -> Bytes {
        let mut t = self.shared;
        for i in 0..n {
            t = t + self.per_instance.get(i).or(self.per_instance.last()).copied().unwrap_or_default();
        }
        t
    }

    /// Rows for samples.csv (workload column = method): `image.shared`,
    /// `image.total` (one instance), `image.per_instance` (iteration = the
    /// instance index), `image.n_instances` (iteration = N, N = 1..=built),
    /// each with unit `bytes` (allocated) and `bytes_apparent`.
    pub fn samples(&self) -> Vec<Sample> {
        let w = if self.synthetic { format!("{}-synthetic", self.method.name()) } else { self.method.name().to_string() };
        let w = w.as_str();
        let p = self.platform.as_str();
        let mut rows = Vec::new();
        let mut both = |metric: Metric, it: u32, b: Bytes| {
            rows.push(Sample::with_unit(p, w, metric.clone(), "bytes", it, b.allocated as f64));
            rows.push(Sample::with_unit(p, w, metric, "bytes_apparent", it, b.apparent as f64));
        };
        both(Metric::ImageShared, 0, self.shared);
        both(Metric::ImageTotal, 0, self.total_for(1));
        for (i, b) in self.per_instance.iter().enumerate() {
            both(Metric::ImagePerInstance, i as u32, *b);
        }
        for n in 1..=self.per_instance.len() {
            both(Metric::ImageNInstances, n as u32, self.total_for(n));
        }
        rows
    }
}

/// Footprint of a platform whose instances need nothing on disk of their
/// own: `n` instances all use `artefacts`.
pub fn footprint_shared(platform: &str, artefacts: &[PathBuf], n: usize) -> Result<FootprintResult> {
    let shared = size_of_all(artefacts).map_err(ExperimentError::io(format!("measuring {artefacts:?}")))?;
    Ok(FootprintResult { platform: platform.into(), method: Method::Shared, shared, per_instance: vec![Bytes::default(); n], synthetic: false })
}

/// Writes `bytes` of non-zero, incompressible-looking data to a new file and
/// syncs it, so its blocks are really allocated.
pub fn write_data(path: &Path, bytes: u64) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    write_pattern(&mut f, bytes)?;
    f.sync_all()
}

fn write_pattern(f: &mut impl Write, bytes: u64) -> std::io::Result<()> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        for c in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            c.copy_from_slice(&b[..c.len()]);
        }
        let k = left.min(buf.len() as u64) as usize;
        f.write_all(&buf[..k])?;
        left -= k as u64;
    }
    Ok(())
}

/// An overlayfs mount, unmounted (lazily, if busy) on drop.
struct OverlayMount {
    merged: PathBuf,
    mounted: bool,
}

impl OverlayMount {
    fn mount(lower: &Path, upper: &Path, work: &Path, merged: &Path) -> Result<OverlayMount> {
        let opts = format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display());
        nix::mount::mount(Some("overlay"), merged, Some("overlay"), nix::mount::MsFlags::empty(), Some(opts.as_str())).map_err(|e| {
            ExperimentError::Failed(format!(
                "mounting overlayfs at {} ({opts}): {e}; needs root (or a user namespace) and the overlay module",
                merged.display()
            ))
        })?;
        Ok(OverlayMount { merged: merged.to_path_buf(), mounted: true })
    }
    fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| ExperimentError::Failed(format!("unmounting {}: {e}", self.merged.display())))?;
            self.mounted = false;
        }
        Ok(())
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            tracing::warn!("{e:#}");
        }
    }
}

/// Builds `n` overlayfs instances over `lower` in a temp dir, writes
/// `write_bytes` into each instance's merged view (its own data), and
/// returns what each one added on disk (its upper and work dirs). Everything
/// is unmounted and removed before returning, on every path.
pub fn overlay_instances(lower: &Path, n: usize, write_bytes: u64) -> Result<Vec<Bytes>> {
    let tmp =
        tempfile::Builder::new().prefix("versus-footprint-overlay-").tempdir().map_err(ExperimentError::io("creating a temp dir for the overlay instances"))?;
    let mut mounts = Vec::new();
    let mut out = Vec::new();
    for i in 0..n {
        let d = tmp.path().join(format!("i{i}"));
        let (upper, work, merged) = (d.join("upper"), d.join("work"), d.join("merged"));
        for x in [&upper, &work, &merged] {
            std::fs::create_dir_all(x).map_err(ExperimentError::io(format!("creating {}", x.display())))?;
        }
        let m = OverlayMount::mount(lower, &upper, &work, &merged)?;
        if write_bytes > 0 {
            write_data(&merged.join("instance-data"), write_bytes).map_err(ExperimentError::io(format!("writing into the overlay at {}", merged.display())))?;
        }
        mounts.push(m);
        out.push(size_of(&upper)? + size_of(&work)?);
    }
    // Unmount explicitly to report errors; Drop covers early returns.
    for m in &mut mounts {
        m.unmount()?;
    }
    drop(mounts);
    tmp.close().map_err(ExperimentError::io("removing the overlay temp dir"))?;
    Ok(out)
}

/// Footprint of overlayfs instances over a shared lower dir.
pub fn footprint_overlay(platform: &str, lower: &Path, n: usize, write_bytes: u64, synthetic: bool) -> Result<FootprintResult> {
    let shared = size_of(lower).map_err(ExperimentError::io(format!("measuring {}", lower.display())))?;
    Ok(FootprintResult { platform: platform.into(), method: Method::Overlay, shared, per_instance: overlay_instances(lower, n, write_bytes)?, synthetic })
}

/// Makes an ext4 disk image of `size_bytes` holding the files of `src_dir`
/// (`mkfs.ext4 -d`, no mount needed).
pub fn make_ext4_image(src_dir: &Path, dest: &Path, size_bytes: u64) -> Result<()> {
    let mkfs =
        crate::host::which("mkfs.ext4").ok_or_else(|| ExperimentError::Failed("mkfs.ext4 not found: install e2fsprogs to build a VM disk image".into()))?;
    let f = std::fs::File::create(dest).map_err(ExperimentError::io(format!("creating {}", dest.display())))?;
    f.set_len(size_bytes)?;
    drop(f);
    let out =
        Command::new(mkfs).args(["-q", "-F", "-E", "nodiscard", "-d"]).arg(src_dir).arg(dest).output().map_err(ExperimentError::io("running mkfs.ext4"))?;
    if !out.status.success() {
        return Err(ExperimentError::Failed(format!(
            "mkfs.ext4 -d {} {} failed: {}",
            src_dir.display(),
            dest.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Whether the filesystem holding `dir` can reflink (FICLONE): tries it.
pub fn reflink_supported(dir: &Path) -> Result<(), String> {
    let t = tempfile::Builder::new().prefix("versus-reflink-probe-").tempdir_in(dir).map_err(|e| e.to_string())?;
    let a = t.path().join("a");
    write_data(&a, 4096).map_err(|e| e.to_string())?;
    reflink(&a, &t.path().join("b"))
}

/// Clones `src` to the new file `dst` sharing its extents.
pub fn reflink(src: &Path, dst: &Path) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let s = std::fs::File::open(src).map_err(|e| format!("{}: {e}", src.display()))?;
    let d = std::fs::File::create(dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    // SAFETY: FICLONE takes the source fd as its argument and only reads it;
    // both fds are valid open files for the duration of the call.
    let r = unsafe { libc::ioctl(d.as_raw_fd(), libc::FICLONE, s.as_raw_fd()) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        drop(d);
        let _ = std::fs::remove_file(dst);
        return Err(format!("the filesystem of {} cannot reflink (FICLONE: {e}); use btrfs or XFS with reflink=1", dst.display()));
    }
    Ok(())
}

/// Filesystem free bytes (f_bfree * f_frsize) of the filesystem holding `p`.
fn fs_free(p: &Path) -> Result<u64> {
    let s = nix::sys::statvfs::statvfs(p).map_err(|e| ExperimentError::Failed(format!("statvfs {}: {e}", p.display())))?;
    Ok(s.blocks_free() as u64 * s.fragment_size() as u64)
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().map_err(ExperimentError::io(format!("running {what}")))?;
    if !out.status.success() {
        return Err(ExperimentError::Failed(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

/// Builds `n` per-instance disks from `base` with `method` (Copy, Qcow2 or
/// Reflink) in a temp dir next to `base`, writes `write_bytes` at the start
/// of each instance's disk (as a guest writing its own data would), and
/// returns what each disk added on the host. For a reflink clone the
/// allocated figure is the drop of the filesystem's free space (its
/// `st_blocks` counts the shared extents too). Everything built is removed
/// before returning.
pub fn disk_instances(base: &Path, method: Method, n: usize, write_bytes: u64) -> Result<Vec<Bytes>> {
    let parent = base.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix("versus-footprint-disks-")
        .tempdir_in(parent)
        .map_err(ExperimentError::io("creating a temp dir for the instance disks"))?;
    let mut out = Vec::new();
    for i in 0..n {
        let disk = tmp.path().join(format!("instance-{i}.img"));
        match method {
            Method::Copy => {
                std::fs::copy(base, &disk).map_err(ExperimentError::io(format!("copying {} to {}", base.display(), disk.display())))?;
                if write_bytes > 0 {
                    overwrite_start(&disk, write_bytes)?;
                }
                std::fs::File::open(&disk)?.sync_all()?;
                out.push(size_of(&disk)?);
            }
            Method::Qcow2 => {
                let qemu_img = crate::host::which("qemu-img")
                    .ok_or_else(|| ExperimentError::Failed("qemu-img not found: install qemu-utils for copy-on-write VM disks".into()))?;
                let abs = std::fs::canonicalize(base)?;
                run(Command::new(qemu_img).args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"]).arg(&abs).arg(&disk), "qemu-img create")?;
                if write_bytes > 0 {
                    let qemu_io = crate::host::which("qemu-io").ok_or_else(|| ExperimentError::Failed("qemu-io not found: install qemu-utils".into()))?;
                    run(Command::new(qemu_io).args(["-f", "qcow2", "-c"]).arg(format!("write -P 0x5a 0 {write_bytes}")).arg(&disk), "qemu-io write")?;
                }
                std::fs::File::open(&disk)?.sync_all()?;
                out.push(size_of(&disk)?);
            }
            Method::Reflink => {
                let before = fs_free(tmp.path())?;
                reflink(base, &disk).map_err(ExperimentError::Failed)?;
                if write_bytes > 0 {
                    overwrite_start(&disk, write_bytes)?;
                }
                std::fs::File::open(&disk)?.sync_all()?;
                let after = fs_free(tmp.path())?;
                let apparent = std::fs::metadata(&disk)?.len();
                out.push(Bytes { apparent, allocated: before.saturating_sub(after) });
            }
            Method::Shared | Method::Overlay => {
                return Err(ExperimentError::Failed(format!("disk_instances builds VM disks: use Copy, Qcow2 or Reflink, not {}", method.name())))
            }
        }
    }
    tmp.close().map_err(ExperimentError::io("removing the instance disks"))?;
    Ok(out)
}

fn overwrite_start(disk: &Path, bytes: u64) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(disk).map_err(ExperimentError::io(format!("opening {}", disk.display())))?;
    write_pattern(&mut f, bytes)?;
    f.sync_all()?;
    Ok(())
}

/// Footprint of VM instances: `artefacts` (kernel, initramfs, image) are
/// shared, as is the base disk for the copy-on-write methods; each instance
/// gets its own disk by `method`.
pub fn footprint_disk(
    platform: &str,
    artefacts: &[PathBuf],
    base_disk: &Path,
    method: Method,
    n: usize,
    write_bytes: u64,
    synthetic: bool,
) -> Result<FootprintResult> {
    let mut shared = size_of_all(artefacts).map_err(ExperimentError::io(format!("measuring {artefacts:?}")))?;
    if method != Method::Copy {
        // A copy does not need the base once made; the CoW methods keep it.
        shared = shared + size_of(base_disk)?;
    }
    Ok(FootprintResult { platform: platform.into(), method, shared, per_instance: disk_instances(base_disk, method, n, write_bytes)?, synthetic })
}

/// The footprint rows of one platform, built for real with `n` instances
/// from what its instances need on disk ([`Storage`]): shared files; a
/// shared tree under an overlayfs writable layer per instance (each writing
/// `write_bytes`); or a VM disk holding a tree as an ext4 image of
/// `disk_bytes`, per instance as a full copy, a qcow2 overlay and a reflink
/// clone. Returns the rows and notes: a method that cannot run here (no
/// root for overlayfs, no qemu-img, no reflink) is left out and named, and
/// a synthetic disk says so.
pub fn measure_storage(platform: &str, storage: &[Storage], n: usize, write_bytes: u64, disk_bytes: u64) -> (Vec<Sample>, Vec<String>) {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for st in storage {
        // Building disks takes a while: stop at an interrupt (the caller
        // sees the flag and ends the run).
        if crate::interrupt::requested() {
            return (rows, notes);
        }
        match st {
            Storage::Shared(paths) => match footprint_shared(platform, paths, n) {
                Ok(r) => rows.extend(r.samples()),
                Err(e) => notes.push(format!("{platform}: shared footprint not measured: {e}")),
            },
            Storage::Overlay { lower, synthetic } => match footprint_overlay(platform, lower, n, write_bytes, *synthetic) {
                Ok(r) => rows.extend(r.samples()),
                Err(e) => notes.push(format!("{platform}: overlay footprint not measured: {e}")),
            },
            Storage::Disk { shared, tree, synthetic } => {
                if *synthetic {
                    notes.push(format!(
                        "{platform}: its VM disk rows (copy-synthetic, qcow2-synthetic, reflink-synthetic) are synthetic: without an OS image it boots from its initramfs, not from such a disk; they show what a disk of the same files would cost (with --image it boots the image's own disk: the image.* rows)"
                    ));
                }
                let work = match tempfile::Builder::new().prefix("versus-footprint-vm-").tempdir() {
                    Ok(w) => w,
                    Err(e) => {
                        notes.push(format!("{platform}: VM disk footprint not measured: cannot create a temp dir: {e}"));
                        continue;
                    }
                };
                let base = work.path().join("rootfs.ext4");
                if let Err(e) = make_ext4_image(tree, &base, disk_bytes) {
                    notes.push(format!("{platform}: VM disk footprint not measured: {e}"));
                    continue;
                }
                for m in [Method::Copy, Method::Qcow2, Method::Reflink] {
                    if crate::interrupt::requested() {
                        return (rows, notes);
                    }
                    if m == Method::Reflink {
                        if let Err(why) = reflink_supported(work.path()) {
                            notes.push(format!("{platform}: reflink VM disks not measured: {why}"));
                            continue;
                        }
                    }
                    match footprint_disk(platform, shared, &base, m, n, write_bytes, *synthetic) {
                        Ok(r) => rows.extend(r.samples()),
                        Err(e) => notes.push(format!("{platform}: {} VM disks not measured: {e}", m.name())),
                    }
                }
            }
        }
    }
    (rows, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_count_hard_links_once() {
        let t = tempfile::tempdir().unwrap();
        write_data(&t.path().join("a"), 10_000).unwrap();
        std::fs::hard_link(t.path().join("a"), t.path().join("b")).unwrap();
        let s = size_of(t.path()).unwrap();
        let dir = std::fs::metadata(t.path()).unwrap().len();
        assert_eq!(s.apparent, 10_000 + dir);
        assert!(s.allocated >= 12_288, "{s:?}");
    }

    #[test]
    fn totals_and_rows() {
        let r = FootprintResult {
            platform: "x".into(),
            method: Method::Qcow2,
            shared: Bytes { apparent: 100, allocated: 50 },
            per_instance: vec![Bytes { apparent: 10, allocated: 8 }; 3],
            synthetic: false,
        };
        assert_eq!(r.total_for(3), Bytes { apparent: 130, allocated: 74 });
        let rows = r.samples();
        let n3: Vec<f64> = rows.iter().filter(|s| s.metric == Metric::ImageNInstances && s.iteration == 3).map(|s| s.value).collect();
        assert_eq!(n3, vec![74.0, 130.0]);
        assert!(rows.iter().all(|s| s.workload == "qcow2"));
        let synthetic = FootprintResult { synthetic: true, ..r }.samples();
        assert!(synthetic.iter().all(|s| s.workload == "qcow2-synthetic"), "the CSV says when versus wrote the data itself");
    }
}
