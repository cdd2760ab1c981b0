//! Errors of the history store. None of them touches the run's own files:
//! a run directory stays as `versus run` wrote it whatever the database
//! does, and can be imported again with `versus history import DIR`.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot open the history database {path}: {message}; choose another with --history-db")]
    CannotOpen { path: PathBuf, message: String },

    #[error("the history database {path} is locked by another process (another versus writing to it?) and stayed locked for {seconds} s; retry when it is done, or use another with --history-db")]
    Locked { path: PathBuf, seconds: u64 },

    #[error("{path} is not a readable versus history database ({detail}); move it aside (run directories are never touched by the database) and re-import the runs with `versus history import DIR`")]
    Corrupt { path: PathBuf, detail: String },

    #[error(
        "the history database {path} has schema version {found}, newer than this versus understands ({supported}); use a newer versus or another --history-db"
    )]
    TooNew { path: PathBuf, found: i64, supported: i64 },

    #[error("no history database at {path}: record runs with `versus history import DIR` (or `versus run --history`), or point --history-db at one")]
    Missing { path: PathBuf },

    #[error("run `{run_id}` is not in the history database {path}; `versus history list` shows the runs it holds")]
    RunNotFound { run_id: String, path: PathBuf },

    #[error("run `{run_id}` in {path} was recorded from another host ({other}); run ids are per second, so two hosts can share one: import it into another --history-db")]
    RunIdClash { run_id: String, path: PathBuf, other: String },

    #[error("the history database {path}: {message}")]
    Sql { path: PathBuf, message: String },

    #[error(transparent)]
    Run(#[from] crate::compare::CompareError),
}

pub type Result<T, E = HistoryError> = std::result::Result<T, E>;
