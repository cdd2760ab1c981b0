//! Tests on a host whose KVM is hardware-style (kvm_intel / kvm_amd): this
//! host when it has one, else the QEMU/TCG-emulated AMD host of
//! harness/kvm-host (see tests/common/kvm_host.rs). Skipped, saying so, only
//! where neither exists. In the emulated host on a 2-core CI machine: `env`
//! about 15 s; the `run` test's four vm-linux launches about 1.5 minutes
//! with a release build of versus, 2.5 to 3 with the debug build of `cargo
//! test` (its VMM copies the kernel into guest memory ten times slower, and
//! everything in the emulated host is ten times slower again). One outer
//! boot per test; they run one at a time.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::kvm_host::{run_shell_with_disk, run_versus, KvmHost};

/// One emulated host at a time: two would share the 2 cores.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn env_inside_reports_hardware_kvm() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(run) = run_versus(&["env", "--json"], Duration::from_secs(600)) else {
        return;
    };
    assert!(run.status.success(), "versus env failed: {}", run.describe());
    let env: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("env --json is not JSON ({e}): {}", run.describe()));
    let mode = &env["kvm_mode"];
    assert_eq!(mode["kind"], "hardware", "{}", run.describe());
    assert_eq!(env["kvm_device"], true);
    match &run.host {
        // QEMU's TCG emulates AMD's SVM (not Intel's VMX).
        KvmHost::Emulated => {
            assert_eq!(mode["module"], "kvm_amd", "{}", run.describe());
            assert_eq!(mode["nested_host"], true, "the emulated host is a guest itself");
            // ... and says its CPU is emulated: no figure from it is real hardware's.
            assert!(env["cpu_emulated"].as_str().is_some_and(|s| s.contains("QEMU TCG")), "{}", run.describe());
        }
        KvmHost::Native { module } => assert_eq!(mode["module"].as_str(), Some(module.as_str())),
    }
    // The supervisor/user loop measurement ran (its value is timing: not asserted).
    assert!(env["measurements"]["kvm_speed"]["cpl0_iters_per_s"].is_number(), "{}", run.describe());
}

