//! The benchmark loop (after hyperfine's `benchmark/`): for every platform
//! and workload, warm-up launches and measured launches; every measured
//! launch yields `boot`, `boot.<phase>`, `teardown` and the workload's own
//! rows, as [`Sample`]s. The `cpu` checksum is checked against the host's
//! own computation on every launch: a mismatch fails the run loudly.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::LaunchError;
use crate::export::json::PlatformStatus;
use crate::export::Sample;
use crate::measure::Boot;
use crate::platform::registry::{self, NotRun, PlatformOptions};
use crate::platform::{Finished, LaunchSpec, Limits, Platform};
use crate::workload::{expected_cpu_checksum, Workload, WorkloadResult, WorkloadSpec};

/// What `versus run` does.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub platforms: Vec<String>,
    pub workloads: Vec<WorkloadSpec>,
    pub runs: u32,
    pub warmup: u32,
    pub timeout: Duration,
    pub limits: Limits,
    pub platform_options: PlatformOptions,
}

/// One measured value before it gets a run id and iteration.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub metric: String,
    pub unit: &'static str,
    pub value: f64,
}

/// Everything one launch produced.
#[derive(Debug, Clone)]
pub struct LaunchRecord {
    pub boot: Boot,
    pub finished: Finished,
    pub teardown_ms: f64,
    pub rows: Vec<Row>,
}

/// A run-level failure that must fail the run, not only its platform.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{platform} reported cpu checksum {got} for {rounds} rounds, but the workload's checksum is {expected}: the platforms did not run the same computation")]
    ChecksumMismatch { platform: String, rounds: u32, got: String, expected: String },
    #[error("{platform}: the `{workload}` workload finished without reporting a result")]
    NoResult { platform: String, workload: String },
}

