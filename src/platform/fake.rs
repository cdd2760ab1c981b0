//! A test double of [`Platform`] (as hyperfine's `MockExecutor`): it
//! launches nothing, answers with made-up timings and results, records every
//! launch, and can be told to fail, to report a wrong checksum or to raise
//! an interrupt at a given launch. It drives the runner in unit tests with
//! no root and no KVM.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{Finished, Group, Guest, Instance, Isolation, LaunchSpec, MemoryAccounting, Platform, PlatformInfo, Unavailable};
use crate::error::{LaunchError, Result};
use crate::measure::Boot;
use crate::workload::{expected_cpu_checksum, Workload, WorkloadResult};

/// Two fake platforms, so that a test can run two.
pub const FAKE_A: PlatformInfo = PlatformInfo {
    name: "fake-a",
    article: "a fake",
    summary: "a test double",
    colour: (1, 2, 3),
    group: Group::Versus,
    isolation: Isolation::None,
    guest: Guest::HostKernel,
    memory: MemoryAccounting::OwnProcesses,
    baseline: false,
};
pub const FAKE_B: PlatformInfo = PlatformInfo { name: "fake-b", colour: (4, 5, 6), ..FAKE_A };

/// What happens at the launch with a given (0-based) number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The launch fails (a crash of the workload).
    Fail,
    /// The `cpu` workload reports a wrong checksum.
    WrongChecksum,
    /// Ctrl-C arrives during the launch (it still succeeds).
    Interrupt,
}

/// The shared record of what fakes did.
#[derive(Debug, Default)]
pub struct Log {
    /// `<platform> <workload> #<launch number>`, in order.
    pub launches: Mutex<Vec<String>>,
    /// Instances launched and not yet stopped or dropped.
    pub live: AtomicUsize,
}

impl Log {
    pub fn launches(&self) -> Vec<String> {
        self.launches.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

/// A fake platform: launch k takes `boot_ms + k` ms (so a row tells which
/// launch it came from). With `call_ns`, the `call` workload really takes
/// that long per round trip (the launch sleeps it), as a platform with a
/// slow exit would.
pub struct FakePlatform {
    pub info: &'static PlatformInfo,
    pub log: Arc<Log>,
    pub boot_ms: f64,
    pub faults: Vec<(usize, Fault)>,
    pub call_ns: u64,
    count: AtomicUsize,
}

impl FakePlatform {
    pub fn new(info: &'static PlatformInfo, log: Arc<Log>) -> FakePlatform {
        FakePlatform { info, log, boot_ms: 1.0, faults: Vec::new(), call_ns: 0, count: AtomicUsize::new(0) }
    }
    /// The same, with `fault` at launch number `at`.
    pub fn with_fault(mut self, at: usize, fault: Fault) -> FakePlatform {
        self.faults.push((at, fault));
        self
    }
}

impl Platform for FakePlatform {
    fn info(&self) -> &'static PlatformInfo {
        self.info
    }
    fn available(&self) -> std::result::Result<(), Unavailable> {
        Ok(())
    }
    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        let k = self.count.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut l) = self.log.launches.lock() {
            l.push(format!("{} {} #{k}", self.info.name, spec.workload));
        }
        let fault = self.faults.iter().find(|(at, _)| *at == k).map(|f| f.1);
        match fault {
            Some(Fault::Fail) => return Err(LaunchError::Crashed { status: format!("fake launch {k} fails"), stderr: String::new() }),
            Some(Fault::Interrupt) => crate::interrupt::request(),
            _ => {}
        }
        let ms = self.boot_ms + k as f64;
        let ns = (ms * 1e6) as u64;
        // On the real clock, so that the marks order with other readings
        // (a boot storm's start), though no time passes.
        let t = crate::measure::clock::now_ns();
        let boot = Boot::from_marks(t, &[("setup", t + ns / 2), ("ready", t + ns)]);
        let mut result = WorkloadResult::default();
        if let Some(w) = spec.workload.bench() {
            result.fields.insert("workload".into(), w.name().into());
            let elapsed = match w {
                Workload::Call { n } if self.call_ns > 0 => {
                    let ns = n as u64 * self.call_ns;
                    std::thread::sleep(std::time::Duration::from_nanos(ns));
                    ns
                }
                _ => 2_000_000,
            };
            result.fields.insert("elapsed_ns".into(), elapsed.to_string());
            if let Workload::Cpu { rounds } = w {
                let sum = if fault == Some(Fault::WrongChecksum) { "0".repeat(16) } else { expected_cpu_checksum(rounds) };
                result.fields.insert("checksum".into(), sum);
            }
        }
        self.log.live.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(FakeInstance { boot, result, log: self.log.clone(), stopped: false }))
    }
}

/// A fake instance; counts itself out of [`Log::live`] when stopped or dropped.
pub struct FakeInstance {
    boot: Boot,
    result: WorkloadResult,
    log: Arc<Log>,
    stopped: bool,
}

impl Instance for FakeInstance {
    fn boot(&self) -> &Boot {
        &self.boot
    }
    fn pids(&self) -> Vec<i32> {
        Vec::new()
    }
    fn finish(&mut self) -> Result<Finished> {
        Ok(Finished { results: vec![self.result.clone()], ..Finished::default() })
    }
    fn stop(mut self: Box<Self>) -> Result<f64> {
        self.stopped = true;
        self.log.live.fetch_sub(1, Ordering::SeqCst);
        Ok(0.25)
    }
}

impl Drop for FakeInstance {
    fn drop(&mut self) {
        if !self.stopped {
            self.log.live.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
