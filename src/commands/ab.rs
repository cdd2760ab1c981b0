//! `versus ab`: run two versus builds (or one build with two settings)
//! interleaved on this host in ABBA blocks, merge each side's blocks and
//! compare them; `versus calibrate` (in calibrate.rs) runs one build against
//! itself the same way.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use versus::compare::ab::{self, AbData, AbPlan, AbSide};
use versus::compare::output::markdown;
use versus::compare::{self, Comparison, HostField, Policy};

use super::compare::{usage_error, GateArgs, EXIT_CODES};

/// `versus run` options passed to every block.
#[derive(Args, Debug, Clone)]
pub struct RunPassArgs {
    /// Platforms (comma-separated), as `versus run -p`.
    #[arg(short, long, value_delimiter = ',')]
    pub platforms: Option<Vec<String>>,
    /// Workloads (comma-separated), as `versus run -w`.
    #[arg(short, long, value_delimiter = ',')]
    pub workloads: Option<Vec<String>>,
    /// Measured launches per platform and workload in each block.
    #[arg(short, long)]
    pub runs: Option<u32>,
    /// Warm-up launches in each block.
    #[arg(long)]
    pub warmup: Option<u32>,
    /// `versus run --quick` in each block.
    #[arg(long)]
    pub quick: bool,
    /// `versus run --launch-only` in each block: launch latency and workloads only.
    #[arg(long)]
    pub launch_only: bool,
    /// `versus run --no-interference` in each block.
    #[arg(long)]
    pub no_interference: bool,
    /// Rounds to start with, four blocks each (ABBA, then BAAB).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub rounds: u32,
    /// Most rounds when the verdict is inconclusive for noise or too few
    /// samples: another round is run and the accumulated blocks re-tested.
    /// Each look tests at alpha / (max_rounds - rounds + 1), so the chance of
    /// a false regression over all looks stays below alpha.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub max_rounds: u32,
    /// Directory for the blocks and the comparison [default: reports/ab-<time>].
    #[arg(short, long)]
    pub out: Option<PathBuf>,
    /// Further `versus run` arguments for both sides (after `--`).
    #[arg(last = true, allow_hyphen_values = true)]
    pub extra: Vec<String>,
}

impl RunPassArgs {
    pub fn run_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(p) = &self.platforms {
            v.extend(["-p".to_string(), p.join(",")]);
        }
        if let Some(w) = &self.workloads {
            v.extend(["-w".to_string(), w.join(",")]);
        }
        if let Some(r) = self.runs {
            v.extend(["--runs".to_string(), r.to_string()]);
        }
        if let Some(w) = self.warmup {
            v.extend(["--warmup".to_string(), w.to_string()]);
        }
        for (on, flag) in [(self.quick, "--quick"), (self.launch_only, "--launch-only"), (self.no_interference, "--no-interference")] {
            if on {
                v.push(flag.to_string());
            }
        }
        v.extend(self.extra.iter().cloned());
        v
    }

    pub fn out_dir(&self, prefix: &str) -> PathBuf {
        self.out.clone().unwrap_or_else(|| PathBuf::from("reports").join(format!("{prefix}-{}", versus::runner::new_run_id())))
    }
}

#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct AbArgs {
    /// The BASE versus binary.
    #[arg(long, value_name = "PATH")]
    pub base_bin: PathBuf,
    /// The NEW versus binary [default: the BASE binary, for A/B of a setting].
    #[arg(long, value_name = "PATH")]
    pub new_bin: Option<PathBuf>,
    /// Environment of BASE's runs (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    pub base_env: Vec<(String, String)>,
    /// Environment of NEW's runs (repeatable).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    pub new_env: Vec<(String, String)>,
    /// An extra `versus run` argument for BASE only (repeatable, e.g. --base-arg=--memory-limit-mib=1024).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub base_arg: Vec<String>,
    /// An extra `versus run` argument for NEW only (repeatable).
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub new_arg: Vec<String>,
    #[command(flatten)]
    pub run: RunPassArgs,
    #[command(flatten)]
    pub gate: GateArgs,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).filter(|(k, _)| !k.is_empty()).ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

