//! Tests on a host whose KVM is hardware-style (kvm_intel / kvm_amd): this
//! host when it has one, else the QEMU/TCG-emulated AMD host of
//! harness/kvm-host (see tests/common/kvm_host.rs). Skipped, saying so, only
//! where neither exists. In the emulated host on a 2-core CI machine: `env`
//! about 20 s, the five vm-linux launches 1.5 to 3 minutes (one outer boot
//! each test; they run one at a time).

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::kvm_host::{run_shell, run_versus, KvmHost};

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
fn vm_linux_boots_to_ready_and_every_workload_returns_its_result() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rounds = 2000;
    let workloads = [format!("cpu:{rounds}"), "ready".into(), "mem:16".into(), "call:1000".into(), "idle:16".into()];
    // One boot of the emulated host, one vm-linux boot per workload; a failed
    // launch says which on stdout and goes on (its error is on stderr).
    let line = format!(
        "for w in {}; do versus launch vm-linux -w $w --json --timeout 240 || echo \"FAILED $w\"; done",
        workloads.join(" ")
    );
    let Some(run) = run_shell(&line, Duration::from_secs(900)) else {
        return;
    };
    assert!(run.status.success(), "{}", run.describe());
    assert!(!run.stdout.contains("FAILED"), "a launch failed: {}", run.describe());
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&run.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("launch --json output is not JSON ({e}): {}", run.describe()));
    let names: Vec<&str> = docs.iter().filter_map(|d| d["workload"].as_str()).collect();
    assert_eq!(names, ["cpu:2000", "ready", "mem:16", "call:1000", "idle:16"], "{}", run.describe());
    for d in &docs {
        let w = d["workload"].as_str().unwrap_or_default();
        // Representative where KVM is hardware-style: no note.
        assert!(d["representative"].is_null(), "{w}: {d}");
        let metrics: Vec<&str> = d["rows"]
            .as_array()
            .map(|r| r.iter().filter_map(|m| m["metric"].as_str()).collect())
            .unwrap_or_default();
        for m in ["boot", "boot.vmm", "boot.kernel", "boot.init", "teardown"] {
            assert!(metrics.contains(&m), "{w}: no {m} row: {d}");
        }
        let results = d["results"].as_array().cloned().unwrap_or_default();
        let name = w.split(':').next().unwrap_or_default();
        match name {
            // Ready and idle report no RESULT (on every platform).
            "ready" | "idle" => assert!(results.is_empty(), "{w}: {d}"),
            _ => assert!(results.iter().any(|r| r["workload"] == name), "{w}: no RESULT: {d}"),
        }
        if name == "cpu" {
            let r = results.iter().find(|r| r["workload"] == "cpu").cloned().unwrap_or_default();
            assert_eq!(
                r["checksum"].as_str(),
                Some(versus::workload::expected_cpu_checksum(rounds).as_str()),
                "the guest's checksum equals the process platform's"
            );
        }
    }
}
