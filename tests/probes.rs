//! The isolation-probe matrix on real platforms, with positive and negative
//! controls: a probe that cannot come out both ways is a defect.

mod common;

use common::kvm_or_skip;

use std::time::{Duration, Instant};

use versus::experiment::probes::{classify, run_probes, surface_rows, syscall_surface, Context, HostFacts, CATALOGUE};
use versus::model::{Outcome, ProbeLine, ProbeRow, SurfaceKind};
use versus::platform::container::{ContainerOptions, ContainerPlatform};
use versus::platform::process::ProcessPlatform;
use versus::platform::vm::bare::{inproc, probes as bare, VmBareInprocPlatform, VmBarePlatform};
use versus::platform::{Guest, Platform};

const TIMEOUT: Duration = Duration::from_secs(20);

/// The tests of this file run one at a time, so that the fd checks see only
/// their own descriptors (a vm-bare matrix opens and closes KVM fds).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn result(rows: &[ProbeRow], id: &str) -> Outcome {
    rows.iter().find(|r| r.probe == id).unwrap_or_else(|| panic!("no row for {id}")).result
}

fn print(rows: &[ProbeRow]) {
    for r in rows {
        println!("{:<10} {:<26} {:<15} {}", r.platform, r.probe, r.result, r.evidence);
    }
}

fn my_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fn matrix(p: &dyn Platform) -> Vec<ProbeRow> {
    let t = Instant::now();
    let rows = run_probes(p, TIMEOUT).unwrap_or_else(|e| panic!("{}: {e}", p.name()));
    println!("{}: matrix in {:?}", p.name(), t.elapsed());
    print(&rows);
    assert_eq!(rows.iter().filter(|r| CATALOGUE.iter().any(|d| d.id == r.probe)).count(), CATALOGUE.len());
    rows
}

#[test]
fn process_is_exposed_to_host_pids_network_and_root() {
    let _g = serial();
    let p = ProcessPlatform::new().expect("process platform");
    let rows = matrix(&p);
    for id in ["kernel.shared", "proc.host_pids", "ns.pid", "fs.host_root", "fs.host_mounts", "ns.net", "net.host_loopback", "net.host_unix", "proc.host_env"] {
        assert_eq!(result(&rows, id), Outcome::Exposed, "{id} on process");
    }
    // Every Linux probe produced a verdict (no `error` rows on this host).
    let errors: Vec<_> = rows.iter().filter(|r| r.result == Outcome::Error).collect();
    assert!(errors.is_empty(), "probe errors on process: {errors:?}");
    let host = HostFacts::collect();
    let surface = syscall_surface("process", &rows, &host).expect("process shares the host kernel");
    println!("surface: {surface:?}");
    if versus::experiment::probes::host_syscalls().is_some() {
        assert!(surface.value.unwrap_or(0) > 200, "{surface:?}");
    }
}

#[test]
fn container_isolates_pids_network_root_but_shares_the_kernel() {
    let _g = serial();
    let p = ContainerPlatform::new(ContainerOptions::default()).expect("container platform");
    let fds = my_fds();
    let rows = matrix(&p);
    for id in [
        "proc.host_pids",
        "ns.pid",
        "fs.host_root",
        "fs.host_mounts",
        "ns.mnt",
        "ns.net",
        "net.host_interfaces",
        "net.host_loopback",
        "net.host_unix",
        "ns.uts",
        "kif.hostname",
        "proc.host_env",
        "ns.cgroup",
        "dev.kvm",
        "dev.block",
    ] {
        assert_eq!(result(&rows, id), Outcome::Isolated, "{id} on container");
    }
    assert_eq!(result(&rows, "kernel.shared"), Outcome::Exposed, "a container runs on the host kernel");
    let errors: Vec<_> = rows.iter().filter(|r| r.result == Outcome::Error).collect();
    assert!(errors.is_empty(), "probe errors on container: {errors:?}");
    // The listeners and the instance are released.
    assert!(my_fds() <= fds + 2, "fds before {fds}, after {}", my_fds());
}

