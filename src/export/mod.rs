//! Writers (and readers) of a run's output files, exactly as DESIGN.md
//! defines them: `samples.csv`, `summary.csv`, `probes.csv`, `env.json`.

pub mod csv;
pub mod json;

pub use self::csv::{read_probes, read_samples, read_summary, summarize_samples, write_probes, write_samples, write_summary, Sample, SummaryRow};
