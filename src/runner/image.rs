//! The OS-image experiments of a run (`--image debian`): the image built or
//! taken from the cache, then for every platform that ran and takes part
//! (its [`crate::platform::ImageMode`]) its size rows on the image and the
//! patch drill for N = 1, 2, 4, ... up to `patch_instances`. A missing tool
//! or an unreachable mirror is one note in `not_measured`; the rest of the
//! run is unaffected.

use std::time::Duration;

use super::{Progress, RunResult};
use crate::error::LaunchError;
use crate::experiment::patch::{self, ImageWork, Storage};
use crate::image::{self, ImageSpec};
use crate::model::PlatformStatus;
use crate::platform::{ImageMode, Platform};

/// What `--image` asks for.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// `debian` (or `debian-systemd`).
    pub name: String,
    /// Largest N of the patch drill (N = 1, 2, 4, ... up to it; 0: no drill).
    pub patch_instances: usize,
    /// Instances of the size rows.
    pub size_instances: usize,
    /// Bound of each launch.
    pub timeout: Duration,
}

/// The Ns of the drill: 1, 2, 4, ... up to `max`, and `max` itself.
pub fn drill_ns(max: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut n = 1;
    while n < max {
        v.push(n);
        n *= 2;
    }
    if max > 0 {
        v.push(max);
    }
    v
}

