//! `versus calibrate`: A against A. Runs one versus build against itself
//! in interleaved blocks, as `versus ab` would, and reports each metric's
//! noise floor on this host (the smallest change the gate can see at this
//! sample count) and a policy file that fits it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use versus::compare::ab::{AbPlan, AbSide};
use versus::compare::calibrate::{noise_floors, suggest_policy};
use versus::compare::Verdict;

use super::ab::{run_rounds, RunPassArgs};
use super::compare::{usage_error, GateArgs};

#[derive(Args, Debug)]
#[command(after_help = "Exit codes: 0 calibrated (even when the A/A comparison flagged a metric: the report says so), 3 usage error.")]
pub struct CalibrateArgs {
    /// The versus binary to calibrate [default: this one].
    #[arg(long, value_name = "PATH")]
    pub bin: Option<PathBuf>,
    /// Write the suggested policy file here (it is printed either way).
    #[arg(long, value_name = "FILE")]
    pub write_policy: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunPassArgs,
    #[command(flatten)]
    pub gate: GateArgs,
}

pub fn run(a: CalibrateArgs) -> anyhow::Result<ExitCode> {
    let go = || -> anyhow::Result<ExitCode> {
        let policy = a.gate.policy()?;
        let bin = match &a.bin {
            Some(b) => b.clone(),
            None => std::env::current_exe().context("cannot find this versus binary; pass --bin")?,
        };
        let side = |label| AbSide { label, bin: bin.clone(), env: Vec::new(), args: Vec::new() };
        let plan = AbPlan { base: side("base"), new: side("new"), run_args: a.run.run_args(), out_dir: a.run.out_dir("calibrate") };
        // A/A: a second round only helps resolve too few samples.
        let (c, _) = run_rounds("calibrate", &plan, &a.run, &policy, &a.gate, false)?;
        a.gate.emit(&c)?;
        let floors = noise_floors(&c);
        let per_side = format!("{} + {} blocks", c.base.blocks, c.new.blocks);
        println!("\nnoise floor per metric (A/A, {per_side}): the smallest change the gate can see here");
        let w = floors.iter().map(|f| f.label.len()).max().unwrap_or(6).max(6);
        println!("  {:<w$}  {:>5} {:>8} {:>18} {:>8} {:>8}  note", "metric", "n", "spread", "A/A 95% CI", "floor", "min eff");
        // Gated metrics first: they are what the suggestion is about.
        let mut floors = floors;
        floors.sort_by_key(|f| !f.gated);
        for f in &floors {
            let mut note = Vec::new();
            if !f.gated {
                note.push("reported only".to_string());
            } else if f.floor > f.min_effect {
                note.push(format!("floor above the minimum effect: suggest {:.0}%", f.suggested_min_effect() * 100.0));
            }
            if f.gated && f.spread > f.max_spread {
                note.push(format!("spread above the {:.0}% bound", f.max_spread * 100.0));
            }
            if matches!(f.verdict, Verdict::Regression | Verdict::Improvement) {
                note.push(format!("A/A flagged it ({}): the host is not stable for it", f.verdict.as_str()));
            }
            println!(
                "  {:<w$}  {:>5} {:>7.1}% {:>18} {:>7.1}% {:>7.0}%  {}",
                f.label,
                f.n,
                f.spread * 100.0,
                format!("[{:+.1}%, {:+.1}%]", f.ci.0 * 100.0, f.ci.1 * 100.0),
                f.floor * 100.0,
                f.min_effect * 100.0,
                note.join("; ")
            );
        }
        let busy = c.summary.iter().find(|s| s.contains("host was busy")).cloned();
        let mut context = format!("host: {} (versus {}); {per_side} of `versus run {}`", c.base.host, c.base.versus_version, plan.run_args.join(" "));
        if let Some(b) = &busy {
            context.push_str(&format!(
                "\nWARNING: {b}\nThe floors below describe that other work's noise more than this host's: calibrate again on a quiet host."
            ));
        }
        let suggestion = suggest_policy(&floors, &context);
        println!("\nsuggested policy:\n\n{suggestion}");
        if let Some(p) = &a.write_policy {
            std::fs::write(p, &suggestion).with_context(|| format!("cannot write {}", p.display()))?;
            eprintln!("wrote the suggested policy to {}", p.display());
        }
        eprintln!("versus calibrate: blocks are in {}", plan.out_dir.display());
        Ok(ExitCode::SUCCESS)
    };
    Ok(go().unwrap_or_else(usage_error))
}
