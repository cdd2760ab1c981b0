//! Errors of `versus compare`, `ab` and `calibrate`. Each says what went
//! wrong and what to do about it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    #[error("{path} is not a versus run directory: it has no {missing}; pass a directory written by `versus run` (reports/<run-id>) or a run id from the history store")]
    NotARunDir { path: PathBuf, missing: &'static str },

    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },

    #[error("cannot merge runs from different hosts: {first} is on {first_host} and {other} on {other_host}; merge only blocks run on one host")]
    MergeHosts { first: String, first_host: String, other: String, other_host: String },

    #[error("nothing to merge: no runs given")]
    MergeEmpty,

    #[error("policy file {path}: {message}")]
    Policy { path: PathBuf, message: String },

    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },

    #[error("{0}")]
    Output(String),

    #[error("{what} failed: {message} (its output is in {log})")]
    Block { what: String, message: String, log: PathBuf },

    #[error("cannot start {bin}: {source}; pass the path of a versus binary (e.g. target/release/versus)")]
    Spawn { bin: PathBuf, source: std::io::Error },
}

pub type Result<T, E = CompareError> = std::result::Result<T, E>;
