//! `versus run`: benchmark platforms and workloads and write the run's files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use versus::experiment::density::{DensityOptions, KsmPass};
use versus::experiment::interference;
use versus::experiment::storm::StormOptions;
use versus::export::json::{self, EnvDoc};
use versus::export::{self as ex};
use versus::model::RunStatus;
use versus::platform::container::Profile;
use versus::platform::registry::{self, PlatformOptions};
use versus::platform::Limits;
use versus::runner::{self, CostOptions, Order, Progress, RunOptions, Sizing, WorkloadPlan};
use versus::workload::{Workload, WorkloadSpec};

use super::launch::parse_secs;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Platforms to run (comma-separated); default: every platform, those
    /// this host cannot run are skipped with the reason.
    #[arg(short, long, value_delimiter = ',')]
    pub platforms: Option<Vec<String>>,
    /// Workloads (comma-separated): ready, cpu[:rounds], mem[:MiB], call[:n], idle[:MiB]
    /// (`idle` is what `teardown` is measured on: a live instance stopped).
    /// cpu, mem and call without a size are sized so that one launch takes
    /// about 200 ms (50 ms with --quick); `call:N` fixes N.
    #[arg(short, long, value_delimiter = ',', default_value = "ready,cpu,mem,call,idle")]
    pub workloads: Vec<String>,
    /// Measured launches per platform and workload.
    #[arg(short, long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Unrecorded warm-up launches before the measured ones.
    #[arg(long, default_value_t = 2)]
    pub warmup: u32,
    /// Directory under which reports/<run-id>/ is written.
    #[arg(short, long, default_value = "reports")]
    pub out: PathBuf,
    /// A short run: 5 runs, 1 warm-up, workloads sized to 50 ms, within 20 s;
    /// without -p, versus' own platforms only (the peers are named with -p).
    #[arg(long)]
    pub quick: bool,
    /// The time the whole run may take, in seconds (default: 120, or 20
    /// with --quick; `none` for no limit): what would overrun is shortened
    /// (fewer launches, shorter measurements) and the run says so.
    #[arg(long, value_parser = parse_budget)]
    pub max_time: Option<Budget>,
    /// Seconds to wait for each step of a launch.
    #[arg(long, default_value_t = 30.0, value_parser = parse_secs)]
    pub timeout: f64,
    /// Memory limit of a container instance, in MiB.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=(1 << 30)))]
    pub memory_limit_mib: u64,
    /// Order of the launches: `interleaved` (the platforms take turns in
    /// blocks of 5 launches, so host drift falls on all alike) or
    /// `sequential` (one platform after the other).
    #[arg(long, default_value = "interleaved", value_parser = ["interleaved", "sequential"])]
    pub order: String,
    /// Run platforms even where their numbers are not representative.
    #[arg(long)]
    pub force: bool,
    /// Kernel image for vm-linux (vmlinux or bzImage).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// MiB an idle instance holds for the memory measurement (mem.host,
    /// mem.overhead, mem.vmm), the boot storm and the density ramp.
    #[arg(long, default_value_t = 16)]
    pub memory_mib: u32,
    /// Largest N of the boot storm (N launches at once; N = 1, 2, 4, ...),
    /// within the run's time budget and a memory guard (0: no storm).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=1024))]
    pub storm_max: u32,
    /// Storms per N (the plan's start-rate CI needs 2 or more).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub storm_reps: u32,
    /// Memory the density ramp's idle instances may hold (e.g. 2GiB);
    /// default: a quarter of MemAvailable. The run's time budget may end
    /// the ramp sooner (see --max-time).
    #[arg(long, value_parser = parse_size_arg)]
    pub density_budget: Option<u64>,
    /// The density ramp never lets MemAvailable fall below this (default:
    /// a quarter of the host's memory, at least 1 GiB).
    #[arg(long, value_parser = parse_size_arg)]
    pub density_floor: Option<u64>,
    /// Count limit of the density ramp.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_instances: u32,
    /// Repeat the density ramp with KSM on (instances' memory mergeable);
    /// KSM's settings are restored afterwards. KSM is a known side channel
    /// between the instances that share pages.
    #[arg(long)]
    pub ksm: bool,
    /// Instances built for real in the footprint measurement.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub footprint_instances: u32,
    /// Also measure size and maintenance on a real OS image: `debian` (a
    /// debootstrap minbase of Debian stable from this host's apt mirror,
    /// built once into ~/.cache/versus/images; see `versus image build`):
    /// its sizes as container layers and VM disks, and the patch drill.
    #[arg(long)]
    pub image: Option<String>,
    /// Largest N of the patch drill (N = 1, 2, 4, ... up to it; 0: no drill).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub patch_instances: u32,
    /// Launch latency and workloads only: no memory, density, footprint,
    /// probes, interference, charts or report.
    #[arg(long)]
    pub launch_only: bool,
    /// Skip the noisy-neighbour interference measurement.
    #[arg(long)]
    pub no_interference: bool,
    /// Record the run in the history database (`versus history`); a
    /// database error is a warning, the run's files are kept.
    #[arg(long)]
    pub history: bool,
    /// The history database (default ~/.local/share/versus/history.db).
    #[arg(long, requires = "history")]
    pub history_db: Option<PathBuf>,
    /// The container platform's security profile: `default` (what runc and
    /// Docker apply: 14 capabilities, seccomp, no_new_privs, masked /proc
    /// paths) or `privileged` (namespaces, cgroup and read-only rootfs only).
    #[arg(long, default_value = "default")]
    pub container_profile: Profile,
}

