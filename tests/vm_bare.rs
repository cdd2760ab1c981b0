//! vm-bare and vm-bare-inproc on real KVM: every workload runs on both rows
//! (each its own instance kind), the cpu checksum equals the process
//! platform's, and faulting, looping, bad-port and out-of-RAM guests end with
//! the right error and leak nothing.

mod common;

use common::kvm_or_skip;

use std::time::Duration;

use versus::platform::vm::bare::inproc::BareVm;
use versus::platform::vm::bare::{GuestRun, VmBareInprocPlatform, VmBarePlatform};
use versus::platform::{Instance, LaunchSpec, Platform};
use versus::workload::{expected_cpu_checksum, WorkloadSpec};
use versus::LaunchError;
use versus_vmm::abi::mode;
use versus_vmm::VmError;

/// The tests of this file run one at a time, so that the leak checks see
/// only their own VMs, fds and threads.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn spec(w: &str) -> LaunchSpec {
    let mut s = LaunchSpec::new(w.parse::<WorkloadSpec>().unwrap());
    s.timeout = Duration::from_secs(20);
    s
}

#[test]
fn every_workload_runs_and_cpu_matches_the_process_checksum() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    let process = VmBarePlatform::new().unwrap();
    let inproc = VmBareInprocPlatform::new();
    assert_eq!((process.name(), inproc.name()), ("vm-bare", "vm-bare-inproc"));
    let vmm_phases: Vec<&str> = versus::platform::vm::bare::PHASES.to_vec();
    let process_phases: Vec<&str> = std::iter::once("vmm_spawn").chain(vmm_phases.iter().copied()).collect();
    for (p, phases, own_pid) in [(&process as &dyn Platform, &process_phases, false), (&inproc as &dyn Platform, &vmm_phases, true)] {
        p.available().unwrap();
        for w in ["ready", "cpu:20000", "mem:8", "call:1000", "idle:4"] {
            let mut inst = p.launch(&spec(w)).unwrap_or_else(|e| panic!("{}: {w}: {e}", p.name()));
            // Each row's instance is its own kind: a VMM process of its own, or
            // the versus process itself.
            let me = std::process::id() as i32;
            assert_eq!(inst.pids().contains(&me), own_pid, "{}: pids {:?}", p.name(), inst.pids());
            assert_eq!(inst.vmm_memory().is_some(), !own_pid, "{}: a VMM process reports its own memory", p.name());
            let boot = inst.boot();
            let names: Vec<_> = boot.phases.iter().map(|p| p.0).collect();
            assert_eq!(&names, phases, "{}", p.name());
            let sum: f64 = boot.phases.iter().map(|p| p.1).sum();
            assert!((sum - boot.total_ms()).abs() < 1e-6, "{w}: phases {sum} vs total {}", boot.total_ms());
            assert!(boot.total_ms() > 0.0);
            let name = w.split(':').next().unwrap();
            if name == "idle" {
                // An idle guest never finishes by itself: it is stopped.
                inst.stop().unwrap();
                continue;
            }
            let fin = inst.finish().unwrap_or_else(|e| panic!("{w}: {e}"));
            if name == "ready" {
                assert!(fin.results.is_empty());
            } else {
                assert_eq!(fin.results.len(), 1, "{w}: {fin:?}");
                let r = &fin.results[0];
                assert_eq!(r.get("workload"), Some(name));
                assert!(r.elapsed_ns().is_some(), "{w}: {r:?}");
            }
            if name == "cpu" {
                assert_eq!(fin.results[0].checksum(), Some(expected_cpu_checksum(20000).as_str()));
            }
            if name == "call" {
                assert_eq!(fin.results[0].get_u64("param"), Some(1000));
                assert!(fin.results[0].get_u64("per_call_ns").is_some());
            }
            let ms = inst.stop().unwrap();
            assert!(ms >= 0.0);
        }
    }
}

fn launch_err(m: u32, param: u32, timeout: Duration) -> VmError {
    match BareVm::launch(GuestRun { mode: m, param }, timeout) {
        Ok(_) => panic!("mode {m:#x} launched"),
        Err(e) => e,
    }
}

