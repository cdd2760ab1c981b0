//! `versus ab` and `versus calibrate`: two versus builds (or one build with
//! two settings) run on one host in interleaved blocks, ABBA then BAAB, so
//! that slow drifts of the host (thermal, page cache, a neighbour's build)
//! fall on both sides alike. Each block is a plain `versus run ... -o DIR`
//! of that side's binary; the blocks of a side are merged and compared.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::data::RunData;
use super::error::{CompareError, Result};
use super::input::{merge_runs, read_run_dir, SAMPLES_FILE};

/// One side: the binary, extra environment and extra `versus run` arguments.
#[derive(Debug, Clone)]
pub struct AbSide {
    /// `base` or `new`: names block directories.
    pub label: &'static str,
    pub bin: PathBuf,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct AbPlan {
    pub base: AbSide,
    pub new: AbSide,
    /// `versus run` arguments both sides get (platforms, workloads, runs).
    pub run_args: Vec<String>,
    /// Where block directories go (`DIR/blocks/NN-base`, `NN-new`).
    pub out_dir: PathBuf,
}

/// Blocks run so far, per side.
#[derive(Debug, Default)]
pub struct AbData {
    pub base: Vec<RunData>,
    pub new: Vec<RunData>,
    /// Blocks whose `versus run` exited non-zero but wrote its files.
    pub warnings: Vec<String>,
}

impl AbData {
    /// Each side's blocks merged.
    pub fn merged(&self) -> Result<(RunData, RunData)> {
        Ok((merge_runs(self.base.clone())?, merge_runs(self.new.clone())?))
    }
    pub fn blocks(&self) -> usize {
        self.base.len() + self.new.len()
    }
}

/// The sides of round `round` (0-based), `true` for BASE: ABBA, then BAAB,
/// alternating, so that over two rounds each side runs first, second,
/// third and fourth once.
pub fn round_order(round: usize) -> [bool; 4] {
    if round % 2 == 0 {
        [true, false, false, true]
    } else {
        [false, true, true, false]
    }
}

/// The single run directory `versus run -o out` wrote.
fn written_run_dir(out: &Path) -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(SAMPLES_FILE).is_file())
        .collect();
    (dirs.len() == 1).then(|| dirs[0].clone())
}

/// Runs block `index` (1-based, names its directory) of `side`.
pub fn run_block(plan: &AbPlan, side: &AbSide, index: usize, data: &mut AbData) -> Result<()> {
    let out = plan.out_dir.join("blocks").join(format!("{index:02}-{}", side.label));
    std::fs::create_dir_all(&out).map_err(|e| CompareError::Write { path: out.clone(), source: e })?;
    let log = out.join("versus-run.log");
    let log_file = std::fs::File::create(&log).map_err(|e| CompareError::Write { path: log.clone(), source: e })?;
    let log_err = log_file.try_clone().map_err(|e| CompareError::Write { path: log.clone(), source: e })?;
    let mut cmd = Command::new(&side.bin);
    cmd.arg("run").args(&plan.run_args).args(&side.args).arg("-o").arg(&out);
    cmd.envs(side.env.iter().map(|(k, v)| (k, v)));
    cmd.stdin(Stdio::null()).stdout(log_file).stderr(log_err);
    let status = cmd.status().map_err(|e| CompareError::Spawn {
        bin: side.bin.clone(),
        source: e,
    })?;
    let what = format!("block {index} ({}: {} run)", side.label, side.bin.display());
    let dir = match written_run_dir(&out) {
        Some(d) => d,
        None => {
            return Err(CompareError::Block {
                what,
                message: format!("exited with {status} and wrote no run directory"),
                log,
            })
        }
    };
    if !status.success() {
        data.warnings.push(format!(
            "{what} exited with {status} but wrote {}; some platforms may be missing (see {})",
            dir.display(),
            log.display()
        ));
    }
    let run = read_run_dir(&dir)?;
    if side.label == plan.base.label {
        data.base.push(run);
    } else {
        data.new.push(run);
    }
    Ok(())
}

/// Runs one round of four blocks, telling `progress` before each.
pub fn run_round(plan: &AbPlan, round: usize, data: &mut AbData, progress: &mut dyn FnMut(&str), stop: &dyn Fn() -> bool) -> Result<()> {
    for is_base in round_order(round) {
        if stop() {
            break;
        }
        let side = if is_base { &plan.base } else { &plan.new };
        let index = data.blocks() + 1;
        progress(&format!("block {index}: {} ({})", side.label, side.bin.display()));
        run_block(plan, side, index, data)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_alternate_abba_and_baab() {
        assert_eq!(round_order(0), [true, false, false, true]);
        assert_eq!(round_order(1), [false, true, true, false]);
        assert_eq!(round_order(2), round_order(0));
        // Over two rounds each side takes every position once.
        for pos in 0..4 {
            assert_ne!(round_order(0)[pos], round_order(1)[pos]);
        }
    }

    #[test]
    fn a_missing_binary_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let side = |label| AbSide {
            label,
            bin: d.path().join("no-such-versus"),
            env: vec![],
            args: vec![],
        };
        let plan = AbPlan {
            base: side("base"),
            new: side("new"),
            run_args: vec![],
            out_dir: d.path().to_path_buf(),
        };
        let mut data = AbData::default();
        let e = run_block(&plan, &plan.base, 1, &mut data).unwrap_err().to_string();
        assert!(e.contains("no-such-versus") && e.contains("path of a versus binary"), "{e}");
    }

    #[test]
    fn a_block_that_writes_nothing_points_at_its_log() {
        let d = tempfile::tempdir().unwrap();
        let side = |label| AbSide {
            label,
            bin: PathBuf::from("/bin/true"),
            env: vec![],
            args: vec![],
        };
        let plan = AbPlan {
            base: side("base"),
            new: side("new"),
            run_args: vec![],
            out_dir: d.path().to_path_buf(),
        };
        let mut data = AbData::default();
        let e = run_block(&plan, &plan.new, 2, &mut data).unwrap_err().to_string();
        assert!(e.contains("wrote no run directory") && e.contains("02-new"), "{e}");
    }
}
