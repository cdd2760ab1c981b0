//! `env.json`: the host fingerprint, the versus version and git revision,
//! the command line, and per platform whether it ran, was skipped (and why),
//! and whether its numbers are representative on this host.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Per-platform status of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlatformStatus {
    pub platform: String,
    /// `ran`, `skipped` or `failed`.
    pub status: String,
    /// Why it was skipped or failed.
    pub reason: Option<String>,
    /// Whether its numbers represent a typical host of this kind.
    pub representative: bool,
    /// Why not, when not.
    pub representative_note: Option<String>,
    pub notes: Vec<String>,
}

/// The whole env.json document. `host` is kept as a JSON value so that a
/// report can be re-rendered from an older run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvDoc {
    pub run_id: String,
    pub versus_version: String,
    pub git_revision: Option<String>,
    pub command_line: Vec<String>,
    pub started_at_unix: u64,
    pub host: serde_json::Value,
    /// Extra host measurements (e.g. the KVM supervisor/user speed ratio).
    #[serde(default)]
    pub host_measurements: serde_json::Value,
    pub platforms: Vec<PlatformStatus>,
    /// Measurements that could not be made on this host, and why.
    #[serde(default)]
    pub not_measured: Vec<String>,
}

pub fn write_env(path: &Path, doc: &EnvDoc) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(doc)?;
    std::fs::write(path, text + "\n").map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

pub fn read_env(path: &Path) -> anyhow::Result<EnvDoc> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// The git revision versus was built from, if known at build time.
pub fn git_revision() -> Option<String> {
    option_env!("VERSUS_GIT_REVISION").map(String::from)
}
