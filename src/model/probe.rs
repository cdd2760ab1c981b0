//! Isolation probe answers and verdicts: what a platform's workload (or its
//! VMM) reports ([`ProbeLine`]), the judged row of probes.csv
//! ([`ProbeRow`]), and the attack-surface figures ([`SurfaceRow`]).

use serde::{Deserialize, Serialize};

use super::Metric;

/// A probe's result, as written to probes.csv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Isolated,
    Exposed,
    NotApplicable,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Isolated => "isolated",
            Outcome::Exposed => "exposed",
            Outcome::NotApplicable => "not_applicable",
            Outcome::Error => "error",
        }
    }
    pub fn parse(s: &str) -> Option<Outcome> {
        Some(match s {
            "isolated" => Outcome::Isolated,
            "exposed" => Outcome::Exposed,
            "not_applicable" => Outcome::NotApplicable,
            "error" => Outcome::Error,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One probe answer from inside a platform: `result` is `observed` (raw
/// observations in `evidence`, judged by versus) or a final result of a
/// guest or VMM that judged it itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeLine {
    pub id: String,
    pub result: String,
    pub evidence: String,
}

/// One row of probes.csv: `run_id,platform,probe,category,result,evidence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRow {
    pub run_id: String,
    pub platform: String,
    pub probe: String,
    pub category: String,
    pub result: Outcome,
    pub evidence: String,
}

/// What an attack-surface figure counts. Workloads on the host kernel count
/// host system calls; VMs count VM-exit kinds and host calls their VMM
/// serves. They count different things, and the report says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurfaceKind {
    HostSyscalls,
    VmExitKinds,
    VmmHostCalls,
}

impl SurfaceKind {
    /// The `surface.*` metric of its rows.
    pub fn metric(self) -> Metric {
        match self {
            SurfaceKind::HostSyscalls => Metric::SurfaceHostSyscalls,
            SurfaceKind::VmExitKinds => Metric::SurfaceVmExitKinds,
            SurfaceKind::VmmHostCalls => Metric::SurfaceVmmHostCalls,
        }
    }
    /// What it counts, in words.
    pub fn describe(self) -> &'static str {
        match self {
            SurfaceKind::HostSyscalls => "host system calls reachable",
            SurfaceKind::VmExitKinds => "VM-exit kinds served by the VMM",
            SurfaceKind::VmmHostCalls => "host calls served by the VMM",
        }
    }
    /// The kind of a `surface.*` metric.
    pub fn of(metric: &Metric) -> Option<SurfaceKind> {
        [SurfaceKind::HostSyscalls, SurfaceKind::VmExitKinds, SurfaceKind::VmmHostCalls].into_iter().find(|k| k.metric() == *metric)
    }
}

/// One attack-surface figure of a platform: how much of the host its
/// workload can call into. `value` is `None` when it cannot be counted
/// (the note says why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurfaceRow {
    pub platform: String,
    pub counted: SurfaceKind,
    pub value: Option<u64>,
    pub note: String,
}
