//! vm-linux integration tests: a real Linux kernel (Debian's cloud kernel,
//! fetched by harness/fetch-kernel) booted in the versus VMM.
//!
//! - `forced_boot_prints_banner_cmdline_and_e820`: runs on every KVM host,
//!   including kvm_pvm hosts where guest kernel code is emulated (`--force`
//!   semantics): boots the extracted vmlinux and reads the console until the
//!   kernel printed its banner, command line and e820 map, and checks them
//!   against what the VMM configured.
//! - `boot_to_ready_runs_every_workload`: every workload to READY and its
//!   RESULT, in this process on a hardware-assisted host (KVM fds and vCPU
//!   threads checked after each); elsewhere the same launches run as
//!   `versus launch vm-linux` inside harness/kvm-host's emulated host.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use versus::host::{kvm_mode, KvmMode};
use versus::platform::vm::linux::{self, LinuxOptions, LinuxPlatform};
use versus::platform::{LaunchSpec, Platform};
use versus::workload::{Workload, WorkloadSpec};
use versus_vmm::linux::bootparams::e820_map;
use versus_vmm::linux::{cmdline, EMULATION_WORKAROUNDS};

fn kernel() -> PathBuf {
    if let Some(p) = std::env::var_os("VERSUS_TEST_KERNEL") {
        return p.into();
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/harness/fetch-kernel");
    let o = Command::new(script).output().unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(
        o.status.success(),
        "harness/fetch-kernel failed: {}; run it by hand (as root it can apt-get update) or set VERSUS_TEST_KERNEL",
        String::from_utf8_lossy(&o.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&o.stdout).trim())
}

/// Tests that create VMs run one at a time, so the leak checks below see
/// only their own VM.
static VM_TESTS: Mutex<()> = Mutex::new(());

/// KVM fds (VM, vCPU) and eventfds (irqfds) open in this process, and live vCPU threads of
/// vm-linux (comm truncated to 15 bytes).
fn kvm_resources() -> (usize, usize) {
    let fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .map(|l| {
                            let l = l.to_string_lossy();
                            l.starts_with("anon_inode:kvm-") || l == "anon_inode:[eventfd]"
                        })
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0);
    let threads = std::fs::read_dir("/proc/self/task")
        .map(|d| d.flatten().filter(|e| std::fs::read_to_string(e.path().join("comm")).map(|c| c.trim() == "versus-linux-vc").unwrap_or(false)).count())
        .unwrap_or(0);
    (fds, threads)
}

/// [`kvm_resources`] once it is back to `want`, or after a second. A joined
/// thread can linger in /proc/self/task for a moment after pthread_join
/// returns (the kernel wakes the joiner when the thread drops its memory,
/// before the task is released), so the check waits for that, bounded.
fn kvm_resources_settled(want: (usize, usize)) -> (usize, usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let now = kvm_resources();
        if now == want || std::time::Instant::now() >= deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Strips the `[    0.000000] ` timestamp printk adds.
fn message(line: &str) -> &str {
    match line.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((ts, rest)) if ts.trim().parse::<f64>().is_ok() => rest,
        _ => line,
    }
}

