//! The Debian image (issue 14): built once and cached (a second build
//! downloads nothing), a container on it sees the Debian tree under an
//! upper dir of its own, and the patch drill counts changed artefacts by
//! digest and leaves nothing behind when interrupted.
//!
//! Needs root, debootstrap, e2fsprogs and the host's apt mirror the first
//! time (harness/setup-test-host installs the tools; the image is built once
//! into ~/.cache/versus/images, about 35 s here).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use versus::image::{self, Built, ImageSpec, OsImage};
use versus::platform::container::{ContainerOptions, ContainerPlatform};
use versus::platform::{InstanceRoot, LaunchSpec, Platform};

/// The interrupt flag is process-wide: one test at a time in this binary.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn debian() -> OsImage {
    let spec = ImageSpec::named("debian").unwrap();
    image::build(&spec).unwrap_or_else(|e| panic!("building the Debian image: {e}")).0
}

#[test]
fn the_image_is_cached_and_a_second_build_downloads_nothing() {
    let _g = serial();
    let img = debian();
    assert_eq!(
        std::fs::read_to_string(img.rootfs().join("etc/debian_version")).unwrap().trim().split('.').next().map(|m| m.parse::<u32>().is_ok()),
        Some(true)
    );
    assert!(img.info.packages.len() > 50 && img.package("libc6").is_some() && img.package("dpkg").is_some(), "{} packages", img.info.packages.len());
    assert_eq!(img.info.digest, versus::image::digest::tree(&img.rootfs()).unwrap(), "the recorded digest is the tree's");
    // The CLI with a mirror that cannot be reached: only the cache can answer.
    let out = Command::new(env!("CARGO_BIN_EXE_versus"))
        .args(["image", "build", "debian"])
        .env("VERSUS_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
        .env("http_proxy", "http://127.0.0.1:9")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("cached") && text.contains("nothing downloaded") && text.contains(&img.info.digest), "{text}");
    let (_, again) = image::build(&ImageSpec::named("debian").unwrap()).unwrap();
    assert_eq!(again, Built::Cached);
}

#[test]
fn an_unreachable_mirror_is_one_line_naming_what_to_do() {
    let _g = serial();
    let t = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_versus"))
        .args(["image", "build", "debian"])
        .env("VERSUS_IMAGE_CACHE", t.path())
        .env("VERSUS_DEBIAN_MIRROR", "http://127.0.0.1:9/debian")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("versus: error:")).unwrap_or_else(|| panic!("{err}"));
    assert!(line.contains("VERSUS_DEBIAN_MIRROR") && line.contains("127.0.0.1:9"), "{line}");
    let left: Vec<_> = std::fs::read_dir(t.path()).unwrap().flatten().map(|e| e.file_name()).filter(|n| n != ".lock").collect();
    assert!(left.is_empty(), "a failed build leaves no half-built image: {left:?}");
}

/// An instance dir (upper + work) removed on drop.
fn instance_dirs(base: &Path, i: usize) -> (PathBuf, PathBuf) {
    let d = base.join(format!("i{i}"));
    let (u, w) = (d.join("upper"), d.join("work"));
    std::fs::create_dir_all(&u).unwrap();
    std::fs::create_dir_all(&w).unwrap();
    (u, w)
}

#[test]
fn a_container_sees_the_debian_tree_under_an_upper_of_its_own() {
    let _g = serial();
    assert!(common::is_root(), "needs root (overlayfs, namespaces)");
    let img = debian();
    let before = img.info.digest.clone();
    let p = ContainerPlatform::new(ContainerOptions::default()).unwrap();
    let t = tempfile::tempdir().unwrap();
    let mut insts = Vec::new();
    let mut uppers = Vec::new();
    for i in 0..2 {
        let (upper, work) = instance_dirs(t.path(), i);
        let mut spec = LaunchSpec::new(format!("image-check:{}", 64 * (i + 1)).parse().unwrap());
        spec.timeout = Duration::from_secs(20);
        spec.root = Some(InstanceRoot::Overlay { lowers: vec![img.rootfs()], upper: upper.clone(), work });
        let mut inst = p.launch(&spec).unwrap_or_else(|e| panic!("launch on the Debian image: {e}"));
        let r = inst.read_result(Duration::from_secs(20)).unwrap();
        // What it read in its root is the Debian tree's /etc/debian_version and dpkg status.
        assert_eq!(r.checksum(), Some(versus::workload::image_digest(&img.rootfs()).as_str()), "{r:?}");
        insts.push(inst);
        uppers.push(upper);
    }
    for (i, u) in uppers.iter().enumerate() {
        let data = u.join("var/tmp/versus-instance-data");
        assert_eq!(std::fs::metadata(&data).map(|m| m.len()).ok(), Some(64 * 1024 * (i as u64 + 1)), "instance {i} wrote into its own upper");
    }
    assert!(!img.rootfs().join("var/tmp/versus-instance-data").exists(), "nothing reached the shared tree");
    for i in insts {
        i.stop().unwrap();
    }
    assert_eq!(versus::image::digest::tree(&img.rootfs()).unwrap(), before, "the shared tree is unchanged");
    assert!(common::mounts_under(t.path()).is_empty(), "the overlays ended with their mount namespaces");
    // A process cannot run on an image root: refused, not ignored.
    let proc = versus::platform::registry::create("process", &Default::default()).unwrap();
    let mut spec = LaunchSpec::new("ready".parse().unwrap());
    spec.root = Some(InstanceRoot::Overlay { lowers: vec![img.rootfs()], upper: t.path().into(), work: t.path().into() });
    assert!(proc.launch(&spec).is_err());
}

