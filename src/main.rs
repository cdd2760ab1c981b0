//! `versus`: the command line. A small main that wires CLI -> options ->
//! runner -> exporters (after hyperfine); each verb lives in src/commands/.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;

/// Containers or virtual machines? versus launches the same workload as a
/// plain process, a namespace container and a KVM guest and measures boot
/// latency, memory, size, isolation and patching cost on this host.
#[derive(Parser, Debug)]
#[command(name = "versus", version, about, long_about = None)]
struct Cli {
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the host fingerprint: kernel, CPU, memory, cgroups, user
    /// namespaces, overlayfs, KVM mode and installed peers.
    Env(commands::env::EnvArgs),
    /// Launch one instance on one platform and print its phase times.
    Launch(commands::launch::LaunchArgs),
    /// Benchmark platforms and workloads; write samples.csv, summary.csv and
    /// env.json under reports/<run-id>/.
    Run(commands::run::RunArgs),
    /// Run the isolation probe matrix inside each platform.
    Probe(commands::probe::ProbeArgs),
    /// Re-render charts, report.md and report.html of a run from its CSV files.
    Report(commands::report::ReportArgs),
    /// A capacity plan from a run: instances per host, hosts for a fleet,
    /// start times and disk, each with its inputs and the limit that binds.
    Plan(commands::plan::PlanArgs),
    /// Compare two runs (directories or history run ids): exit 0 no
    /// regression, 1 regression, 2 inconclusive, 3 usage error.
    Compare(commands::compare::CompareArgs),
    /// Run two versus builds (or two settings) interleaved in ABBA blocks on
    /// this host and compare them (exit codes as compare).
    Ab(commands::ab::AbArgs),
    /// A/A: run this build against itself, report each metric's noise floor
    /// on this host and suggest a policy file.
    Calibrate(commands::calibrate::CalibrateArgs),
    /// The run history database: import, list, show, trend.
    History(commands::history::HistoryArgs),
    /// Export a run for other CI tools (Bencher Metric Format JSON).
    Export(commands::export::ExportArgs),
    /// Real OS images (a Debian debootstrap) for the size and patch
    /// experiments of `versus run --image`.
    Image(commands::image::ImageArgs),
}

fn main() -> ExitCode {
    // Usage errors exit 3 (not clap's 2): `versus compare` uses 2 for
    // "inconclusive".
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(versus::compare::EXIT_USAGE) } else { ExitCode::SUCCESS };
        }
    };
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)))
        .with_writer(std::io::stderr)
        .try_init();
    if let Err(e) = versus::interrupt::install() {
        eprintln!("versus: warning: cannot install the Ctrl-C handler ({e}); an interrupt may leave instances behind");
    }
    let result = match cli.command {
        Command::Env(a) => commands::env::run(a),
        Command::Launch(a) => commands::launch::run(a),
        Command::Run(a) => commands::run::run(a),
        Command::Probe(a) => commands::probe::run(a),
        Command::Report(a) => commands::report::run(a),
        Command::Plan(a) => commands::plan::run(a),
        Command::Compare(a) => commands::compare::run(a),
        Command::Ab(a) => commands::ab::run(a),
        Command::Calibrate(a) => commands::calibrate::run(a),
        Command::History(a) => commands::history::run(a),
        Command::Export(a) => commands::export::run(a),
        Command::Image(a) => commands::image::run(a),
    };
    match result {
        // An interrupt that arrived late (while the run's files were
        // written) still ends with 130: the run did not end as asked.
        Ok(_) if versus::interrupt::requested() => {
            eprintln!("versus: interrupted; everything launched was torn down");
            ExitCode::from(130)
        }
        Ok(code) => code,
        Err(e) => {
            if versus::interrupt::requested() {
                eprintln!("versus: interrupted; everything launched was torn down");
                return ExitCode::from(130);
            }
            eprintln!("versus: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