#[test]
fn forced_boot_prints_banner_cmdline_and_e820() {
    if matches!(kvm_mode(), KvmMode::Absent) {
        panic!("/dev/kvm is absent: this test boots a real kernel in the versus VMM and cannot run here");
    }
    let _serial = VM_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let before = kvm_resources();
    let mem_mib = 256;
    let opts = LinuxOptions { kernel: Some(kernel()), force: true, timeout: Duration::from_secs(240), mem_mib, ..Default::default() };
    let args = vec!["ready".to_string()];
    // The VMM's command line: the base one, plus the emulation workarounds
    // where guest kernel code is emulated.
    let extra = if matches!(kvm_mode(), KvmMode::Pvm) { EMULATION_WORKAROUNDS } else { "" };
    let want_cmdline = format!("Command line: {}", cmdline(&args, true, extra));
    let want_e820: Vec<String> = e820_map(mem_mib << 20).iter().map(|e| e.kernel_log_line()).collect();
    let cb = linux::boot_console(&opts, &args, |lines| {
        let msgs: Vec<&str> = lines.iter().map(|l| message(l)).collect();
        msgs.iter().any(|m| m.starts_with("Linux version ")) && msgs.iter().any(|m| *m == want_cmdline) && want_e820.iter().all(|w| msgs.iter().any(|m| m == w))
    })
    .expect("build and start the VM");
    eprintln!(
        "vm-linux forced boot: VM set-up {:?}, guest ran {:?} until the e820 map was printed ({} console lines; reached: {}; kvm mode {:?})",
        cb.setup_time,
        cb.guest_time,
        cb.lines.len(),
        cb.reached,
        kvm_mode()
    );
    let msgs: Vec<&str> = cb.lines.iter().map(|l| message(l)).collect();
    assert!(cb.reached, "the kernel did not print banner, command line and e820 map; ended: {:?}; console:\n{}", cb.ended, cb.lines.join("\n"));
    // The banner printed is the one in the image.
    let banner = cb.banner.as_deref().expect("the vmlinux carries a `Linux version` banner");
    assert!(msgs.contains(&banner), "banner {banner:?} not printed; console:\n{}", cb.lines.join("\n"));
    // The command line is exactly the configured one.
    assert_eq!(format!("Command line: {}", cb.cmdline), want_cmdline);
    assert_eq!(msgs.iter().filter(|m| m.starts_with("Command line: ")).collect::<Vec<_>>(), vec![&want_cmdline.as_str()]);
    // Every e820 entry, and nothing else, is the one the VMM configured.
    let printed: Vec<&str> = msgs.iter().copied().filter(|m| m.starts_with("BIOS-e820: ")).collect();
    let configured: Vec<String> = cb.e820.iter().map(|e| e.kernel_log_line()).collect();
    assert_eq!(configured, want_e820);
    assert_eq!(printed, configured.iter().map(String::as_str).collect::<Vec<_>>());
    // The stopped VM left no KVM fd and no vCPU thread behind.
    assert_eq!(kvm_resources_settled(before), before, "(KVM fds, vCPU threads) before vs after the VM");
}

#[test]
fn boot_to_ready_runs_every_workload() {
    let mode = kvm_mode();
    if !matches!(mode, KvmMode::Hardware { .. }) {
        // This host's KVM cannot boot Linux (kvm_pvm, or none): the same
        // launches, each a `versus launch` of its own VMM process, in the
        // emulated host (one boot of it for all four).
        let workloads = ["ready", "cpu:2000", "mem:16", "call:10000"];
        let line = workloads.iter().map(|w| format!("versus launch vm-linux -w {w} --json --timeout 300 || exit 1")).collect::<Vec<_>>().join("; ");
        let Some(run) = common::kvm_host::run_shell(&line, Duration::from_secs(1200)) else {
            panic!("SKIPPED, NOT PASSED: this host's KVM is {mode:?} and QEMU (harness/kvm-host) is not installed: run harness/setup-test-host");
        };
        assert!(run.status.success(), "{}\n{}", run.stdout, run.stderr);
        // One JSON document per launch, in order.
        let docs: Vec<serde_json::Value> =
            serde_json::Deserializer::from_str(&run.stdout).into_iter::<serde_json::Value>().map(|d| d.expect("launch --json output")).collect();
        assert_eq!(docs.len(), workloads.len(), "{}", run.stdout);
        for (w, d) in workloads.iter().zip(&docs) {
            assert_eq!(d["platform"], "vm-linux", "{w}: {d}");
            let phases: Vec<&str> = d["rows"].as_array().into_iter().flatten().filter_map(|r| r["metric"].as_str()?.strip_prefix("boot.")).collect();
            assert_eq!(phases, linux::PHASES.to_vec(), "{w}: {d}");
            let name = w.split(':').next().unwrap_or(w);
            let result = d["results"].as_array().into_iter().flatten().find(|r| r["workload"] == name);
            match name {
                "ready" => {}
                "cpu" => assert_eq!(
                    result.and_then(|r| r["checksum"].as_str()),
                    Some(versus::workload::expected_cpu_checksum(2000).as_str()),
                    "cpu checksum equals the other platforms': {d}"
                ),
                _ => assert!(result.is_some(), "{w}: no RESULT in {d}"),
            }
        }
        return;
    }
    let _serial = VM_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let before = kvm_resources();
    let p = LinuxPlatform::new(LinuxOptions { kernel: Some(kernel()), ..Default::default() });
    p.available().expect("vm-linux available");
    p.representative().expect("representative on a hardware-assisted host");
    for w in [Workload::Ready, Workload::Cpu { rounds: 2000 }, Workload::Mem { mib: 16 }, Workload::Call { n: 10_000 }] {
        let mut spec = LaunchSpec::new(WorkloadSpec::Bench(w));
        spec.timeout = Duration::from_secs(30);
        let mut inst = p.launch(&spec).unwrap_or_else(|e| panic!("{w:?}: {e}"));
        let boot = inst.boot().clone();
        assert_eq!(boot.phases.iter().map(|p| p.0).collect::<Vec<_>>(), linux::PHASES.to_vec());
        let fin = inst.finish().unwrap_or_else(|e| panic!("{w:?}: {e}"));
        let teardown = inst.stop().unwrap();
        eprintln!("{w:?}: boot {:.1} ms {:?}, teardown {teardown:.1} ms", boot.total_ms(), boot.phases);
        if let Workload::Cpu { rounds } = w {
            let r = fin.results.iter().find(|r| r.get("workload") == Some("cpu")).expect("cpu result");
            assert_eq!(r.checksum(), Some(versus::workload::expected_cpu_checksum(rounds).as_str()), "cpu checksum equals the other platforms'");
        } else if w != Workload::Ready {
            assert!(fin.results.iter().any(|r| r.get("workload") == Some(w.name())), "{w:?}: {fin:?}");
        }
        assert_eq!(kvm_resources_settled(before), before, "{w:?}: (KVM fds, vCPU threads) before vs after the VM");
    }
}