/// Interrupted after its first instance was patched, a drill stops every
/// instance and leaves no mount, overlay, disk copy or temp dir, and says
/// which instances were patched.
fn interrupted_drill_leaves_nothing(platform: &str, storage: versus::experiment::patch::Storage) {
    use std::sync::atomic::Ordering;
    use versus::experiment::patch::{self, ImageWork, INTERRUPT_AFTER};
    let _g = serial();
    assert!(common::is_root(), "needs root (overlayfs, loop mounts, namespaces)");
    let img = debian();
    let fix = versus::image::fix::userland_fix(&img).unwrap_or_else(|e| panic!("preparing the fix: {e}"));
    let p = versus::platform::registry::create(platform, &Default::default()).unwrap_or_else(|e| panic!("{platform}: {e}"));
    let cgroups = common::own_cgroups();
    let fds = common::open_fds();
    let mut work = ImageWork::new(img, Duration::from_secs(30)).unwrap();
    let tmp = work.tmp.path().to_path_buf();
    let entries = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d).map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
    };
    // The run-wide base disk stays until the work is dropped.
    if storage == versus::experiment::patch::Storage::Copy {
        work.base_disk().unwrap();
    }
    let before = entries(&tmp);
    INTERRUPT_AFTER.store(1, Ordering::SeqCst);
    let r = patch::drill(p.as_ref(), &mut work, &fix, storage, 2);
    INTERRUPT_AFTER.store(usize::MAX, Ordering::SeqCst);
    versus::interrupt::clear();
    let e = match r {
        Err(e) => e,
        Ok(r) => panic!("the drill was not interrupted: {r:?}"),
    };
    assert!(e.is_interrupt(), "{e}");
    assert!(e.to_string().contains("[0] of 0..2 on the new version"), "it says which instances were patched: {e}");
    assert!(common::mounts_under(&tmp).is_empty(), "mounts left: {:?}", common::mounts_under(&tmp));
    assert_eq!(entries(&tmp), before, "the drill's disks, layers and overlays are removed");
    assert!(common::own_children().is_empty(), "instances left: {:?}", common::own_children());
    assert_eq!(common::own_cgroups(), cgroups, "cgroups left");
    assert!(common::open_fds() <= fds + 2, "fds left: {} -> {}", fds, common::open_fds());
    drop(work);
    assert!(!tmp.exists());
}

#[test]
fn an_interrupted_container_drill_leaves_nothing() {
    interrupted_drill_leaves_nothing("container", versus::experiment::patch::Storage::Overlay);
}

#[test]
fn an_interrupted_vm_disk_drill_leaves_nothing() {
    if !common::kvm_or_skip() {
        return;
    }
    interrupted_drill_leaves_nothing("vm-bare", versus::experiment::patch::Storage::Copy);
}

#[test]
fn the_drill_counts_what_the_fix_changed_and_verifies_from_inside() {
    use versus::experiment::patch::{self, ImageWork, Storage};
    let _g = serial();
    let img = debian();
    let fix = versus::image::fix::userland_fix(&img).unwrap();
    let p = versus::platform::registry::create("container", &Default::default()).unwrap();
    let mut work = ImageWork::new(img, Duration::from_secs(30)).unwrap();
    let r = patch::drill(p.as_ref(), &mut work, &fix, Storage::Overlay, 2).unwrap_or_else(|e| panic!("{e}"));
    // One new layer, by digest; both containers saw the patched dpkg status.
    assert_eq!((r.artifacts, r.verified, r.package_copies), (1, Some(2), 1), "{r:?}");
    assert!(r.bytes_written > 0 && r.ms > 0.0 && r.unavailable_s > 0.0, "{r:?}");
    assert!(r.commands.iter().any(|c| c.contains("dpkg --root=")), "{:?}", r.commands);
}
