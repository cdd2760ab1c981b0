//! `versus history import|list|show|trend`: the run history database.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use versus::compare::output::fmt_value;
use versus::history::trend::{self, DEFAULT_K, DEFAULT_WINDOW};
use versus::history::{self, Recorded, Store};

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The history database [default: ~/.local/share/versus/history.db].
    #[arg(long, value_name = "PATH", global = true)]
    pub history_db: Option<PathBuf>,
    #[command(subcommand)]
    pub command: HistoryCommand,
}

#[derive(Subcommand, Debug)]
pub enum HistoryCommand {
    /// Record run directories (reports/<run-id>) in the database; a run
    /// already there is skipped. The directories are only read.
    Import {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
    /// The recorded runs, oldest first.
    List {
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// One recorded run: its host, and each metric's median.
    Show { run_id: String },
    /// A metric's median run by run, per host fingerprint, platform and
    /// workload, with a drift flag on the last run.
    Trend {
        /// The metric (boot, cpu, mem.host, ...).
        metric: String,
        /// Only this platform.
        #[arg(short, long)]
        platform: Option<String>,
        /// Only this workload (`cpu` matches `cpu:200000` too).
        #[arg(short, long)]
        workload: Option<String>,
        /// Previous runs the drift band is computed from.
        #[arg(long, default_value_t = DEFAULT_WINDOW)]
        window: usize,
        /// The band is median ± k·IQR of the previous runs' medians.
        #[arg(short, long, default_value_t = DEFAULT_K)]
        k: f64,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn date(unix: u64) -> String {
    let [y, m, d, hh, mm, ss] = versus::measure::clock::utc_fields(unix);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}

pub fn run(a: HistoryArgs) -> anyhow::Result<ExitCode> {
    let db = a.history_db.clone().unwrap_or_else(history::default_db_path);
    match a.command {
        HistoryCommand::Import { dirs } => {
            let mut failed = 0;
            for d in &dirs {
                match history::record_run(d, &db) {
                    Ok(Recorded::Added { run_id, samples, probes }) => {
                        println!("recorded {run_id} ({samples} samples, {probes} probe verdicts) from {}", d.display())
                    }
                    Ok(Recorded::AlreadyThere { run_id }) => println!("{run_id} is already recorded; skipped {}", d.display()),
                    Err(e) => {
                        failed += 1;
                        eprintln!("versus: error: {}: {e}", d.display());
                    }
                }
            }
            println!("history database: {}", db.display());
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        HistoryCommand::List { json } => {
            let runs = Store::open_existing(&db)?.runs()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&runs)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{:<17} {:<20} {:<9} {:<12} {:<14} {:>8}", "run", "started (UTC)", "versus", "revision", "host", "samples");
            for r in &runs {
                println!(
                    "{:<17} {:<20} {:<9} {:<12} {:<14} {:>8}",
                    r.run_id,
                    date(r.started_at),
                    r.versus_version,
                    r.git_revision.as_deref().map(|g| g.chars().take(12).collect::<String>()).unwrap_or_else(|| "-".into()),
                    r.host_id,
                    r.samples
                );
            }
            let mut hosts: Vec<_> = runs.iter().map(|r| (r.host_id.clone(), r.host.to_string())).collect();
            hosts.sort();
            hosts.dedup();
            for (id, h) in hosts {
                println!("host {id}: {h}");
            }
            Ok(ExitCode::SUCCESS)
        }
        HistoryCommand::Show { run_id } => {
            let store = Store::open_existing(&db)?;
            let run = store.load_run(&run_id)?;
            println!("run      {}", run.run_id);
            println!("started  {} UTC", date(run.started_at_unix));
            println!("versus   {}{}", run.versus_version, run.git_revision.as_deref().map(|g| format!(" ({g})")).unwrap_or_default());
            println!("host     {} ({}): {}", run.hostname, run.host.id(), run.host);
            println!("\n  {:<40} {:<14} {:>5} {:>14}", "metric", "unit", "n", "median");
            for (k, obs) in &run.samples {
                let vals: Vec<f64> = obs.iter().map(|o| o.value).filter(|v| v.is_finite()).collect();
                println!("  {:<40} {:<14} {:>5} {:>14}", k.to_string(), k.unit, vals.len(), fmt_value(versus::compare::statistic::median(&vals), &k.unit));
            }
            if !run.probes.is_empty() {
                let exposed = run.probes.iter().filter(|p| p.result == "exposed").count();
                println!("\n{} probe verdicts, {exposed} exposed", run.probes.len());
            }
            Ok(ExitCode::SUCCESS)
        }
        HistoryCommand::Trend { metric, platform, workload, window, k, json } => {
            let store = Store::open_existing(&db)?;
            let all = trend::series(store.metric_history(&metric)?, window, k);
            let series: Vec<_> = all
                .into_iter()
                .filter(|s| platform.as_deref().is_none_or(|p| s.key.platform == p))
                .filter(|s| workload.as_deref().is_none_or(|w| s.key.workload == w || s.key.workload_name() == w))
                .collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&series)?);
                return Ok(ExitCode::SUCCESS);
            }
            if series.is_empty() {
                anyhow::bail!(
                    "no recorded samples of `{metric}`{} in {}; `versus history show RUN` lists a run's metrics",
                    match (&platform, &workload) {
                        (None, None) => String::new(),
                        _ => format!(" for {}/{}", platform.as_deref().unwrap_or("*"), workload.as_deref().unwrap_or("*")),
                    },
                    db.display()
                );
            }
            let mut last_host = None;
            let mut drifted = 0;
            for s in &series {
                if last_host.as_ref() != Some(&s.host_id) {
                    println!("host {}: {}", s.host_id, s.host);
                    last_host = Some(s.host_id.clone());
                }
                println!("  {}/{}/{} [{}]", s.key.platform, s.key.workload, s.key.metric, s.key.unit);
                for p in &s.points {
                    println!(
                        "    {:<17} {:<20} {:<9} n={:<4} median {}",
                        p.run_id,
                        date(p.started_at),
                        p.versus_version,
                        p.n,
                        fmt_value(p.median, &s.key.unit)
                    );
                }
                match &s.drift {
                    Some(d) if d.drifted => {
                        drifted += 1;
                        println!(
                            "    DRIFT: the last run's median {} is outside {} ± {k}·IQR = [{}, {}] of the previous {} runs",
                            fmt_value(d.last, &s.key.unit),
                            fmt_value(d.center, &s.key.unit),
                            fmt_value(d.low, &s.key.unit),
                            fmt_value(d.high, &s.key.unit),
                            d.previous
                        );
                    }
                    Some(d) => println!(
                        "    no drift: the last run is within [{}, {}] (previous {} runs)",
                        fmt_value(d.low, &s.key.unit),
                        fmt_value(d.high, &s.key.unit),
                        d.previous
                    ),
                    None => println!("    (drift needs at least {} earlier runs on this host)", trend::MIN_PREVIOUS),
                }
            }
            if drifted > 0 {
                println!("{drifted} series drifted");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