#[test]
fn container_without_pid_namespace_exposes_host_pids() {
    let _g = serial();
    let p = ContainerPlatform::new(ContainerOptions { pid_namespace: false, cgroup: true, ..Default::default() }).expect("container platform");
    let rows = matrix(&p);
    assert_eq!(result(&rows, "proc.host_pids"), Outcome::Exposed);
    assert_eq!(result(&rows, "ns.pid"), Outcome::Exposed);
    // The rest of the isolation stays.
    assert_eq!(result(&rows, "ns.net"), Outcome::Isolated);
    assert_eq!(result(&rows, "net.host_loopback"), Outcome::Isolated);
}

#[test]
fn hostname_change_inside_the_container_does_not_reach_the_host() {
    let _g = serial();
    let before = nix::sys::utsname::uname().unwrap().nodename().to_string_lossy().into_owned();
    let p = ContainerPlatform::new(ContainerOptions::default()).expect("container platform");
    let rows = run_probes(&p, TIMEOUT).unwrap();
    let r = rows.iter().find(|r| r.probe == "kif.hostname").unwrap();
    assert_eq!(r.result, Outcome::Isolated, "{}", r.evidence);
    assert!(r.evidence.contains("versus-"), "the container's own hostname is reported: {}", r.evidence);
    assert_eq!(nix::sys::utsname::uname().unwrap().nodename().to_string_lossy(), before);
}

/// Both kernel-less rows, each probed through its own instance kind (a
/// VMM process per attempt for vm-bare, versus' own VMM for
/// vm-bare-inproc).
#[test]
fn vm_bare_has_no_host_kernel_and_its_vmm_stops_every_way_out() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    let process = VmBarePlatform::new().expect("vm-bare");
    let inproc = VmBareInprocPlatform::new();
    for p in [&process as &dyn Platform, &inproc as &dyn Platform] {
        kernel_less_matrix(p);
    }
}

fn kernel_less_matrix(p: &dyn Platform) {
    let fds = my_fds();
    let rows = matrix(p);
    let kernel = rows.iter().find(|r| r.probe == "kernel.shared").unwrap();
    assert_eq!(kernel.result, Outcome::Isolated, "{}", kernel.evidence);
    assert!(kernel.evidence.contains("no kernel") && kernel.evidence.contains("CPL 3"), "{}", kernel.evidence);
    for id in ["vm.mem_outside_ram", "vm.unknown_port"] {
        let r = rows.iter().find(|r| r.probe == id).unwrap();
        assert_eq!(r.result, Outcome::Isolated, "{id}: {}", r.evidence);
        assert!(r.evidence.contains("the VMM ended the guest"), "{id}: {}", r.evidence);
    }
    // vm.supervisor: every privileged instruction faults at the instruction
    // itself. `syscall` is the exception on kvm_pvm, which enters guest
    // supervisor mode at IA32_LSTAR (0) even with EFER.SCE clear: the row
    // must then say `exposed` and why (the fetch at 0 faults at once and the
    // VMM ends the guest). On hardware KVM it is a #UD like the others.
    let sup = rows.iter().find(|r| r.probe == "vm.supervisor").unwrap();
    for part in sup.evidence.split("; ") {
        if part.starts_with("syscall:") && versus::host::kvm_mode() == versus::host::KvmMode::Pvm && part.contains(": exposed:") {
            assert!(part.contains("RIP 0x0") && part.contains("IA32_LSTAR"), "{part}");
        } else {
            assert!(part.contains(": isolated: the VMM ended the guest") && part.contains("triple fault"), "{part}");
        }
    }
    let want =
        if versus::host::kvm_mode() == versus::host::KvmMode::Pvm && sup.evidence.contains("syscall: exposed") { Outcome::Exposed } else { Outcome::Isolated };
    assert_eq!(sup.result, want, "{}", sup.evidence);
    // The evidence names what the VMM saw.
    let mem = rows.iter().find(|r| r.probe == "vm.mem_outside_ram").unwrap();
    assert!(mem.evidence.contains("outside its RAM") && mem.evidence.contains("triple fault"), "{}", mem.evidence);
    let port = rows.iter().find(|r| r.probe == "vm.unknown_port").unwrap();
    assert!(port.evidence.contains("I/O port 0x80") && port.evidence.contains("rejected"), "{}", port.evidence);
    // CPUID identity is a real comparison with the host's brand string.
    let cpu = rows.iter().find(|r| r.probe == "dev.cpu_identity").unwrap();
    assert!(matches!(cpu.result, Outcome::Exposed | Outcome::Isolated), "{}", cpu.evidence);
    assert!(cpu.evidence.contains("CPUID brand") && cpu.evidence.contains("vendor"), "{}", cpu.evidence);
    // Linux probes do not apply; nothing is an error.
    assert_eq!(result(&rows, "proc.host_pids"), Outcome::NotApplicable);
    let errors: Vec<_> = rows.iter().filter(|r| r.result == Outcome::Error).collect();
    assert!(errors.is_empty(), "probe errors on vm-bare: {errors:?}");
    assert!(my_fds() <= fds + 2, "fds before {fds}, after {}", my_fds());
    let surface = surface_rows(p.name(), &p.attack_surface(), &rows, &HostFacts::collect());
    println!("surface: {surface:?}");
    assert_eq!(surface.iter().find(|s| s.counted == SurfaceKind::VmmHostCalls).and_then(|s| s.value), Some(3));
    assert_eq!(surface.iter().find(|s| s.counted == SurfaceKind::VmExitKinds).and_then(|s| s.value), Some(1));
}

