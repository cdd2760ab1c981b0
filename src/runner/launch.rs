//! One launch and the rows it yields: boot, its phases, teardown (idle
//! instances) and the workload's own result, checked (the `cpu` checksum
//! against the host's own computation; a missing timing or a non-finite
//! value is an error, never a zero).

use super::Metric;
use crate::error::LaunchError;
use crate::measure::Boot;
use crate::platform::{Finished, LaunchSpec, Platform};
use crate::workload::{expected_cpu_checksum, Workload, WorkloadResult, WorkloadSpec};

/// Everything one launch produced.
#[derive(Debug, Clone)]
pub struct LaunchRecord {
    pub boot: Boot,
    pub finished: Finished,
    pub teardown_ms: f64,
    /// (metric, value) in the metric's unit.
    pub rows: Vec<(Metric, f64)>,
}

/// A launch's result that is wrong: a checksum mismatch fails the whole run
/// (the platforms did not compute the same thing); the others fail the
/// platform.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(
        "{platform} reported cpu checksum {got} for {rounds} rounds, but the workload's checksum is {expected}: the platforms did not run the same computation"
    )]
    ChecksumMismatch { platform: String, rounds: u32, got: String, expected: String },
    #[error("{platform}: the `{workload}` workload finished without reporting a result")]
    NoResult { platform: String, workload: String },
    #[error("{platform}: the `{workload}` workload's result has no `{field}`: {line}")]
    MissingField { platform: String, workload: String, field: &'static str, line: String },
    #[error("{platform}: `{metric}` of `{workload}` came out {value}, not a finite number")]
    NotFinite { platform: String, workload: String, metric: String, value: f64 },
}

/// The workload's own rows from its RESULT, checked: a missing timing is an
/// error, never a zero.
pub fn workload_rows(platform: &str, w: Workload, r: &WorkloadResult) -> Result<Vec<(Metric, f64)>, RunError> {
    if matches!(w, Workload::Ready) {
        return Ok(vec![]);
    }
    let el = r.elapsed_ns().ok_or_else(|| RunError::MissingField {
        platform: platform.into(),
        workload: w.name().into(),
        field: "elapsed_ns",
        line: format!("{:?}", r.fields),
    })? as f64;
    Ok(match w {
        Workload::Cpu { rounds } => {
            let got = r.checksum().unwrap_or("").to_string();
            let expected = expected_cpu_checksum(rounds);
            if got != expected {
                return Err(RunError::ChecksumMismatch { platform: platform.into(), rounds, got, expected });
            }
            vec![(Metric::Cpu, el / 1e6)]
        }
        Workload::Mem { .. } | Workload::Idle { .. } => vec![(Metric::MemTouch, el / 1e6)],
        Workload::Call { n } if n > 0 => vec![(Metric::Call, el / n as f64 / 1e3)],
        _ => vec![],
    })
}

/// Launch errors and run errors together.
#[derive(Debug, thiserror::Error)]
pub enum LaunchOnceError {
    #[error(transparent)]
    Launch(#[from] LaunchError),
    #[error(transparent)]
    Run(#[from] RunError),
}

/// One launch: start, wait for ready, let the workload finish, stop; rows
/// for everything measured. An `idle` workload is stopped right away, and
/// only its launches have a `teardown` row: stopping a live instance is
/// what teardown measures on every platform (a finished workload has
/// already exited and its stop only reaps).
pub fn launch_once(platform: &dyn Platform, spec: &LaunchSpec) -> Result<LaunchRecord, LaunchOnceError> {
    let mut inst = platform.launch(spec)?;
    let boot = inst.boot().clone();
    let idle = matches!(spec.workload, WorkloadSpec::Bench(Workload::Idle { .. }));
    let finished = if idle { Finished::default() } else { inst.finish()? };
    let teardown_ms = inst.stop()?;
    let mut rows = vec![(Metric::Boot, boot.total_ms())];
    rows.extend(boot.phases.iter().map(|(p, ms)| (Metric::phase(p), *ms)));
    if idle {
        rows.push((Metric::Teardown, teardown_ms));
    }
    if let Some(w) = spec.workload.bench().filter(|w| !matches!(w, Workload::Ready | Workload::Idle { .. })) {
        let r = finished
            .results
            .iter()
            .find(|r| r.get("workload") == Some(w.name()))
            .ok_or_else(|| RunError::NoResult { platform: platform.name().into(), workload: w.name().into() })?;
        rows.extend(workload_rows(platform.name(), w, r)?);
    }
    if let Some((m, v)) = rows.iter().find(|(_, v)| !v.is_finite()) {
        return Err(RunError::NotFinite { platform: platform.name().into(), workload: spec.workload.to_string(), metric: m.to_string(), value: *v }.into());
    }
    Ok(LaunchRecord { boot, finished, teardown_ms, rows })
}
