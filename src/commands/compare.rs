//! `versus compare BASE NEW`: the CI gate. Reads two runs (directories or
//! run ids from the history database), compares them under the policy and
//! writes the table, and the Markdown, JSON and JUnit files asked for.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use versus::compare::output::{json, junit, markdown, table};
use versus::compare::{self, input, CompareOptions, Comparison, HostField, Policy, RunData, EXIT_USAGE};
use versus::history::{self, Store};

/// The exit codes, for `--help` of compare, ab and calibrate.
pub const EXIT_CODES: &str = "Exit codes:
  0  no regression (improvements and reported-only changes included)
  1  regression: a gated metric is worse beyond its minimum effect (p < alpha after
     Benjamini-Hochberg and the whole 95% CI beyond the effect), or an isolation
     probe flipped from isolated to exposed
  2  inconclusive: the host fingerprints differ (kernel, CPU model, KVM mode,
     cgroup mode, versus version), other processes used more than
     --max-foreign-load of the CPU during a run, or a gated metric has too few
     samples, too much spread, or is missing in NEW; the output says which
  3  usage error: bad arguments, a run that cannot be read, a bad policy file";

/// Options of the gate shared by compare and ab.
#[derive(Args, Debug, Clone)]
pub struct GateArgs {
    /// Policy file (TOML) overriding the built-in per-metric defaults
    /// (`versus compare --print-policy` prints those).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Write a Markdown summary (for $GITHUB_STEP_SUMMARY or a PR comment).
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Write the whole comparison as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write JUnit XML: one test case per metric and probe.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Random splits of the permutation test.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10_000..=10_000_000))]
    pub resamples: u64,
    /// Seed of the resampling (the same inputs and seed give the same verdict).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fingerprint fields whose difference is accepted (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "FIELD")]
    pub ignore_host: Vec<HostField>,
    /// Share of the host's CPU other processes may use while a run measures
    /// (env.json records it): above it `compare` calls the runs
    /// inconclusive, `ab` and `calibrate` leave the block out and run
    /// another round; 1 accepts any.
    #[arg(long, default_value_t = 0.25, value_parser = parse_share, value_name = "SHARE")]
    pub max_foreign_load: f64,
    /// List every metric in the table, not only those that changed.
    #[arg(long)]
    pub all: bool,
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("`{s}` is not a share between 0 and 1")),
    }
}

impl GateArgs {
    pub fn policy(&self) -> anyhow::Result<Policy> {
        Ok(match &self.policy {
            Some(p) => Policy::load(p)?,
            None => Policy::builtin(),
        })
    }

    pub fn options(&self) -> CompareOptions {
        let d = CompareOptions::default();
        CompareOptions {
            resamples: self.resamples as usize,
            max_resamples: d.max_resamples.max(self.resamples as usize),
            seed: self.seed.unwrap_or(d.seed),
            ignore_host_fields: self.ignore_host.clone(),
            max_foreign_load: self.max_foreign_load,
            ..d
        }
    }

    /// Prints the table and writes the files asked for.
    pub fn emit(&self, c: &Comparison) -> anyhow::Result<()> {
        print!("{}", table::render(c, self.all));
        let write = |path: &Path, text: String, what: &str| -> anyhow::Result<()> {
            std::fs::write(path, text).with_context(|| format!("cannot write the {what} to {}", path.display()))?;
            eprintln!("wrote {what} {}", path.display());
            Ok(())
        };
        if let Some(p) = &self.markdown {
            write(p, markdown::render(c), "Markdown summary")?;
        }
        if let Some(p) = &self.json {
            write(p, json::render(c), "JSON")?;
        }
        if let Some(p) = &self.junit {
            write(p, junit::render(c)?, "JUnit XML")?;
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct CompareArgs {
    /// BASE: a run directory (reports/<run-id>) or a run id in the history database.
    #[arg(required_unless_present = "print_policy")]
    pub base: Option<String>,
    /// NEW: a run directory or a run id in the history database.
    #[arg(required_unless_present = "print_policy")]
    pub new: Option<String>,
    #[command(flatten)]
    pub gate: GateArgs,
    /// History database to look run ids up in [default: ~/.local/share/versus/history.db].
    #[arg(long, value_name = "PATH")]
    pub history_db: Option<PathBuf>,
    /// Print the built-in policy, with the reason for each default, as a policy file.
    #[arg(long)]
    pub print_policy: bool,
}

/// A run directory, or a run id in the history database.
pub fn resolve_run(arg: &str, history_db: Option<&Path>) -> anyhow::Result<RunData> {
    let path = Path::new(arg);
    if path.is_dir() {
        return Ok(input::read_run_dir(path)?);
    }
    let db = history_db.map(PathBuf::from).unwrap_or_else(history::default_db_path);
    if !db.is_file() {
        anyhow::bail!("`{arg}` is not a run directory, and there is no history database at {} to look it up as a run id (record runs with `versus history import DIR`, or pass --history-db)", db.display());
    }
    Ok(Store::open_existing(&db)?.load_run(arg)?)
}

/// Prints an error and returns the usage-error exit code.
pub fn usage_error(e: anyhow::Error) -> ExitCode {
    eprintln!("versus: error: {e:#}");
    ExitCode::from(EXIT_USAGE)
}

pub fn run(a: CompareArgs) -> anyhow::Result<ExitCode> {
    if a.print_policy {
        print!("{}", Policy::builtin_as_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let go = || -> anyhow::Result<ExitCode> {
        let policy = a.gate.policy()?;
        let (b, n) = (a.base.as_deref().unwrap_or_default(), a.new.as_deref().unwrap_or_default());
        let base = resolve_run(b, a.history_db.as_deref()).with_context(|| format!("reading BASE `{b}`"))?;
        let new = resolve_run(n, a.history_db.as_deref()).with_context(|| format!("reading NEW `{n}`"))?;
        let c = compare::compare(&base, &new, &policy, &a.gate.options());
        a.gate.emit(&c)?;
        Ok(ExitCode::from(c.overall.exit_code()))
    };
    Ok(go().unwrap_or_else(usage_error))
}