/// Positive controls: the same guest-ending probes pointed at what the
/// guest may do come out `exposed` (so `isolated` above is a finding).
#[test]
fn vm_bare_probe_controls_come_out_exposed() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    let process = VmBarePlatform::new().expect("vm-bare");
    for a in bare::vmm_probe_controls() {
        for (kind, (r, logs)) in [("in versus", inproc::run_attempt(&a, TIMEOUT)), ("in a VMM process", process.run_attempt(&a, TIMEOUT))] {
            let (o, ev) = bare::judge_attempt(&a, r, &logs);
            println!("control {} {} {kind}: {o} {ev}", a.probe, a.what);
            assert_eq!(o, Outcome::Exposed, "{}: {} {kind}: {ev}", a.probe, a.what);
        }
    }
}

#[test]
fn vm_bare_classification_flips_with_the_observation() {
    let _g = serial();
    let host = HostFacts::collect();
    let exposed = |id: &str, ev: &str| ProbeLine { id: id.into(), result: "exposed".into(), evidence: ev.into() };
    // A guest that reads the host's boot id, and VMM attempts that got through.
    let lines = vec![
        ProbeLine { id: "kernel.shared".into(), result: "observed".into(), evidence: format!("boot_id={}", host.boot_id.clone().unwrap_or_default()) },
        exposed("vm.mem_outside_ram", "a dword read of 0x600000 returned 0x0"),
        exposed("vm.unknown_port", "out to port 0x80 was accepted"),
        exposed("vm.supervisor", "attempt 0 returned"),
    ];
    let rows = classify("vm-bare", Guest::NoKernel, &lines, &host, &Context::default());
    if host.boot_id.is_some() {
        assert_eq!(result(&rows, "kernel.shared"), Outcome::Exposed);
    }
    for id in ["vm.mem_outside_ram", "vm.unknown_port", "vm.supervisor"] {
        assert_eq!(result(&rows, id), Outcome::Exposed, "{id}");
    }
    // The judge of one attempt: a guest that reported success is exposed;
    // a VMM error that does not match the attempt is not `isolated`.
    let a = &bare::vmm_probe_attempts()[0];
    let fin = versus::platform::Finished { probes: vec![exposed(a.probe, "read returned 0")], ..Default::default() };
    assert_eq!(bare::judge_attempt(a, Ok(fin), &[]).0, Outcome::Exposed);
    let wrong = versus_vmm::VmError::Mmio { addr: 0x1234_0000, dir: "read", size: 4, rip: 0x10_0000 };
    assert_eq!(bare::judge_attempt(a, Err(wrong), &[]).0, Outcome::Error);
    let sup = bare::vmm_probe_attempts().into_iter().find(|a| a.probe == "vm.supervisor").unwrap();
    let elsewhere = versus_vmm::VmError::Shutdown { rip: 0 };
    assert_eq!(
        bare::judge_attempt(&sup, Err(elsewhere), &["site=0x101000".into()]).0,
        Outcome::Exposed,
        "ending away from the instruction means control left it"
    );
    let there = versus_vmm::VmError::Shutdown { rip: 0x101000 };
    assert_eq!(bare::judge_attempt(&sup, Err(there), &["site=0x101000".into()]).0, Outcome::Isolated);
}