#[test]
fn faulting_guest_is_a_shutdown_with_rip() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    match launch_err(mode::FAULT, 0, Duration::from_secs(10)) {
        VmError::Shutdown { rip } => assert!(rip >= 0x10_0000, "rip {rip:#x}"),
        e => panic!("expected a shutdown exit, got: {e}"),
    }
}

#[test]
fn endless_loop_times_out() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    let t = std::time::Instant::now();
    match launch_err(mode::LOOP, 0, Duration::from_millis(300)) {
        VmError::Timeout { what, .. } => assert_eq!(what, "signal ready"),
        e => panic!("expected a timeout, got: {e}"),
    }
    assert!(t.elapsed() < Duration::from_secs(5), "the timeout must stop the vCPU promptly");
}

#[test]
fn unknown_port_is_rejected() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    match launch_err(mode::BADPORT, 0x1234, Duration::from_secs(10)) {
        VmError::UnknownPort { port, dir, size, rip } => {
            assert_eq!((port, dir, size), (0x1234, "out", 4));
            assert!(rip >= 0x10_0000);
        }
        e => panic!("expected an unknown-port error, got: {e}"),
    }
}

#[test]
fn access_outside_ram_is_an_mmio_error() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    for (m, dir) in [(mode::OOB_READ, "read"), (mode::OOB_WRITE, "write")] {
        match launch_err(m, 3072, Duration::from_secs(10)) {
            VmError::Mmio { addr, dir: d, size, .. } => {
                assert_eq!((addr, d, size), (3072 << 20, dir, 4));
            }
            e => panic!("expected an MMIO error for {dir}, got: {e}"),
        }
    }
}

#[test]
fn guest_panic_is_an_abort() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    let mut vm = BareVm::launch(GuestRun { mode: mode::PANIC, param: 0 }, Duration::from_secs(10)).unwrap();
    match vm.finish() {
        Err(VmError::Aborted(s)) => assert!(s.contains("panicking on purpose"), "{s}"),
        other => panic!("expected an abort, got {other:?}"),
    }
    let l: LaunchError = VmError::Aborted("x".into()).into();
    assert!(matches!(l, LaunchError::Aborted(_)));
}

fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    s.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096
}

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().count()
}

#[test]
fn thousand_launches_keep_rss_flat_and_leak_no_fd_thread_or_mapping() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    let p = VmBareInprocPlatform::new();
    let s = spec("ready");
    let one = |i: usize| {
        let mut inst = p.launch(&s).unwrap_or_else(|e| panic!("launch {i}: {e}"));
        inst.finish().unwrap();
        inst.stop().unwrap();
    };
    // Warm up: process-wide state (the /dev/kvm fd, the CPUID table, the
    // thread's kick timer, allocator pools) is created once.
    for i in 0..50 {
        one(i);
    }
    // Also the error paths.
    for _ in 0..20 {
        let _ = BareVm::launch(GuestRun { mode: mode::BADPORT, param: 0x99 }, Duration::from_secs(5)).err().unwrap();
    }
    let (rss0, fds0, tasks0, maps0) = (rss_bytes(), count("/proc/self/fd"), count("/proc/self/task"), mappings());
    let t = std::time::Instant::now();
    for i in 0..1000 {
        one(i);
        if i % 100 == 0 {
            let _ = BareVm::launch(GuestRun { mode: mode::FAULT, param: 0 }, Duration::from_secs(5)).err().unwrap();
        }
    }
    let el = t.elapsed();
    // A joined thread can linger in /proc/self/task for a moment after
    // pthread_join returns; wait for it, bounded.
    let settle = std::time::Instant::now() + Duration::from_secs(1);
    while count("/proc/self/task") > tasks0 && std::time::Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (rss1, fds1, tasks1, maps1) = (rss_bytes(), count("/proc/self/fd"), count("/proc/self/task"), mappings());
    eprintln!("1000 launches in {el:?}; rss {rss0} -> {rss1}; fds {fds0} -> {fds1}; tasks {tasks0} -> {tasks1}; maps {maps0} -> {maps1}");
    assert_eq!(fds1, fds0, "fd leak");
    assert!(tasks1 <= tasks0, "thread leak: {tasks0} -> {tasks1}");
    assert!(maps1 <= maps0 + 2, "mapping leak: {maps0} -> {maps1}");
    assert!(rss1 < rss0 + (4 << 20), "RSS grew by {} bytes over 1000 launches", rss1.saturating_sub(rss0));
}

