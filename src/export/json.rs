//! `env.json`: the host fingerprint and measurements, the versus version and
//! git revision, the command line, per platform whether it ran, was skipped
//! (and why) and whether its numbers are representative, and what was not
//! measured.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ExportError;
use crate::host::{Host, HostMeasurements};
use crate::model::{PlatformStatus, SizeRecord};
use crate::platform::Limits;

/// The whole env.json document. Fields added after the first version have
/// defaults, so a report can be re-rendered from an older run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvDoc {
    pub run_id: String,
    pub versus_version: String,
    pub git_revision: Option<String>,
    pub command_line: Vec<String>,
    pub started_at_unix: u64,
    pub host: Host,
    /// Host measurements (the KVM supervisor/user speed ratio).
    #[serde(default)]
    pub host_measurements: HostMeasurements,
    pub platforms: Vec<PlatformStatus>,
    /// Measurements that could not be made on this host, and why.
    #[serde(default)]
    pub not_measured: Vec<String>,
    /// The limits instances ran with (where their platform applies them).
    #[serde(default)]
    pub limits: Option<Limits>,
    /// The size each workload ran at on each platform (chosen by
    /// calibration unless given), and how many measured launches it had.
    #[serde(default)]
    pub workload_sizes: Vec<SizeRecord>,
}

/// Writes env.json.
pub fn write_env(path: &Path, doc: &EnvDoc) -> Result<(), ExportError> {
    let text = serde_json::to_string_pretty(doc).map_err(|source| ExportError::Json { path: path.to_path_buf(), source })?;
    std::fs::write(path, text + "\n").map_err(|source| ExportError::Write { path: path.to_path_buf(), source })
}

/// Reads env.json back.
pub fn read_env(path: &Path) -> Result<EnvDoc, ExportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ExportError::Read { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|source| ExportError::Json { path: path.to_path_buf(), source })
}

/// The git revision versus was built from, if known at build time.
pub fn git_revision() -> Option<String> {
    option_env!("VERSUS_GIT_REVISION").map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_run_reads() {
        let doc = read_env(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/reports/example/env.json"))).unwrap();
        assert!(!doc.platforms.is_empty());
        assert!(!doc.host.kernel.is_empty());
    }
}