#[test]
fn vm_linux_runs_every_workload_and_its_reports_come_back() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // One versus process for every workload (the kernel is prepared once);
    // `run` fails the whole run when the cpu checksum differs from the
    // host's, and records a failed launch in env.json. Every launch reaches
    // READY first, so `ready` alone would add nothing but a boot.
    let args = ["run", "-p", "vm-linux", "-w", "cpu:2000,mem:16,call:1000,idle:16", "--runs", "1", "--warmup", "0", "--launch-only", "--timeout", "240"];
    let Some(run) = run_versus(&args, Duration::from_secs(900)) else {
        return;
    };
    assert!(run.status.success(), "{}", run.describe());
    // The run's reports/<run-id>/ came back whole.
    let reports: Vec<_> = std::fs::read_dir(run.dir.join("reports")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert_eq!(reports.len(), 1, "one run directory under reports/: {reports:?}; {}", run.describe());
    let env: serde_json::Value = std::fs::read_to_string(reports[0].join("env.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| panic!("no readable env.json in {}: {}", reports[0].display(), run.describe()));
    let status = env["platforms"].as_array().and_then(|p| p.iter().find(|p| p["platform"] == "vm-linux")).cloned().unwrap_or_default();
    assert_eq!(status["status"], "ran", "{status}");
    match &run.host {
        // Every figure of the emulated host is labelled: behaviour, not speed.
        KvmHost::Emulated => {
            assert_eq!(status["representative"], false, "{status}");
            assert!(status["representative_note"].as_str().is_some_and(|n| n.contains("emulated by QEMU TCG")), "{status}");
        }
        KvmHost::Native { .. } => assert_eq!(status["representative"], true, "{status}"),
    }
    let samples = std::fs::read_to_string(reports[0].join("samples.csv")).unwrap_or_default();
    // run_id,platform,workload,metric,...
    let rows: Vec<(&str, &str)> = samples
        .lines()
        .skip(1)
        .filter_map(|l| match l.split(',').collect::<Vec<_>>().as_slice() {
            [_, "vm-linux", w, m, ..] => Some((*w, *m)),
            _ => None,
        })
        .collect();
    // Rows carry the full workload spec; teardown is measured on idle.
    for (w, result) in [("cpu:2000", "cpu"), ("mem:16", "mem_touch"), ("call:1000", "call"), ("idle:16", "teardown")] {
        for m in ["boot", "boot.vmm_spawn", "boot.vmm", "boot.kernel", "boot.init", result] {
            assert!(rows.contains(&(w, m)), "no vm-linux {w} {m} sample in samples.csv:\n{samples}");
        }
    }
}

/// vm-linux on the Debian image: versus-vmm attaches the image's ext4 disk
/// as virtio-blk (virtio-mmio, announced by ACPI), the guest's /init loads
/// virtio_mmio and virtio_blk from its initramfs, mounts /dev/vda and runs
/// the image's /versus-init (`root=/dev/vda rw init=/versus-init`), whose
/// image-check reports the digest of the root it sees: the same as a
/// container on the same image reports, and the image tree's own.
#[test]
fn vm_linux_boots_the_debian_disk_and_sees_the_image_a_container_sees() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(common::is_root(), "needs root (debootstrap, overlayfs, namespaces)");
    // The image (built once, cached) and its disk, here.
    let img = versus::image::build(&versus::image::ImageSpec::named("debian").unwrap()).unwrap_or_else(|e| panic!("the Debian image: {e}")).0;
    let expected = versus::workload::image_digest(&img.rootfs());
    let t = tempfile::tempdir().unwrap();
    let disk = t.path().join("debian.ext4");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_versus")).args(["image", "disk", "debian"]).arg(&disk).output().unwrap();
    assert!(out.status.success(), "versus image disk: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("image digest: {expected}")), "{}", String::from_utf8_lossy(&out.stdout));
    // A container on the image sees that digest.
    let c = versus::platform::container::ContainerPlatform::new(Default::default()).unwrap();
    let (upper, work) = (t.path().join("upper"), t.path().join("work"));
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let mut spec = versus::platform::LaunchSpec::new("image-check:0".parse().unwrap());
    spec.timeout = Duration::from_secs(20);
    spec.root = Some(versus::platform::InstanceRoot::Overlay { lowers: vec![img.rootfs()], upper, work });
    let mut inst = versus::platform::Platform::launch(&c, &spec).unwrap_or_else(|e| panic!("container on the image: {e}"));
    let seen = inst.read_result(Duration::from_secs(20)).unwrap();
    inst.stop().unwrap();
    assert_eq!(seen.checksum(), Some(expected.as_str()), "the container's view");
    // vm-linux booted on the disk, where KVM can boot a Linux kernel.
    let line = r#"versus launch vm-linux -w image-check --root-disk "$VERSUS_DISK" --timeout 400"#;
    let Some(run) = run_shell_with_disk(line, &disk, Duration::from_secs(900)) else {
        return;
    };
    assert!(run.status.success(), "{}", run.describe());
    assert!(run.stdout.contains(&format!("image digest: {expected}")), "vm-linux saw another root: {}", run.describe());
    // The host's disk file was not written by the guest (copy-on-write on
    // the emulated host; natively the guest's write of nothing: image-check:0).
    drop(t);
}

/// Issue 14's drill on the VM that boots its own kernel: `versus run
/// --image debian` with vm-linux, where a Linux guest can boot (natively on
/// hardware KVM, else in the emulated host with the image and the host
/// tools carried in). The userland fix is applied to the instance's own
/// disk and the restarted guest reports the patched tree from inside; the
/// kernel fix boots the second Debian kernel on the unchanged disk. Counts
/// come from digests, so each is exactly one artefact for N = 1.
#[test]
fn vm_linux_patch_drill_runs_through_versus_run() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(common::is_root(), "needs root (debootstrap, loop mounts)");
    versus::image::build(&versus::image::ImageSpec::named("debian").unwrap()).unwrap_or_else(|e| panic!("the Debian image: {e}"));
    let args = [
        "run",
        "--image",
        "debian",
        "-p",
        "vm-linux",
        "--patch-instances",
        "1",
        "-w",
        "ready",
        "--runs",
        "1",
        "--warmup",
        "0",
        "--no-interference",
        "--storm-max",
        "0",
        "--density-budget",
        "200MiB",
        "--max-time",
        "none",
        "--timeout",
        "400",
    ];
    let Some(run) = common::kvm_host::run_versus_with_image(&args, "debian", Duration::from_secs(1800)) else {
        return;
    };
    assert!(run.status.success(), "{}", run.describe());
    let reports = run.dir.join("reports");
    let report = std::fs::read_dir(&reports).unwrap().flatten().map(|e| e.path()).find(|p| p.join("samples.csv").exists()).expect("a report");
    let samples = std::fs::read_to_string(report.join("samples.csv")).unwrap();
    let value = |workload: &str, metric: &str| -> Option<f64> {
        samples
            .lines()
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|f| f.len() == 7 && f[1] == "vm-linux" && f[2] == workload && f[3] == metric && f[5] == "1")
            .and_then(|f| f[6].parse().ok())
    };
    for workload in ["userland/copy", "kernel/copy"] {
        assert_eq!(value(workload, "patch.artifacts"), Some(1.0), "{workload}: one disk (or one kernel) changed\n{samples}");
        assert_eq!(value(workload, "patch.verified_instances"), Some(1.0), "{workload}: the restarted guest reported from inside\n{samples}");
        assert!(value(workload, "patch.ms").is_some_and(|ms| ms > 0.0), "{workload}: a time to patched and ready");
    }
    assert!(value("userland/copy", "patch.bytes_written").is_some_and(|b| b > 0.0), "the fix wrote to the disk copy");
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(!md.contains("patch drill copy N=1 failed"), "{md}");
}
