//! The peer rows: the OCI runtimes (runc, crun, youki, gVisor's runsc),
//! podman and QEMU, driven as real programs. harness/setup-test-host
//! installs them all; a test skips a peer (with a visible SKIPPED line)
//! only when it is not installed. A peer that is installed but refuses this
//! host (crun 1.8 on cgroup v1 hybrid) must say so with its own message.
//!
//! For every runtime that runs here: 20 launches pass the checks
//! `container` passes (pid 1 of its own pid namespace, the host's root and
//! processes invisible, the memory limit enforced, the `cpu` checksum equal
//! to `process`'s, phases adding up), and 100 launches plus failed and
//! abandoned ones leave nothing behind (bundle, cgroup, mount, runtime
//! state, container, child process, file descriptor).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;
use versus::error::LaunchError;
use versus::experiment::probes::run_probes;
use versus::model::Outcome;
use versus::platform::oci::{self, OciPlatform, RuntimeKind};
use versus::platform::process::ProcessPlatform;
use versus::platform::registry::{self, NotRun, PlatformOptions};
use versus::platform::vm::qemu::{self, Accel, QemuOptions, QemuPlatform};
use versus::platform::{LaunchSpec, Limits, Platform, Unavailable};
use versus::runner::{launch_once, LaunchOnceError};
use versus::workload::expected_cpu_checksum;

/// Leak checks look at the whole test process: one test at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn spec(w: &str) -> LaunchSpec {
    LaunchSpec::new(w.parse().expect("workload"))
}

const RUNTIMES: [RuntimeKind; 4] = [RuntimeKind::Runc, RuntimeKind::Crun, RuntimeKind::Youki, RuntimeKind::Runsc];

/// The platform `name`, or `None` after printing why it is skipped. Only a
/// missing program is a skip; a refusal of the host is checked to carry the
/// peer's own message, printed, and then skipped (there is nothing to
/// launch).
fn peer(name: &str) -> Option<Box<dyn Platform>> {
    assert!(is_root(), "the peer tests need root (run them as root, as CI does)");
    match registry::create(name, &PlatformOptions::default()) {
        Ok(p) => Some(p),
        Err(NotRun::Skipped(Unavailable::Missing(why))) => {
            eprintln!("SKIPPED {name}: {why}");
            None
        }
        Err(NotRun::Skipped(Unavailable::Host(why))) => {
            assert!(why.contains("refuses this host") || why.contains("cannot run a container here"), "{name}: {why}");
            assert!(why.contains("said:") || why.contains("stderr"), "{name}: the refusal carries the peer's own message: {why}");
            eprintln!("REFUSED {name}: {why}");
            None
        }
        Err(e) => panic!("{name}: {e}"),
    }
}

/// Names this test process gave its instances start with this.
fn own_prefix() -> String {
    format!("versus-{}-", std::process::id())
}

/// Leftovers of this process's OCI instances and podman containers.
fn leftovers() -> BTreeMap<&'static str, Vec<String>> {
    let prefix = own_prefix();
    let mut out = BTreeMap::new();
    let tmp: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("versus-oci-{prefix}")) || n.starts_with(&format!("versus-qemu-{}-", std::process::id())))
        .collect();
    out.insert("bundle or run dirs", tmp);
    out.insert("cgroups", own_cgroups().iter().map(|p| p.display().to_string()).collect());
    let mut state = Vec::new();
    for k in RUNTIMES {
        for e in std::fs::read_dir(k.state_dir()).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(&prefix) {
                state.push(format!("{}/{n}", k.state_dir().display()));
            }
        }
    }
    out.insert("runtime state", state);
    let mounts: Vec<String> =
        std::fs::read_to_string("/proc/self/mounts").unwrap_or_default().lines().filter(|l| l.contains(&prefix)).map(String::from).collect();
    out.insert("mounts", mounts);
    let podman = versus::host::find_peer("podman")
        .and_then(|p| Command::new(p).args(["ps", "-a", "--format", "{{.Names}}"]).output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.starts_with(&prefix)).map(String::from).collect())
        .unwrap_or_default();
    out.insert("podman containers", podman);
    out.insert("children", own_children().iter().map(|p| p.to_string()).collect());
    out.retain(|_, v| !v.is_empty());
    out
}

