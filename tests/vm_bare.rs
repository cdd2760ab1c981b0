//! vm-bare on real KVM: every workload runs, the cpu checksum equals the
//! process platform's, and faulting, looping, bad-port and out-of-RAM guests
//! end with the right error and leak nothing.

use std::time::Duration;

use versus::platform::vm::abi::mode;
use versus::platform::vm::bare::{BareVm, GuestRun, VmBarePlatform};
use versus::platform::vm::VmError;
use versus::platform::{LaunchSpec, Platform};
use versus::workload::{expected_cpu_checksum, WorkloadSpec};
use versus::LaunchError;

fn kvm_or_skip() -> bool {
    match versus::platform::vm::vm::available() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("SKIPPED: no usable KVM on this host: {why}");
            false
        }
    }
}

fn spec(w: &str) -> LaunchSpec {
    let mut s = LaunchSpec::new(w.parse::<WorkloadSpec>().unwrap());
    s.timeout = Duration::from_secs(20);
    s
}

#[test]
fn every_workload_runs_and_cpu_matches_the_process_checksum() {
    if !kvm_or_skip() {
        return;
    }
    let p = VmBarePlatform::new();
    assert_eq!(p.name(), "vm-bare");
    p.available().unwrap();
    for w in ["ready", "cpu:20000", "mem:8", "call:1000", "idle:4"] {
        let mut inst = p.launch(&spec(w)).unwrap_or_else(|e| panic!("{w}: {e}"));
        let boot = inst.boot();
        let names: Vec<_> = boot.phases.iter().map(|p| p.0).collect();
        assert_eq!(names, versus::platform::vm::bare::PHASES);
        let sum: f64 = boot.phases.iter().map(|p| p.1).sum();
        assert!((sum - boot.total_ms()).abs() < 1e-6, "{w}: phases {sum} vs total {}", boot.total_ms());
        assert!(boot.total_ms() > 0.0);
        let fin = inst.finish().unwrap_or_else(|e| panic!("{w}: {e}"));
        let name = w.split(':').next().unwrap();
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

fn launch_err(m: u32, param: u32, timeout: Duration) -> VmError {
    match BareVm::launch(GuestRun { mode: m, param }, timeout) {
        Ok(_) => panic!("mode {m:#x} launched"),
        Err(e) => e,
    }
}

#[test]
fn faulting_guest_is_a_shutdown_with_rip() {
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
