//! Difference 5 on a real OS image: the patch drill (`versus run --image
//! debian`). With N instances of a platform running on the image, a real
//! package update is applied the way that platform's instances are patched,
//! and the instances are restarted on it:
//!
//! | storage | the fix | artefacts it writes |
//! |---|---|---|
//! | `host-root` (process) | `dpkg --root` into the one root every process shares (a stand-in for the host's: versus never changes this host) | 1 root |
//! | `overlay` (container) | one new layer: dpkg into an overlay's upper dir over the image; each container restarts on the new layer stack with a fresh upper | 1 layer |
//! | `copy` (VM, a full disk per instance) | per instance: stop, copy the disk, loop-mount the copy, dpkg, unmount, swap it in (atomic rename), start | N disks |
//! | `qcow2` (VM, an overlay per instance on a shared backing file) | the backing file patched as a copy once, then per instance: stop, a new qcow2 overlay on it, start | 1 backing file + N overlays |
//!
//! The kernel fix ([`kernel_drill`], workload `kernel/copy`): for a VM that
//! boots its own kernel (vm-linux), N VMs on their own disks are stopped and
//! booted again, one by one, on a second Debian kernel version
//! (`harness/fetch-kernel --fix`); the artefact is the kernel file they
//! boot, counted by digest (one here: versus boots kernels from outside the
//! disk), and each VM must report its unchanged root. Process and
//! container share the host's kernel: one artefact that versus does not
//! update ([`kernel_rows`], workload `kernel/host`).
//!
//! Every platform goes through the same clock points in the same order:
//! t0 (the fix starts), for each instance its stop request and its READY
//! again; `patch.ms` is t0 to the last READY, `patch.unavailable` the sum
//! of the instances' stop-to-READY. Artefacts are counted by content digest
//! before and after ([`count_changed`]), bytes by the kernel's write
//! accounting of each command ([`crate::image::cmd`]). An instance that can
//! read its root (a container; a VM that boots the disk) reports the image
//! digest of the root it sees (`image-check`), which must be the patched
//! one: `patch.verified_instances`.
//!
//! Interrupted half-way, the drill stops every instance, unmounts what it
//! mounted and removes its temp dir (disk copies, layers, overlays) on the
//! way out; every instance was on the old or on the new version throughout
//! (a disk is patched as a copy and swapped in with a rename, never while
//! an instance uses it), and the error says which were patched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::footprint::{size_of, Bytes, FootprintResult, Method};
use super::{ExperimentError, Result};
use crate::image::cmd::{self, Ran};
use crate::image::disk::{self, LoopMount, OverlayMount};
use crate::image::fix::UserlandFix;
use crate::image::{digest, ImageError, OsImage};
use crate::model::{Metric, Sample};
use crate::platform::{ImageMode, Instance, InstanceRoot, LaunchSpec, Platform};
use crate::workload::{image_digest, EmbeddedProgram, GuestMode, Workload, WorkloadSpec};

impl From<ImageError> for ExperimentError {
    fn from(e: ImageError) -> ExperimentError {
        match e {
            ImageError::Interrupted => ExperimentError::Launch { context: "the OS image experiment".into(), source: crate::error::LaunchError::Interrupted },
            other => ExperimentError::Failed(other.to_string()),
        }
    }
}

/// How the instances of a platform get their root (see the module's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    HostRoot,
    Overlay,
    Copy,
    Qcow2,
}

impl Storage {
    pub fn name(self) -> &'static str {
        match self {
            Storage::HostRoot => "host-root",
            Storage::Overlay => "overlay",
            Storage::Copy => "copy",
            Storage::Qcow2 => "qcow2",
        }
    }
    /// The storages of a platform in the drill.
    pub fn of(mode: ImageMode) -> Vec<Storage> {
        match mode {
            ImageMode::None => Vec::new(),
            ImageMode::HostRoot => vec![Storage::HostRoot],
            ImageMode::Overlay => vec![Storage::Overlay],
            ImageMode::Disk { .. } => vec![Storage::Copy, Storage::Qcow2],
        }
    }
}

/// What the drill and the size rows share for one run: the image, the
/// workload program to put in it, the base VM disk, a temp dir removed on
/// drop.
pub struct ImageWork {
    pub image: OsImage,
    pub tmp: tempfile::TempDir,
    init: EmbeddedProgram,
    base_disk: Option<PathBuf>,
    pub timeout: Duration,
}

