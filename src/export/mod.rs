//! Writers (and readers) of a run's output files, exactly as docs/design.md
//! defines them: `samples.csv`, `summary.csv`, `probes.csv` ([`csv`]) and
//! `env.json` ([`json`]).

pub mod csv;
pub mod json;

use std::path::PathBuf;

pub use self::csv::{read_probes, read_samples, read_summary, summarize_samples, write_probes, write_samples, write_summary};

/// Why a run file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{path}: {detail}")]
    Csv { path: PathBuf, detail: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a versus env.json: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
}