/// Children can linger for a moment after a kill; wait for them (bounded).
fn settled_leftovers() -> BTreeMap<&'static str, Vec<String>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let l = leftovers();
        if l.is_empty() || std::time::Instant::now() >= deadline {
            return l;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn checksum_of(p: &dyn Platform, w: &str) -> u64 {
    let mut i = p.launch(&spec(w)).unwrap_or_else(|e| panic!("{} {w}: {e}", p.name()));
    let f = i.finish().unwrap_or_else(|e| panic!("{} {w}: {e}", p.name()));
    i.stop().expect("stop");
    let r = f.results.iter().find(|r| r.checksum().is_some()).unwrap_or_else(|| panic!("{} {w}: no result in {f:?}", p.name()));
    u64::from_str_radix(r.checksum().unwrap_or(""), 16).expect("hex")
}

/// The checks `container` passes, on a peer.
fn container_checks(p: &dyn Platform, phases: &[&str]) {
    let name = p.name();
    // 20 launches: ready ones with phases that add up.
    for i in 0..20 {
        let rec = launch_once(p, &spec("ready")).unwrap_or_else(|e| panic!("{name} launch {i}: {e}"));
        let names: Vec<&str> = rec.boot.phases.iter().map(|p| p.0).collect();
        assert_eq!(names, phases, "{name}");
        let sum: f64 = rec.boot.phases.iter().map(|p| p.1).sum();
        assert!((sum - rec.boot.total_ms()).abs() < 1e-6, "{name}: phases {sum} vs boot {}", rec.boot.total_ms());
    }
    // pid 1 of its own pid namespace: `call:1` reports its getpid().
    assert_eq!(checksum_of(p, "call:1"), 1, "{name}: the workload must be pid 1");
    // The cpu checksum equals process's and the host's.
    let want = expected_cpu_checksum(1000);
    let proc_ = ProcessPlatform::new().expect("process");
    for q in [p, &proc_ as &dyn Platform] {
        let rec = launch_once(q, &spec("cpu:1000")).unwrap_or_else(|e| panic!("{} cpu: {e}", q.name()));
        assert_eq!(rec.finished.results[0].checksum(), Some(want.as_str()), "{} cpu checksum", q.name());
    }
    // The host's root and processes are invisible.
    let rows = run_probes(p, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{name} probes: {e}"));
    for id in ["fs.host_root", "proc.host_pids", "ns.pid", "net.host_loopback"] {
        let r = rows.iter().find(|r| r.probe == id).unwrap_or_else(|| panic!("{name}: no {id} row"));
        assert_eq!(r.result, Outcome::Isolated, "{name} {id}: {}", r.evidence);
    }
    // The memory limit is enforced and reported; under it the same
    // workload runs.
    let mut over = spec("mem:256");
    over.limits = Limits { memory_bytes: 64 << 20, ..Limits::default() };
    match launch_once(p, &over) {
        Err(LaunchOnceError::Launch(LaunchError::OomKilled { limit_bytes })) => assert_eq!(limit_bytes, 64 << 20, "{name}"),
        other => panic!("{name}: expected an OOM kill at 64 MiB, got {:?}", other.map(|r| r.rows)),
    }
    let mut under = spec("mem:16");
    under.limits = Limits { memory_bytes: 64 << 20, ..Limits::default() };
    launch_once(p, &under).unwrap_or_else(|e| panic!("{name}: 16 MiB must fit in 64 MiB: {e}"));
    // An idle instance's processes are all in its cgroup, which the memory
    // measurement charges.
    let mut idle = spec("idle:4");
    idle.limits = Limits { memory_bytes: 96 << 20, cpus: 0.25, ..Limits::default() };
    let i = p.launch(&idle).unwrap_or_else(|e| panic!("{name} idle: {e}"));
    let pids = i.pids();
    assert!(!pids.is_empty(), "{name}: an idle instance has host processes");
    let m = versus::experiment::memory::read_pids(&pids).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(m.pss_bytes >= 4 << 20, "{name}: the instance holds its 4 MiB: {m:?}");
    let charged = m.cgroup_bytes.unwrap_or_else(|| panic!("{name}: no cgroup charge found for pids {pids:?}"));
    assert!(charged >= 4 << 20, "{name}: charge {charged}");
    i.stop().unwrap_or_else(|e| panic!("{name} stop: {e}"));
}

/// 100 launches, failures and abandoned instances leave nothing behind.
fn leak_checks(p: &dyn Platform) {
    let name = p.name();
    let fds = open_fds();
    let engine_mounts = || std::fs::read_to_string("/proc/self/mounts").unwrap_or_default().lines().filter(|l| l.contains("/var/lib/containers")).count();
    let mounts = engine_mounts();
    for i in 0..100 {
        let inst = p.launch(&spec("ready")).unwrap_or_else(|e| panic!("{name} launch {i}: {e}"));
        inst.stop().unwrap_or_else(|e| panic!("{name} stop {i}: {e}"));
    }
    // A timeout before ready.
    let mut s = spec("ready");
    s.timeout = Duration::from_micros(1);
    assert!(p.launch(&s).is_err(), "{name}: a 1 us timeout must fail");
    // Dropped without stop (a panic path), and a real panic.
    drop(p.launch(&spec("idle:1")).expect("idle"));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _i = p.launch(&spec("idle:1")).unwrap();
        panic!("boom while a {name} instance runs");
    }));
    assert!(r.is_err());
    // An interrupt (Ctrl-C) during a launch, at its start and a little
    // later (wherever that falls: create, start or the wait for READY).
    for delay_ms in [0u64, 30, 120] {
        let mut t = Some(std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(delay_ms));
            versus::interrupt::request();
        }));
        if delay_ms == 0 {
            if let Some(t) = t.take() {
                t.join().expect("interrupter");
            }
        }
        let r = p.launch(&spec("idle:1"));
        if let Some(t) = t {
            let _ = t.join();
        }
        versus::interrupt::clear();
        match r {
            Err(LaunchError::Interrupted) => {}
            Ok(i) => {
                i.stop().unwrap_or_else(|e| panic!("{name}: stop after a late interrupt: {e}"));
            }
            Err(e) => assert!(delay_ms > 0, "{name}: an interrupt before the launch must say so, got {e}"),
        }
    }
    let left = settled_leftovers();
    assert!(left.is_empty(), "{name} left behind: {left:?}");
    assert_eq!(open_fds(), fds, "{name}: file descriptors leaked");
    assert_eq!(engine_mounts(), mounts, "{name}: container storage mounts left behind");
}

