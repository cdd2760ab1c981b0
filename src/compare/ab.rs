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
use crate::measure::load::{CpuClock, Whose};

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

/// One block that ran.
#[derive(Debug, Clone)]
pub struct Block {
    /// 1-based, in the order run.
    pub index: usize,
    pub is_base: bool,
    pub run: RunData,
    /// Share of the host's CPU time (all CPUs) used by other processes
    /// while the block ran; `None` when it could not be read.
    pub foreign_load: Option<f64>,
}

/// Blocks run so far.
#[derive(Debug, Default)]
pub struct AbData {
    pub blocks: Vec<Block>,
    /// Blocks whose `versus run` exited non-zero but wrote its files.
    pub warnings: Vec<String>,
}

impl AbData {
    /// Whether a block was run while other processes used more than
    /// `max_foreign_load` of the host's CPU.
    pub fn disturbed(b: &Block, max_foreign_load: f64) -> bool {
        b.foreign_load.is_some_and(|l| l > max_foreign_load)
    }

    /// Each side's undisturbed blocks merged; `None` when a side has none.
    pub fn merged(&self, max_foreign_load: f64) -> Result<Option<(RunData, RunData)>> {
        let side = |is_base: bool| -> Vec<RunData> {
            self.blocks.iter().filter(|b| b.is_base == is_base && !Self::disturbed(b, max_foreign_load)).map(|b| b.run.clone()).collect()
        };
        let (base, new) = (side(true), side(false));
        if base.is_empty() || new.is_empty() {
            return Ok(None);
        }
        Ok(Some((merge_runs(base)?, merge_runs(new)?)))
    }

    pub fn count(&self) -> usize {
        self.blocks.len()
    }

    /// Blocks of one side (undisturbed or not).
    pub fn side(&self, is_base: bool) -> impl Iterator<Item = &Block> {
        self.blocks.iter().filter(move |b| b.is_base == is_base)
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
    let dirs: Vec<PathBuf> = std::fs::read_dir(out).ok()?.flatten().map(|e| e.path()).filter(|p| p.join(SAMPLES_FILE).is_file()).collect();
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
    // Only the block's processes (waited-for children) count as ours.
    let before = CpuClock::now(Whose::Children);
    let status = cmd.status().map_err(|e| CompareError::Spawn { bin: side.bin.clone(), source: e })?;
    let load = before.and_then(|b| b.foreign_load_since());
    let what = format!("block {index} ({}: {} run)", side.label, side.bin.display());
    let dir = match written_run_dir(&out) {
        Some(d) => d,
        None => return Err(CompareError::Block { what, message: format!("exited with {status} and wrote no run directory"), log }),
    };
    if !status.success() {
        data.warnings.push(format!("{what} exited with {status} but wrote {}; some platforms may be missing (see {})", dir.display(), log.display()));
    }
    let run = read_run_dir(&dir)?;
    data.blocks.push(Block { index, is_base: side.label == plan.base.label, run, foreign_load: load });
    Ok(())
}

/// Runs one round of four blocks, telling `progress` before each.
pub fn run_round(plan: &AbPlan, round: usize, data: &mut AbData, progress: &mut dyn FnMut(&str), stop: &dyn Fn() -> bool) -> Result<()> {
    for is_base in round_order(round) {
        if stop() {
            break;
        }
        let side = if is_base { &plan.base } else { &plan.new };
        let index = data.count() + 1;
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
    fn disturbed_blocks_are_left_out_and_a_side_without_blocks_gives_none() {
        let run = crate::compare::input::read_run_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example")).unwrap();
        let block = |index, is_base, load| Block { index, is_base, run: run.clone(), foreign_load: load };
        let mut data =
            AbData { blocks: vec![block(1, true, Some(0.05)), block(2, false, Some(0.9)), block(3, false, None), block(4, true, Some(0.1))], warnings: vec![] };
        let (b, n) = data.merged(0.25).unwrap().unwrap();
        assert_eq!((b.blocks, n.blocks), (2, 1));
        data.blocks[2].foreign_load = Some(0.5);
        assert!(data.merged(0.25).unwrap().is_none());
        assert!(data.merged(1.0).unwrap().is_some());
    }

    #[test]
    fn a_missing_binary_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let side = |label| AbSide { label, bin: d.path().join("no-such-versus"), env: vec![], args: vec![] };
        let plan = AbPlan { base: side("base"), new: side("new"), run_args: vec![], out_dir: d.path().to_path_buf() };
        let mut data = AbData::default();
        let e = run_block(&plan, &plan.base, 1, &mut data).unwrap_err().to_string();
        assert!(e.contains("no-such-versus") && e.contains("path of a versus binary"), "{e}");
    }

    #[test]
    fn a_block_that_writes_nothing_points_at_its_log() {
        let d = tempfile::tempdir().unwrap();
        let side = |label| AbSide { label, bin: PathBuf::from("/bin/true"), env: vec![], args: vec![] };
        let plan = AbPlan { base: side("base"), new: side("new"), run_args: vec![], out_dir: d.path().to_path_buf() };
        let mut data = AbData::default();
        let e = run_block(&plan, &plan.new, 2, &mut data).unwrap_err().to_string();
        assert!(e.contains("wrote no run directory") && e.contains("02-new"), "{e}");
    }
}
