//! Tests on a host whose KVM is hardware-style (kvm_intel / kvm_amd): this
//! host when it has one, else the QEMU/TCG-emulated AMD host of
//! harness/kvm-host (see tests/common/kvm_host.rs). Skipped, saying so, only
//! where neither exists. In the emulated host on a 2-core CI machine: `env`
//! about 30 s, the vm-linux launch about 60 s (one outer boot each); they run
//! one at a time.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::kvm_host::{run_versus, KvmHost};

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
        }
        KvmHost::Native { module } => assert_eq!(mode["module"].as_str(), Some(module.as_str())),
    }
    // The supervisor/user loop measurement ran (its value is timing: not asserted).
    assert!(env["measurements"]["kvm_speed"]["cpl0_iters_per_s"].is_number(), "{}", run.describe());
}

#[test]
fn vm_linux_boots_to_ready_and_computes_the_process_checksum() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rounds = 2000;
    let w = format!("cpu:{rounds}");
    let Some(run) = run_versus(&["launch", "vm-linux", "-w", &w, "--json", "--timeout", "240"], Duration::from_secs(600)) else {
        return;
    };
    assert!(run.status.success(), "vm-linux launch failed: {}", run.describe());
    let out: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("launch --json is not JSON ({e}): {}", run.describe()));
    // Representative where KVM is hardware-style: no note.
    assert!(out["representative"].is_null(), "{}", run.describe());
    let metrics: Vec<&str> = out["rows"]
        .as_array()
        .map(|r| r.iter().filter_map(|m| m["metric"].as_str()).collect())
        .unwrap_or_default();
    for m in ["boot", "boot.vmm", "boot.kernel", "boot.init", "cpu"] {
        assert!(metrics.contains(&m), "no {m} row: {}", run.describe());
    }
    let results = out["results"].as_array().cloned().unwrap_or_default();
    let cpu = results
        .iter()
        .find(|r| r["workload"] == "cpu")
        .unwrap_or_else(|| panic!("no cpu RESULT: {}", run.describe()));
    assert_eq!(
        cpu["checksum"].as_str(),
        Some(versus::workload::expected_cpu_checksum(rounds).as_str()),
        "the guest's checksum equals the process platform's"
    );
}
