//! Footprint against files of known size, and per-instance growth of real
//! overlayfs instances and real copy / qcow2 / reflink VM disks.

use std::path::Path;

use versus::experiment::footprint::{self, disk_instances, footprint_overlay, make_ext4_image, overlay_instances, size_of, write_data, Method};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Temp dirs this test process created that are still there.
/// The tests that make overlay instances run one at a time: the leftover
/// check looks at every `versus-footprint-overlay-*` dir in the temp dir,
/// and another test's instances in flight would count as left behind.
static OVERLAYS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn leftovers(prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for d in [std::env::temp_dir(), std::env::current_dir().unwrap()] {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(prefix) {
                out.push(n);
            }
        }
    }
    out
}

/// Mount points under `dir` still mounted.
fn mounts_under(dir: &Path) -> usize {
    let m = std::fs::read_to_string("/proc/self/mounts").unwrap();
    m.lines().filter(|l| l.split(' ').nth(1).is_some_and(|p| p.starts_with(dir.to_str().unwrap()))).count()
}

#[test]
fn known_file_sizes() {
    let t = tempfile::tempdir().unwrap();
    write_data(&t.path().join("one"), 3 * MIB).unwrap();
    write_data(&t.path().join("two"), 100 * KIB).unwrap();
    // A sparse file: apparent 8 MiB, nearly nothing allocated.
    std::fs::File::create(t.path().join("sparse")).unwrap().set_len(8 * MIB).unwrap();
    let dir = std::fs::metadata(t.path()).unwrap().len();
    let s = size_of(t.path()).unwrap();
    assert_eq!(s.apparent, 3 * MIB + 100 * KIB + 8 * MIB + dir);
    assert!(s.allocated >= 3 * MIB + 100 * KIB && s.allocated <= 3 * MIB + 100 * KIB + 64 * KIB, "{s:?}");
    let r = footprint::footprint_shared("process", &[t.path().join("one")], 4).unwrap();
    assert_eq!(r.shared.apparent, 3 * MIB);
    assert_eq!(r.total_for(4), r.shared, "shared instances add nothing");
}

#[test]
fn overlay_instances_grow_by_what_they_write() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: mounting overlayfs on the host needs root; run the tests as root");
        return;
    }
    let _one = OVERLAYS.lock().unwrap_or_else(|e| e.into_inner());
    let lower = tempfile::tempdir().unwrap();
    write_data(&lower.path().join("base"), 2 * MIB).unwrap();
    let before = leftovers("versus-footprint-overlay-");
    let quiet = overlay_instances(lower.path(), 2, 0).unwrap();
    let busy = overlay_instances(lower.path(), 3, MIB).unwrap();
    eprintln!("overlay per instance, no writes: {quiet:?}; 1 MiB written: {busy:?}");
    for b in &quiet {
        // Empty upper + work dirs: a few directory blocks.
        assert!(b.allocated <= 64 * KIB && b.allocated > 0, "{b:?}");
    }
    for b in &busy {
        assert!(b.allocated >= MIB && b.allocated <= MIB + 64 * KIB, "{b:?}");
        assert!(b.apparent >= MIB && b.apparent <= MIB + 64 * KIB, "{b:?}");
    }
    // The lower dir was shared, not copied up.
    assert_eq!(size_of(&lower.path().join("base")).unwrap().apparent, 2 * MIB);
    let r = footprint_overlay("container", lower.path(), 2, MIB, false).unwrap();
    assert!(r.shared.apparent >= 2 * MIB && r.total_for(2).allocated >= r.shared.allocated + 2 * MIB);
    assert_eq!(leftovers("versus-footprint-overlay-"), before, "overlay temp dirs left behind");
    assert_eq!(mounts_under(&std::env::temp_dir().join("versus-footprint-overlay-")), 0);
}