impl ImageWork {
    pub fn new(image: OsImage, timeout: Duration) -> Result<ImageWork> {
        let tmp = tempfile::Builder::new().prefix("versus-image-").tempdir().map_err(ExperimentError::io("creating the OS image experiment's temp dir"))?;
        let init = EmbeddedProgram::guest().map_err(ExperimentError::io("writing the workload program"))?;
        Ok(ImageWork { image, tmp, init, base_disk: None, timeout })
    }

    /// The image as an ext4 disk with the workload program as
    /// /versus-init (built once per run).
    pub fn base_disk(&mut self) -> Result<PathBuf> {
        if let Some(d) = &self.base_disk {
            return Ok(d.clone());
        }
        let d = self.tmp.path().join("base.ext4");
        let tree = size_of(&self.image.rootfs()).map_err(ExperimentError::io("measuring the image"))?;
        disk::make_disk(&self.image.rootfs(), Some(&self.init.path()), &d, disk::disk_size_for(tree.apparent))?;
        self.base_disk = Some(d.clone());
        Ok(d)
    }

    fn dir(&self, name: &str) -> Result<PathBuf> {
        let d = self.tmp.path().join(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).map_err(ExperimentError::io(format!("creating {}", d.display())))?;
        Ok(d)
    }
}

/// Artefacts (path -> digest) whose digest differs from `before`, or that
/// `before` lacks: the artefacts a fix changed.
pub fn count_changed(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>) -> Vec<PathBuf> {
    after.iter().filter(|(p, d)| before.get(*p) != Some(*d)).map(|(p, _)| p.clone()).collect()
}

fn digests(paths: &[PathBuf]) -> Result<BTreeMap<PathBuf, String>> {
    let mut m = BTreeMap::new();
    for p in paths {
        m.insert(p.clone(), digest::of(p).map_err(ExperimentError::io(format!("digesting {}", p.display())))?);
    }
    Ok(m)
}

/// One instance of the drill and what it runs on.
struct Slot {
    inst: Option<Box<dyn Instance>>,
    root: Option<InstanceRoot>,
    /// Its own storage (upper dir, disk, overlay), if any.
    own: Option<PathBuf>,
    work: Option<PathBuf>,
}

/// What one drill measured.
#[derive(Debug, Clone)]
pub struct DrillResult {
    /// `userland` or `kernel`: the first half of the rows' workload.
    pub fix: &'static str,
    pub platform: String,
    pub storage: Storage,
    pub n: usize,
    pub artifacts: usize,
    pub bytes_written: u64,
    pub ms: f64,
    pub unavailable_s: f64,
    /// `None`: the instances cannot read their root (the rows say so).
    pub verified: Option<usize>,
    /// Artefacts that carry a copy of the image's packages (and must be patched).
    pub package_copies: usize,
    pub commands: Vec<String>,
}

impl DrillResult {
    pub fn samples(&self, packages: usize, package_bytes: u64) -> Vec<Sample> {
        let w = format!("{}/{}", self.fix, self.storage.name());
        let it = self.n as u32;
        let p = self.platform.as_str();
        let mut v = vec![
            Sample::new(p, &w, Metric::PatchArtifacts, it, self.artifacts as f64),
            Sample::new(p, &w, Metric::PatchBytesWritten, it, self.bytes_written as f64),
            Sample::new(p, &w, Metric::PatchMs, it, self.ms),
            Sample::new(p, &w, Metric::PatchUnavailable, it, self.unavailable_s),
            Sample::new(p, &w, Metric::PatchPackages, it, (self.package_copies * packages) as f64),
            Sample::new(p, &w, Metric::PatchPackageBytes, it, self.package_copies as f64 * package_bytes as f64),
        ];
        if let Some(k) = self.verified {
            v.push(Sample::new(p, &w, Metric::PatchVerifiedInstances, it, k as f64));
        }
        v
    }
}

/// The spec an instance of the drill runs: `image-check` where the
/// instance reads its root, else `idle`.
fn spec_for(p: &dyn Platform, storage: Storage, root: Option<InstanceRoot>, timeout: Duration) -> LaunchSpec {
    let reads_root = matches!(storage, Storage::Overlay) || (matches!(p.image_mode(), ImageMode::Disk { boots: true }) && storage == Storage::Copy);
    let workload = if reads_root { WorkloadSpec::Mode(GuestMode::ImageCheck { write_kib: 0 }) } else { WorkloadSpec::Bench(Workload::Idle { mib: 1 }) };
    let mut s = LaunchSpec::new(workload);
    s.timeout = timeout;
    s.root = if reads_root { root } else { None };
    s
}

