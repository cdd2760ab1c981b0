//! The isolation-probe matrix on real platforms, with positive and negative
//! controls: a probe that cannot come out both ways is a defect.

use std::time::{Duration, Instant};

use versus::measure::probes::{run_probes, syscall_surface, HostFacts, Outcome, ProbeRow, CATALOGUE};
use versus::platform::container::{ContainerOptions, ContainerPlatform};
use versus::platform::process::ProcessPlatform;
use versus::platform::Platform;

const TIMEOUT: Duration = Duration::from_secs(20);

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
    if versus::measure::probes::host_syscalls().is_some() {
        assert!(surface.value.unwrap_or(0) > 200, "{surface:?}");
    }
}

#[test]
fn container_isolates_pids_network_root_but_shares_the_kernel() {
    let p = ContainerPlatform::new(ContainerOptions::default()).expect("container platform");
    let fds = my_fds();
    let rows = matrix(&p);
    for id in ["proc.host_pids", "ns.pid", "fs.host_root", "fs.host_mounts", "ns.mnt", "ns.net", "net.host_interfaces", "net.host_loopback", "net.host_unix", "ns.uts", "kif.hostname", "proc.host_env", "ns.cgroup", "dev.kvm", "dev.block"] {
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
    let p = ContainerPlatform::new(ContainerOptions { pid_namespace: false, cgroup: true }).expect("container platform");
    let rows = matrix(&p);
    assert_eq!(result(&rows, "proc.host_pids"), Outcome::Exposed);
    assert_eq!(result(&rows, "ns.pid"), Outcome::Exposed);
    // The rest of the isolation stays.
    assert_eq!(result(&rows, "ns.net"), Outcome::Isolated);
    assert_eq!(result(&rows, "net.host_loopback"), Outcome::Isolated);
}

#[test]
fn hostname_change_inside_the_container_does_not_reach_the_host() {
    let before = nix::sys::utsname::uname().unwrap().nodename().to_string_lossy().into_owned();
    let p = ContainerPlatform::new(ContainerOptions::default()).expect("container platform");
    let rows = run_probes(&p, TIMEOUT).unwrap();
    let r = rows.iter().find(|r| r.probe == "kif.hostname").unwrap();
    assert_eq!(r.result, Outcome::Isolated, "{}", r.evidence);
    assert!(r.evidence.contains("versus-"), "the container's own hostname is reported: {}", r.evidence);
    assert_eq!(nix::sys::utsname::uname().unwrap().nodename().to_string_lossy(), before);
}