/// Runs rounds of blocks until the verdict is conclusive, more samples
/// cannot help, or `max_rounds` is reached; returns the last comparison.
pub fn run_rounds(
    verb: &str,
    plan: &AbPlan,
    pass: &RunPassArgs,
    policy: &Policy,
    gate: &GateArgs,
    ignore_version: bool,
) -> anyhow::Result<(Comparison, AbData)> {
    std::fs::create_dir_all(&plan.out_dir).with_context(|| format!("cannot create {}; choose another with --out", plan.out_dir.display()))?;
    let mut data = AbData::default();
    let looks = (pass.max_rounds.max(pass.rounds) - pass.rounds + 1) as f64;
    let mut opts = gate.options();
    opts.alpha_scale = 1.0 / looks;
    if ignore_version && !opts.ignore_host_fields.contains(&HostField::VersusVersion) {
        // The two builds are what is compared: their versions may differ.
        opts.ignore_host_fields.push(HostField::VersusVersion);
    }
    let stop = versus::interrupt::requested;
    let mut progress = |s: &str| eprintln!("versus {verb}: {s}");
    // Busy blocks are left out here, block by block, rather than making
    // the whole comparison inconclusive.
    let max_load = gate.max_foreign_load;
    opts.max_foreign_load = 1.0;
    let mut round = 0usize;
    loop {
        let target = if round == 0 { pass.rounds as usize } else { round + 1 };
        while round < target {
            let first = data.count();
            ab::run_round(plan, round, &mut data, &mut progress, &stop)?;
            if stop() {
                anyhow::bail!("interrupted after {} blocks (in {})", data.count(), plan.out_dir.display());
            }
            for b in &data.blocks[first..] {
                if AbData::disturbed(b, max_load) {
                    eprintln!(
                        "versus {verb}: block {} ran while other processes used {:.0}% of the host's CPU (bound {:.0}%): left out",
                        b.index,
                        b.foreign_load.unwrap_or(0.0) * 100.0,
                        max_load * 100.0
                    );
                }
            }
            round += 1;
        }
        let more_allowed = round < pass.max_rounds as usize;
        let disturbed: Vec<&ab::Block> = data.blocks.iter().filter(|b| AbData::disturbed(b, max_load)).collect();
        let c = match data.merged(max_load)? {
            Some((base, new)) => {
                let c = compare::compare(&base, &new, policy, &opts);
                if c.more_samples_may_help() && more_allowed {
                    eprintln!(
                        "versus {verb}: inconclusive after {round} round{} for noise or too few samples; running another round",
                        if round == 1 { "" } else { "s" }
                    );
                    for s in &c.summary {
                        eprintln!("  {s}");
                    }
                    continue;
                }
                let mut c = c;
                if !disturbed.is_empty() {
                    c.summary.push(format!(
                        "left out block{} {} (other processes used more than {:.0}% of the host's CPU while they ran)",
                        if disturbed.len() == 1 { "" } else { "s" },
                        block_list(&disturbed),
                        max_load * 100.0
                    ));
                }
                c
            }
            None if more_allowed => {
                eprintln!("versus {verb}: a side has no undisturbed block yet; running another round");
                continue;
            }
            None => {
                // Every block of a side was disturbed: compare them all, but
                // the verdict cannot stand.
                let (base, new) = data.merged(1.0)?.ok_or_else(|| anyhow::anyhow!("no blocks ran"))?;
                let mut c = compare::compare(&base, &new, policy, &opts);
                c.make_inconclusive(format!(
                    "the host was busy with other work: other processes used more than {:.0}% of its CPU during block{} {}, and a side has no other block; run on a quiet host, or pass --max-foreign-load 1 to compare anyway",
                    max_load * 100.0,
                    if disturbed.len() == 1 { "" } else { "s" },
                    block_list(&disturbed)
                ));
                c
            }
        };
        for w in &data.warnings {
            eprintln!("versus {verb}: warning: {w}");
        }
        return Ok((c, data));
    }
}

fn block_list(blocks: &[&ab::Block]) -> String {
    blocks.iter().map(|b| format!("{} ({:.0}%)", b.index, b.foreign_load.unwrap_or(0.0) * 100.0)).collect::<Vec<_>>().join(", ")
}

pub fn run(a: AbArgs) -> anyhow::Result<ExitCode> {
    let go = || -> anyhow::Result<ExitCode> {
        let policy = a.gate.policy()?;
        let base_bin = a.base_bin.clone();
        let new_bin = a.new_bin.clone().unwrap_or_else(|| base_bin.clone());
        let plan = AbPlan {
            base: AbSide { label: "base", bin: base_bin, env: a.base_env.clone(), args: a.base_arg.clone() },
            new: AbSide { label: "new", bin: new_bin, env: a.new_env.clone(), args: a.new_arg.clone() },
            run_args: a.run.run_args(),
            out_dir: a.run.out_dir("ab"),
        };
        let (c, _) = run_rounds("ab", &plan, &a.run, &policy, &a.gate, true)?;
        a.gate.emit(&c)?;
        let md = plan.out_dir.join("compare.md");
        std::fs::write(&md, markdown::render(&c)).with_context(|| format!("cannot write {}", md.display()))?;
        std::fs::write(plan.out_dir.join("compare.json"), compare::output::json::render(&c))?;
        eprintln!("versus ab: blocks and the comparison are in {}", plan.out_dir.display());
        Ok(ExitCode::from(c.overall.exit_code()))
    };
    Ok(go().unwrap_or_else(usage_error))
}
