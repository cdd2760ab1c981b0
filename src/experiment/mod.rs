//! The experiments that drive platforms, one file (or folder) each: memory
//! per instance, density to the memory budget, boot storms, footprint on
//! disk, noisy-neighbour interference and the isolation probes. They sit above [`crate::platform`] and use the
//! building blocks of [`crate::measure`]; the [`crate::runner`] calls them.

pub mod density;
pub mod footprint;
pub mod interference;
pub mod memory;
pub mod patch;
pub mod probes;
pub mod storm;

use crate::error::LaunchError;
use crate::measure::smaps::SmapsError;

/// How an experiment failed. Each message says what was being done.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("{context}: {source}")]
    Launch { context: String, source: LaunchError },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error(transparent)]
    Smaps(#[from] SmapsError),
    #[error(transparent)]
    Ksm(#[from] crate::measure::ksm::KsmError),
    /// A measurement that cannot be made as asked, in words.
    #[error("{0}")]
    Failed(String),
}

impl ExperimentError {
    /// A launch error with what the experiment was doing.
    pub fn launch(context: impl Into<String>) -> impl FnOnce(LaunchError) -> ExperimentError {
        let context = context.into();
        move |source| ExperimentError::Launch { context, source }
    }
    /// An I/O error with what the experiment was doing.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExperimentError {
        let context = context.into();
        move |source| ExperimentError::Io { context, source }
    }
    /// Whether the run was interrupted (Ctrl-C) while this ran.
    pub fn is_interrupt(&self) -> bool {
        matches!(self, ExperimentError::Launch { source: LaunchError::Interrupted, .. })
    }
}

impl From<std::io::Error> for ExperimentError {
    fn from(source: std::io::Error) -> ExperimentError {
        ExperimentError::Io { context: "reading or writing the experiment's files".into(), source }
    }
}

/// Shorthand for experiment results.
pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;
