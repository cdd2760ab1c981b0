//! `versus export RUN --bmf FILE`: a run in a format other CI tools read
//! (Bencher Metric Format JSON).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use versus::compare::Policy;

use super::compare::resolve_run;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A run directory (reports/<run-id>) or a run id in the history database.
    pub run: String,
    /// Write Bencher Metric Format JSON here (`-` for stdout): one benchmark
    /// per platform/workload/metric, one measure per unit, the median with
    /// its bootstrap 95% interval.
    #[arg(long = "bmf", visible_alias = "export-bmf", value_name = "FILE", required = true)]
    pub bmf: PathBuf,
    /// Policy file: ignored metrics are left out, exact ones are exported per iteration.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// History database to look run ids up in [default: ~/.local/share/versus/history.db].
    #[arg(long, value_name = "PATH")]
    pub history_db: Option<PathBuf>,
}

pub fn run(a: ExportArgs) -> anyhow::Result<ExitCode> {
    let policy = match &a.policy {
        Some(p) => Policy::load(p)?,
        None => Policy::builtin(),
    };
    let run = resolve_run(&a.run, a.history_db.as_deref())?;
    let text = versus::bmf::to_json(&versus::bmf::of_run(&run, &policy));
    if a.bmf.as_os_str() == "-" {
        std::io::stdout().write_all(text.as_bytes())?;
    } else {
        std::fs::write(&a.bmf, text).with_context(|| format!("cannot write {}", a.bmf.display()))?;
        eprintln!("wrote {} (Bencher Metric Format)", a.bmf.display());
    }
    Ok(ExitCode::SUCCESS)
}
