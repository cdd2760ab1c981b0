//! Per-platform status of a run, as env.json records it.

use serde::{Deserialize, Serialize};

/// Whether a platform ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Ran,
    /// Not run: it cannot run on this host (the reason says why).
    Skipped,
    /// It started, and a launch or a measurement failed.
    Failed,
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunStatus::Ran => "ran",
            RunStatus::Skipped => "skipped",
            RunStatus::Failed => "failed",
        })
    }
}

/// One platform in env.json.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlatformStatus {
    pub platform: String,
    pub status: RunStatus,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    /// Whether its numbers represent a typical host of this kind.
    pub representative: bool,
    /// Why not, when not.
    pub representative_note: Option<String>,
    pub notes: Vec<String>,
}

impl PlatformStatus {
    /// A platform that did not run, and why.
    pub fn skipped(platform: &str, reason: String) -> PlatformStatus {
        PlatformStatus {
            platform: platform.into(),
            status: RunStatus::Skipped,
            reason: Some(reason),
            representative: false,
            representative_note: None,
            notes: vec![],
        }
    }
}

/// What a run did with one workload on one platform: the size chosen and
/// the measured launches made (env.json's `workload_sizes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SizeRecord {
    /// The workload as asked (`call`, `cpu:50000`).
    pub workload: String,
    pub platform: String,
    /// The spec it ran as (`call:2400`).
    pub chosen: String,
    /// The calibration target, when it was sized.
    pub target_ms: Option<f64>,
    pub runs: u32,
    pub runs_asked: u32,
}
