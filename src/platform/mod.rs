//! The platforms a workload runs on. Each implements [`Platform`]; a launch
//! returns an [`Instance`] that is ready (its READY was received) and that
//! releases everything it holds when stopped or dropped.

pub mod child;
pub mod container;
pub mod process;
pub mod registry;
pub mod vm;

use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::measure::Boot;
use crate::workload::{WorkloadResult, WorkloadSpec};

/// Resource limits applied to an instance where the platform supports them.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Limits {
    pub memory_bytes: u64,
    pub pids: u64,
    /// CPU quota in CPUs (1.0 = one full core).
    pub cpus: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 1 << 30,
            pids: 128,
            cpus: 1.0,
        }
    }
}

/// What to launch.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub workload: WorkloadSpec,
    /// Bound on every wait of the launch (ready, results, exit).
    pub timeout: Duration,
    pub limits: Limits,
}

impl LaunchSpec {
    pub fn new(workload: WorkloadSpec) -> LaunchSpec {
        LaunchSpec {
            workload,
            timeout: Duration::from_secs(30),
            limits: Limits::default(),
        }
    }
}

/// One probe answer from inside a platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeLine {
    pub id: String,
    pub result: String,
    pub evidence: String,
}

/// What a finished workload reported.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    pub results: Vec<WorkloadResult>,
    pub probes: Vec<ProbeLine>,
    pub logs: Vec<String>,
}

/// A running, ready instance.
pub trait Instance {
    /// Boot timing of this launch (launch start to READY received).
    fn boot(&self) -> &Boot;
    /// Host process ids that belong to the instance (for memory accounting).
    fn pids(&self) -> Vec<i32>;
    /// Waits for the workload to finish by itself and returns its reports.
    /// A crash, an out-of-memory kill or a timeout is an error.
    fn finish(&mut self) -> Result<Finished>;
    /// Asks the instance to stop and releases every resource it holds;
    /// returns the teardown time in ms (stop request to all released).
    fn stop(self: Box<Self>) -> Result<f64>;
}

/// A platform of the comparison.
pub trait Platform {
    /// The platform's name as in CSV rows (`process`, `container`, ...).
    fn name(&self) -> &'static str;
    /// `Err(reason)` when the platform cannot run on this host.
    fn available(&self) -> std::result::Result<(), String>;
    /// `Err(reason)` when it runs but its numbers do not represent a typical
    /// host (for example guest kernel code emulated).
    fn representative(&self) -> std::result::Result<(), String> {
        Ok(())
    }
    /// Notes recorded with the results (what `call` measures, limits, ...).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
    /// Launches one instance and waits until it is ready.
    fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>>;
}

/// The names of every platform versus knows, in report order.
pub const ALL_PLATFORMS: [&str; 6] = ["process", "container", "oci", "vm-bare", "vm-linux", "qemu"];