#[test]
fn vmm_process_runs_workloads_and_reports_memory() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    // The embedded static versus-vmm (VERSUS_VMM picks another build).
    let p = VmBarePlatform::new().unwrap();
    p.available().unwrap();
    let fds0 = count("/proc/self/fd");

    let mut inst = p.launch(&spec("cpu:1000")).unwrap();
    let names: Vec<_> = inst.boot().phases.iter().map(|p| p.0).collect();
    assert_eq!(names, ["vmm_spawn", "vm_create", "guest_memory", "image_load", "vcpu_setup", "ready"]);
    assert_eq!(inst.pids().len(), 1);
    let fin = inst.finish().unwrap();
    assert_eq!(fin.results[0].checksum(), Some(expected_cpu_checksum(1000).as_str()));
    inst.stop().unwrap();

    // Mode specs in the VMM process: probe runs for real, stress-fork is
    // refused before any process is spawned.
    let mut inst = p.launch(&spec("probe")).unwrap();
    let fin = inst.finish().unwrap();
    inst.stop().unwrap();
    assert!(fin.probes.iter().any(|l| l.id == "dev.cpu_identity"), "{fin:?}");
    assert!(matches!(p.launch(&spec("stress-fork:100")), Err(LaunchError::Unsupported(_))));

    // An idle guest that touched 16 MiB: its VMM's PSS includes them, the
    // VMM's own resident memory excludes them.
    let inst = p.launch_process(&spec("idle:16")).unwrap();
    assert!(!inst.guest_ram.is_empty());
    let m = inst.vmm_memory().expect("a VMM process instance reports its memory").unwrap();
    let host = versus::experiment::memory::read_pids(&inst.pids()).unwrap();
    eprintln!("idle:16 in versus-vmm: {m:?}, PSS {}", host.pss_bytes);
    assert!(m.guest_ram_rss >= 16 << 20, "{m:?}");
    assert!(host.pss_bytes >= m.guest_ram_rss as i64, "{m:?}");
    assert!(m.rss_excl_guest > 0 && m.rss_excl_guest < 16 << 20, "{m:?}");
    let pid = inst.pids()[0];
    if std::env::var_os("VERSUS_VMM").is_none() {
        // Linked statically, as Firecracker is: no shared library pages
        // count against mem.vmm, and none are mapped at all.
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        let libs: Vec<&str> = maps.lines().filter(|l| l.contains(".so")).collect();
        assert!(libs.is_empty(), "the embedded versus-vmm maps shared libraries: {libs:?}");
    }
    Box::new(inst).stop().unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.contains(") Z")).unwrap_or(true),
        "VMM process {pid} still alive after stop"
    );

    // A guest error reaches the caller as the VMM's ABORT.
    let err = p.launch(&spec("mem:4000")).err().expect("a 4000 MiB heap is above the guest RAM limit");
    eprintln!("mem:4000 -> {err}");
    assert!(err.to_string().contains("at most 3072 MiB"), "{err}");
    assert_eq!(count("/proc/self/fd"), fds0, "fd leak");
}

#[test]
fn guest_rdtsc_timing_agrees_with_the_host_clock() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    let mut vm = BareVm::launch(GuestRun { mode: mode::CPU, param: 100_000 }, Duration::from_secs(20)).unwrap();
    let t = std::time::Instant::now();
    let fin = vm.finish().unwrap();
    let host_ns = t.elapsed().as_nanos() as u64;
    let guest_ns = fin.results[0].elapsed_ns().unwrap();
    eprintln!("cpu:100000 guest rdtsc {guest_ns} ns, host around it {host_ns} ns");
    // The host interval contains the guest's; the difference is a VM exit
    // or two (well under 10 ms) unless the guest clock is wrong.
    assert!(guest_ns <= host_ns, "guest {guest_ns} > host {host_ns}: guest TSC conversion too slow");
    assert!(host_ns - guest_ns < 10_000_000, "guest {guest_ns} vs host {host_ns}: guest TSC conversion too fast");
}