/// Runs the image experiments on `ran` (with their statuses, for notes).
pub fn run_image(
    o: &ImageOptions,
    ran: &[(&dyn Platform, usize)],
    statuses: &mut [PlatformStatus],
    progress: &dyn Progress,
    out: &mut RunResult,
) -> Result<(), LaunchError> {
    progress.set_message(format!("image {}", o.name));
    let spec = match ImageSpec::named(&o.name) {
        Ok(s) => s,
        Err(e) => {
            out.not_measured.push(format!("OS image experiments: {e}"));
            return Ok(());
        }
    };
    let img = match image::build(&spec) {
        Ok((img, _)) => img,
        Err(image::ImageError::Interrupted) => return Err(LaunchError::Interrupted),
        Err(e) => {
            out.not_measured.push(format!("OS image experiments (size and patch drill on `{}`): {e}", o.name));
            return Ok(());
        }
    };
    let fix = if o.patch_instances > 0 {
        match image::fix::userland_fix(&img) {
            Ok(f) => Some(f),
            Err(image::ImageError::Interrupted) => return Err(LaunchError::Interrupted),
            Err(e) => {
                out.not_measured.push(format!("patch drill: no userland fix could be prepared: {e}"));
                None
            }
        }
    } else {
        None
    };
    let packages = img.info.packages.len();
    let package_bytes = img.package_bytes();
    let image_note = format!(
        "OS image `{}`: debootstrap --variant=minbase {} from {}, {} packages ({} bytes installed), digest sha256:{}",
        img.info.name, img.info.suite, img.info.mirror, packages, package_bytes, img.info.digest
    );
    let mut work = match ImageWork::new(img, o.timeout) {
        Ok(w) => w,
        Err(e) => {
            out.not_measured.push(format!("OS image experiments: {e}"));
            return Ok(());
        }
    };
    if o.patch_instances > 0 && on_tmpfs(work.tmp.path()) {
        out.not_measured.push(format!(
            "patch.bytes_written of what went to tmpfs: the drill's disks and layers are in {} (tmpfs), and the kernel's write accounting (ru_oublock) counts block I/O only, so a disk copy made there counts 0 bytes; set TMPDIR to a disk-backed directory to count them",
            work.tmp.path().display()
        ));
    }
    for (p, idx) in ran {
        let status = &mut statuses[*idx];
        let mode = p.image_mode();
        if mode == ImageMode::None {
            continue;
        }
        status.notes.push(image_note.clone());
        if crate::interrupt::requested() {
            return Err(LaunchError::Interrupted);
        }
        progress.set_message(format!("{} image sizes", p.name()));
        match patch::sizes(*p, &mut work, o.size_instances) {
            Ok(rows) => out.samples.extend(rows),
            Err(e) if e.is_interrupt() => return Err(LaunchError::Interrupted),
            Err(e) => {
                status.notes.push(format!("image sizes failed: {e}"));
                out.failures.push(format!("{} image sizes: {e}", p.name()));
            }
        }
        if mode == (ImageMode::Disk { boots: false }) {
            status.notes.push(format!(
                "{}: its disk rows (`-synthetic`) and the disk work of its patch drill are real, but the kernel-less guest does not read the disk: its restarts are its own",
                p.name()
            ));
        }
        if let Some((rows, note)) = patch::kernel_rows(*p) {
            out.samples.extend(rows);
            status.notes.push(note);
        }
        if mode == (ImageMode::Disk { boots: true }) && o.patch_instances > 0 {
            let current = p.guest_kernel();
            match (&current, patch::second_kernel(current.as_deref())) {
                (Some(old), Ok(k)) => {
                    status.notes.push(format!("patch drill, kernel fix: {} booted instead of {}", k.display(), old.display()));
                    for n in drill_ns(o.patch_instances) {
                        progress.set_message(format!("{} kernel fix N={n}", p.name()));
                        match patch::kernel_drill(*p, &mut work, old, &k, n) {
                            Ok(r) => out.samples.extend(r.samples(packages, package_bytes)),
                            Err(e) if e.is_interrupt() => {
                                out.not_measured.push(e.to_string());
                                return Err(LaunchError::Interrupted);
                            }
                            Err(e) => {
                                status.notes.push(format!("kernel fix N={n} failed: {e}"));
                                out.failures.push(format!("{} kernel fix N={n}: {e}", p.name()));
                                break;
                            }
                        }
                    }
                }
                (_, Err(why)) => status.notes.push(format!("{}: the kernel fix was not measured: {why}", p.name())),
                (None, _) => status.notes.push(format!("{}: the kernel fix was not measured: its kernel is unknown", p.name())),
            }
        }
        let Some(fix) = &fix else { continue };
        status.notes.push(format!("patch drill, userland fix: {}", fix.describe()));
        for storage in Storage::of(mode) {
            for n in drill_ns(o.patch_instances) {
                progress.set_message(format!("{} patch drill {} N={n}", p.name(), storage.name()));
                match patch::drill(*p, &mut work, fix, storage, n) {
                    Ok(r) => {
                        if n == o.patch_instances {
                            status.notes.push(format!("patch drill {} N={n}: the commands: {}", storage.name(), r.commands.join("; ")));
                        }
                        if r.verified.is_none() {
                            status.notes.push(format!(
                                "patch drill {} N={n}: no patch.verified_instances: {} instances do not read the image (the patched artefacts are counted by digest all the same)",
                                storage.name(),
                                p.name()
                            ));
                        }
                        out.samples.extend(r.samples(packages, package_bytes));
                    }
                    Err(e) if e.is_interrupt() => {
                        out.not_measured.push(e.to_string());
                        return Err(LaunchError::Interrupted);
                    }
                    Err(e) => {
                        status.notes.push(format!("patch drill {} N={n} failed: {e}", storage.name()));
                        out.failures.push(format!("{} patch drill {} N={n}: {e}", p.name(), storage.name()));
                        break;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Whether `path` lies on a tmpfs (whose writes are no block I/O).
fn on_tmpfs(path: &std::path::Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drill_sizes_double_up_to_the_maximum() {
        assert_eq!(drill_ns(4), vec![1, 2, 4]);
        assert_eq!(drill_ns(6), vec![1, 2, 4, 6]);
        assert_eq!(drill_ns(1), vec![1]);
        assert!(drill_ns(0).is_empty());
    }

    #[test]
    fn tmpfs_is_recognised() {
        assert!(on_tmpfs(std::path::Path::new("/dev/shm")) || !std::path::Path::new("/dev/shm").exists());
        assert!(!on_tmpfs(std::path::Path::new("/proc")), "procfs is not tmpfs");
    }
}