fn oci_test(kind: RuntimeKind) {
    let _s = serial();
    let name = oci::info_of(kind).name;
    let Some(p) = peer(name) else { return };
    container_checks(p.as_ref(), &oci::PHASES);
    leak_checks(p.as_ref());
}

#[test]
fn oci_runc_passes_the_container_checks_and_leaves_nothing() {
    oci_test(RuntimeKind::Runc);
}

#[test]
fn oci_crun_passes_the_container_checks_and_leaves_nothing() {
    oci_test(RuntimeKind::Crun);
}

#[test]
fn oci_youki_passes_the_container_checks_and_leaves_nothing() {
    oci_test(RuntimeKind::Youki);
}

#[test]
fn oci_runsc_passes_the_container_checks_and_leaves_nothing() {
    oci_test(RuntimeKind::Runsc);
}

#[test]
fn podman_passes_the_container_checks_and_leaves_nothing() {
    let _s = serial();
    let Some(p) = peer("podman") else { return };
    container_checks(p.as_ref(), &versus::platform::podman::PHASES);
    leak_checks(p.as_ref());
}

/// Interrupts stop a peer's ordinary commands but not its clean-up ones
/// (`delete`, `podman rm`): an interrupt is when they must run. (The flag
/// is process-wide: this binary's tests run one at a time.)
#[test]
fn clean_up_commands_run_through_an_interrupt() {
    use versus::platform::command::{run, run_cleanup};
    let _s = serial();
    let sh = || {
        let mut c = Command::new("sh");
        c.args(["-c", "sleep 0.2; echo done"]);
        c
    };
    versus::interrupt::request();
    let stopped = run(sh(), Duration::from_secs(10), "sh");
    let cleaned = run_cleanup(sh(), Duration::from_secs(10), "sh");
    versus::interrupt::clear();
    assert!(matches!(stopped, Err(LaunchError::Interrupted)), "{stopped:?}");
    assert_eq!(cleaned.expect("clean-up runs").stdout.trim(), "done");
}

