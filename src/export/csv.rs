//! `samples.csv` (one row per measured value), `summary.csv` (one row per
//! platform, workload and metric) and `probes.csv`, with the columns of
//! docs/design.md, written and read back.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ExportError;
use crate::model::{Metric, ProbeRow, Sample, SummaryRow};
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
/// Columns of probes.csv, in order.
pub const PROBE_COLUMNS: [&str; 6] = ["run_id", "platform", "probe", "category", "result", "evidence"];

fn write_rows<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), ExportError> {
    let err = |e: ::csv::Error| ExportError::Csv { path: path.to_path_buf(), detail: e.to_string() };
    let mut w = ::csv::Writer::from_path(path).map_err(err)?;
    for r in rows {
        w.serialize(r).map_err(err)?;
    }
    w.flush().map_err(|source| ExportError::Write { path: path.to_path_buf(), source })
}

fn read_rows<T: for<'de> Deserialize<'de>>(path: &Path, columns: &[&str]) -> Result<Vec<T>, ExportError> {
    let err = |e: ::csv::Error| ExportError::Csv { path: path.to_path_buf(), detail: e.to_string() };
    let mut r = ::csv::Reader::from_path(path).map_err(err)?;
    let header: Vec<String> = r.headers().map_err(err)?.iter().map(String::from).collect();
    if header != columns {
        return Err(ExportError::Csv { path: path.to_path_buf(), detail: format!("it has columns {header:?}; expected {columns:?}") });
    }
    let mut out = Vec::new();
    for (i, row) in r.deserialize().enumerate() {
        out.push(row.map_err(|e| ExportError::Csv { path: path.to_path_buf(), detail: format!("row {}: {e}", i + 2) })?);
    }
    Ok(out)
}

/// Writes samples.csv.
pub fn write_samples(path: &Path, rows: &[Sample]) -> Result<(), ExportError> {
    write_rows(path, rows)
}
/// Writes summary.csv.
pub fn write_summary(path: &Path, rows: &[SummaryRow]) -> Result<(), ExportError> {
    write_rows(path, rows)
}
/// Writes probes.csv.
pub fn write_probes(path: &Path, rows: &[ProbeRow]) -> Result<(), ExportError> {
    write_rows(path, rows)
}
/// Reads probes.csv back, checking its columns.
pub fn read_probes(path: &Path) -> Result<Vec<ProbeRow>, ExportError> {
    read_rows(path, &PROBE_COLUMNS)
}
/// Reads samples.csv back, checking its columns.
pub fn read_samples(path: &Path) -> Result<Vec<Sample>, ExportError> {
    read_rows(path, &SAMPLE_COLUMNS)
}
/// Reads summary.csv back, checking its columns.
pub fn read_summary(path: &Path) -> Result<Vec<SummaryRow>, ExportError> {
    read_rows(path, &SUMMARY_COLUMNS)
}

/// Groups samples by (platform, workload, metric, unit), keeping first-seen
/// order, and summarises each group.
pub fn summarize_samples(samples: &[Sample]) -> Vec<SummaryRow> {
    type Key = (String, String, Metric, String);
    let mut order: Vec<Key> = Vec::new();
    let mut groups: BTreeMap<Key, (String, Vec<f64>)> = BTreeMap::new();
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

    fn s(platform: &str, metric: Metric, i: u32, v: f64) -> Sample {
        Sample { run_id: "r1".into(), ..Sample::new(platform, "ready", metric, i, v) }
    }

    #[test]
    fn round_trip_with_exact_columns() {
        let d = tempfile::tempdir().unwrap();
        let samples = vec![
            s("process", Metric::Boot, 0, 1.0),
            s("process", Metric::Boot, 1, 3.0),
            s("container", Metric::Boot, 0, 5.0),
            s("container", Metric::phase("exec"), 0, 2.0),
        ];
        write_samples(&d.path().join("samples.csv"), &samples).unwrap();
        let text = std::fs::read_to_string(d.path().join("samples.csv")).unwrap();
        assert_eq!(text.lines().next().unwrap(), SAMPLE_COLUMNS.join(","));
        assert!(text.contains(",boot.exec,ms,"), "{text}");
        assert_eq!(read_samples(&d.path().join("samples.csv")).unwrap(), samples);
        let summary = summarize_samples(&samples);
        assert_eq!(summary.len(), 3);
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
        assert!(e.contains("expected") && e.contains("x.csv"), "{e}");
    }
}