fn interrupted() -> ExperimentError {
    ExperimentError::Launch { context: "the patch drill".into(), source: crate::error::LaunchError::Interrupted }
}

fn check_interrupt() -> Result<()> {
    if crate::interrupt::requested() {
        Err(interrupted())
    } else {
        Ok(())
    }
}

/// A test hook: request an interrupt once this many instances were patched.
pub static INTERRUPT_AFTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(usize::MAX);

/// Runs the userland drill of `fix` on `p` with `n` instances on `storage`.
pub fn drill(p: &dyn Platform, work: &mut ImageWork, fix: &UserlandFix, storage: Storage, n: usize) -> Result<DrillResult> {
    let dir = work.dir(&format!("drill-{}-{}-{n}", p.name(), storage.name()))?;
    let tree = work.image.rootfs();
    let timeout = work.timeout;
    let mut slots: Vec<Slot> = Vec::new();
    let mut patched: Vec<usize> = Vec::new();
    let out = run_drill(p, work, fix, storage, n, &dir, &tree, timeout, &mut slots, &mut patched);
    // Every path: instances stopped (dropped ones stop themselves), then
    // the drill's files removed with its directory.
    for s in slots.iter_mut() {
        if let Some(i) = s.inst.take() {
            let _ = i.stop();
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    match out {
        Err(e) if e.is_interrupt() => Err(ExperimentError::Launch {
            context: format!(
                "the patch drill of {} ({}, N={n}) was interrupted with instance(s) {:?} of 0..{n} on the new version, the others on the old; all stopped and removed",
                p.name(),
                storage.name(),
                patched
            ),
            source: crate::error::LaunchError::Interrupted,
        }),
        other => other,
    }
}

#[allow(clippy::too_many_arguments)]
fn run_drill(
    p: &dyn Platform,
    work: &mut ImageWork,
    fix: &UserlandFix,
    storage: Storage,
    n: usize,
    dir: &Path,
    tree: &Path,
    timeout: Duration,
    slots: &mut Vec<Slot>,
    patched: &mut Vec<usize>,
) -> Result<DrillResult> {
    let mut ran: Vec<Ran> = Vec::new();
    let old_digest = image_digest(tree);
    // --- set-up, untimed: the artefacts and N instances on the old version.
    let mut artefacts: Vec<PathBuf> = Vec::new();
    let package_copies;
    match storage {
        Storage::HostRoot => {
            // One root shared by every process: a hard-link copy of the
            // image (dpkg replaces files by rename, so the cache's inodes
            // are never written).
            let root = dir.join("host-root");
            let mut c = Command::new("cp");
            c.arg("-a").arg("--link").arg(tree).arg(&root);
            cmd::run(c, Duration::from_secs(300))?;
            artefacts.push(root);
            package_copies = 1;
            for _ in 0..n {
                slots.push(Slot { inst: None, root: None, own: None, work: None });
            }
        }
        Storage::Overlay => {
            artefacts.push(tree.to_path_buf());
            package_copies = 1;
            for i in 0..n {
                let (u, w) = (dir.join(format!("i{i}/upper")), dir.join(format!("i{i}/work")));
                for d in [&u, &w] {
                    std::fs::create_dir_all(d).map_err(ExperimentError::io(format!("creating {}", d.display())))?;
                }
                let root = InstanceRoot::Overlay { lowers: vec![tree.to_path_buf()], upper: u.clone(), work: w.clone() };
                artefacts.push(u.clone());
                slots.push(Slot { inst: None, root: Some(root), own: Some(u), work: Some(w) });
            }
        }
        Storage::Copy => {
            let base = work.base_disk()?;
            package_copies = n;
            for i in 0..n {
                let d = dir.join(format!("disk-{i}.ext4"));
                ran.push(disk::copy_sparse(&base, &d)?);
                artefacts.push(d.clone());
                slots.push(Slot { inst: None, root: Some(InstanceRoot::Disk { path: d.clone(), kernel: None, initrd: None }), own: Some(d), work: None });
            }
        }
        Storage::Qcow2 => {
            let base = work.base_disk()?;
            let backing = dir.join("backing.ext4");
            ran.push(disk::copy_sparse(&base, &backing)?);
            artefacts.push(backing.clone());
            package_copies = 1;
            for i in 0..n {
                let d = dir.join(format!("overlay-{i}.qcow2"));
                ran.push(qcow2_on(&backing, &d)?);
                artefacts.push(d.clone());
                slots.push(Slot { inst: None, root: None, own: Some(d), work: None });
            }
        }
    }
    ran.clear();
    for s in slots.iter_mut() {
        check_interrupt()?;
        let spec = spec_for(p, storage, s.root.clone(), timeout);
        let mut inst = p.launch(&spec).map_err(ExperimentError::launch(format!("launching {} on the old image", p.name())))?;
        if spec.root.is_some() {
            let r = inst.read_result(timeout).map_err(ExperimentError::launch("reading the instance's image digest"))?;
            if r.checksum() != Some(old_digest.as_str()) {
                return Err(ExperimentError::Failed(format!(
                    "an instance of {} does not see the image it was started on: digest {:?}, expected {old_digest}",
                    p.name(),
                    r.checksum()
                )));
            }
        }
        s.inst = Some(inst);
    }
    let before = digests(&artefacts)?;

    // --- the fix, timed from t0.
    let t0 = Instant::now();
    let mut unavailable = Duration::ZERO;
    let mut new_digest: Option<String> = None;
    let mut verified = 0usize;
    let mut reads_root = false;
    // The shared part first: the one root, the new layer, the new backing file.
    let mut lowers = vec![tree.to_path_buf()];
    let mut new_backing: Option<PathBuf> = None;
    match storage {
        Storage::HostRoot => {
            ran.push(disk::dpkg_install(&artefacts[0], &fix.debs)?);
            new_digest = Some(image_digest(&artefacts[0]));
        }
        Storage::Overlay => {
            let layer = dir.join("layer-fix");
            let (w, m) = (dir.join("layer-fix.work"), dir.join("layer-fix.merged"));
            for d in [&layer, &w, &m] {
                std::fs::create_dir_all(d).map_err(ExperimentError::io(format!("creating {}", d.display())))?;
            }
            let mut mnt = OverlayMount::mount(&[tree.to_path_buf()], &layer, &w, &m)?;
            ran.push(disk::dpkg_install(mnt.path(), &fix.debs)?);
            new_digest = Some(image_digest(mnt.path()));
            mnt.unmount()?;
            let _ = std::fs::remove_dir_all(&w);
            let _ = std::fs::remove_dir(&m);
            lowers.insert(0, layer.clone());
            artefacts.push(layer);
        }
        Storage::Qcow2 => {
            let backing = &artefacts[0];
            let next = dir.join("backing-fix.ext4");
            let (d, digest) = patch_disk(backing, &next, dir, &fix.debs, &mut ran)?;
            new_digest = Some(digest);
            new_backing = Some(d.clone());
            artefacts.push(d);
        }
        Storage::Copy => {}
    }
    // Then each instance: stop, its own part, start, ready.
    for (i, slot) in slots.iter_mut().enumerate().take(n) {
        check_interrupt()?;
        let t_down = Instant::now();
        if let Some(inst) = slot.inst.take() {
            inst.stop().map_err(ExperimentError::launch(format!("stopping {} instance {i}", p.name())))?;
        }
        match storage {
            Storage::HostRoot => {}
            Storage::Overlay => {
                let (u, w) = (slot.own.clone(), slot.work.clone());
                if let (Some(u), Some(w)) = (u, w) {
                    for d in [&u, &w] {
                        let _ = std::fs::remove_dir_all(d);
                        std::fs::create_dir_all(d).map_err(ExperimentError::io(format!("creating {}", d.display())))?;
                    }
                    slot.root = Some(InstanceRoot::Overlay { lowers: lowers.clone(), upper: u, work: w });
                }
            }
            Storage::Copy => {
                if let Some(d) = slot.own.clone() {
                    let next = d.with_extension("ext4.new");
                    let (_, digest) = patch_disk(&d, &next, dir, &fix.debs, &mut ran)?;
                    // The swap: the instance's disk is the old one or the new one.
                    std::fs::rename(&next, &d).map_err(ExperimentError::io(format!("swapping in {}", d.display())))?;
                    new_digest = Some(digest);
                }
            }
            Storage::Qcow2 => {
                if let (Some(d), Some(b)) = (slot.own.clone(), new_backing.as_ref()) {
                    let next = d.with_extension("qcow2.new");
                    ran.push(qcow2_on(b, &next)?);
                    std::fs::rename(&next, &d).map_err(ExperimentError::io(format!("swapping in {}", d.display())))?;
                }
            }
        }
        let spec = spec_for(p, storage, slot.root.clone(), timeout);
        let mut inst = p.launch(&spec).map_err(ExperimentError::launch(format!("restarting {} instance {i} on the patched image", p.name())))?;
        unavailable += t_down.elapsed();
        patched.push(i);
        if spec.root.is_some() {
            reads_root = true;
            let r = inst.read_result(timeout).map_err(ExperimentError::launch("reading the restarted instance's image digest"))?;
            if new_digest.as_deref().is_some_and(|d| r.checksum() == Some(d)) {
                verified += 1;
            }
        }
        slot.inst = Some(inst);
        if patched.len() >= INTERRUPT_AFTER.load(std::sync::atomic::Ordering::SeqCst) {
            crate::interrupt::request();
        }
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    if new_digest.as_deref() == Some(old_digest.as_str()) {
        return Err(ExperimentError::Failed(format!("the fix ({}) did not change the image's dpkg status: nothing was patched", fix.describe())));
    }
    let after = digests(&artefacts)?;
    let changed = count_changed(&before, &after);
    Ok(DrillResult {
        fix: "userland",
        platform: p.name().into(),
        storage,
        n,
        artifacts: changed.len(),
        bytes_written: ran.iter().map(|r| r.bytes_written).sum(),
        ms,
        unavailable_s: unavailable.as_secs_f64(),
        verified: reads_root.then_some(verified),
        package_copies,
        commands: dedup_commands(&ran, dir),
    })
}

/// The commands of a drill as a person would type them, with the drill's
/// temp paths shortened and repeats folded (`... x N`).
fn dedup_commands(ran: &[Ran], dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    let mut out: Vec<(String, usize)> = Vec::new();
    for r in ran {
        let mut line = r.line.replace(&d, "$DRILL");
        // Instance numbers fold: disk-3 -> disk-<i>.
        for w in ["disk-", "overlay-", "i"] {
            let mut s = String::new();
            let mut rest = line.as_str();
            while let Some(pos) = rest.find(w) {
                s.push_str(&rest[..pos + w.len()]);
                rest = &rest[pos + w.len()..];
                let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
                if digits > 0 && w != "i" {
                    s.push_str("<i>");
                    rest = &rest[digits..];
                }
            }
            s.push_str(rest);
            line = s;
        }
        match out.iter_mut().find(|(l, _)| *l == line) {
            Some((_, k)) => *k += 1,
            None => out.push((line, 1)),
        }
    }
    out.into_iter().map(|(l, k)| if k > 1 { format!("{l}   (x{k})") } else { l }).collect()
}

/// A qcow2 overlay on `backing` (raw) at `dest`.
fn qcow2_on(backing: &Path, dest: &Path) -> Result<Ran> {
    let mut c = Command::new(cmd::need("qemu-img", "qemu-utils")?);
    c.args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"]).arg(backing).arg(dest);
    Ok(cmd::run(c, Duration::from_secs(60))?)
}

/// Patches a copy of `disk` into `next` (copy, loop mount, dpkg, unmount,
/// sync); returns `next` and the image digest of the patched root.
fn patch_disk(disk: &Path, next: &Path, dir: &Path, debs: &[PathBuf], ran: &mut Vec<Ran>) -> Result<(PathBuf, String)> {
    ran.push(disk::copy_sparse(disk, next)?);
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).map_err(ExperimentError::io("creating the mount point"))?;
    let mut m = LoopMount::mount(next, &mnt)?;
    ran.push(m.ran.clone());
    let r = disk::dpkg_install(m.path(), debs);
    let digest = image_digest(m.path());
    m.unmount()?;
    ran.push(r?);
    disk::sync_file(next)?;
    Ok((next.to_path_buf(), digest))
}

/// The size rows of `p` on the image (`image.*`, workload
/// `<image>/<storage>`): what every instance shares and what each of `n`
/// instances adds after it ran (`image-check`: a container's upper dir;
/// for a VM disk the disk as made, plus what the guest wrote when it boots
/// it). Instances are launched for real where they read the image.
pub fn sizes(p: &dyn Platform, work: &mut ImageWork, n: usize) -> Result<Vec<Sample>> {
    let name = work.image.info.name.clone();
    let tree = work.image.rootfs();
    let tree_size = size_of(&tree).map_err(ExperimentError::io("measuring the image"))?;
    let mut results: Vec<FootprintResult> = Vec::new();
    let dir = work.dir(&format!("sizes-{}", p.name()))?;
    let res = (|| -> Result<()> {
        match p.image_mode() {
            ImageMode::None => {}
            ImageMode::HostRoot => {
                results.push(FootprintResult {
                    platform: p.name().into(),
                    method: Method::Shared,
                    shared: tree_size,
                    per_instance: vec![Bytes::default(); n],
                    synthetic: false,
                });
            }
            ImageMode::Overlay => {
                let mut insts = Vec::new();
                let mut uppers = Vec::new();
                for i in 0..n {
                    check_interrupt()?;
                    let (u, w) = (dir.join(format!("i{i}/upper")), dir.join(format!("i{i}/work")));
                    for d in [&u, &w] {
                        std::fs::create_dir_all(d).map_err(ExperimentError::io(format!("creating {}", d.display())))?;
                    }
                    let spec = spec_for(
                        p,
                        Storage::Overlay,
                        Some(InstanceRoot::Overlay { lowers: vec![tree.clone()], upper: u.clone(), work: w.clone() }),
                        work.timeout,
                    );
                    let mut inst = p.launch(&spec).map_err(ExperimentError::launch("launching on the image"))?;
                    inst.read_result(work.timeout).map_err(ExperimentError::launch("reading the instance's image digest"))?;
                    insts.push(inst);
                    uppers.push((u, w));
                }
                // Measured while they run, after they ran the workload.
                let mut per = Vec::new();
                for (u, w) in &uppers {
                    per.push(
                        size_of(u).map_err(ExperimentError::io("measuring an upper dir"))? + size_of(w).map_err(ExperimentError::io("measuring a work dir"))?,
                    );
                }
                for i in insts {
                    let _ = i.stop();
                }
                results.push(FootprintResult { platform: p.name().into(), method: Method::Overlay, shared: tree_size, per_instance: per, synthetic: false });
            }
            ImageMode::Disk { boots } => {
                let base = work.base_disk()?;
                let base_size = size_of(&base).map_err(ExperimentError::io("measuring the base disk"))?;
                let carried = size_of_all_existing(&p.storage());
                for (method, synthetic) in [(Method::Copy, !boots), (Method::Qcow2, true)] {
                    let mut per = Vec::new();
                    for i in 0..n {
                        check_interrupt()?;
                        let d = dir.join(format!("{}-{i}", method.name()));
                        match method {
                            Method::Copy => {
                                disk::copy_sparse(&base, &d)?;
                            }
                            _ => {
                                qcow2_on(&base, &d)?;
                            }
                        }
                        if boots && method == Method::Copy {
                            let spec = spec_for(p, Storage::Copy, Some(InstanceRoot::Disk { path: d.clone(), kernel: None, initrd: None }), work.timeout);
                            let mut inst = p.launch(&spec).map_err(ExperimentError::launch("booting the image's disk"))?;
                            inst.read_result(work.timeout).map_err(ExperimentError::launch("reading the instance's image digest"))?;
                            let _ = inst.stop();
                        }
                        per.push(size_of(&d).map_err(ExperimentError::io("measuring a disk"))?);
                    }
                    let shared = if method == Method::Copy { carried } else { carried + base_size };
                    results.push(FootprintResult { platform: p.name().into(), method, shared, per_instance: per, synthetic });
                }
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    res?;
    let mut rows = Vec::new();
    for r in results {
        for mut s in r.samples() {
            s.workload = format!("{name}/{}", s.workload);
            rows.push(s);
        }
    }
    Ok(rows)
}

/// What a VM carries beside its disk (its kernel and initramfs, or the
/// kernel-less guest's image): the platform's shared storage files.
fn size_of_all_existing(storage: &[crate::platform::Storage]) -> Bytes {
    let mut files = Vec::new();
    for s in storage {
        match s {
            crate::platform::Storage::Shared(v) => files.extend(v.iter().cloned()),
            crate::platform::Storage::Disk { shared, .. } => files.extend(shared.iter().cloned()),
            crate::platform::Storage::Overlay { .. } => {}
        }
    }
    super::footprint::size_of_all(&files).unwrap_or_default()
}

/// The kernel fix's rows for a platform whose instances share the host's
/// kernel: one artefact (the host kernel), not applied by versus.
pub fn kernel_rows(p: &dyn Platform) -> Option<(Vec<Sample>, String)> {
    match p.image_mode() {
        ImageMode::HostRoot | ImageMode::Overlay => Some((
            vec![Sample::new(p.name(), "kernel/host", Metric::PatchArtifacts, 1, 1.0)],
            format!("{}: the kernel fix is one host kernel update, which versus does not perform (it reboots the host and every instance on it): 1 artefact whatever N, its restart cost is the host's, not measured here", p.name()),
        )),
        ImageMode::Disk { boots: false } => Some((Vec::new(), format!("{}: no kernel fix applies (the kernel-less guest has no kernel)", p.name()))),
        ImageMode::Disk { boots: true } => None,
        ImageMode::None => None,
    }
}

/// The second guest kernel of the kernel fix: a `vmlinuz-*` with its disk
/// modules in `<kernel cache>/fix/` (`harness/fetch-kernel --fix --package
/// linux-image-<version>`), other than `current`.
pub fn second_kernel(current: Option<&Path>) -> std::result::Result<PathBuf, String> {
    second_kernel_in(&crate::platform::vm::linux::kernel_cache_dir().join("fix"), current)
}

fn second_kernel_in(dir: &Path, current: Option<&Path>) -> std::result::Result<PathBuf, String> {
    let current_name = current.and_then(|c| c.file_name()).map(|n| n.to_os_string());
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-") && Some(n.to_os_string()) != current_name))
        .filter(|p| crate::platform::vm::linux::disk_modules(p).is_ok())
        .collect();
    found.sort();
    found.pop().ok_or_else(|| {
        format!(
            "no second guest kernel with its disk modules in {} (only the one vm-linux boots): harness/fetch-kernel --fix --package linux-image-<another version>-cloud-amd64 fetches one",
            dir.display()
        )
    })
}

/// The kernel fix on VMs that boot their own kernel (vm-linux): N VMs
/// running on their own full-copy disks of the image with the platform's
/// kernel; from t0, each is stopped and booted again on `kernel` (a second
/// Debian kernel version) and must report the same root. The artefact is
/// the kernel the VMs boot (one host file here: versus boots kernels from
/// outside the disk, as Firecracker does; a VM whose kernel lives in its
/// disk's /boot would have N), counted by digest before and after.
pub fn kernel_drill(p: &dyn Platform, work: &mut ImageWork, old_kernel: &Path, kernel: &Path, n: usize) -> Result<DrillResult> {
    let dir = work.dir(&format!("kernel-{}-{n}", p.name()))?;
    let mut insts: Vec<Box<dyn Instance>> = Vec::new();
    let out = run_kernel_drill(p, work, old_kernel, kernel, n, &dir, &mut insts);
    for i in insts {
        let _ = i.stop();
    }
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn run_kernel_drill(
    p: &dyn Platform,
    work: &mut ImageWork,
    old_kernel: &Path,
    kernel: &Path,
    n: usize,
    dir: &Path,
    insts: &mut Vec<Box<dyn Instance>>,
) -> Result<DrillResult> {
    let timeout = work.timeout;
    let old_digest = image_digest(&work.image.rootfs());
    let base = work.base_disk()?;
    let mut disks = Vec::new();
    for i in 0..n {
        let d = dir.join(format!("disk-{i}.ext4"));
        disk::copy_sparse(&base, &d)?;
        disks.push(d);
    }
    let spec = |d: &Path, k: Option<&Path>| {
        let mut s = LaunchSpec::new(WorkloadSpec::Mode(GuestMode::ImageCheck { write_kib: 0 }));
        s.timeout = timeout;
        s.root = Some(InstanceRoot::Disk { path: d.to_path_buf(), kernel: k.map(Path::to_path_buf), initrd: None });
        s
    };
    for d in &disks {
        check_interrupt()?;
        let mut inst = p.launch(&spec(d, None)).map_err(ExperimentError::launch(format!("launching {} on its old kernel", p.name())))?;
        inst.read_result(timeout).map_err(ExperimentError::launch("reading the instance's image digest"))?;
        insts.push(inst);
    }
    // The artefact: the kernel every VM boots, by content.
    let slot = PathBuf::from("guest-kernel");
    let before: BTreeMap<PathBuf, String> = [(slot.clone(), digest::of(old_kernel).map_err(ExperimentError::io("digesting the old kernel"))?)].into();
    let t0 = Instant::now();
    let mut unavailable = Duration::ZERO;
    let mut verified = 0;
    for (i, d) in disks.iter().enumerate() {
        check_interrupt()?;
        let t_down = Instant::now();
        let old = insts.remove(0);
        old.stop().map_err(ExperimentError::launch(format!("stopping {} instance {i}", p.name())))?;
        let mut inst = p.launch(&spec(d, Some(kernel))).map_err(ExperimentError::launch(format!("restarting {} instance {i} on the new kernel", p.name())))?;
        unavailable += t_down.elapsed();
        let r = inst.read_result(timeout).map_err(ExperimentError::launch("reading the restarted instance's image digest"))?;
        if r.checksum() == Some(old_digest.as_str()) {
            verified += 1;
        }
        insts.push(inst);
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let after: BTreeMap<PathBuf, String> = [(slot, digest::of(kernel).map_err(ExperimentError::io("digesting the new kernel"))?)].into();
    let changed = count_changed(&before, &after);
    let name = |k: &Path| k.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(DrillResult {
        fix: "kernel",
        platform: p.name().into(),
        storage: Storage::Copy,
        n,
        artifacts: changed.len(),
        bytes_written: 0,
        ms,
        unavailable_s: unavailable.as_secs_f64(),
        verified: Some(verified),
        package_copies: 0,
        commands: vec![format!("(per VM, x{n}) stop; boot {} instead of {} on the same disk", name(kernel), name(old_kernel))],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernel_fix_needs_a_second_kernel_with_its_modules() {
        let t = tempfile::tempdir().unwrap();
        let e = second_kernel_in(t.path(), None).unwrap_err();
        assert!(e.contains("harness/fetch-kernel --fix"), "{e}");
        // A kernel without its disk modules does not count.
        std::fs::write(t.path().join("vmlinuz-6.1.0-56-cloud-amd64"), b"k").unwrap();
        assert!(second_kernel_in(t.path(), None).is_err());
        let m = t.path().join("modules-6.1.0-56-cloud-amd64");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join("modules.order"), "virtio\n").unwrap();
        std::fs::write(m.join("virtio.ko"), b"m").unwrap();
        assert_eq!(second_kernel_in(t.path(), None).unwrap(), t.path().join("vmlinuz-6.1.0-56-cloud-amd64"));
        // Not the kernel the VMs boot already.
        assert!(second_kernel_in(t.path(), Some(Path::new("/boot/vmlinuz-6.1.0-56-cloud-amd64"))).is_err());
    }

    #[test]
    fn changed_artefacts_are_counted_by_digest() {
        let t = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..3).map(|i| t.path().join(format!("a{i}"))).collect();
        for f in &files {
            std::fs::write(f, b"old").unwrap();
        }
        std::fs::create_dir(t.path().join("layer")).unwrap();
        std::fs::write(t.path().join("layer/x"), b"1").unwrap();
        let mut all = files.clone();
        all.push(t.path().join("layer"));
        let before = digests(&all).unwrap();
        // Rewritten with the same bytes: not changed.
        std::fs::write(&files[0], b"old").unwrap();
        // One file patched.
        std::fs::write(&files[1], b"new").unwrap();
        let after = digests(&all).unwrap();
        assert_eq!(count_changed(&before, &after), vec![files[1].clone()]);
        // A new artefact counts; a file changed inside a layer counts the layer once.
        std::fs::write(t.path().join("layer/x"), b"2").unwrap();
        let extra = t.path().join("new");
        std::fs::write(&extra, b"n").unwrap();
        all.push(extra.clone());
        let after = digests(&all).unwrap();
        assert_eq!(count_changed(&before, &after), vec![files[1].clone(), t.path().join("layer"), extra]);
    }

    #[test]
    fn commands_fold_per_instance() {
        let dir = Path::new("/tmp/d");
        let r = |l: &str| Ran { line: l.into(), ..Default::default() };
        let v = dedup_commands(
            &[
                r("cp --sparse=always /tmp/d/disk-0.ext4 /tmp/d/disk-0.ext4.new"),
                r("cp --sparse=always /tmp/d/disk-1.ext4 /tmp/d/disk-1.ext4.new"),
                r("dpkg -i x"),
            ],
            dir,
        );
        assert_eq!(v, vec!["cp --sparse=always $DRILL/disk-<i>.ext4 $DRILL/disk-<i>.ext4.new   (x2)".to_string(), "dpkg -i x".to_string()]);
    }
}
