//! The data a run produces, as written to its files and read back: one row
//! per measured value ([`Sample`], samples.csv), one row per group
//! ([`SummaryRow`], summary.csv), one row per probe ([`ProbeRow`],
//! probes.csv) and the per-platform status of env.json
//! ([`PlatformStatus`]). Names that are serialized are enums here
//! ([`Metric`], [`Outcome`], [`RunStatus`]); the CSV text is theirs.
//!
//! Everything below `model` produces these without a run id; the runner
//! stamps the run id once, at the end of a run ([`stamp_run_id`]).

mod metric;
mod probe;
mod sample;
mod status;

pub use metric::{DensityBasis, Metric};
pub use probe::{Outcome, ProbeLine, ProbeRow, SurfaceKind, SurfaceRow};
pub use sample::{Sample, SummaryRow};
pub use status::{PlatformStatus, RunStatus, SizeRecord};

/// Sets the run id of every sample and probe row (the one place a run id is
/// written into rows).
pub fn stamp_run_id(run_id: &str, samples: &mut [Sample], probes: &mut [ProbeRow]) {
    for s in samples {
        s.run_id = run_id.to_string();
    }
    for p in probes {
        p.run_id = run_id.to_string();
    }
}