#[test]
fn vm_disks_full_copy_vs_copy_on_write() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    write_data(&src.join("payload"), 4 * MIB).unwrap();
    let base = t.path().join("base.img");
    make_ext4_image(&src, &base, 32 * MIB).unwrap();
    let base_size = size_of(&base).unwrap();
    assert_eq!(base_size.apparent, 32 * MIB);
    assert!(base_size.allocated >= 4 * MIB, "{base_size:?}");

    let copies = disk_instances(&base, Method::Copy, 2, 0).unwrap();
    eprintln!("base {base_size:?}; full copies {copies:?}");
    for c in &copies {
        assert_eq!(c.apparent, 32 * MIB);
        assert!(c.allocated >= base_size.allocated, "a full copy holds at least the base's data: {c:?}");
    }

    if versus::host::which("qemu-img").is_none() || versus::host::which("qemu-io").is_none() {
        eprintln!("SKIPPED qcow2 part: qemu-img/qemu-io not installed (apt-get install qemu-utils)");
    } else {
        let q0 = disk_instances(&base, Method::Qcow2, 2, 0).unwrap();
        let q1 = disk_instances(&base, Method::Qcow2, 2, MIB).unwrap();
        eprintln!("qcow2 overlays: empty {q0:?}; after a 1 MiB guest write {q1:?}");
        for q in &q0 {
            assert!(q.allocated < MIB, "an empty qcow2 overlay is metadata only: {q:?}");
        }
        for (a, b) in q0.iter().zip(&q1) {
            let grew = b.allocated - a.allocated;
            assert!((MIB..=MIB + 256 * KIB).contains(&grew), "a 1 MiB write grows the overlay by 1 MiB (+clusters): {grew}");
        }
    }

    match footprint::reflink_supported(t.path()) {
        Ok(()) => {
            let r = disk_instances(&base, Method::Reflink, 2, MIB).unwrap();
            eprintln!("reflink clones after a 1 MiB write: {r:?}");
            for c in &r {
                assert!(c.allocated < base_size.allocated, "a clone shares the base's extents: {c:?}");
            }
        }
        Err(why) => {
            eprintln!("SKIPPED reflink part: {why}");
            assert!(disk_instances(&base, Method::Reflink, 1, 0).is_err(), "reflink must fail loudly where unsupported");
        }
    }
    let left: Vec<_> = std::fs::read_dir(t.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left.len(), 2, "only src and base.img remain: {left:?}");
}

/// The footprint of each platform's own storage: shared files, an overlay
/// per instance over a shared tree, and VM disks built from a tree.
#[test]
fn storage_of_every_kind_is_measured_for_real() {
    let _one = OVERLAYS.lock().unwrap_or_else(|e| e.into_inner());
    use versus::model::Metric;
    use versus::platform::Storage;
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    write_data(&tree.join("init"), 300 * KIB).unwrap();
    let kernel = t.path().join("kernel");
    write_data(&kernel, 100 * KIB).unwrap();
    let storage = [
        Storage::Shared(vec![kernel.clone()]),
        Storage::Overlay { lower: tree.clone(), synthetic: false },
        Storage::Disk { shared: vec![kernel], tree, synthetic: true },
    ];
    let (rows, notes) = footprint::measure_storage("x", &storage, 4, 256 * KIB, 16 * MIB);
    eprintln!("notes: {notes:?}");
    let methods: Vec<String> = rows.iter().filter(|r| r.metric == Metric::ImageTotal && r.unit == "bytes").map(|r| r.workload.clone()).collect();
    eprintln!("{methods:?}");
    for r in rows.iter().filter(|r| r.metric == Metric::ImageTotal && r.unit == "bytes") {
        eprintln!("{} {}: one instance {} bytes", r.platform, r.workload, r.value);
    }
    for m in ["shared", "overlay", "copy-synthetic", "qcow2-synthetic"] {
        assert!(methods.contains(&m.to_string()), "{m} missing: {methods:?} (notes {notes:?})");
    }
    assert!(notes.iter().any(|n| n.contains("synthetic")), "a synthetic disk says so: {notes:?}");
    // N=4 rows exist for each method and grow with N by what an instance adds.
    assert!(rows.iter().any(|r| r.metric == Metric::ImageNInstances && r.iteration == 4));
    // Each overlay instance holds at least what it wrote.
    let per: Vec<f64> = rows.iter().filter(|r| r.workload == "overlay" && r.metric == Metric::ImagePerInstance && r.unit == "bytes").map(|r| r.value).collect();
    assert_eq!(per.len(), 4);
    assert!(per.iter().all(|v| *v >= 256.0 * KIB as f64), "{per:?}");
}