#[test]
fn oversized_guest_is_refused_before_allocating() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    match BareVm::launch(GuestRun { mode: mode::MEM, param: 4000 }, Duration::from_secs(5)) {
        Err(VmError::Memory { bytes, reason }) => {
            assert!(bytes > 3 << 30);
            assert!(reason.contains("at most 3072 MiB"), "{reason}");
        }
        Err(e) => panic!("expected a memory error, got {e}"),
        Ok(_) => panic!("a 4000 MiB heap must be refused"),
    }
}

#[test]
fn ctrl_c_stops_a_spinning_guest_promptly() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    versus::interrupt::clear();
    let t = std::time::Instant::now();
    let stopper = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(200));
        versus::interrupt::request();
    });
    let r = BareVm::launch(GuestRun { mode: mode::LOOP, param: 0 }, Duration::from_secs(60));
    stopper.join().unwrap();
    versus::interrupt::clear();
    assert!(matches!(r, Err(VmError::Interrupted)), "{:?}", r.err());
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
}

#[test]
fn probe_mode_reports_probe_lines() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    let mut vm = BareVm::launch(GuestRun { mode: mode::PROBE, param: 0 }, Duration::from_secs(10)).unwrap();
    let fin = vm.finish().unwrap();
    let ids: Vec<_> = fin.probes.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["kernel.shared", "dev.cpu_identity"], "{:?}", fin.probes);
    assert!(fin.probes[0].evidence.starts_with("kernel=none cs=0x"), "{:?}", fin.probes[0]);
    let cpuid = &fin.probes[1];
    assert!(cpuid.evidence.contains("brand=") && cpuid.evidence.contains("vendor="), "{cpuid:?}");
}

/// A probe or stress spec is run for real or refused, never run as the
/// `ready` workload its `.0` holds.
#[test]
fn mode_specs_run_for_real_or_are_refused() {
    let _g = serial();
    if !kvm_or_skip() {
        return;
    }
    let p = VmBareInprocPlatform::new();
    // probe: PROBE lines come back (`ready` would report none).
    let mut i = p.launch(&spec("probe")).unwrap();
    let fin = i.finish().unwrap();
    i.stop().unwrap();
    assert!(fin.probes.iter().any(|l| l.id == "kernel.shared"), "{fin:?}");
    // stress-cpu / stress-mem: a RESULT of that stress with work done.
    for (w, name) in [("stress-cpu:150", "stress-cpu"), ("stress-mem:150", "stress-mem")] {
        let t = std::time::Instant::now();
        let mut i = p.launch(&spec(w)).unwrap();
        let fin = i.finish().unwrap();
        i.stop().unwrap();
        let r = fin.results.iter().find(|r| r.get("workload") == Some(name)).unwrap_or_else(|| panic!("{w}: {fin:?}"));
        let work = u64::from_str_radix(r.checksum().unwrap(), 16).unwrap();
        assert!(work > 0, "{w}: {r:?}");
        assert!(r.elapsed_ns().unwrap() >= 150_000_000, "{w} ran {:?}", r.elapsed_ns());
        println!("{w}: work {work} in {:?}", t.elapsed());
    }
    // A stress neighbour stopped early ends promptly (its stop flag).
    let t = std::time::Instant::now();
    let i = p.launch(&spec("stress-cpu:20000")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    i.stop().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "stop took {:?}", t.elapsed());
    // stress-fork: refused as unsupported, with the reason.
    match p.launch(&spec("stress-fork:100")) {
        Err(LaunchError::Unsupported(why)) => assert!(why.contains("no kernel"), "{why}"),
        Err(e) => panic!("expected Unsupported, got {e}"),
        Ok(_) => panic!("stress-fork must be refused on vm-bare"),
    }
}
