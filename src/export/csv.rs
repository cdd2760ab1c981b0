//! `samples.csv` (one row per measured value) and `summary.csv` (one row per
//! platform, workload and metric), with the columns of DESIGN.md.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::stats;

/// Columns of samples.csv, in order.
pub const SAMPLE_COLUMNS: [&str; 7] = ["run_id", "platform", "workload", "metric", "unit", "iteration", "value"];
/// Columns of summary.csv, in order.
pub const SUMMARY_COLUMNS: [&str; 17] = [
    "run_id",
    "platform",
    "workload",
    "metric",
    "unit",
    "n",
    "mean",
    "stddev",
    "median",
    "p95",
    "p99",
    "min",
    "max",
    "mad",
    "outliers",
    "ci95_low",
    "ci95_high",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub run_id: String,
    pub platform: String,
    pub workload: String,
    pub metric: String,
    pub unit: String,
    pub iteration: u32,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub run_id: String,
    pub platform: String,
    pub workload: String,
    pub metric: String,
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

fn write_rows<T: Serialize>(path: &Path, rows: &[T]) -> anyhow::Result<()> {
    let mut w = ::csv::Writer::from_path(path).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(())
}

fn read_rows<T: for<'de> Deserialize<'de>>(path: &Path, columns: &[&str]) -> anyhow::Result<Vec<T>> {
    let mut r = ::csv::Reader::from_path(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let header: Vec<String> = r.headers()?.iter().map(String::from).collect();
    if header != columns {
        anyhow::bail!("{} has columns {:?}; expected {:?}", path.display(), header, columns);
    }
    let mut out = Vec::new();
    for (i, row) in r.deserialize().enumerate() {
        out.push(row.map_err(|e| anyhow::anyhow!("{} row {}: {e}", path.display(), i + 2))?);
    }
    Ok(out)
}

pub fn write_samples(path: &Path, rows: &[Sample]) -> anyhow::Result<()> {
    write_rows(path, rows)
}
pub fn write_summary(path: &Path, rows: &[SummaryRow]) -> anyhow::Result<()> {
    write_rows(path, rows)
}
/// Columns of probes.csv, in order.
pub const PROBE_COLUMNS: [&str; 6] = ["run_id", "platform", "probe", "category", "result", "evidence"];

/// Writes probes.csv.
pub fn write_probes(path: &Path, rows: &[crate::measure::probes::ProbeRow]) -> anyhow::Result<()> {
    write_rows(path, rows)
}
/// Reads probes.csv back, checking its columns.
pub fn read_probes(path: &Path) -> anyhow::Result<Vec<crate::measure::probes::ProbeRow>> {
    read_rows(path, &PROBE_COLUMNS)
}

/// Reads samples.csv back, checking its columns.
pub fn read_samples(path: &Path) -> anyhow::Result<Vec<Sample>> {
    read_rows(path, &SAMPLE_COLUMNS)
}
/// Reads summary.csv back, checking its columns.
pub fn read_summary(path: &Path) -> anyhow::Result<Vec<SummaryRow>> {
    read_rows(path, &SUMMARY_COLUMNS)
}

/// Groups samples by (platform, workload, metric, unit), keeping first-seen
/// order, and summarises each group.
pub fn summarize_samples(samples: &[Sample]) -> Vec<SummaryRow> {
    let mut order: Vec<(String, String, String, String)> = Vec::new();
    let mut groups: BTreeMap<(String, String, String, String), (String, Vec<f64>)> = BTreeMap::new();
    for s in samples {
        let k = (s.platform.clone(), s.workload.clone(), s.metric.clone(), s.unit.clone());
        let e = groups.entry(k.clone()).or_insert_with(|| {
            order.push(k);
            (s.run_id.clone(), Vec::new())
        });
        e.1.push(s.value);
    }
    order
        .into_iter()
        .filter_map(|k| {
            let (run_id, values) = &groups[&k];
            let st = stats::summarize(values)?;
            Some(SummaryRow {
                run_id: run_id.clone(),
                platform: k.0,
                workload: k.1,
                metric: k.2,
                unit: k.3,
                n: st.n,
                mean: st.mean,
                stddev: st.stddev,
                median: st.median,
                p95: st.p95,
                p99: st.p99,
                min: st.min,
                max: st.max,
                mad: st.mad,
                outliers: st.outliers,
                ci95_low: st.ci95_low,
                ci95_high: st.ci95_high,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(platform: &str, metric: &str, i: u32, v: f64) -> Sample {
        Sample {
            run_id: "r1".into(),
            platform: platform.into(),
            workload: "ready".into(),
            metric: metric.into(),
            unit: "ms".into(),
            iteration: i,
            value: v,
        }
    }

    #[test]
    fn round_trip_with_exact_columns() {
        let d = tempfile::tempdir().unwrap();
        let samples = vec![s("process", "boot", 0, 1.0), s("process", "boot", 1, 3.0), s("container", "boot", 0, 5.0)];
        write_samples(&d.path().join("samples.csv"), &samples).unwrap();
        let text = std::fs::read_to_string(d.path().join("samples.csv")).unwrap();
        assert_eq!(text.lines().next().unwrap(), SAMPLE_COLUMNS.join(","));
        assert_eq!(read_samples(&d.path().join("samples.csv")).unwrap(), samples);
        let summary = summarize_samples(&samples);
        assert_eq!(summary.len(), 2);
        assert_eq!((summary[0].platform.as_str(), summary[0].n, summary[0].median), ("process", 2, 2.0));
        write_summary(&d.path().join("summary.csv"), &summary).unwrap();
        let text = std::fs::read_to_string(d.path().join("summary.csv")).unwrap();
        assert_eq!(text.lines().next().unwrap(), SUMMARY_COLUMNS.join(","));
        assert_eq!(read_summary(&d.path().join("summary.csv")).unwrap(), summary);
    }

    #[test]
    fn rejects_wrong_columns() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("x.csv"), "a,b\n1,2\n").unwrap();
        let e = read_samples(&d.path().join("x.csv")).unwrap_err().to_string();
        assert!(e.contains("expected"), "{e}");
    }
}