/// The workload's own rows from its RESULT, checked.
pub fn workload_rows(platform: &str, w: Workload, r: &WorkloadResult) -> Result<Vec<Row>, RunError> {
    let el = r.elapsed_ns().unwrap_or(0) as f64;
    Ok(match w {
        Workload::Cpu { rounds } => {
            let got = r.checksum().unwrap_or("").to_string();
            let expected = expected_cpu_checksum(rounds);
            if got != expected {
                return Err(RunError::ChecksumMismatch { platform: platform.into(), rounds, got, expected });
            }
            vec![Row { metric: "cpu".into(), unit: "ms", value: el / 1e6 }]
        }
        Workload::Mem { .. } => vec![Row { metric: "mem_touch".into(), unit: "ms", value: el / 1e6 }],
        Workload::Call { n } if n > 0 => vec![Row { metric: "call".into(), unit: "us", value: el / n as f64 / 1e3 }],
        Workload::Idle { .. } => vec![Row { metric: "mem_touch".into(), unit: "ms", value: el / 1e6 }],
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

/// One launch: start, wait for ready, let the workload finish (an `idle`
/// workload is stopped right away), tear down; rows for everything measured.
pub fn launch_once(platform: &dyn Platform, spec: &LaunchSpec) -> Result<LaunchRecord, LaunchOnceError> {
    let mut inst = platform.launch(spec)?;
    let boot = inst.boot().clone();
    let finished = match spec.workload.0 {
        Workload::Idle { .. } => Finished::default(),
        _ => inst.finish()?,
    };
    let teardown_ms = inst.stop()?;
    let mut rows = vec![Row { metric: "boot".into(), unit: "ms", value: boot.total_ms() }];
    rows.extend(boot.phases.iter().map(|(p, ms)| Row { metric: format!("boot.{p}"), unit: "ms", value: *ms }));
    rows.push(Row { metric: "teardown".into(), unit: "ms", value: teardown_ms });
    let w = spec.workload.0;
    if !matches!(w, Workload::Ready | Workload::Idle { .. }) {
        let r = finished
            .results
            .iter()
            .find(|r| r.get("workload") == Some(w.name()))
            .ok_or_else(|| RunError::NoResult { platform: platform.name().into(), workload: w.name().into() })?;
        rows.extend(workload_rows(platform.name(), w, r)?);
    }
    Ok(LaunchRecord { boot, finished, teardown_ms, rows })
}

/// Progress reporting, so the runner does not depend on a terminal.
pub trait Progress {
    fn start(&self, total: u64);
    fn set_message(&self, msg: String);
    fn inc(&self);
    fn println(&self, line: String);
    fn finish(&self);
}

/// No progress output (tests, --json).
pub struct Silent;
impl Progress for Silent {
    fn start(&self, _: u64) {}
    fn set_message(&self, _: String) {}
    fn inc(&self) {}
    fn println(&self, _: String) {}
    fn finish(&self) {}
}

/// The result of a run, before export.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    pub samples: Vec<Sample>,
    pub statuses: Vec<PlatformStatus>,
    /// Per platform, the notes it records.
    pub failures: Vec<String>,
}

/// Runs every platform and workload. Returns `Err` only for failures of the
/// whole run (checksum mismatch, interrupt); a platform that cannot run or
/// fails is recorded in `statuses` and `failures`.
pub fn run(run_id: &str, opts: &RunOptions, progress: &dyn Progress) -> Result<RunResult, LaunchOnceError> {
    let mut out = RunResult::default();
    let per_platform = opts.workloads.len() as u64 * (opts.warmup + opts.runs) as u64;
    let mut created: Vec<Box<dyn Platform>> = Vec::new();
    for name in &opts.platforms {
        match registry::create(name, &opts.platform_options) {
            Ok(p) => created.push(p),
            Err(NotRun::Skipped(why)) | Err(NotRun::Unknown(why)) => {
                progress.println(format!("skipping {name}: {why}"));
                out.statuses.push(PlatformStatus {
                    platform: name.clone(),
                    status: "skipped".into(),
                    reason: Some(why),
                    representative: false,
                    representative_note: None,
                    notes: vec![],
                });
            }
        }
    }
    progress.start(per_platform * created.len() as u64);
    for p in &created {
        let mut status = PlatformStatus {
            platform: p.name().into(),
            status: "ran".into(),
            reason: None,
            representative: p.representative().is_ok(),
            representative_note: p.representative().err(),
            notes: p.notes(),
        };
        'workloads: for w in &opts.workloads {
            let spec = LaunchSpec { workload: *w, timeout: opts.timeout, limits: opts.limits };
            for i in 0..(opts.warmup + opts.runs) {
                if crate::interrupt::requested() {
                    return Err(LaunchError::Interrupted.into());
                }
                progress.set_message(format!("{} {}", p.name(), w));
                match launch_once(p.as_ref(), &spec) {
                    Ok(rec) if i >= opts.warmup => {
                        let iteration = i - opts.warmup;
                        out.samples.extend(rec.rows.into_iter().map(|r| Sample {
                            run_id: run_id.into(),
                            platform: p.name().into(),
                            workload: w.0.name().into(),
                            metric: r.metric,
                            unit: r.unit.into(),
                            iteration,
                            value: r.value,
                        }));
                    }
                    Ok(_) => {}
                    Err(LaunchOnceError::Launch(LaunchError::Interrupted)) => return Err(LaunchError::Interrupted.into()),
                    Err(e @ LaunchOnceError::Run(RunError::ChecksumMismatch { .. })) => return Err(e),
                    Err(e) => {
                        let why = format!("{} {}: {e}", p.name(), w);
                        progress.println(format!("error: {why}"));
                        status.status = "failed".into();
                        status.reason = Some(why.clone());
                        out.failures.push(why);
                        break 'workloads;
                    }
                }
                progress.inc();
            }
        }
        out.statuses.push(status);
    }
    progress.finish();
    // Keep statuses in the order the user gave.
    out.statuses.sort_by_key(|s| opts.platforms.iter().position(|p| *p == s.platform).unwrap_or(usize::MAX));
    Ok(out)
}

/// A run id from the current UTC time: `YYYYMMDD-HHMMSS`.
pub fn new_run_id() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The directory a run writes to.
pub fn run_dir(out: &std::path::Path, run_id: &str) -> PathBuf {
    out.join(run_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_has_the_documented_shape() {
        let id = new_run_id();
        assert_eq!(id.len(), 15, "{id}");
        assert_eq!(&id[8..9], "-");
        assert!(id[..8].chars().all(|c| c.is_ascii_digit()) && id[9..].chars().all(|c| c.is_ascii_digit()));
        assert!(id.starts_with("20"));
    }

    #[test]
    fn checksum_mismatch_is_an_error() {
        let mut r = WorkloadResult::default();
        r.fields.insert("checksum".into(), "0000000000000000".into());
        r.fields.insert("elapsed_ns".into(), "1000000".into());
        let e = workload_rows("x", Workload::Cpu { rounds: 3 }, &r).unwrap_err();
        assert!(matches!(e, RunError::ChecksumMismatch { .. }));
        r.fields.insert("checksum".into(), expected_cpu_checksum(3));
        let rows = workload_rows("x", Workload::Cpu { rounds: 3 }, &r).unwrap();
        assert_eq!(rows, vec![Row { metric: "cpu".into(), unit: "ms", value: 1.0 }]);
        r.fields.insert("elapsed_ns".into(), "2000000".into());
        let rows = workload_rows("x", Workload::Call { n: 1000 }, &r).unwrap();
        assert_eq!(rows[0].value, 2.0, "2 ms over 1000 calls is 2 us per call");
    }
}
