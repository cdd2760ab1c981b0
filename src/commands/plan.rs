//! `versus plan [RUN_DIR] --host-memory SIZE --host-cores N ...`: a capacity
//! plan from a run's figures (src/plan/), printed as a table and written as
//! plan.md and plan.csv in the run directory, whose report is re-rendered
//! to include it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use versus::model::DensityBasis;
use versus::plan::{self, PlanOptions};
use versus::units::{parse_percent, parse_rate, parse_size};

/// Every value is read here rather than by clap, so that a bad one is a
/// one-line error naming the option.
#[derive(Args, Debug)]
pub struct PlanArgs {
    /// A run directory (reports/<run-id>); default: the newest run under reports/.
    pub dir: Option<PathBuf>,
    /// Memory of one host (e.g. 512GiB).
    #[arg(long, value_name = "SIZE")]
    pub host_memory: String,
    /// CPU cores of one host.
    #[arg(long, value_name = "N")]
    pub host_cores: String,
    /// Memory each instance's workload holds (default: as measured).
    #[arg(long, value_name = "SIZE")]
    pub instance_memory: Option<String>,
    /// Instances in the fleet (hosts, start time and disk for them).
    #[arg(long, value_name = "M")]
    pub instances: Option<String>,
    /// The most launches per second one host may be given (e.g. 50/s).
    #[arg(long, value_name = "R/s")]
    pub start_rate: Option<String>,
    /// Percentage of each host kept for its own use.
    #[arg(long, value_name = "PCT", default_value = "10")]
    pub reserve: String,
    /// Disk of one host: the disk limit applies when given.
    #[arg(long, value_name = "SIZE")]
    pub host_disk: Option<String>,
    /// CPUs each instance needs: the CPU limit applies when given.
    #[arg(long, value_name = "CPUS")]
    pub instance_cpu: Option<String>,
    /// What the memory line is fitted to: pss (default), host (MemAvailable
    /// drop: kernel memory included, host-wide noise too) or cgroup.
    #[arg(long, default_value = "pss")]
    pub basis: String,
    /// Plan from the density ramp measured with KSM on.
    #[arg(long)]
    pub ksm: bool,
}

fn count(name: &str, v: &str) -> anyhow::Result<u64> {
    match v.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => anyhow::bail!("{name} must be a whole number of at least 1, not `{v}`"),
    }
}

fn size(name: &str, v: &str) -> anyhow::Result<u64> {
    parse_size(v).map_err(|e| anyhow::anyhow!("{name}: {e}"))
}

/// The newest run directory under `reports/`.
fn newest_run(root: &Path) -> anyhow::Result<PathBuf> {
    let mut runs: Vec<PathBuf> =
        std::fs::read_dir(root).map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.join("samples.csv").is_file()).collect()).unwrap_or_default();
    runs.sort();
    runs.pop().ok_or_else(|| anyhow::anyhow!("no run directory given and {} holds no run; give RUN_DIR (reports/<run-id>)", root.display()))
}

pub fn run(a: PlanArgs) -> anyhow::Result<ExitCode> {
    let cores = count("--host-cores", &a.host_cores)?;
    let opts = PlanOptions {
        host_memory: size("--host-memory", &a.host_memory)?,
        host_cores: u32::try_from(cores).map_err(|_| anyhow::anyhow!("--host-cores {cores} is more than versus can count"))?,
        instance_memory: a.instance_memory.as_deref().map(|v| size("--instance-memory", v)).transpose()?,
        instances: a.instances.as_deref().map(|v| count("--instances", v)).transpose()?,
        start_rate: a.start_rate.as_deref().map(|v| parse_rate(v).map_err(|e| anyhow::anyhow!("--start-rate: {e}"))).transpose()?,
        reserve: parse_percent(&a.reserve).map_err(|e| anyhow::anyhow!("--reserve: {e}"))?,
        host_disk: a.host_disk.as_deref().map(|v| size("--host-disk", v)).transpose()?,
        instance_cpu: match a.instance_cpu.as_deref() {
            None => None,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(c) if c.is_finite() && c > 0.0 => Some(c),
                _ => anyhow::bail!("--instance-cpu must be a positive number of CPUs (e.g. 0.25), not `{v}`"),
            },
        },
        basis: a.basis.parse::<DensityBasis>().map_err(|e| anyhow::anyhow!("--basis: {e}"))?,
        ksm: a.ksm,
    };
    let dir = match a.dir {
        Some(d) => d,
        None => newest_run(Path::new("reports"))?,
    };
    let p = plan::plan_run(&dir, &opts)?;
    print!("{}", p.table());
    let (md, csv) = p.write(&dir)?;
    let report = versus::report::render_report(&dir).with_context(|| format!("re-rendering the report of {} with the plan", dir.display()))?;
    println!("wrote {}, {} and {}", md.display(), csv.display(), report.display());
    Ok(ExitCode::SUCCESS)
}