/// crun 1.8 refuses a cgroup v1 hybrid host whose v2 hierarchy has
/// controllers; the reason recorded is crun's own message.
#[test]
fn a_refusing_runtime_is_skipped_with_its_own_message() {
    let _s = serial();
    if versus::host::find_peer("crun").is_none() {
        eprintln!("SKIPPED: crun is not installed (apt-get install crun)");
        return;
    }
    let p = OciPlatform::new(RuntimeKind::Crun).expect("crun is installed");
    let unified = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    let hybrid = versus::host::cgroup_mode().0 == versus::host::CgroupMode::Hybrid && !unified.trim().is_empty();
    match p.available() {
        Err(Unavailable::Host(why)) => {
            assert!(why.starts_with("crun 1.") && why.contains("refuses this host") && why.contains("said:"), "{why}");
            if hybrid {
                assert!(why.contains("hybrid"), "{why}");
            }
        }
        Ok(()) => assert!(!hybrid, "crun ran on a cgroup v1 hybrid host with v2 controllers ({unified}): the refusal this test expects is gone"),
        Err(e) => panic!("{e}"),
    }
    assert!(settled_leftovers().is_empty(), "the trial launch left {:?}", leftovers());
}

/// The acceptance check of the probes: at least one probe on which gVisor
/// is isolated and runc exposed, through the CLI.
#[test]
fn probe_cli_shows_runsc_closing_what_runc_leaves_open() {
    let _s = serial();
    if peer("oci-runc").is_none() || peer("oci-runsc").is_none() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_versus")).args(["probe", "-p", "container,oci-runc,oci-runsc", "--csv"]).output().expect("run versus probe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "versus probe failed: {}{}", text, String::from_utf8_lossy(&out.stderr));
    let mut result: BTreeMap<(String, String), String> = BTreeMap::new();
    for l in text.lines().skip(1) {
        let f: Vec<&str> = l.splitn(6, ',').collect();
        if f.len() >= 5 {
            result.insert((f[1].to_string(), f[2].to_string()), f[4].to_string());
        }
    }
    let closed: Vec<&String> = result
        .iter()
        .filter(|((pl, _), r)| pl == "oci-runsc" && *r == "isolated")
        .map(|((_, probe), _)| probe)
        .filter(|probe| result.get(&("oci-runc".to_string(), probe.to_string())).map(String::as_str) == Some("exposed"))
        .collect();
    assert!(!closed.is_empty(), "no probe where runsc is isolated and runc exposed:\n{text}");
    assert!(closed.iter().any(|p| *p == "kernel.shared"), "gVisor's own kernel closes kernel.shared: {closed:?}");
}

/// runsc's attack surface is read from its running sentry's seccomp filter.
#[test]
fn runsc_surface_is_its_sentrys_seccomp_filter() {
    let _s = serial();
    if versus::host::find_peer("runsc").is_none() {
        eprintln!("SKIPPED: runsc is not installed (apt-get install runsc)");
        return;
    }
    let p = OciPlatform::new(RuntimeKind::Runsc).expect("runsc");
    match p.attack_surface() {
        versus::platform::AttackSurface::Sandbox { allowed: Some(n), note } => {
            let all = versus::experiment::probes::host_syscalls().unwrap_or(400);
            assert!(n > 10 && (n as usize) < all, "the sentry's filter allows {n} of {all}: {note}");
            assert!(note.contains("sentry") && note.contains("Seccomp 2"), "{note}");
        }
        other => panic!("runsc's surface was not measured: {other:?}"),
    }
    assert!(settled_leftovers().is_empty(), "{:?}", leftovers());
}

