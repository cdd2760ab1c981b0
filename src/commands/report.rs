//! `versus report DIR`: re-render charts and report.md from a run's files,
//! without running anything.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A run directory (reports/<run-id>) holding samples.csv.
    pub dir: PathBuf,
}

pub fn run(a: ReportArgs) -> anyhow::Result<ExitCode> {
    if !a.dir.join("samples.csv").is_file() {
        anyhow::bail!("{} has no samples.csv; pass a run directory written by `versus run` (reports/<run-id>)", a.dir.display());
    }
    let report = versus::report::render_report(&a.dir).with_context(|| format!("rendering the report of {}", a.dir.display()))?;
    println!("wrote {} and {}", report.display(), a.dir.join("charts").display());
    Ok(ExitCode::SUCCESS)
}
