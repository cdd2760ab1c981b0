//! Rows of samples.csv and summary.csv.

use serde::{Deserialize, Serialize};

use super::Metric;

/// One measured value: a row of samples.csv,
/// `run_id,platform,workload,metric,unit,iteration,value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Empty until the runner stamps the run ([`super::stamp_run_id`]).
    pub run_id: String,
    pub platform: String,
    /// The workload spec with its parameter (`cpu:200000`), or for image
    /// rows the storage method.
    pub workload: String,
    pub metric: Metric,
    pub unit: String,
    pub iteration: u32,
    pub value: f64,
}

impl Sample {
    /// A row in the metric's own unit.
    pub fn new(platform: &str, workload: &str, metric: Metric, iteration: u32, value: f64) -> Sample {
        let unit = metric.unit().to_string();
        Sample { run_id: String::new(), platform: platform.into(), workload: workload.into(), metric, unit, iteration, value }
    }

    /// A row in another unit than the metric's (e.g. `bytes_apparent`).
    pub fn with_unit(platform: &str, workload: &str, metric: Metric, unit: &str, iteration: u32, value: f64) -> Sample {
        Sample { unit: unit.into(), ..Sample::new(platform, workload, metric, iteration, value) }
    }
}

/// One group's statistics: a row of summary.csv (see [`crate::stats`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub run_id: String,
    pub platform: String,
    pub workload: String,
    pub metric: Metric,
    pub unit: String,
    pub n: usize,
    pub mean: f64,
    pub stddev: f64,
    pub median: f64,
    pub p95: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
    pub mad: f64,
    pub outliers: usize,
    pub ci95_low: f64,
    pub ci95_high: f64,
}