struct Bar(ProgressBar);
impl Progress for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }
    fn set_message(&self, msg: String) {
        self.0.set_message(msg);
    }
    fn inc(&self) {
        self.0.inc(1);
    }
    fn println(&self, line: String) {
        self.0.suspend(|| eprintln!("{line}"));
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Creates `dir` and checks that a file can be written in it.
fn check_writable(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create output directory {}; choose another with --out", dir.display()))?;
    let probe = dir.join(".versus-write-test");
    std::fs::write(&probe, b"").with_context(|| format!("cannot write to output directory {}; choose another with --out", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// Removes a partially written run directory unless disarmed.
struct PartialRun(Option<PathBuf>);
impl Drop for PartialRun {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

pub fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    let explicit = a.platforms.is_some();
    let platforms = a.platforms.clone().unwrap_or_else(|| registry::names().into_iter().map(String::from).collect());
    registry::validate(&platforms)?;
    // A workload named without its size is sized by calibration.
    let target = Duration::from_millis(if a.quick { 50 } else { 200 });
    let mut workloads: Vec<WorkloadPlan> = Vec::new();
    for w in &a.workloads {
        let spec: WorkloadSpec = w.parse().map_err(anyhow::Error::msg)?;
        let sizing = if w.contains(':') { Sizing::Fixed } else { Sizing::Target(target) };
        workloads.push(WorkloadPlan { spec, sizing });
    }
    let max_time = match a.max_time {
        Some(Budget::Unlimited) => None,
        Some(Budget::Secs(s)) => Some(Duration::from_secs_f64(s)),
        None => Some(Duration::from_secs(if a.quick { 20 } else { 120 })),
    };
    if let Some(w) = workloads.iter().map(|w| w.spec).find(|w| w.guest_mode().is_some()) {
        anyhow::bail!("`{w}` is a mode of the workload program, not a benchmark workload: probes run with `versus probe` (and in every `versus run`), stresses in the interference measurement");
    }
    let (runs, warmup) = if a.quick { (5, 1) } else { (a.runs, a.warmup) };
    if runs.checked_add(warmup).is_none() {
        anyhow::bail!("--runs {runs} plus --warmup {warmup} is more launches than versus can count; give smaller numbers");
    }
    let popts = PlatformOptions { force: a.force, kernel: a.kernel.clone(), console: false, container_profile: a.container_profile };
    // Platforms asked for by name must run: one that cannot is an error
    // before anything is launched (the defaults skip with the reason).
    // --quick's default set is versus' own platforms: the peers' launches
    // (runsc's teardown alone takes over a second) would not fit its 20 s.
    let quick_leaves_out = |n: &str| a.quick && !explicit && registry::info(n).is_some_and(|i| i.group != versus::platform::info::Group::Versus);
    let candidates: Vec<runner::Candidate> = platforms
        .iter()
        .map(|n| {
            let c = if quick_leaves_out(n) {
                Err(registry::NotRun::Skipped(versus::platform::info::Unavailable::NotSelected(format!(
                    "--quick runs versus' own platforms only; name `{n}` with -p to include it"
                ))))
            } else {
                registry::create(n, &popts)
            };
            (n.clone(), c)
        })
        .collect();
    if explicit {
        if let Some((n, Err(why))) = candidates.iter().find(|(_, c)| c.is_err()) {
            anyhow::bail!("platform `{n}` cannot run on this host: {why}");
        }
    }
    check_writable(&a.out)?;
    let run_id = runner::new_run_id();
    let dir = runner::run_dir(&a.out, &run_id);
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut partial = PartialRun(Some(dir.clone()));

    let costs = if a.launch_only {
        CostOptions::none()
    } else {
        // Bounded by the run's time budget (the runner shares it out);
        // --quick bounds them further.
        let unbounded = Duration::from_secs(3600);
        let mut density = DensityOptions {
            max_instances: a.max_instances as usize,
            budget_bytes: a.density_budget.unwrap_or_else(versus::experiment::density::default_budget),
            floor_bytes: a.density_floor.unwrap_or_else(versus::experiment::density::default_floor),
            time_budget: unbounded,
            ksm: a.ksm.then(KsmPass::default),
        };
        let mut storm = StormOptions { max_n: a.storm_max as usize, reps: a.storm_reps, time_budget: unbounded, floor_bytes: density.floor_bytes };
        let mut interference = interference::Config { reps: 2, max_window: Duration::from_secs(3), ..interference::Config::default() };
        if a.quick {
            density.max_instances = density.max_instances.min(32);
            density.time_budget = Duration::from_secs(2);
            storm.max_n = storm.max_n.min(8);
            interference.reps = 1;
            interference.max_window = Duration::from_secs(1);
            interference.victims = vec![WorkloadSpec::Bench(Workload::Cpu { rounds: 20_000 }), WorkloadSpec::Bench(Workload::Mem { mib: 16 })];
        }
        CostOptions {
            memory_mib: a.memory_mib,
            // 10: the fewest samples `versus compare` tests (below that a
            // permutation test cannot reach a small p-value); an idle
            // instance's memory is quick to measure.
            memory_iterations: if a.quick { 2 } else { 10 },
            density: Some(density),
            storm: (storm.max_n > 0).then_some(storm),
            footprint_instances: a.footprint_instances as usize,
            probes: true,
            interference: (!a.no_interference).then_some(interference),
            image: a.image.clone().map(|name| runner::image::ImageOptions {
                name,
                patch_instances: a.patch_instances as usize,
                size_instances: a.footprint_instances as usize,
                timeout: Duration::from_secs_f64(a.timeout),
            }),
        }
    };
    let opts = RunOptions {
        platforms: platforms.clone(),
        workloads,
        runs,
        warmup,
        timeout: Duration::from_secs_f64(a.timeout),
        limits: Limits { memory_bytes: a.memory_limit_mib << 20, ..Limits::default() },
        platform_options: popts,
        order: if a.order == "sequential" { Order::Sequential } else { Order::default() },
        max_time,
        costs,
    };
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    let started_at_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (host, mut host_measurements) = versus::host::fingerprint();
    // How busy the host was with other work while the run measured
    // (versus compare calls a run on a busy host inconclusive).
    let clock = versus::measure::load::CpuClock::now(versus::measure::load::Whose::SelfAndChildren);
    let result = runner::run_with(&run_id, candidates, &opts, &Bar(bar))?;
    host_measurements.foreign_cpu_load = clock.and_then(|c| c.foreign_load_since());

    ex::write_samples(&dir.join("samples.csv"), &result.samples)?;
    let summary = ex::summarize_samples(&result.samples);
    ex::write_summary(&dir.join("summary.csv"), &summary)?;
    let doc = EnvDoc {
        run_id: run_id.clone(),
        versus_version: env!("CARGO_PKG_VERSION").into(),
        git_revision: json::git_revision(),
        command_line: std::env::args().collect(),
        started_at_unix,
        host,
        host_measurements,
        platforms: result.statuses.clone(),
        not_measured: result.not_measured.clone(),
        limits: Some(opts.limits),
        workload_sizes: result.sizes.clone(),
    };
    json::write_env(&dir.join("env.json"), &doc)?;
    if !result.probes.is_empty() {
        ex::write_probes(&dir.join("probes.csv"), &result.probes)?;
    }
    let report = if a.launch_only { None } else { Some(versus::report::render_report(&dir).context("rendering charts and report.md")?) };
    partial.0 = None;
    if a.history {
        let db = a.history_db.clone().unwrap_or_else(versus::history::default_db_path);
        match versus::history::record_run(&dir, &db) {
            Ok(_) => eprintln!("recorded in the history at {}", db.display()),
            Err(e) => eprintln!("warning: the run was not recorded in the history ({e}); its files are in {}", dir.display()),
        }
    }

    print!("{}", super::table::render(&summary));
    for s in &result.statuses {
        match (s.status, &s.reason) {
            (RunStatus::Ran, _) => {
                if let Some(n) = &s.representative_note {
                    println!("note: {} ran, but its numbers are not representative on this host: {n}", s.platform);
                }
            }
            (st, Some(r)) => println!("{}: {st}: {r}", s.platform),
            (st, None) => println!("{}: {st}", s.platform),
        }
    }
    for n in &result.not_measured {
        println!("not measured: {n}");
    }
    match report {
        Some(r) => println!("wrote {} (report: {})", dir.display(), r.display()),
        None => println!("wrote {}", dir.display()),
    }
    Ok(if result.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `--max-time`: seconds, or `none`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    Secs(f64),
    Unlimited,
}

fn parse_budget(s: &str) -> Result<Budget, String> {
    if s == "none" {
        return Ok(Budget::Unlimited);
    }
    parse_secs(s).map(Budget::Secs)
}

/// A size argument (`2GiB`).
pub fn parse_size_arg(s: &str) -> Result<u64, String> {
    versus::units::parse_size(s).map_err(|e| e.to_string())
}
