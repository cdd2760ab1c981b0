//! Noisy-neighbour interference on real platforms: rows for every stress,
//! and a fork bomb that never escapes its sandbox.

use std::time::Duration;

use versus::experiment::interference::{run_interference, Config, Interference};
use versus::platform::container::{ContainerOptions, ContainerPlatform};
use versus::platform::process::ProcessPlatform;
use versus::platform::vm::bare::{VmBareInprocPlatform, VmBarePlatform};
use versus::platform::{Limits, Platform};
use versus::workload::StressKind;

/// One test at a time: each measures slowdowns, and a concurrent test's
/// neighbour (a fork bomb above all) would be everyone's neighbour.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn config() -> Config {
    Config { reps: 2, max_window: Duration::from_secs(8), ..Config::default() }
}

fn check(p: &dyn Platform, r: &Interference) {
    check_stresses(p, r, &StressKind::ALL);
    assert!(r.not_applicable.is_empty(), "{:?}", r.not_applicable);
}

fn check_stresses(p: &dyn Platform, r: &Interference, stresses: &[StressKind]) {
    for s in &r.samples {
        println!("{} {} {} {} {:.3}", s.platform, s.workload, s.metric, s.iteration, s.value);
    }
    for n in &r.neighbours {
        println!(
            "{}: neighbour {:?} window {} ms work {} procs before {} after {} victim runs {:?}",
            p.name(),
            n.stress,
            n.window_ms,
            n.work,
            n.procs_before,
            n.procs_after,
            n.victim_runs
        );
    }
    let cfg = config();
    for &stress in stresses {
        for v in &cfg.victims {
            let rows: Vec<_> =
                r.samples.iter().filter(|s| s.metric == versus::experiment::interference::metric_of(stress) && s.workload == v.to_string()).collect();
            assert!(!rows.is_empty(), "{}: no interference.{} rows for {v}", p.name(), stress.name());
            assert!(rows.iter().all(|s| s.value.is_finite() && s.value > 0.0 && s.unit == "ratio"), "{rows:?}");
        }
    }
    assert_eq!(r.neighbours.len(), stresses.len());
    for n in &r.neighbours {
        assert!(n.work > 0, "{:?} did no work", n.stress);
        assert_eq!(n.procs_after, n.procs_before, "{:?} neighbour left processes behind", n.stress);
        assert_eq!(n.procs_after, 0, "no instance of this platform may be left running");
    }
}

fn fork_peak(r: &Interference) -> u64 {
    r.neighbours.iter().find(|n| n.stress == StressKind::Fork).map(|n| n.work).unwrap_or(0)
}

#[test]
fn process_interference_and_unbounded_fork_bomb() {
    let _g = serial();
    let p = ProcessPlatform::new().unwrap();
    let r = run_interference(&p, &config()).unwrap();
    check(&p, &r);
    // Nothing but the bomb's own cap limits it on the process platform:
    // it grows past the container's pids limit.
    assert!(fork_peak(&r) > Limits::default().pids, "peak {}", fork_peak(&r));
}

#[test]
fn container_interference_and_fork_bomb_contained_by_pids_limit() {
    let _g = serial();
    let p = ContainerPlatform::new(ContainerOptions::default()).unwrap();
    let r = run_interference(&p, &config()).unwrap();
    check(&p, &r);
    let peak = fork_peak(&r);
    assert!(peak > 1 && peak <= Limits::default().pids, "the pids limit ({}) must stop the bomb: peak {peak}", Limits::default().pids);
}

#[test]
fn vm_bare_interference_for_cpu_and_mem_and_no_fork_bomb() {
    let _g = serial();
    if let Err(why) = versus_vmm::vm::available() {
        eprintln!("SKIPPED: no usable KVM on this host: {why}");
        return;
    }
    // The VMM-process row: neighbours are VMM processes of their own.
    let p = VmBarePlatform::new().unwrap();
    let r = run_interference(&p, &config()).unwrap();
    check_stresses(&p, &r, &[StressKind::Cpu, StressKind::Mem]);
    assert!(r.not_applicable.iter().any(|(s, _)| *s == StressKind::Fork));
    // The in-process row: neighbours are vCPU threads of versus.
    let p = VmBareInprocPlatform::new();
    let threads = || std::fs::read_dir("/proc/self/task").map(|d| d.count()).unwrap_or(0);
    let before = threads();
    let r = run_interference(&p, &config()).unwrap();
    check_stresses(&p, &r, &[StressKind::Cpu, StressKind::Mem]);
    // A fork bomb has no meaning without a kernel: refused, recorded as not
    // applicable, and no row pretends otherwise.
    assert!(r.samples.iter().all(|s| s.metric != versus::model::Metric::InterferenceFork), "fork rows on vm-bare");
    assert_eq!(r.not_applicable.len(), 1, "{:?}", r.not_applicable);
    assert_eq!(r.not_applicable[0].0, StressKind::Fork);
    assert!(r.not_applicable[0].1.contains("no kernel"), "{}", r.not_applicable[0].1);
    // The neighbours' vCPU threads are gone (a joined thread can linger in
    // /proc/self/task for a moment after pthread_join returns).
    let settle = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while threads() > before && std::time::Instant::now() < settle {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(threads() <= before, "threads before {before}, after {}", threads());
}