fn kernel() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VERSUS_TEST_KERNEL") {
        return Some(p.into());
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/harness/fetch-kernel");
    let o = Command::new(script).output().ok()?;
    o.status.success().then(|| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
}

/// QEMU under its own emulator (TCG): the plumbing (QMP, both UARTs, the
/// named guest RAM, teardown) on any host, marked not representative.
#[test]
fn qemu_under_tcg_boots_to_ready_and_releases_everything() {
    let _s = serial();
    if versus::host::find_peer("qemu-system-x86_64").is_none() {
        eprintln!("SKIPPED: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)");
        return;
    }
    let kernel = kernel().expect("harness/fetch-kernel gives a kernel (or set VERSUS_TEST_KERNEL)");
    let p = QemuPlatform::new(QemuOptions { kernel: Some(kernel), force: true, accel: Accel::Tcg, ..QemuOptions::from_env() }).expect("qemu");
    assert_eq!(p.machine(), "q35", "microvm has no usable clock under TCG");
    assert!(p.representative().unwrap_err().contains("TCG"));
    let fds = open_fds();
    let mut s = spec("cpu:1000");
    s.timeout = Duration::from_secs(120);
    let rec = launch_once(&p, &s).expect("QEMU boots to ready under TCG and runs cpu");
    assert_eq!(rec.boot.phases.iter().map(|p| p.0).collect::<Vec<_>>(), qemu::PHASES.to_vec());
    assert_eq!(rec.finished.results[0].checksum(), Some(expected_cpu_checksum(1000).as_str()), "the same checksum as every platform");
    // Idle: memory split at the named guest RAM, then QMP quit.
    let mut s = spec("idle:8");
    s.timeout = Duration::from_secs(120);
    let i = p.launch(&s).expect("idle");
    let v = i.vmm_memory().expect("QEMU has a VMM process").expect("smaps");
    assert!(v.guest_ram_rss >= 8 << 20, "the guest touched its 8 MiB inside the memfd: {v:?}");
    assert!(v.rss_excl_guest > 0 && v.rss_excl_guest < 1 << 30, "{v:?}");
    i.stop().expect("stop");
    // Dropped without stop.
    drop(p.launch(&s).expect("idle"));
    assert!(settled_leftovers().is_empty(), "{:?}", leftovers());
    assert_eq!(open_fds(), fds);
}

/// QEMU with hardware KVM where vm-linux is representative (and refused,
/// with the same reason, where it is not).
#[test]
fn qemu_with_kvm_runs_where_vm_linux_does_and_is_refused_where_not() {
    let _s = serial();
    let Some(kernel) = kernel() else {
        eprintln!("SKIPPED: no guest kernel (run harness/fetch-kernel)");
        return;
    };
    if versus::host::find_peer("qemu-system-x86_64").is_none() {
        eprintln!("SKIPPED: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)");
        return;
    }
    let p = QemuPlatform::new(QemuOptions { kernel: Some(kernel), accel: Accel::Kvm, ..QemuOptions::from_env() }).expect("qemu");
    match versus::platform::vm::linux::not_representative_reason(&versus::host::kvm_mode(), versus::host::KvmSpeed::of_this_host()) {
        Some(why) => {
            assert_eq!(p.representative(), Err(why));
            let e = p.launch(&spec("ready")).err().expect("refused unless forced");
            assert!(e.to_string().contains("--force"), "{e}");
            eprintln!("SKIPPED (not representative here): qemu with KVM; the same reason as vm-linux");
        }
        None => {
            p.available().expect("qemu available on a hardware-KVM host");
            let rec = launch_once(&p, &spec("cpu:2000")).expect("qemu cpu");
            assert_eq!(rec.finished.results[0].checksum(), Some(expected_cpu_checksum(2000).as_str()));
            let i = p.launch(&spec("idle:8")).expect("idle");
            let v = i.vmm_memory().expect("VMM").expect("smaps");
            assert!(v.guest_ram_rss >= 8 << 20, "{v:?}");
            i.stop().expect("stop");
            assert!(settled_leftovers().is_empty(), "{:?}", leftovers());
        }
    }
}
