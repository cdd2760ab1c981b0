//! `versus compare`: is NEW a regression against BASE?
//!
//! Per (platform, workload, metric, unit): a two-sided permutation test on
//! the difference of medians ([`permutation`]), a bootstrap 95% interval of
//! the relative change ([`bootstrap`]), Benjamini-Hochberg across the
//! metrics ([`fdr`]), and a verdict under the metric's policy ([`policy`],
//! [`verdict`]): a regression only when the adjusted p-value is below α
//! *and* the whole interval lies beyond the minimum effect. Deterministic
//! metrics and probe verdicts compare exactly. Runs from different hosts,
//! too few samples and too much noise give an inconclusive verdict that
//! says which. [`ab`] runs two builds interleaved on one host, [`calibrate`]
//! measures the noise floor of an A/A comparison. docs/compare.md has the
//! method and the defaults with their reasons.
//!
//! Only [`input`] knows the run-file types; everything else works on
//! [`data::RunData`].

pub mod ab;
pub mod bootstrap;
pub mod calibrate;
pub mod data;
pub mod error;
pub mod fdr;
pub mod input;
pub mod output;
pub mod permutation;
pub mod policy;
pub mod rng;
pub mod statistic;
pub mod verdict;

pub use data::{HostField, HostFingerprint, MetricKey, RunData};
pub use error::CompareError;
pub use policy::Policy;
pub use verdict::{compare, CompareOptions, Comparison, Overall, Verdict};

/// Exit code of `versus compare`, `ab` and `calibrate` for a usage error
/// (bad arguments, unreadable input, a bad policy file).
pub const EXIT_USAGE: u8 = 3;