#[test]
fn unforced_launch_is_refused_where_kernel_code_is_emulated() {
    let mode = kvm_mode();
    let p = LinuxPlatform::new(LinuxOptions { kernel: Some(kernel()), ..Default::default() });
    let Some(why) = linux::not_representative_reason(&mode, versus::host::KvmSpeed::of_this_host()) else {
        // Hardware-assisted: representative, and the refusal does not apply.
        assert_eq!(p.representative(), Ok(()));
        return;
    };
    assert_eq!(p.representative(), Err(why.clone()));
    let err = p.launch(&LaunchSpec::new(WorkloadSpec::Bench(Workload::Ready))).err().expect("an unforced launch must be refused here");
    assert!(err.to_string().contains("--force"), "{err}");
    // No kernel: not available, with what to do.
    let none = LinuxPlatform::new(LinuxOptions { kernel: Some("/nonexistent/vmlinuz".into()), ..Default::default() });
    assert!(none.available().unwrap_err().to_string().contains("/nonexistent/vmlinuz"));
}

#[test]
#[ignore = "long (minutes where guest kernel code is emulated): a forced boot to ready, or to the first failure, whose report must name the exit, RIP, instruction bytes and console lines"]
fn forced_boot_reaches_ready_or_reports_the_failure() {
    let _serial = VM_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let before = kvm_resources();
    let opts = LinuxOptions { kernel: Some(kernel()), force: true, timeout: Duration::from_secs(400), ..Default::default() };
    let cb = linux::boot_console(&opts, &["ready".to_string()], |_| false).expect("build and start the VM");
    eprintln!("guest ran {:?}; {} console lines; ended: {:?}", cb.guest_time, cb.lines.len(), cb.ended);
    eprintln!("console:\n{}", cb.lines.join("\n"));
    match &cb.ended {
        Some(why) if why.contains("rebooted") => {}
        Some(why) => assert!(why.contains("RIP") && why.contains("instruction bytes") && why.contains("console"), "{why}"),
        None => panic!("neither ready nor a failure within {:?}: the guest still ran", opts.timeout),
    }
    assert_eq!(kvm_resources_settled(before), before, "(KVM fds, vCPU threads) before vs after the VM");
}
